//! Assembles a running gateway: broker (embedded or external), the MQTT
//! session, the core, the gRPC listener and the demo devices; and takes
//! them down again in order.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use thingcall_proto::v1::device_gateway_server::DeviceGatewayServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::HealthReporter;

use crate::api::grpc::GrpcApi;
use crate::config::{BrokerUrl, Config};
use crate::gateway::{as_incoming, CoreConfig, Gateway};
use crate::mqtt::SessionSettings;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;

/// How long the HTTP server may take to close its connections once every
/// call has ended and every watch stream was closed.
const HTTP_CLOSE_GRACE: Duration = Duration::from_secs(2);

/// A started gateway. Stop it with [`Running::stop`].
pub struct Running {
    /// Verifies or redoes the MQTT link from outside (a process thawed
    /// after a freeze, as a Lambda function between invocations).
    pub link: crate::mqtt::LinkControl,
    /// Where every API (gRPC, gRPC-web, HTTP/JSON) is served.
    pub grpc_addr: SocketAddr,
    /// The broker the gateway uses.
    pub mqtt_addr: (String, u16),
    /// Where the embedded broker serves MQTT over WebSockets (path
    /// `/mqtt`), with `--embedded-broker-ws-listen`.
    pub mqtt_ws_addr: Option<SocketAddr>,
    /// The core, for in-process callers and tests.
    pub gateway: Arc<Gateway>,
    /// The limits of the port (connection cap, timeouts).
    pub limits: crate::listener::Limits,
    /// Caller authentication, when configured.
    auth: Option<Arc<crate::auth::Auth>>,
    /// TLS of the port, when configured.
    tls: Option<Arc<crate::listener::tls::ServerTls>>,
    /// Fetches a JWKS URL, when configured.
    jwks_refresh: Option<JoinHandle<()>>,
    /// Keeps the service's health status in step with the MQTT session.
    readiness: JoinHandle<()>,
    /// Ends each session's presence grace period.
    grace: JoinHandle<()>,
    /// True once the health status says SERVING (the session is up).
    ready: watch::Receiver<bool>,
    health: HealthReporter,
    cors_origins: Vec<String>,
    drain_timeout: Duration,
    /// Ends the HTTP server: GOAWAY, then close once requests finished.
    http_stop: watch::Sender<bool>,
    /// Ends the MQTT session with a DISCONNECT.
    mqtt_stop: watch::Sender<bool>,
    grpc: JoinHandle<std::io::Result<()>>,
    session: JoinHandle<bool>,
    demo: Vec<thingcall_device::DeviceHandle>,
    #[cfg(feature = "embedded-broker")]
    broker: Option<crate::broker::EmbeddedBroker>,
    traces: Option<SdkTracerProvider>,
}

/// Starts everything `config` asks for and returns once the gRPC port is
/// bound; the MQTT session connects in the background (watch
/// [`Gateway::connected`]).
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let gateway_id = config.gateway_id();
    // Room for the payload plus topic and properties.
    let max_packet = config.max_payload + thingcall_proto::size::PACKET_HEADROOM;

    #[cfg(feature = "embedded-broker")]
    let mut broker = None;
    #[cfg_attr(not(feature = "embedded-broker"), allow(unused_mut))]
    let mut mqtt_ws_addr = None;
    let external = config
        .mqtt_url
        .as_deref()
        .map(BrokerUrl::parse)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let websocket = external.as_ref().and_then(|b| b.websocket.clone());
    let mqtt_addr = match &external {
        Some(b) => (b.host.clone(), b.port),
        None => {
            #[cfg(feature = "embedded-broker")]
            {
                let b = crate::broker::EmbeddedBroker::start_with_websocket(
                    config.embedded_broker_listen,
                    config.embedded_broker_ws_listen,
                    max_packet,
                )
                .await
                .map_err(anyhow::Error::msg)?;
                mqtt_ws_addr = b.ws_addr();
                let addr = b.addr();
                broker = Some(b);
                (addr.ip().to_string(), addr.port())
            }
            #[cfg(not(feature = "embedded-broker"))]
            anyhow::bail!("no --mqtt-url given and this build has no embedded broker");
        }
    };

    let core_cfg = CoreConfig {
        gateway_id: gateway_id.clone(),
        topic_root: config.topic_root.clone(),
        default_timeout: config.default_timeout,
        max_timeout: config.max_timeout,
        max_payload: config.max_payload,
        max_in_flight: config.max_in_flight,
        max_in_flight_per_device: config.max_in_flight_per_device,
        watch_buffer: config.watch_buffer,
        default_contract: config.default_contract(),
        seed_client_prefix: config.seed_client_prefix.clone(),
        metrics_max_methods: config.metrics_max_methods,
        idempotency_window: config.idempotency_window,
        idempotency_max_bytes: config.idempotency_max_bytes,
        broker_limits: config.broker_limits(),
        presence_grace: config.presence_grace,
        call_unannounced: config.call_unannounced,
    };
    let credentials = config.broker.credentials().map_err(anyhow::Error::msg)?;
    let settings = SessionSettings {
        tls: config.mqtt_tls().map_err(anyhow::Error::msg)?,
        host: mqtt_addr.0.clone(),
        port: mqtt_addr.1,
        websocket: websocket.clone(),
        client_id: gateway_id,
        max_packet_size: max_packet as u32,
        keep_alive: config.mqtt_keep_alive,
        request_qos: config.qos,
        credentials: credentials.clone(),
        sigv4: match &external {
            Some(url) => config.broker.sigv4(url).map_err(anyhow::Error::msg)?,
            None => None,
        },
        limits: config.broker_limits(),
        min_backoff: Duration::from_millis(50),
        max_backoff: config.mqtt_reconnect_max,
        // Every call in flight, plus room for subscribes and acks.
        request_queue: config.max_in_flight.saturating_add(64),
    };
    let (outbox, session) = crate::mqtt::connect(settings).map_err(anyhow::Error::msg)?;
    let traces = thingcall_proto::trace::provider_from_env("thingcall-gateway")
        .map_err(anyhow::Error::msg)?;
    let mut gateway = Gateway::new(core_cfg, outbox);
    if let Some(provider) = &traces {
        gateway = gateway.with_tracer(provider.tracer("thingcall-gateway"));
        // Demo devices in this process trace through the same provider.
        opentelemetry::global::set_tracer_provider(provider.clone());
        tracing::info!("exporting traces over OTLP");
    }
    let gateway = Arc::new(gateway);
    let (mqtt_stop, mqtt_stop_rx) = watch::channel(false);
    let link = session.link();
    let session = session.spawn(gateway.router(), as_incoming(&gateway), mqtt_stop_rx);
    let grace = tokio::spawn(gateway.clone().run_presence_grace());

    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let grpc_addr = listener.local_addr()?;
    let (health, _) = tonic_health::server::health_reporter();
    // Readiness (the service's status) follows the MQTT session; liveness
    // (`""`) stays SERVING, so an orchestrator does not restart a gateway
    // that is only waiting for its broker.
    let (ready_tx, ready) = watch::channel(false);
    let readiness = tokio::spawn(crate::api::health::track_readiness(
        health.clone(),
        gateway.connected(),
        gateway.draining(),
        ready_tx,
    ));
    let (http_stop, http_stop_rx) = watch::channel(false);
    let auth = crate::auth::Auth::from_args(&config.auth, config.port.client_certs())
        .map_err(anyhow::Error::msg)?
        .map(Arc::new);
    let jwks_refresh = auth
        .as_ref()
        .and_then(crate::auth::Auth::spawn_jwks_refresh);
    let tls = config
        .port
        .tls()
        .map(crate::listener::tls::ServerTls::load)
        .transpose()
        .map_err(anyhow::Error::msg)?
        .map(Arc::new);
    let limits = config.port.limits();
    tracing::debug!(?limits, tls = tls.is_some(), "caller connection limits");
    if auth.is_none() && !config.listen.ip().is_loopback() {
        tracing::warn!(listen = %config.listen, "serving without authentication (--insecure-no-auth)");
    }
    let grpc = tokio::spawn(serve_http(
        listener,
        gateway.clone(),
        auth.clone(),
        (limits, tls.clone()),
        crate::api::health::service(&health, http_stop_rx.clone()),
        config.cors_origins.clone(),
        http_stop_rx,
    ));

    let demo = demo_devices(&config, &mqtt_addr, websocket, credentials, max_packet);

    Ok(Running {
        link,
        grpc_addr,
        mqtt_addr,
        mqtt_ws_addr,
        gateway,
        limits,
        auth,
        tls,
        jwks_refresh,
        readiness,
        grace,
        ready,
        health,
        cors_origins: config.cors_origins.clone(),
        drain_timeout: config.drain_timeout,
        http_stop,
        mqtt_stop,
        grpc,
        session,
        demo,
        #[cfg(feature = "embedded-broker")]
        broker,
        traces,
    })
}

/// `--demo N`: `demo-1` .. `demo-N` on the native contract, plus
/// `Device001` on the seed contract, as in the AWS sample's walk-through.
fn demo_devices(
    config: &Config,
    mqtt: &(String, u16),
    websocket: Option<String>,
    credentials: Option<thingcall_proto::wire::Credentials>,
    max_packet: usize,
) -> Vec<thingcall_device::DeviceHandle> {
    use thingcall_device::{spawn_device, standard_methods, Contract, DeviceOptions};
    if config.demo == 0 {
        return Vec::new();
    }
    let tls = config.mqtt_tls().ok().flatten();
    let options = |id: String| DeviceOptions {
        topics: thingcall_proto::wire::Topics::new(config.topic_root.clone()),
        // Demo devices connect and log in as the gateway does.
        credentials: credentials.clone(),
        websocket: websocket.clone(),
        tls: tls.clone(),
        // They take every payload the gateway does (a request over a
        // device's packet limit is dropped by the broker unseen).
        max_packet: u32::try_from(max_packet)
            .unwrap_or(u32::MAX)
            .max(thingcall_device::DEFAULT_MAX_PACKET),
        ..DeviceOptions::new(id, mqtt.0.clone(), mqtt.1)
    };
    (1..=config.demo)
        .map(|i| options(format!("demo-{i}")))
        .chain(std::iter::once(DeviceOptions {
            contract: Contract::Seed,
            ..options("Device001".into())
        }))
        .map(|opts| spawn_device(opts, standard_methods()))
        .collect()
}

/// Serves every API on one port (see [`crate::api::app`]) until `stop`.
async fn serve_http(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    auth: Option<Arc<crate::auth::Auth>>,
    (limits, tls): (
        crate::listener::Limits,
        Option<Arc<crate::listener::tls::ServerTls>>,
    ),
    health_service: HealthServer<crate::api::health::EndingHealth>,
    cors_origins: Vec<String>,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let connections = gateway.connections();
    let unary = Arc::new(crate::api::unary::UnaryInvoke::new(
        gateway.clone(),
        auth.clone(),
    ));
    let app = crate::api::app::router(gateway, auth, health_service, &cors_origins);
    let routes = crate::listener::Routes { app, unary };
    crate::listener::serve(listener, routes, limits, tls, connections, stop).await
}

impl Running {
    /// Every API as one service, as the port serves it (authentication
    /// included), for a caller without a socket: the Lambda adapter hands
    /// it each event as an HTTP request.
    pub fn app(&self) -> axum::Router {
        crate::api::app::router(
            self.gateway.clone(),
            self.auth.clone(),
            crate::api::health::service(&self.health, self.http_stop.subscribe()),
            &self.cors_origins,
        )
    }

    /// Waits until the MQTT session is up and health says SERVING.
    pub async fn wait_connected(&self) {
        let mut rx = self.ready.clone();
        let _ = rx.wait_for(|r| *r).await;
    }

    /// Reads the reloadable files again (SIGHUP): the port's TLS
    /// certificate and key, and the JWKS. What fails to load is logged and
    /// the old contents stay in force; open connections are kept.
    pub fn reload(&self) {
        if let Some(tls) = &self.tls {
            match tls.reload() {
                Ok(()) => tracing::info!("TLS certificate reloaded"),
                Err(e) => {
                    tracing::warn!(error = %e, "TLS reload failed; keeping the old certificate")
                }
            }
        }
        if let Some(auth) = &self.auth {
            if let Err(e) = auth.reload() {
                tracing::warn!(error = %e, "JWKS reload failed; keeping the old keys");
            }
        }
    }

    /// JWKS loads so far, followed; `None` without JWTs.
    pub fn jwks_loads(&self) -> Option<watch::Receiver<u64>> {
        self.auth.as_ref().and_then(|a| a.jwks_loads())
    }

    /// Waits until every demo device is online, and the native ones are
    /// online in the gateway's own view (listed, callable by glob).
    pub async fn wait_demo_online(&self) {
        for d in &self.demo {
            d.wait_online().await;
            if d.contract() == thingcall_device::Contract::Native {
                self.gateway.wait_seen_online(d.id()).await;
            }
        }
    }

    /// Stops in order, so that calls in flight keep their answers:
    /// 1. health reports NOT_SERVING (load balancers stop sending);
    /// 2. new calls and watches get `SHUTTING_DOWN`;
    /// 3. calls in flight finish, up to `--drain-timeout`; the rest then
    ///    fail with `SHUTTING_DOWN`;
    /// 4. watch streams get a final `closing` event and end; the HTTP server
    ///    sends GOAWAY and closes its connections;
    /// 5. demo devices stop, the MQTT session disconnects cleanly, and the
    ///    embedded broker stops; batched spans are exported.
    pub async fn stop(mut self) -> StopReport {
        self.readiness.abort();
        self.grace.abort();
        self.health
            .set_not_serving::<DeviceGatewayServer<GrpcApi>>()
            .await;
        self.health
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        self.gateway.drain();
        let in_flight = self.gateway.in_flight();
        if in_flight > 0 {
            tracing::info!(in_flight, drain_timeout = ?self.drain_timeout, "draining calls in flight");
        }
        let drained = tokio::time::timeout(self.drain_timeout, self.gateway.wait_idle())
            .await
            .is_ok();
        let aborted = if drained {
            0
        } else {
            let n = self.gateway.abort_calls();
            tracing::warn!(
                aborted = n,
                "calls still in flight after {:?} failed with SHUTTING_DOWN",
                self.drain_timeout
            );
            n
        };
        self.gateway.close_watchers();
        let _ = self.http_stop.send(true);
        if tokio::time::timeout(HTTP_CLOSE_GRACE, &mut self.grpc)
            .await
            .is_err()
        {
            tracing::warn!("HTTP connections still open after {HTTP_CLOSE_GRACE:?}; closing them");
            self.grpc.abort();
        }
        if let Some(task) = self.jwks_refresh.take() {
            task.abort();
        }
        for d in self.demo {
            d.shutdown().await;
        }
        let _ = self.mqtt_stop.send(true);
        let mqtt_disconnected = self.session.await.unwrap_or(false);
        #[cfg(feature = "embedded-broker")]
        if let Some(b) = self.broker {
            b.stop().await;
        }
        if let Some(provider) = self.traces {
            // Exports the spans still batched; blocking, so off the workers.
            let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        }
        StopReport {
            in_flight,
            aborted,
            mqtt_disconnected,
        }
    }
}

/// What [`Running::stop`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopReport {
    /// Calls in flight when draining began.
    pub in_flight: usize,
    /// Of those, how many were still running at the end of the drain window
    /// and failed with `SHUTTING_DOWN`.
    pub aborted: usize,
    /// Whether the MQTT session ended with a DISCONNECT to the broker.
    pub mqtt_disconnected: bool,
}

/// A gateway with its embedded broker on free loopback ports and `devices`
/// demo devices (plus `Device001`), returned once all are online: for tests
/// and programs that embed a whole thingcall.
#[cfg(feature = "embedded-broker")]
pub async fn start_local_demo(devices: u32) -> anyhow::Result<Running> {
    start_local_demo_with(devices, &[]).await
}

/// [`start_local_demo`] with more gateway flags (`--max-in-flight 1`,
/// `--api-keys FILE`), for tests of limits and credentials.
#[cfg(feature = "embedded-broker")]
pub async fn start_local_demo_with(devices: u32, flags: &[&str]) -> anyhow::Result<Running> {
    use clap::Parser;
    let demo = devices.to_string();
    let base = [
        "thingcall-server",
        "--listen",
        "127.0.0.1:0",
        "--embedded-broker-listen",
        "127.0.0.1:0",
        "--demo",
        &demo,
    ];
    let config = Config::try_parse_from(base.iter().chain(flags))?;
    config.validate().map_err(anyhow::Error::msg)?;
    let running = start(config).await?;
    running.wait_connected().await;
    running.wait_demo_online().await;
    Ok(running)
}

/// Runs until `shutdown` resolves, then stops cleanly.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let running = start(config).await?;
    tracing::info!(
        grpc = %running.grpc_addr,
        mqtt = %format!("{}:{}", running.mqtt_addr.0, running.mqtt_addr.1),
        mqtt_ws = running.mqtt_ws_addr.map(tracing::field::display),
        gateway_id = %running.gateway.config().gateway_id,
        max_connections = running.limits.max_connections,
        tls = running.tls.is_some(),
        "thingcall-server listening"
    );
    #[cfg(unix)]
    let shutdown = async {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return anyhow::Ok(()),
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading");
                    running.reload();
                }
            }
        }
    };
    shutdown.await?;
    tracing::info!("shutting down");
    let report = running.stop().await;
    tracing::info!(
        drained = report.in_flight - report.aborted,
        aborted = report.aborted,
        mqtt_disconnected = report.mqtt_disconnected,
        "stopped"
    );
    Ok(())
}
