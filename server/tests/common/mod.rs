//! Test harness: a real broker (the embedded one, or a Mosquitto started
//! here on a free port), a gateway on 127.0.0.1:0, devices in-process, and
//! a gRPC client. No mocks: everything speaks MQTT 5 and gRPC for real.
#![allow(dead_code)]

pub mod auth;
pub mod capture;
pub mod http;
pub mod peer;
pub mod process;

use std::net::SocketAddr;
use std::time::Duration;

use thingcall_device::{spawn_device, standard_methods, DeviceHandle, DeviceOptions, Handlers};
use thingcall_proto::v1::device_gateway_client::DeviceGatewayClient;
use thingcall_proto::v1::{device_event::Kind, DeviceEvent, InvokeRequest, WatchDeviceRequest};
use thingcall_server::{Config, Running};
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic_types::StatusExt;

/// Which broker a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broker {
    Embedded,
    Mosquitto,
}

enum BrokerProc {
    Embedded(Option<thingcall_server::broker::EmbeddedBroker>),
    Mosquitto(thingcall_testkit::Mosquitto),
}

/// A broker of `kind` on a free port; `None` when Mosquitto cannot run here.
async fn start_broker(kind: Broker) -> Option<(BrokerProc, SocketAddr)> {
    Some(match kind {
        Broker::Embedded => {
            let b = thingcall_server::broker::EmbeddedBroker::start(
                "127.0.0.1:0".parse().unwrap(),
                1 << 20,
            )
            .await
            .expect("embedded broker");
            let addr = b.addr();
            (BrokerProc::Embedded(Some(b)), addr)
        }
        Broker::Mosquitto => {
            let m = thingcall_testkit::Mosquitto::start()?;
            let addr = m.addr();
            (BrokerProc::Mosquitto(m), addr)
        }
    })
}

/// Generous bound for "should happen soon" on a loaded 2-core machine.
pub const SOON: Duration = Duration::from_secs(20);

pub struct Harness {
    kind: Broker,
    broker: BrokerProc,
    pub mqtt: SocketAddr,
    pub gw: Option<Running>,
    pub client: DeviceGatewayClient<Channel>,
}

/// Awaits `f`, failing the test if it takes longer than [`SOON`].
pub async fn soon<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(SOON, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

pub fn gateway_config(mqtt: SocketAddr) -> Config {
    use clap::Parser;
    let mut c = Config::parse_from(["thingcall-server"]);
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.mqtt_url = Some(format!("mqtt://{mqtt}"));
    c.gateway_id = Some(format!("gw-test-{}", std::process::id()));
    c
}

impl Harness {
    /// Starts a broker of `kind` and a gateway on it. `None` when the
    /// Mosquitto leg cannot run here (skipped; a failure when `CI` is set).
    pub async fn start(kind: Broker) -> Option<Self> {
        Self::start_with(kind, |_| {}).await
    }

    pub async fn start_with(kind: Broker, tweak: impl FnOnce(&mut Config)) -> Option<Self> {
        let (broker, mqtt) = start_broker(kind).await?;
        Some(Self::on(kind, broker, mqtt, mqtt, tweak).await)
    }

    /// Like [`Harness::start_with`], with the gateway's link to the broker
    /// through a [`FaultProxy`] (devices connect straight to the broker).
    pub async fn start_behind_proxy(
        kind: Broker,
        tweak: impl FnOnce(&mut Config),
    ) -> Option<(Self, thingcall_testkit::fault::FaultProxy)> {
        let (broker, mqtt) = start_broker(kind).await?;
        let proxy = thingcall_testkit::fault::FaultProxy::start(mqtt).await;
        let h = Self::on(kind, broker, mqtt, proxy.addr(), tweak).await;
        Some((h, proxy))
    }

    async fn on(
        kind: Broker,
        broker: BrokerProc,
        mqtt: SocketAddr,
        gateway_mqtt: SocketAddr,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        let mut cfg = gateway_config(gateway_mqtt);
        tweak(&mut cfg);
        let gw = thingcall_server::start(cfg).await.expect("gateway starts");
        soon("gateway MQTT session", gw.wait_connected()).await;
        let client = DeviceGatewayClient::connect(format!("http://{}", gw.grpc_addr))
            .await
            .expect("grpc connect");
        Self {
            kind,
            broker,
            mqtt,
            gw: Some(gw),
            client,
        }
    }

    /// `http://127.0.0.1:PORT` of the gateway's one port.
    pub fn base(&self) -> String {
        format!("http://{}", self.gw().grpc_addr)
    }

    pub fn gw(&self) -> &Running {
        self.gw.as_ref().unwrap()
    }

    pub fn device_options(&self, id: &str) -> DeviceOptions {
        DeviceOptions::new(id, self.mqtt.ip().to_string(), self.mqtt.port())
    }

    /// A device with the standard methods, online and seen by the gateway.
    pub async fn device(&self, id: &str) -> DeviceHandle {
        self.device_with(self.device_options(id), standard_methods())
            .await
    }

    /// A device, online, and its presence seen by the gateway.
    pub async fn device_with(&self, opts: DeviceOptions, handlers: Handlers) -> DeviceHandle {
        let id = opts.id.clone();
        let mut watch = self.watch(&id).await;
        let d = spawn_device(opts, handlers);
        soon("device online", d.wait_online()).await;
        wait_presence(&mut watch, &id, true).await;
        d
    }

    /// An MQTT client subscribed to every topic of the broker: the client
    /// (keep it alive) and its event loop, past the SUBACK.
    pub async fn spy(&self) -> (rumqttc::v5::AsyncClient, rumqttc::v5::EventLoop) {
        use rumqttc::v5::mqttbytes::v5::Packet;
        use rumqttc::v5::{AsyncClient, Event, MqttOptions};
        let id = format!("spy-{}", uuid::Uuid::new_v4().simple());
        let mut opts = MqttOptions::new(id, self.mqtt.ip().to_string(), self.mqtt.port());
        opts.set_max_packet_size(Some(1 << 20));
        let (spy, mut events) = AsyncClient::new(opts, 16);
        spy.subscribe("#", rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
            .await
            .unwrap();
        soon("spy subscribed", async {
            loop {
                if let Event::Incoming(Packet::SubAck(_)) = events.poll().await.expect("spy") {
                    return;
                }
            }
        })
        .await;
        (spy, events)
    }

    /// A WatchDevice stream, already past its initial snapshot.
    pub async fn watch(&self, pattern: &str) -> tonic::Streaming<DeviceEvent> {
        watch_synced(&self.client, pattern, false).await
    }

    /// Stops the broker abruptly (Mosquitto: SIGKILL).
    pub async fn kill_broker(&mut self) {
        match &mut self.broker {
            BrokerProc::Embedded(b) => b.take().expect("running").stop().await,
            BrokerProc::Mosquitto(m) => m.kill(),
        }
    }

    /// Starts the broker again on the same port.
    pub async fn restart_broker(&mut self) {
        match &mut self.broker {
            BrokerProc::Embedded(b) => {
                // `kill_broker` waited for the old broker to stop, so its
                // listener is closed and the port is free again.
                let started = thingcall_server::broker::EmbeddedBroker::start(self.mqtt, 1 << 20)
                    .await
                    .expect("embedded broker restarts on its port");
                *b = Some(started);
            }
            BrokerProc::Mosquitto(m) => m.restart(),
        }
    }

    pub fn kind(&self) -> Broker {
        self.kind
    }

    pub async fn stop(mut self) {
        if let Some(gw) = self.gw.take() {
            gw.stop().await;
        }
    }
}

/// Starts a device with the standard methods and returns once the core
/// of `gw` has seen it online (in-process, so it needs no credentials).
pub async fn device_seen(gw: &Running, opts: DeviceOptions) -> DeviceHandle {
    let id = opts.id.clone();
    let access = thingcall_server::auth::Access::All;
    let mut seen = gw
        .gateway
        .watch(&access, &id, false)
        .expect("in-process watch");
    let d = spawn_device(opts, standard_methods());
    soon("device online", async {
        while let Some(ev) = seen.next().await {
            if matches!(&ev.kind, Some(Kind::Presence(p)) if p.id == id && p.online) {
                return;
            }
        }
        panic!("the watch ended");
    })
    .await;
    d
}

/// A WatchDevice stream of `client` for `pattern`, past its initial snapshot.
pub async fn watch_synced(
    client: &DeviceGatewayClient<Channel>,
    pattern: &str,
    include_events: bool,
) -> tonic::Streaming<DeviceEvent> {
    let mut s = client
        .clone()
        .watch_device(WatchDeviceRequest {
            target: pattern.into(),
            include_events,
        })
        .await
        .expect("watch")
        .into_inner();
    soon("synced", async {
        while let Some(ev) = s.next().await {
            if matches!(ev.expect("event").kind, Some(Kind::Synced(_))) {
                return;
            }
        }
        panic!("watch ended before synced");
    })
    .await;
    s
}

/// Reads `watch` until `device` is reported online (or offline).
pub async fn wait_presence(watch: &mut tonic::Streaming<DeviceEvent>, device: &str, online: bool) {
    soon("presence change", async {
        while let Some(ev) = watch.next().await {
            if let Some(Kind::Presence(d)) = ev.expect("event").kind {
                if d.id == device && d.online == online {
                    return;
                }
            }
        }
        panic!("watch ended");
    })
    .await
}

/// The standard methods plus `hold`, which reports each start on the
/// returned receiver and answers (with its payload) only when the test adds
/// a permit to the returned semaphore: calls that stay in flight until the
/// test says otherwise, and a way to know they reached the device.
pub fn holding_methods() -> (
    Handlers,
    std::sync::Arc<tokio::sync::Semaphore>,
    tokio::sync::mpsc::UnboundedReceiver<()>,
) {
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let (tx, started) = tokio::sync::mpsc::unbounded_channel();
    let g = gate.clone();
    let handlers = standard_methods().method("hold", move |r| {
        let (gate, tx) = (g.clone(), tx.clone());
        async move {
            let _ = tx.send(());
            gate.acquire().await.expect("gate open").forget();
            thingcall_device::Reply::ok(r.payload)
        }
    });
    (handlers, gate, started)
}

pub fn req(target: &str, method: &str, payload: &[u8]) -> InvokeRequest {
    InvokeRequest {
        target: target.into(),
        method: method.into(),
        payload: payload.to_vec().into(),
        ..Default::default()
    }
}

pub fn secs_f(d: f64) -> Option<prost_types::Duration> {
    Duration::from_secs_f64(d).try_into().ok()
}

/// The ErrorInfo reason of a failed call.
pub fn reason(s: &tonic::Status) -> String {
    s.get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_else(|| format!("no ErrorInfo ({:?})", s.code()))
}

/// Runs `body` against each broker as its own test.
#[macro_export]
macro_rules! broker_tests {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let h = $crate::common::Harness::start($crate::common::Broker::Embedded).await.expect("embedded");
                    super::$name(h).await;
                }
            )*
        }
        mod mosquitto {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(not(mosquitto), ignore = "mosquitto not installed (apt-get install mosquitto)")]
                async fn $name() {
                    let Some(h) = $crate::common::Harness::start($crate::common::Broker::Mosquitto).await else { return };
                    super::$name(h).await;
                }
            )*
        }
    };
}
