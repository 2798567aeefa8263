//! The in-process gateway the HTTP targets call: one runtime and two
//! routers per fuzzing thread, built once, so each input costs a request
//! and not a gateway.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use http_body_util::BodyExt;
use thingcall_proto::v1::Contract;
use thingcall_proto::wire::BrokerLimits;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tower::ServiceExt;

use crate::gateway::{CoreConfig, Gateway};
use crate::mqtt::Outbox;
use crate::watch::SharedEvent;

/// The target and method of the call that marks the end of one input's
/// calls on the watch stream.
pub const SENTINEL: &str = "fuzz-sentinel";

/// The settings of the fuzzed gateway: the defaults' shape, with a small
/// payload limit so `PAYLOAD_TOO_LARGE` is in reach of short inputs.
pub fn config(broker_limits: BrokerLimits) -> CoreConfig {
    CoreConfig {
        gateway_id: "gw".into(),
        topic_root: "thingcall".into(),
        default_timeout: Duration::from_secs(10),
        max_timeout: Duration::from_secs(300),
        max_payload: 1024,
        max_in_flight: 64,
        max_in_flight_per_device: 64,
        watch_buffer: 64,
        default_contract: Contract::Native,
        seed_client_prefix: "invocation_client".into(),
        metrics_max_methods: 64,
        idempotency_window: Duration::from_secs(300),
        idempotency_max_bytes: 1 << 20,
        broker_limits,
        presence_grace: Duration::ZERO,
        // No device announces itself here: every call that passes
        // admission goes out (and fails at the full outbox).
        call_unannounced: true,
    }
}

/// What one fuzzing thread keeps between inputs.
pub struct Rig {
    pub runtime: Runtime,
    /// Every API over a gateway that takes calls. Its outbox has no session
    /// behind it and a full queue, so a call that passes admission fails at
    /// once with `BROKER_UNAVAILABLE`: no timer, no broker, and the call is
    /// still seen on the watch stream with the target and method it ran with.
    pub live: Router,
    /// Watches every device of `live`: its calls' outcomes.
    pub calls: mpsc::Receiver<SharedEvent>,
    /// Every API over a drained gateway: bad input is still refused as
    /// such (validation comes first), everything else ends at once, so
    /// streaming RPCs (WatchDevice, health Watch) end too.
    pub drained: Router,
    /// The unary Invoke route over `drained`'s gateway.
    pub drained_unary: crate::api::unary::UnaryInvoke,
}

impl Rig {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime builds");
        let (live, calls, drained, drained_unary) = runtime.block_on(async {
            let (live, gateway) = app();
            let calls = gateway
                .watch(&crate::auth::Access::All, "", false)
                .expect("an open gateway takes watchers")
                .into_inner();
            let (drained, gateway) = app();
            gateway.drain();
            let drained_unary = crate::api::unary::UnaryInvoke::new(gateway, None);
            (live, calls, drained, drained_unary)
        });
        Rig {
            runtime,
            live,
            calls,
            drained,
            drained_unary,
        }
    }

    /// Runs `f` with this thread's rig.
    pub fn with<T>(f: impl FnOnce(&mut Rig) -> T) -> T {
        thread_local! {
            static RIG: RefCell<Option<Rig>> = const { RefCell::new(None) };
        }
        RIG.with(|rig| f(rig.borrow_mut().get_or_insert_with(Rig::new)))
    }
}

/// The gateway's one router over a gateway with no broker, as the server
/// builds it (no authentication, no CORS origins), and the gateway.
fn app() -> (Router, Arc<Gateway>) {
    let outbox = Outbox::unconnected();
    // Its queue has no reader: fill what room it has, and from then on
    // every publish is refused at once, so a call ends with `BROKER_UNAVAILABLE` the moment
    // it is admitted instead of waiting out its deadline.
    let filler = || thingcall_proto::wire::NativeRequest {
        topic: "fuzz/filler".into(),
        response_topic: "fuzz/filler".into(),
        correlation: [0; 16],
        payload: bytes::Bytes::new(),
        deadline: std::time::SystemTime::now(),
        content_type: None,
        user_properties: Vec::new(),
    };
    while outbox.send_native(filler()) {}
    let gateway = Arc::new(Gateway::new(config(BrokerLimits::default()), outbox));
    // As the session says once subscribed: calls are admitted.
    crate::gateway::as_incoming(&gateway).on_ready();
    let (reporter, _) = tonic_health::server::health_reporter();
    // Closed from the start: health Watch streams end after their first
    // answer instead of waiting for changes that never come.
    let (_, closed) = tokio::sync::watch::channel(true);
    let health = crate::api::health::service(&reporter, closed);
    let router = crate::api::app::router(gateway.clone(), None, health, &[]);
    (router, gateway)
}

/// Sends `request` through `app` and reads the whole answer.
pub async fn send(
    app: &Router,
    request: http::Request<Body>,
) -> (http::response::Parts, bytes::Bytes, Option<http::HeaderMap>) {
    let response = app
        .clone()
        .oneshot(request)
        .await
        .expect("the router's error type is Infallible");
    let (parts, body) = response.into_parts();
    let collected = body
        .collect()
        .await
        .expect("the gateway's response bodies do not fail");
    let trailers = collected.trailers().cloned();
    (parts, collected.to_bytes(), trailers)
}
