//! One MQTT connection of a device, from CONNECT to its end.
//!
//! Two tasks share the connection: the poll task owns rumqttc's event loop
//! and never awaits anything but `poll()` (awaiting a publish there would
//! deadlock on rumqttc's bounded channel, and cancelling `poll()` inside a
//! `select!` could lose a half-written ack); the device task (`run`) watches
//! for "online", "reconnect" and "stop" and ends the connection by dropping
//! the poll task, which closes the socket without a DISCONNECT so the broker
//! publishes the Will.
//!
//! A [`Contract::Seed`] device differs only in what it subscribes to, in
//! having no Will and no presence (online means subscribed), and in how it
//! reads requests (`crate::seed`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::SubscribeReasonCode;
use rumqttc::v5::mqttbytes::v5::{LastWill, LastWillProperties, Packet};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use rumqttc::{NetworkOptions, Outgoing};
use thingcall_proto::wire::mqtt::json_properties;
use thingcall_proto::wire::{seed_device_filter, Presence};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinError, JoinHandle, JoinSet};
use tracing::{debug, warn};

use crate::device::{Contract, Shared};
use crate::outbox::{Outbox, CHANNEL_CAPACITY, PUBLISH_SLOTS};

/// Seconds allowed for TCP connect plus CONNACK.
const CONNECT_TIMEOUT_SECS: u64 = 5;
/// How long a clean stop may take before the socket is simply closed.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(5);
/// rumqttc panics on keep-alives under 5 s.
const MIN_KEEP_ALIVE: Duration = Duration::from_secs(5);
/// MQTT carries the keep-alive in 16 bits of seconds.
const MAX_KEEP_ALIVE: Duration = Duration::from_secs(u16::MAX as u64);

/// How a connection ended, which decides what the device does next.
#[derive(Debug)]
pub(crate) enum End {
    /// Stopped on request; do not reconnect.
    Stopped,
    /// A handler asked for a reboot: reconnect after this pause.
    Reconnect(Duration),
    /// The connection failed or was refused; reconnect with backoff.
    Failed(String),
}

/// Messages from the connection's tasks to the device task.
pub(crate) enum Ctl {
    /// The online presence was acknowledged: the device is online.
    Online,
    /// A reply asking for a reboot reached the broker.
    Reconnect(Duration),
}

/// What the poll task and the handler tasks of one connection share.
pub(crate) struct Conn {
    /// The device's options, counters and handlers.
    pub(crate) shared: Arc<Shared>,
    /// Publishing with acknowledgement tracking.
    pub(crate) outbox: Arc<Outbox>,
    /// Back channel to the device task.
    pub(crate) ctl: mpsc::UnboundedSender<Ctl>,
    /// This connection's presence session id.
    pub(crate) session: String,
    /// Set once a clean stop began: new requests are ignored.
    pub(crate) stopping: AtomicBool,
}

/// A task that is aborted when this guard is dropped, so no task of a
/// finished connection (or a killed device) lingers.
pub(crate) struct AbortOnDrop<T>(pub(crate) JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs one connection with presence session `session` until it ends.
/// Returns how it ended and when it got online, if it did.
pub(crate) async fn run(
    shared: &Arc<Shared>,
    session: &str,
    stop: &mut watch::Receiver<bool>,
) -> (End, Option<Instant>) {
    let options = match mqtt_options(shared, session) {
        Ok(options) => options,
        Err(e) => return (End::Failed(e), None),
    };
    let (client, mut eventloop) = AsyncClient::new(options, CHANNEL_CAPACITY);
    // rumqttc preallocates room for 100 events (about 25 KiB, more than the
    // rest of a device); a few are ever queued at once, so grow on demand.
    eventloop.state.events = VecDeque::new();
    let outbox = Arc::new(Outbox::new(client));
    let (ctl_tx, mut ctl_rx) = mpsc::unbounded_channel();
    let conn = Arc::new(Conn {
        shared: shared.clone(),
        outbox: outbox.clone(),
        ctl: ctl_tx,
        session: session.to_owned(),
        stopping: AtomicBool::new(false),
    });
    let mut poll = AbortOnDrop(tokio::spawn(poll_loop(eventloop, conn.clone())));
    let mut online = None;
    let end = loop {
        tokio::select! {
            res = &mut poll.0 => break ended(res),
            Some(ctl) = ctl_rx.recv() => match ctl {
                Ctl::Online => {
                    online = Some(Instant::now());
                    shared.set_online(Some(outbox.clone()));
                    debug!(device = %shared.opts.id, %session, "online");
                }
                Ctl::Reconnect(after) => break End::Reconnect(after),
            },
            _ = stop_requested(stop) => {
                conn.stopping.store(true, Ordering::Relaxed);
                if online.is_some() {
                    let goodbye = say_goodbye(&conn, &mut poll.0);
                    if let Err(e) = tokio::time::timeout(GOODBYE_TIMEOUT, goodbye).await
                        .unwrap_or_else(|_| Err("timed out".into()))
                    {
                        warn!(device = %shared.opts.id, "clean stop failed: {e}");
                    }
                }
                break End::Stopped;
            }
        }
    };
    outbox.close();
    (end, online)
}

/// Resolves once a clean stop was requested. A dropped handle is not a
/// request: dropping aborts the device task, which must not turn into a
/// clean DISCONNECT on the way.
pub(crate) async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Maps the poll task's result to how the connection ended.
fn ended(res: Result<End, JoinError>) -> End {
    res.unwrap_or_else(|e| End::Failed(format!("connection task failed: {e}")))
}

/// Clean stop: retained offline presence (acknowledged; native contract
/// only), then DISCONNECT, then wait until the poll task has written it.
async fn say_goodbye(conn: &Conn, poll: &mut JoinHandle<End>) -> Result<(), String> {
    if conn.shared.opts.contract == Contract::Native {
        let topic = conn.shared.opts.topics.presence(&conn.shared.opts.id);
        let doc = presence_json(&conn.session, false, Vec::new());
        let ticket = conn
            .outbox
            .publish(topic, QoS::AtLeastOnce, true, doc, json_properties())
            .await
            .map_err(|e| format!("offline presence: {e}"))?;
        ticket
            .confirmed()
            .await
            .map_err(|e| format!("offline presence: {e}"))?;
    }
    conn.outbox
        .client()
        .disconnect()
        .await
        .map_err(|e| format!("disconnect: {e}"))?;
    match poll.await {
        Ok(End::Stopped) => Ok(()),
        other => Err(format!(
            "disconnect: {:?}",
            other.map_err(|e| e.to_string())
        )),
    }
}

/// The rumqttc options of one connection (see the crate docs for why each).
/// The TLS files are read at every connect, so a renewed certificate is
/// picked up by the next reconnect.
fn mqtt_options(shared: &Shared, session: &str) -> Result<MqttOptions, String> {
    let opts = &shared.opts;
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    let url = thingcall_proto::wire::BrokerUrl {
        host: opts.host.clone(),
        port: opts.port,
        tls: opts.tls.is_some(),
        websocket: opts.websocket.clone(),
    };
    let mut mo =
        thingcall_proto::wire::endpoint::mqtt_options(opts.id.clone(), &url, opts.tls.as_ref())?;
    mo.set_clean_start(true)
        .set_keep_alive(opts.keep_alive.clamp(MIN_KEEP_ALIVE, MAX_KEEP_ALIVE))
        .set_connection_timeout(CONNECT_TIMEOUT_SECS)
        .set_outgoing_inflight_upper_limit(PUBLISH_SLOTS as u16)
        .set_max_packet_size(Some(opts.max_packet))
        .set_network_options(network);
    if let Some(c) = &opts.credentials {
        mo.set_credentials(c.username.clone(), c.password.expose());
    }
    if let Some(signer) = &opts.sigv4 {
        thingcall_proto::aws::iot::install(&mut mo, signer.clone());
    }
    if opts.contract == Contract::Native {
        mo.set_last_will(will(shared, session));
    }
    Ok(mo)
}

/// The Will of a native device: its retained offline presence.
fn will(shared: &Shared, session: &str) -> LastWill {
    let opts = &shared.opts;
    LastWill::new(
        opts.topics.presence(&opts.id),
        presence_json(session, false, Vec::new()),
        QoS::AtLeastOnce,
        true,
        Some(LastWillProperties {
            delay_interval: None,
            payload_format_indicator: None,
            message_expiry_interval: None,
            content_type: Some(thingcall_proto::wire::mqtt::JSON.into()),
            response_topic: None,
            correlation_data: None,
            user_properties: Vec::new(),
        }),
    )
}

/// A presence document as JSON bytes.
fn presence_json(session: &str, online: bool, methods: Vec<String>) -> Bytes {
    Presence {
        online,
        session: session.to_owned(),
        methods,
    }
    .to_json()
    .into()
}

/// The poll task: drives rumqttc and reacts to each event without awaiting
/// anything else. Handler tasks live in a `JoinSet` here, so they are
/// aborted when the connection ends.
async fn poll_loop(mut eventloop: EventLoop, conn: Arc<Conn>) -> End {
    let mut tasks = JoinSet::new();
    let id = conn.shared.opts.id.as_str();
    let seed = conn.shared.opts.contract == Contract::Seed;
    loop {
        let event = match eventloop.poll().await {
            Ok(event) => event,
            Err(e) => return End::Failed(e.to_string()),
        };
        match event {
            Event::Incoming(Packet::ConnAck(_)) => {
                let filter = if seed {
                    seed_device_filter(id)
                } else {
                    conn.shared.opts.topics.device_requests_filter(id)
                };
                if let Err(e) = conn.outbox.client().try_subscribe(filter, QoS::AtLeastOnce) {
                    return End::Failed(format!("subscribe: {e}"));
                }
            }
            Event::Incoming(Packet::SubAck(ack)) => {
                let refused = ack
                    .return_codes
                    .iter()
                    .find(|c| !matches!(c, SubscribeReasonCode::Success(_)));
                if let Some(code) = refused {
                    return End::Failed(format!("broker refused the subscription: {code:?}"));
                }
                if seed {
                    // No presence in the seed contract: subscribed is online.
                    let _ = conn.ctl.send(Ctl::Online);
                } else {
                    tasks.spawn(announce(conn.clone()));
                }
            }
            Event::Incoming(Packet::Publish(publish)) if seed => {
                crate::seed::on_request(&conn, publish, &mut tasks);
            }
            Event::Incoming(Packet::Publish(publish)) => {
                crate::serve::on_request(&conn, publish, &mut tasks);
            }
            Event::Incoming(Packet::PubAck(ack)) => conn.outbox.acked(ack.pkid),
            Event::Incoming(Packet::PubComp(comp)) => conn.outbox.acked(comp.pkid),
            Event::Outgoing(Outgoing::Publish(pkid)) => conn.outbox.sent(pkid),
            Event::Outgoing(Outgoing::Disconnect) => return End::Stopped,
            _ => {}
        }
        // Reap finished handler tasks so the set stays small.
        while let Some(res) = tasks.try_join_next() {
            if let Err(e) = res {
                if e.is_panic() {
                    warn!(device = id, "a connection task panicked");
                }
            }
        }
    }
}

/// Publishes the retained online presence and reports "online" once the
/// broker acknowledged it.
async fn announce(conn: Arc<Conn>) {
    let opts = &conn.shared.opts;
    let methods = if opts.announce_methods {
        conn.shared.handlers.names()
    } else {
        Vec::new()
    };
    let doc = presence_json(&conn.session, true, methods);
    let topic = opts.topics.presence(&opts.id);
    match conn
        .outbox
        .publish(topic, QoS::AtLeastOnce, true, doc, json_properties())
        .await
    {
        Ok(ticket) => {
            if ticket.confirmed().await.is_ok() {
                let _ = conn.ctl.send(Ctl::Online);
            }
        }
        Err(e) => debug!(device = %opts.id, "online presence not sent: {e}"),
    }
}
