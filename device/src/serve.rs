//! Serving one request: the contract's checks (reply address, deadline,
//! duplicates), the optional interim "accepted" reply, the handler, and the
//! final reply with its status and execution time.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use rand::Rng;
use rumqttc::v5::mqttbytes::v5::Publish;
use rumqttc::v5::mqttbytes::QoS;
use thingcall_proto::wire::mqtt::{accepted_properties, decode_request, reply_properties};
use thingcall_proto::wire::{user_property, DeviceTopic, PROP_TRACEPARENT};
use tokio::task::JoinSet;
use tracing::debug;

use crate::handlers::{Reply, Request};
use crate::session::{AbortOnDrop, Conn, Ctl};
use crate::trace;

/// Status and text of the reply to a method without a handler.
const NOT_SUPPORTED: (i32, &str) = (501, "method not supported");
/// Status and text of a failure injected by `fail_rate`.
pub(crate) const INJECTED: (i32, &str) = (500, "injected failure");
/// Status and text when a handler panicked instead of answering.
const PANICKED: (i32, &str) = (500, "handler panicked");

/// Where and how to answer one request.
struct ReplyTo {
    topic: String,
    correlation: Option<Bytes>,
    qos: QoS,
}

/// Checks an incoming publish against the contract and, when it is a request
/// to run, starts it in its own task. Runs on the poll task, so it never
/// waits: anything slow happens in the spawned task.
pub(crate) fn on_request(conn: &Arc<Conn>, publish: Publish, tasks: &mut JoinSet<()>) {
    let shared = &conn.shared;
    let id = shared.opts.id.as_str();
    let Some(topic) = accepting_topic(conn, &publish.topic) else {
        return;
    };
    let method = match shared.opts.topics.parse_device(topic) {
        Some((device, DeviceTopic::Method(method))) if device == id => method.to_owned(),
        _ => {
            debug!(device = id, topic, "not a request for this device");
            return;
        }
    };
    let props = decode_request(publish.properties);
    let Some(reply_topic) = props.response_topic else {
        debug!(device = id, topic, "request without ResponseTopic dropped");
        return;
    };
    if props.deadline_unreadable {
        debug!(device = id, topic, "unreadable deadline ignored");
    }
    let deadline = props.deadline;
    if deadline.is_some_and(|d| SystemTime::now() > d) {
        shared.stats.expired.fetch_add(1, Ordering::Relaxed);
        debug!(device = id, topic, "request past its deadline dropped");
        return;
    }
    if let Some(corr) = &props.correlation {
        if !shared.seen.lock().insert(corr) {
            shared.stats.duplicates.fetch_add(1, Ordering::Relaxed);
            debug!(device = id, topic, "duplicate correlation id dropped");
            return;
        }
    }
    shared.stats.executed.fetch_add(1, Ordering::Relaxed);
    // Only a traced request (the gateway sends `traceparent` only when it
    // traces) costs a span; others pay one property scan.
    let span = user_property(&props.user_properties, PROP_TRACEPARENT)
        .is_some()
        .then(|| trace::start(topic, id, &method, &props.user_properties));
    let request = Request {
        device: id.to_owned(),
        method,
        payload: publish.payload,
        content_type: props.content_type,
        user_properties: props.user_properties,
        deadline,
    };
    let to = ReplyTo {
        topic: reply_topic,
        correlation: props.correlation,
        qos: publish.qos,
    };
    tasks.spawn(serve(conn.clone(), request, to, span));
}

/// The topic of an incoming publish as text, unless the device is stopping or the
/// topic is not UTF-8 (both contracts drop those before anything else).
pub(crate) fn accepting_topic<'a>(conn: &Conn, topic: &'a [u8]) -> Option<&'a str> {
    let id = conn.shared.opts.id.as_str();
    if conn.stopping.load(Ordering::Relaxed) {
        debug!(device = id, "stopping: request ignored");
        return None;
    }
    let topic = std::str::from_utf8(topic).ok();
    if topic.is_none() {
        debug!(device = id, "request topic is not UTF-8");
    }
    topic
}

/// Runs one accepted request to its final reply.
async fn serve(conn: Arc<Conn>, request: Request, to: ReplyTo, span: Option<trace::Span>) {
    let opts = &conn.shared.opts;
    if opts.ack {
        let props = accepted_properties(to.correlation.clone());
        if let Err(e) = conn
            .outbox
            .publish(to.topic.clone(), to.qos, false, Bytes::new(), props)
            .await
        {
            debug!(device = %opts.id, "accepted reply not sent: {e}");
            return;
        }
    }
    let started = Instant::now();
    let reply = if inject_failure(opts.fail_rate) {
        Reply::status(INJECTED.0, INJECTED.1)
    } else {
        run_handler(&conn, request).await
    };
    let exec_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    if let Some(span) = span {
        trace::finish(span, reply.status);
    }
    if !opts.latency.is_zero() {
        tokio::time::sleep(opts.latency).await;
    }
    let props = reply_properties(
        to.correlation.clone(),
        reply.status,
        exec_us,
        reply.content_type.clone(),
    );
    let sent = conn
        .outbox
        .publish(
            to.topic,
            reply_qos(to.qos, &reply),
            false,
            reply.payload.clone(),
            props,
        )
        .await;
    match (sent, reply.reconnect_after()) {
        (Err(e), _) => debug!(device = %opts.id, "reply not sent: {e}"),
        (Ok(ticket), Some(after)) => {
            // Reboot only once the broker holds the reply, or it would be lost.
            if ticket.confirmed().await.is_ok() {
                let _ = conn.ctl.send(Ctl::Reconnect(after));
            }
        }
        (Ok(_), None) => {}
    }
}

/// The QoS of a reply: the request's, except that a reply the device goes
/// away after (`reboot`) is sent at QoS 1. Its disconnect waits for the
/// broker's PUBACK; at QoS 0 there is none, and the reconnect could drop the
/// reply before it left, so the caller would see the device go offline
/// mid-call instead of its answer.
pub(crate) fn reply_qos(request: QoS, reply: &Reply) -> QoS {
    if reply.reconnect_after().is_some() {
        QoS::AtLeastOnce
    } else {
        request
    }
}

/// Runs the handler for the request's method (see [`run_guarded`]).
async fn run_handler(conn: &Conn, request: Request) -> Reply {
    match conn.shared.handlers.call(request) {
        None => Reply::status(NOT_SUPPORTED.0, NOT_SUPPORTED.1),
        Some(fut) => run_guarded(fut).await,
    }
}

/// Runs a handler's future in a task of its own, so a panicking handler
/// still gets the caller an answer (status 500 `handler panicked`).
pub(crate) async fn run_guarded<F>(fut: F) -> Reply
where
    F: Future<Output = Reply> + Send + 'static,
{
    let mut task = AbortOnDrop(tokio::spawn(fut));
    (&mut task.0)
        .await
        .unwrap_or_else(|_| Reply::status(PANICKED.0, PANICKED.1))
}

/// Draws whether to inject a failure; rates outside 0..=1 are clamped and
/// NaN means never.
pub(crate) fn inject_failure(rate: f64) -> bool {
    rate > 0.0 && (rate >= 1.0 || rand::rng().random_bool(rate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_before_a_reboot_goes_at_qos_1() {
        let plain = Reply::ok("x");
        assert_eq!(reply_qos(QoS::AtMostOnce, &plain), QoS::AtMostOnce);
        assert_eq!(reply_qos(QoS::AtLeastOnce, &plain), QoS::AtLeastOnce);
        let reboot = Reply::ok("rebooting").then_reconnect(std::time::Duration::from_millis(5));
        assert_eq!(reply_qos(QoS::AtMostOnce, &reboot), QoS::AtLeastOnce);
    }

    #[test]
    fn failure_injection_bounds() {
        assert!(!inject_failure(0.0));
        assert!(!inject_failure(-1.0));
        assert!(!inject_failure(f64::NAN));
        assert!(inject_failure(1.0));
        assert!(inject_failure(7.0));
        let hits = (0..10_000).filter(|_| inject_failure(0.5)).count();
        assert!((4000..6000).contains(&hits), "{hits}");
    }
}
