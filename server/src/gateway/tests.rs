//! Unit-test support for the core (a config and a gateway with no broker
//! behind it), and tests of the core that need no broker.

use super::*;

/// Settings for unit tests: small limits, so tests can reach them.
pub(crate) fn test_config() -> CoreConfig {
    CoreConfig {
        gateway_id: "gw".into(),
        topic_root: "thingcall".into(),
        default_timeout: Duration::from_secs(10),
        max_timeout: Duration::from_secs(300),
        max_payload: 16,
        max_in_flight: 10,
        max_in_flight_per_device: 10,
        watch_buffer: 16,
        default_contract: Contract::Native,
        seed_client_prefix: "invocation_client".into(),
        metrics_max_methods: 64,
        idempotency_window: Duration::from_secs(300),
        idempotency_max_bytes: 1 << 20,
        broker_limits: thingcall_proto::wire::BrokerLimits::default(),
        presence_grace: Duration::from_secs(5),
        call_unannounced: false,
    }
}

/// A core for unit tests: an outbox with no connection behind it.
pub(crate) fn test_gateway() -> Arc<Gateway> {
    Arc::new(Gateway::new(test_config(), Outbox::unconnected()))
}

/// Every call in flight holds its future: these sizes are gateway
/// memory per call. An `async fn` keeps a second copy of its arguments,
/// and awaiting a captured future keeps it twice; this catches either
/// creeping back into the call path.
#[test]
fn call_futures_stay_small() {
    let g = test_gateway();
    let caller = || Caller {
        deadline: None,
        parent: None,
        surface: crate::api::grpc::INVOKE,
        access: crate::auth::Access::All,
    };
    let invoke = g.invoke(InvokeRequest::default(), caller());
    let size = std::mem::size_of_val(&invoke);
    assert!(size <= 1024, "the core's invoke future is {size} bytes");
    drop(invoke);
    use thingcall_proto::v1::device_gateway_server::DeviceGateway;
    let api = crate::api::grpc::GrpcApi::new(g.clone());
    let handler = api.invoke(tonic::Request::new(InvokeRequest::default()));
    let size = std::mem::size_of_val(&*handler);
    assert!(
        size <= 1024,
        "the gRPC Invoke handler's future is {size} bytes"
    );
    // The hot path's: the unary route's future is all hyper's stream task
    // adds to it, so it must stay about the core's.
    let core = std::mem::size_of_val(&g.clone().invoke_owned(InvokeRequest::default(), caller()));
    let route = crate::api::unary::UnaryInvoke::new(g.clone(), None);
    let body = http_body_util::Full::new(bytes::Bytes::new());
    let unary = route.call(http::Request::new(body), None);
    let size = std::mem::size_of_val(&unary);
    assert!(
        size <= core + 64,
        "the unary Invoke route's future is {size} bytes, the core's {core}"
    );
}
