#![forbid(unsafe_code)]
//! The embedded MQTT 5 broker, so `thingcall-server` runs with nothing else
//! installed, and tests of the device library need no Mosquitto. It is the `mqtt5` crate's broker: async on our own runtime,
//! stops cleanly, and passed the wire-contract checks (retained presence,
//! Will on a dropped socket, ResponseTopic / CorrelationData / user
//! properties / MessageExpiryInterval intact) that Mosquitto passes. State
//! is kept in memory only: nothing is written to the working directory.

use std::net::SocketAddr;
use std::path::PathBuf;

use mqtt5::broker::config::{
    BrokerConfig, StorageBackend, StorageConfig, TlsConfig, WebSocketConfig,
};
use mqtt5::broker::{BrokerShutdownHandle, MqttBroker};
use tokio::task::JoinHandle;

/// The HTTP path of the WebSocket listener, as most brokers use.
pub const WEBSOCKET_PATH: &str = "/mqtt";

/// MQTT over WebSockets over TLS (`wss://`), for tests of TLS
/// WebSocket clients.
#[derive(Debug, Clone)]
pub struct WebSocketTls {
    /// Where to listen: a fixed port (the mqtt5 broker does not report
    /// the port it bound for this listener).
    pub addr: SocketAddr,
    /// PEM file of the server certificate (chain).
    pub cert: PathBuf,
    /// PEM file of its private key.
    pub key: PathBuf,
}

/// A running embedded broker.
pub struct EmbeddedBroker {
    addr: SocketAddr,
    ws_addr: Option<SocketAddr>,
    shutdown: BrokerShutdownHandle,
    task: JoinHandle<()>,
}

impl EmbeddedBroker {
    /// Binds `listen` (port 0 picks a free one) and starts serving packets
    /// of up to `max_packet_size` bytes. The error says what failed.
    pub async fn start(listen: SocketAddr, max_packet_size: usize) -> Result<Self, String> {
        Self::start_with_websocket(listen, None, max_packet_size).await
    }

    /// As [`EmbeddedBroker::start`], plus MQTT over WebSockets on
    /// `websocket` (port 0 picks a free one) at path [`WEBSOCKET_PATH`]
    /// when given: what `ws://` clients (browsers, AWS-IoT-style gateways)
    /// connect to, sharing the sessions and topics of the TCP listener.
    pub async fn start_with_websocket(
        listen: SocketAddr,
        websocket: Option<SocketAddr>,
        max_packet_size: usize,
    ) -> Result<Self, String> {
        Self::start_with_listeners(listen, websocket, None, max_packet_size).await
    }

    /// As [`EmbeddedBroker::start_with_websocket`], plus MQTT over
    /// WebSockets over TLS when `websocket_tls` is given (mqtt5 also opens
    /// an MQTT-over-TLS listener on a free loopback port with the same
    /// certificate, unused here).
    pub async fn start_with_listeners(
        listen: SocketAddr,
        websocket: Option<SocketAddr>,
        websocket_tls: Option<WebSocketTls>,
        max_packet_size: usize,
    ) -> Result<Self, String> {
        let storage = StorageConfig::new()
            .with_backend(StorageBackend::Memory)
            .with_persistence(true);
        let config = BrokerConfig::default()
            .with_bind_address(listen)
            .with_storage(storage)
            .with_max_clients(200_000)
            .with_max_packet_size(max_packet_size)
            .with_sys_topics_enabled(false);
        let config = match websocket {
            Some(ws) => config.with_websocket(
                WebSocketConfig::new()
                    .with_bind_address(ws)
                    .with_path(WEBSOCKET_PATH),
            ),
            None => config,
        };
        let config = match &websocket_tls {
            Some(wss) => config
                .with_tls(
                    TlsConfig::new(wss.cert.clone(), wss.key.clone())
                        .with_bind_address(SocketAddr::from(([127, 0, 0, 1], 0))),
                )
                .with_websocket_tls(
                    WebSocketConfig::new()
                        .with_bind_address(wss.addr)
                        .with_path(WEBSOCKET_PATH)
                        .with_tls(true),
                ),
            None => config,
        };
        let mut broker = MqttBroker::with_config(config)
            .await
            .map_err(|e| format!("embedded MQTT broker on {listen}: {e}"))?;
        let addr = broker.local_addr().unwrap_or(listen);
        let ws_addr = match websocket {
            Some(ws) => Some(broker.ws_local_addr().ok_or_else(|| {
                format!("embedded MQTT broker: cannot listen on {ws} for WebSockets")
            })?),
            None => None,
        };
        let shutdown = broker.shutdown_handle();
        let task = tokio::spawn(async move {
            if let Err(e) = broker.run().await {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        });
        Ok(Self {
            addr,
            ws_addr,
            shutdown,
            task,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where it listens for MQTT over WebSockets, if it does.
    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.ws_addr
    }

    /// Stops it at once without waiting (for a `Drop`; prefer
    /// [`EmbeddedBroker::stop`]).
    pub fn abort(self) {
        self.shutdown.shutdown();
        self.task.abort();
    }

    /// Stops it and waits until it has.
    pub async fn stop(self) {
        self.shutdown.shutdown();
        let _ = self.task.await;
    }
}
