//! Test scaffolding shared by the integration tests: a real MQTT 5 broker
//! (the embedded one, `thingcall-broker`, on a free port) and a plain
//! rumqttc client playing the gateway.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rumqttc::v5::mqttbytes::v5::{Packet, Publish, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use thingcall_device::{DeviceHandle, DeviceOptions};
use thingcall_proto::wire::{user_property, Presence};
use tokio::sync::mpsc;
use tokio::time::timeout;

/// Longest wait for any expected message or state.
pub const WAIT: Duration = Duration::from_secs(10);
/// Where the test "gateway" wants its replies.
pub const REPLY_FILTER: &str = "thingcall/gateways/test/replies/+";

/// The real broker these tests run against, stopped when dropped.
pub struct Broker(Option<thingcall_broker::EmbeddedBroker>);

impl Broker {
    /// Starts the embedded broker on a free loopback port.
    pub async fn start() -> Broker {
        let b = thingcall_broker::EmbeddedBroker::start("127.0.0.1:0".parse().unwrap(), 1 << 20)
            .await
            .expect("embedded broker");
        Broker(Some(b))
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.0.as_ref().expect("running").addr().port()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(b) = self.0.take() {
            b.abort();
        }
    }
}

/// Options for a device of `broker`.
pub fn device(broker: &Broker, id: &str) -> DeviceOptions {
    DeviceOptions::new(id, "127.0.0.1", broker.port())
}

/// A plain MQTT 5 client standing in for the gateway.
pub struct Peer {
    pub client: AsyncClient,
    pub rx: mpsc::UnboundedReceiver<Publish>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Peer {
    /// Connects and subscribes to `filters`, returning once all are acked.
    pub async fn connect(broker: &Broker, id: &str, filters: &[&str]) -> Peer {
        let mut opts = MqttOptions::new(id, "127.0.0.1", broker.port());
        opts.set_max_packet_size(Some(1024 * 1024));
        let (client, mut eventloop) = AsyncClient::new(opts, 64);
        let (tx, rx) = mpsc::unbounded_channel();
        let (sub_tx, mut sub_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let _ = tx.send(p);
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = sub_tx.send(());
                    }
                    Ok(_) => {}
                    Err(e) => panic!("test client lost its connection: {e}"),
                }
            }
        });
        for filter in filters {
            client.subscribe(*filter, QoS::AtLeastOnce).await.unwrap();
        }
        for _ in filters {
            timeout(WAIT, sub_rx.recv()).await.expect("suback").unwrap();
        }
        Peer { client, rx, task }
    }

    /// Publishes a request to `device`'s `method` with a reply address.
    pub async fn request(
        &self,
        device: &str,
        method: &str,
        corr: &str,
        payload: impl Into<bytes::Bytes>,
        deadline_ms: Option<u64>,
    ) {
        let mut props = PublishProperties {
            response_topic: Some(format!("thingcall/gateways/test/replies/{device}")),
            correlation_data: Some(bytes::Bytes::copy_from_slice(corr.as_bytes())),
            content_type: Some("text/plain".into()),
            ..Default::default()
        };
        if let Some(ms) = deadline_ms {
            props
                .user_properties
                .push(("deadline".into(), ms.to_string()));
        }
        props
            .user_properties
            .push(("x-extra".into(), "ignored".into()));
        let topic = format!("thingcall/devices/{device}/methods/{method}");
        self.client
            .publish_with_properties(topic, QoS::AtLeastOnce, false, payload.into(), props)
            .await
            .unwrap();
    }

    /// The next message, failing the test after [`WAIT`].
    pub async fn next(&mut self) -> Publish {
        timeout(WAIT, self.rx.recv())
            .await
            .expect("timed out waiting for a message")
            .unwrap()
    }

    /// The next message, parsed as a presence document.
    pub async fn next_presence(&mut self) -> Presence {
        let msg = self.next().await;
        assert!(msg.topic.ends_with(b"/presence"), "{msg:?}");
        Presence::from_json(&msg.payload).expect("presence JSON")
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

pub fn props(msg: &Publish) -> &PublishProperties {
    msg.properties.as_ref().expect("reply has properties")
}

pub fn corr(msg: &Publish) -> &[u8] {
    props(msg)
        .correlation_data
        .as_deref()
        .expect("correlation data echoed")
}

pub fn user<'a>(msg: &'a Publish, name: &str) -> Option<&'a str> {
    user_property(&props(msg).user_properties, name)
}

pub async fn online(device: &DeviceHandle) {
    timeout(WAIT, device.wait_online())
        .await
        .expect("device online");
}
