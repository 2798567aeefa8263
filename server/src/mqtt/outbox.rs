//! The core's handle for publishing: requests go in as plain values
//! (`thingcall_proto::wire::NativeRequest`, `SeedRequestMessage`), are
//! encoded by the shared codec, and are queued for the session task
//! without waiting (a publish awaited from the session's own task would
//! deadlock rumqttc's bounded channel).

use std::time::SystemTime;

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::AsyncClient;
use thingcall_proto::wire::mqtt::Encoded;
use thingcall_proto::wire::{NativeRequest, SeedRequestMessage};

/// Queues requests on the one MQTT session; cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    client: AsyncClient,
    qos: QoS,
}

impl Outbox {
    /// Publishes through `client` at request QoS `qos` (0, 1 or 2).
    pub(crate) fn new(client: AsyncClient, qos: u8) -> Self {
        let qos = match qos {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            _ => QoS::ExactlyOnce,
        };
        Self { client, qos }
    }

    /// An outbox whose session never runs, for tests of the core: every
    /// request queues until the channel is full, and nothing is sent.
    pub fn unconnected() -> Self {
        let opts = rumqttc::v5::MqttOptions::new("unconnected", "127.0.0.1", 1);
        Self::new(AsyncClient::new(opts, 10).0, 1)
    }

    /// Queues a native request; `false` when the session's queue is full
    /// (it holds more than the call table admits, so full means stuck).
    pub fn send_native(&self, request: NativeRequest) -> bool {
        self.queue(request.encode(SystemTime::now()))
    }

    /// Queues a seed request; `false` as for [`Outbox::send_native`].
    pub fn send_seed(&self, request: SeedRequestMessage) -> bool {
        self.queue(request.encode())
    }

    fn queue(&self, m: Encoded) -> bool {
        self.client
            .try_publish_with_properties(m.topic, self.qos, false, m.payload, m.properties)
            .is_ok()
    }
}
