#![forbid(unsafe_code)]
//! The embedded MQTT 5 broker, so `thingcall-server` runs with nothing else
//! installed, and tests of the device library need no Mosquitto. It is the `mqtt5` crate's broker: async on our own runtime,
//! stops cleanly, and passed the wire-contract checks (retained presence,
//! Will on a dropped socket, ResponseTopic / CorrelationData / user
//! properties / MessageExpiryInterval intact) that Mosquitto passes. State
//! is kept in memory only: nothing is written to the working directory.

use std::net::SocketAddr;

use mqtt5::broker::config::{BrokerConfig, StorageBackend, StorageConfig};
use mqtt5::broker::{BrokerShutdownHandle, MqttBroker};
use tokio::task::JoinHandle;

/// A running embedded broker.
pub struct EmbeddedBroker {
    addr: SocketAddr,
    shutdown: BrokerShutdownHandle,
    task: JoinHandle<()>,
}

impl EmbeddedBroker {
    /// Binds `listen` (port 0 picks a free one) and starts serving packets
    /// of up to `max_packet_size` bytes. The error says what failed.
    pub async fn start(listen: SocketAddr, max_packet_size: usize) -> Result<Self, String> {
        let storage = StorageConfig::new()
            .with_backend(StorageBackend::Memory)
            .with_persistence(true);
        let config = BrokerConfig::default()
            .with_bind_address(listen)
            .with_storage(storage)
            .with_max_clients(200_000)
            .with_max_packet_size(max_packet_size)
            .with_sys_topics_enabled(false);
        let mut broker = MqttBroker::with_config(config)
            .await
            .map_err(|e| format!("embedded MQTT broker on {listen}: {e}"))?;
        let addr = broker.local_addr().unwrap_or(listen);
        let shutdown = broker.shutdown_handle();
        let task = tokio::spawn(async move {
            if let Err(e) = broker.run().await {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        });
        Ok(Self {
            addr,
            shutdown,
            task,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
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
