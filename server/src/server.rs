//! Assembles a running gateway: broker (embedded or external), the MQTT
//! session, the core, the gRPC listener and the demo devices; and takes
//! them down again in order.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rumqttc::v5::mqttbytes::QoS;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;

use crate::api::grpc::GrpcApi;
use crate::config::Config;
use crate::gateway::{as_incoming, CoreConfig, Gateway};
use crate::mqtt::{new_session, spawn_session, SessionSettings};

/// How long shutdown waits for calls in flight.
pub const DRAIN_GRACE: Duration = Duration::from_secs(10);

/// A started gateway. Stop it with [`Running::stop`].
pub struct Running {
    /// Where gRPC is served.
    pub grpc_addr: SocketAddr,
    /// The broker the gateway uses.
    pub mqtt_addr: (String, u16),
    /// The core, for in-process callers and tests.
    pub gateway: Arc<Gateway>,
    stop: watch::Sender<bool>,
    grpc: JoinHandle<Result<(), tonic::transport::Error>>,
    session: JoinHandle<()>,
    demo: Vec<thingcall_device_sim::DeviceHandle>,
    #[cfg(feature = "embedded-broker")]
    broker: Option<crate::broker::EmbeddedBroker>,
}

/// Starts everything `config` asks for and returns once the gRPC port is
/// bound; the MQTT session connects in the background (watch
/// [`Gateway::connected`]).
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let gateway_id = config.gateway_id();
    // Room for the payload plus topic and properties.
    let max_packet = config.max_payload + 64 * 1024;

    #[cfg(feature = "embedded-broker")]
    let mut broker = None;
    let mqtt_addr = match &config.mqtt_url {
        Some(url) => thingcall_device_sim::parse_mqtt_url(url).map_err(anyhow::Error::msg)?,
        None => {
            #[cfg(feature = "embedded-broker")]
            {
                let b =
                    crate::broker::EmbeddedBroker::start(config.embedded_broker_listen, max_packet)
                        .await?;
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
        qos: match config.qos {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            _ => QoS::ExactlyOnce,
        },
        default_timeout: config.default_timeout,
        max_timeout: config.max_timeout,
        max_payload: config.max_payload,
        max_in_flight: config.max_in_flight,
        watch_buffer: config.watch_buffer,
    };
    let settings = SessionSettings {
        host: mqtt_addr.0.clone(),
        port: mqtt_addr.1,
        client_id: gateway_id,
        max_packet_size: max_packet as u32,
        keep_alive: Duration::from_secs(30),
        subscriptions: Vec::new(),
        min_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_secs(5),
    };
    let (client, eventloop) = new_session(&settings);
    let gateway = Arc::new(Gateway::new(core_cfg, client.clone()));
    let settings = SessionSettings {
        subscriptions: gateway.subscriptions(),
        ..settings
    };
    let (stop, stop_rx) = watch::channel(false);
    let session = spawn_session(
        settings,
        client,
        eventloop,
        as_incoming(&gateway),
        stop_rx.clone(),
    );

    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let grpc_addr = listener.local_addr()?;
    let grpc = tokio::spawn(serve_grpc(listener, gateway.clone(), stop_rx.clone()));

    let demo = (1..=config.demo)
        .map(|i| {
            let opts = thingcall_device_sim::DeviceOptions {
                topics: thingcall_proto::wire::Topics::new(config.topic_root.clone()),
                ..thingcall_device_sim::DeviceOptions::new(
                    format!("demo-{i}"),
                    mqtt_addr.0.clone(),
                    mqtt_addr.1,
                )
            };
            thingcall_device_sim::spawn_device(opts, thingcall_device_sim::standard_methods())
        })
        .collect();

    Ok(Running {
        grpc_addr,
        mqtt_addr,
        gateway,
        stop,
        grpc,
        session,
        demo,
        #[cfg(feature = "embedded-broker")]
        broker,
    })
}

async fn serve_grpc(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), tonic::transport::Error> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<thingcall_proto::v1::device_gateway_server::DeviceGatewayServer<GrpcApi>>()
        .await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(thingcall_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1().expect("descriptor sets are valid");
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .expect("descriptor sets are valid");
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .add_service(
            thingcall_proto::v1::device_gateway_server::DeviceGatewayServer::new(GrpcApi::new(
                gateway,
            )),
        )
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await
}

impl Running {
    /// Waits until the MQTT session is up (subscriptions in place).
    pub async fn wait_connected(&self) {
        let mut rx = self.gateway.connected();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Waits until every demo device is online.
    pub async fn wait_demo_online(&self) {
        for d in &self.demo {
            d.wait_online().await;
        }
    }

    /// Stops in order: refuse new calls and end watch streams, stop gRPC
    /// (calls in flight get up to [`DRAIN_GRACE`] to finish), demo devices,
    /// the MQTT session, then the embedded broker.
    pub async fn stop(mut self) {
        self.gateway.drain();
        let _ = self.stop.send(true);
        if tokio::time::timeout(DRAIN_GRACE, &mut self.grpc)
            .await
            .is_err()
        {
            tracing::warn!("calls still in flight after {DRAIN_GRACE:?}; stopping anyway");
            self.grpc.abort();
        }
        for d in self.demo {
            d.shutdown().await;
        }
        let _ = self.session.await;
        #[cfg(feature = "embedded-broker")]
        if let Some(b) = self.broker {
            b.stop().await;
        }
    }
}

/// Runs until `shutdown` resolves, then stops cleanly.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let running = start(config).await?;
    tracing::info!(
        grpc = %running.grpc_addr,
        mqtt = %format!("{}:{}", running.mqtt_addr.0, running.mqtt_addr.1),
        gateway_id = %running.gateway.config().gateway_id,
        "thingcall-server listening"
    );
    shutdown.await;
    tracing::info!("shutting down");
    running.stop().await;
    Ok(())
}
