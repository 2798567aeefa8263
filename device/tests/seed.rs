//! Seed-contract devices (the AWS sample's topics and JSON) against a real
//! embedded MQTT 5 broker, with a plain rumqttc client playing the sample's
//! gateway. No sleeps as synchronisation: every wait is for a message or a
//! state, under a timeout guard.

#[allow(dead_code)] // shared with device.rs, which uses all of it
mod common;

use common::*;
use rumqttc::v5::mqttbytes::v5::Publish;
use rumqttc::v5::mqttbytes::QoS;
use thingcall_device::{spawn_device, standard_methods, Contract, DeviceHandle};
use thingcall_proto::wire::{SeedAck, SeedTopics};
use tokio::time::timeout;

/// The sample gateway's client prefix.
const PREFIX: &str = "invocation_client";
/// What the sample gateway subscribes to for acks.
const ACK_FILTER: &str = "invocation_client/+/+/+/ack";
/// Where native devices announce presence.
const PRESENCE_FILTER: &str = "thingcall/devices/+/presence";
/// The start of the sample device's answer to `my_request_1`.
const SAMPLE_ANSWER: &str = "Your request was 'my_request_1'. Some random response: '";

/// A seed device `id` serving the standard methods, online.
async fn seed_device(broker: &Broker, id: &str) -> DeviceHandle {
    let mut opts = device(broker, id);
    opts.contract = Contract::Seed;
    let device = spawn_device(opts, standard_methods());
    online(&device).await;
    device
}

/// A fresh message id, as the sample uses.
fn m_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Publishes a seed request the way the sample gateway does.
async fn send(peer: &Peer, target: &str, method: &str, m_id: &str, request: &str) {
    let topic = SeedTopics::new(PREFIX).request(target, method, m_id);
    let body = serde_json::json!({"timestamp": "1", "request": request, "id": m_id});
    peer.client
        .publish(topic, QoS::AtLeastOnce, false, body.to_string())
        .await
        .unwrap();
}

/// The ack document of `msg`.
fn ack(msg: &Publish) -> SeedAck {
    serde_json::from_slice(&msg.payload).expect("ack is a JSON SeedAck")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_method_gets_the_sample_answer() {
    let broker = Broker::start().await;
    let mut gw = Peer::connect(&broker, "gw", &[ACK_FILTER]).await;
    let device = seed_device(&broker, "Device001").await;
    assert_eq!(device.connections(), 1);

    let id = m_id();
    send(&gw, "Device001", "reqid-ABCD", &id, "my_request_1").await;
    let msg = gw.next().await;
    assert_eq!(
        msg.topic,
        format!("invocation_client/{id}/Device001/reqid-ABCD/ack")
    );
    assert!(!msg.retain);
    assert_eq!(msg.qos, QoS::AtLeastOnce);
    let doc = ack(&msg);
    assert_eq!(doc.id, id);
    let text = doc.response.as_str().expect("response is a string");
    assert!(text.starts_with(SAMPLE_ANSWER), "{text}");
    assert_eq!(device.stats().executed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_id_gets_one_ack() {
    let broker = Broker::start().await;
    let mut gw = Peer::connect(&broker, "gw", &[ACK_FILTER]).await;
    let device = seed_device(&broker, "Device001").await;

    let (first, other) = (m_id(), m_id());
    send(&gw, "Device001", "reqid-ABCD", &first, "my_request_1").await;
    send(&gw, "Device001", "reqid-ABCD", &first, "my_request_1").await;
    // Malformed and misaddressed requests are dropped without an ack.
    let topic = SeedTopics::new(PREFIX).request("Device001", "echo", &m_id());
    gw.client
        .publish(topic, QoS::AtLeastOnce, false, "not json")
        .await
        .unwrap();
    gw.client
        .publish("Device001/echo/x", QoS::AtLeastOnce, false, "{}")
        .await
        .unwrap();
    send(&gw, "Device001", "echo", &other, "second").await;

    // The device reads requests in order, so once both acks are in, the
    // duplicate (read before `other`) has been dropped, not delayed.
    let mut ids = vec![ack(&gw.next().await).id, ack(&gw.next().await).id];
    ids.sort();
    let mut want = vec![first, other];
    want.sort();
    assert_eq!(ids, want);
    let stats = device.stats();
    assert_eq!((stats.executed, stats.duplicates), (2, 1));
    assert!(gw.rx.try_recv().is_err(), "duplicate was answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_methods_and_reboot() {
    let broker = Broker::start().await;
    let mut gw = Peer::connect(&broker, "gw", &[ACK_FILTER]).await;
    let device = seed_device(&broker, "d1").await;

    let id = m_id();
    send(&gw, "d1", "echo", &id, "my_request_1").await;
    let msg = gw.next().await;
    assert_eq!(msg.topic, SeedTopics::new(PREFIX).ack(&id, "d1", "echo"));
    assert_eq!(
        ack(&msg),
        SeedAck {
            id,
            response: "my_request_1".into()
        }
    );

    // A reply that is JSON is sent as JSON, not as a string.
    send(&gw, "d1", "echo", &m_id(), r#"{"on":true}"#).await;
    let doc = ack(&gw.next().await);
    assert_eq!(doc.response, serde_json::json!({"on": true}));

    // Statuses do not exist in the seed contract: only the text remains.
    send(&gw, "d1", "fail", &m_id(), "").await;
    assert_eq!(ack(&gw.next().await).response, "failed on purpose");

    // A reboot acks first, then reconnects like a native device.
    send(&gw, "d1", "reboot", &m_id(), "10").await;
    assert_eq!(ack(&gw.next().await).response, "rebooting");
    timeout(WAIT, device.wait_connection(2))
        .await
        .expect("second connection");
    send(&gw, "d1", "sleep", &m_id(), "1").await;
    assert_eq!(ack(&gw.next().await).response, "slept 1 ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_devices_announce_no_presence() {
    let broker = Broker::start().await;
    let mut gw = Peer::connect(&broker, "gw", &[ACK_FILTER, PRESENCE_FILTER]).await;
    let device = seed_device(&broker, "Device001").await;

    // A device's publishes arrive in order: had it announced itself, the
    // presence would come before this ack.
    let id = m_id();
    send(&gw, "Device001", "reqid-ABCD", &id, "my_request_1").await;
    let msg = gw.next().await;
    assert!(msg.topic.ends_with(b"/ack"), "{msg:?}");
    assert_eq!(ack(&msg).id, id);

    timeout(WAIT, device.shutdown())
        .await
        .expect("shutdown finished");
    // No retained presence either: a new subscriber gets its own marker
    // first, which the broker queues after any retained message.
    let mut late = Peer::connect(&broker, "late", &[PRESENCE_FILTER]).await;
    late.client
        .publish(
            "thingcall/devices/marker/presence",
            QoS::AtLeastOnce,
            false,
            "marker",
        )
        .await
        .unwrap();
    let first = late.next().await;
    assert_eq!(first.topic, "thingcall/devices/marker/presence");
    assert!(!first.retain);
    // And nothing reached the first subscriber besides the marker.
    let marker = gw.next().await;
    assert_eq!(marker.payload, "marker");
}
