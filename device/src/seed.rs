//! Serving one request of the AWS sample's ("seed") contract: a JSON
//! request on `{id}/{method}/{client_prefix}/{m_id}`, a JSON ack on
//! `{client_prefix}/{m_id}/{id}/{method}/ack`.
//!
//! The seed contract has no ResponseTopic, no deadline, no statuses and no
//! interim replies, so compared with `crate::serve`: the ack address comes
//! from the request topic, duplicates are recognised by the message id,
//! `ack` is ignored, a reply's status is not sent (only its payload), and a
//! method without a handler gets the sample device's answer
//! ([`seed_response`]) because the sample device answers any method.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use rand::Rng;
use rumqttc::v5::mqttbytes::v5::Publish;
use rumqttc::v5::mqttbytes::QoS;
use serde_json::Value;
use thingcall_proto::wire::mqtt::json_properties;
use thingcall_proto::wire::{parse_seed_request, SeedAck, SeedRequest, SeedTopics};
use tokio::task::JoinSet;
use tracing::debug;

use crate::handlers::{Reply, Request};
use crate::serve::{accepting_topic, inject_failure, reply_qos, run_guarded, INJECTED};
use crate::session::{Conn, Ctl};

/// The AWS sample device's answer to any request: `Your request was
/// '<request>'. Some random response: '<number>'`, the number a random
/// float from 0 to 1000.
pub fn seed_response(request: &str) -> String {
    let n: f64 = rand::rng().random_range(0.0..1000.0);
    format!("Your request was '{request}'. Some random response: '{n}'")
}

/// Where to send the ack of one request.
struct AckTo {
    topic: String,
    m_id: String,
    qos: QoS,
}

/// Checks an incoming publish against the seed contract and, when it is a
/// request for this device that was not run yet, starts it in its own task.
/// Runs on the poll task, so it never waits.
pub(crate) fn on_request(conn: &Arc<Conn>, publish: Publish, tasks: &mut JoinSet<()>) {
    let shared = &conn.shared;
    let id = shared.opts.id.as_str();
    let Some(topic) = accepting_topic(conn, &publish.topic) else {
        return;
    };
    let parts = match parse_seed_request(topic) {
        Some(parts) if parts.target == id => parts,
        _ => {
            debug!(device = id, topic, "not a seed request for this device");
            return;
        }
    };
    let body: SeedRequest = match serde_json::from_slice(&publish.payload) {
        Ok(body) => body,
        Err(e) => {
            debug!(device = id, topic, "malformed seed request dropped: {e}");
            return;
        }
    };
    if body.id != parts.m_id {
        debug!(device = id, topic, body_id = %body.id, "payload id differs from the topic's; answering the topic's");
    }
    if !shared.seen.lock().insert(parts.m_id.as_bytes()) {
        shared.stats.duplicates.fetch_add(1, Ordering::Relaxed);
        debug!(device = id, topic, "duplicate message id dropped");
        return;
    }
    shared.stats.executed.fetch_add(1, Ordering::Relaxed);
    let to = AckTo {
        topic: SeedTopics::new(parts.client_prefix).ack(parts.m_id, id, parts.method),
        m_id: parts.m_id.to_owned(),
        // The sample acks with QoS 1; never answer below that.
        qos: match publish.qos {
            QoS::ExactlyOnce => QoS::ExactlyOnce,
            _ => QoS::AtLeastOnce,
        },
    };
    let props = publish.properties.unwrap_or_default();
    let request = Request {
        device: id.to_owned(),
        method: parts.method.to_owned(),
        payload: Bytes::from(body.request),
        content_type: None,
        user_properties: props.user_properties,
        deadline: None,
    };
    tasks.spawn(serve(conn.clone(), request, to));
}

/// Runs one accepted request to its ack.
async fn serve(conn: Arc<Conn>, request: Request, to: AckTo) {
    let opts = &conn.shared.opts;
    let reply = if inject_failure(opts.fail_rate) {
        Reply::status(INJECTED.0, INJECTED.1)
    } else {
        let text = String::from_utf8_lossy(&request.payload).into_owned();
        match conn.shared.handlers.call(request) {
            Some(fut) => run_guarded(fut).await,
            None => Reply::ok(seed_response(&text)),
        }
    };
    if !opts.latency.is_zero() {
        tokio::time::sleep(opts.latency).await;
    }
    let payload = ack_json(&to.m_id, &reply.payload);
    let props = json_properties();
    let sent = conn
        .outbox
        .publish(to.topic, reply_qos(to.qos, &reply), false, payload, props)
        .await;
    match (sent, reply.reconnect_after()) {
        (Err(e), _) => debug!(device = %opts.id, "seed ack not sent: {e}"),
        (Ok(ticket), Some(after)) => {
            // Reboot only once the broker holds the ack, or it would be lost.
            if ticket.confirmed().await.is_ok() {
                let _ = conn.ctl.send(Ctl::Reconnect(after));
            }
        }
        (Ok(_), None) => {}
    }
}

/// The ack document `{"id":m_id,"response":R}`: R is the reply payload
/// itself when it is JSON, otherwise the payload as a JSON string.
fn ack_json(m_id: &str, payload: &[u8]) -> Bytes {
    let response = serde_json::from_slice(payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into_owned()));
    let ack = SeedAck {
        id: m_id.to_owned(),
        response,
    };
    serde_json::to_vec(&ack)
        .expect("JSON values serialize")
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_answer() {
        let text = seed_response("my_request_1");
        let prefix = "Your request was 'my_request_1'. Some random response: '";
        let number = text
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix('\''))
            .expect(&text);
        let n: f64 = number.parse().unwrap();
        assert!((0.0..1000.0).contains(&n), "{n}");
    }

    fn ack(payload: &[u8]) -> Value {
        serde_json::from_slice(&ack_json("m1", payload)).unwrap()
    }

    #[test]
    fn ack_documents() {
        assert_eq!(
            ack(b"hello"),
            serde_json::json!({"id": "m1", "response": "hello"})
        );
        assert_eq!(
            ack(br#"{"t":1}"#),
            serde_json::json!({"id": "m1", "response": {"t": 1}})
        );
        assert_eq!(ack(b"42")["response"], 42);
        assert_eq!(ack(b"")["response"], "");
        assert_eq!(ack(b"a\xffb")["response"], "a\u{fffd}b");
    }
}
