//! Owns the gateway's one MQTT 5 connection.
//!
//! One task polls the rumqttc event loop, decodes every incoming publish
//! with the [`Router`] and hands the plain value to the core synchronously;
//! it never awaits a publish on its own client (rumqttc's bounded request
//! channel would deadlock). Callers publish from their own tasks through
//! the [`Outbox`], which is a channel into this loop. On a lost connection the loop tells the core (which fails the calls
//! in flight), throws away queued requests (they belong to failed calls),
//! and reconnects with capped exponential backoff and jitter.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use rand::Rng;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, Publish};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop};
use thingcall_proto::wire::BrokerLimits;
use tokio::sync::{mpsc, watch};

use super::link::{Command, LinkControl, Verifications};
use tokio::task::JoinHandle;

use super::contract::Router;
use super::outbox::Outbox;
use crate::message::Inbound;

/// What the session reports to the gateway core. Called from the session
/// task: implementations must not block.
pub trait Incoming: Send + Sync + 'static {
    /// Subscriptions are in place: calls may go out.
    fn on_ready(&self);
    /// The retained presence the subscriptions brought has all arrived
    /// (see the sync SUBSCRIBE in `run`).
    fn on_synced(&self);
    /// The connection is gone: calls in flight cannot complete.
    fn on_lost(&self, why: &str);
    /// A message arrived on one of the subscriptions, decoded.
    fn on_message(&self, message: Inbound<'_>, retained: bool);
}

/// How to reach the broker.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// The HTTP path when the broker is reached over WebSockets (`ws://`,
    /// or `wss://` with `tls`); `None` for MQTT straight over TCP.
    pub websocket: Option<String>,
    /// MQTT client id (the gateway id).
    pub client_id: String,
    /// TLS to the broker (CA or system roots, client certificate, ALPN).
    pub tls: Option<thingcall_proto::wire::tls::TlsFiles>,
    /// Largest packet either way: the payload limit plus header room.
    pub max_packet_size: u32,
    /// After this long with nothing received the link is probed, and after
    /// 1.5 times it, declared dead (calls in flight fail with
    /// `BROKER_UNAVAILABLE`, and the session reconnects). The SubAcks of
    /// a new connection are due within 1.5 times it of the CONNACK.
    pub keep_alive: Duration,
    /// QoS of requests (0, 1 or 2).
    pub request_qos: u8,
    /// Broker login, when the broker wants one.
    pub credentials: Option<thingcall_proto::wire::Credentials>,
    /// AWS IoT Core's SigV4 login over `wss://`: the upgrade URL is signed
    /// again at every connection attempt.
    pub sigv4: Option<thingcall_proto::aws::iot::Signer>,
    /// What the broker allows (its profile's): here, how many filters go
    /// in one SUBSCRIBE and how many QoS 1 publishes may be unacknowledged.
    pub limits: BrokerLimits,
    /// First reconnect delay; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Largest reconnect delay.
    pub max_backoff: Duration,
    /// Requests the channel to the session task holds. Calls queue their
    /// publish without waiting, so this is above the call limit: full means
    /// the session is stuck, not busy. The channel grows only as it fills.
    pub request_queue: usize,
}

/// QoS of the gateway's own subscriptions (replies, acks, presence).
///
/// QoS 1 would buy nothing here: the session starts clean, so nothing the
/// broker holds for us survives a disconnect anyway, and on a live TCP
/// connection QoS 0 loses nothing. It would cost a PUBACK per reply and put
/// replies under the broker's per-client in-flight limit (Mosquitto's
/// default `max_inflight_messages` is 20), which caps the calls that can
/// complete at once. Requests keep the QoS set by `--qos`.
pub const SUBSCRIPTION_QOS: QoS = QoS::AtMostOnce;

/// rumqttc's bound on unacknowledged publishes when the broker sets none
/// below it (a broker's Receive Maximum in CONNACK lowers it): calls past
/// it wait in the request queue, in order, until acknowledgements free a
/// slot; the call table's limit (`--max-in-flight`) refuses the rest.
const UNLIMITED_INFLIGHT: u16 = 4096;

/// The gateway's filters as SUBSCRIBE packets of at most `max` filters
/// each (AWS IoT Core takes 8 at most); one packet without a limit.
pub fn subscribe_batches(filters: &[String], max: Option<usize>) -> Vec<Vec<Filter>> {
    let size = max.unwrap_or(filters.len()).max(1);
    filters
        .chunks(size)
        .map(|chunk| {
            chunk
                .iter()
                .map(|f| Filter::new(f.clone(), SUBSCRIPTION_QOS))
                .collect()
        })
        .collect()
}

/// A session not yet started: the connection's client and event loop.
pub struct Session {
    settings: SessionSettings,
    client: AsyncClient,
    eventloop: EventLoop,
    link: LinkControl,
    commands: mpsc::UnboundedReceiver<Command>,
}

/// Builds the outbox callers publish through and the session that
/// [`Session::spawn`] drives; nothing connects until it runs. Fails only on
/// TLS files that cannot be used.
pub fn connect(settings: SessionSettings) -> Result<(Outbox, Session), String> {
    let url = thingcall_proto::wire::BrokerUrl {
        host: settings.host.clone(),
        port: settings.port,
        tls: settings.tls.is_some(),
        websocket: settings.websocket.clone(),
    };
    let mut opts = thingcall_proto::wire::endpoint::mqtt_options(
        settings.client_id.clone(),
        &url,
        settings.tls.as_ref(),
    )?;
    // rumqttc takes 5 s at least; the watchdog in `run` probes sooner.
    opts.set_keep_alive(settings.keep_alive.max(Duration::from_secs(5)))
        .set_clean_start(true)
        .set_max_packet_size(Some(settings.max_packet_size))
        .set_outgoing_inflight_upper_limit(
            settings.limits.max_inflight.unwrap_or(UNLIMITED_INFLIGHT),
        )
        .set_connection_timeout(5);
    if let Some(c) = &settings.credentials {
        opts.set_credentials(c.username.clone(), c.password.expose());
    }
    if let Some(signer) = &settings.sigv4 {
        thingcall_proto::aws::iot::install(&mut opts, signer.clone());
    }
    let mut net = rumqttc::NetworkOptions::new();
    net.set_tcp_nodelay(true);
    opts.set_network_options(net);
    let (client, eventloop) = AsyncClient::new(opts, settings.request_queue);
    let outbox = Outbox::new(client.clone(), settings.request_qos);
    let (link, commands) = LinkControl::new();
    Ok((
        outbox,
        Session {
            settings,
            client,
            eventloop,
            link,
            commands,
        },
    ))
}

impl Session {
    /// A handle to verify or redo the link from outside ([`LinkControl`]).
    pub fn link(&self) -> LinkControl {
        self.link.clone()
    }

    /// Starts the session task, subscribed to `router`'s filters and
    /// feeding `core`; it ends when `stop` turns true, and its result says
    /// whether it said goodbye to the broker with a DISCONNECT.
    pub fn spawn(
        self,
        router: Router,
        core: Arc<dyn Incoming>,
        stop: watch::Receiver<bool>,
    ) -> JoinHandle<bool> {
        tokio::spawn(run(self, router, core, stop))
    }
}

async fn run(
    session: Session,
    router: Router,
    core: Arc<dyn Incoming>,
    mut stop: watch::Receiver<bool>,
) -> bool {
    let Session {
        settings,
        client,
        mut eventloop,
        link: _,
        mut commands,
    } = session;
    // Round trips asked for through the LinkControl, counted per connection.
    let mut verifications = Verifications::default();
    let batches = subscribe_batches(
        &router.subscriptions(),
        settings.limits.max_filters_per_subscribe,
    );
    let mut backoff = settings.min_backoff;
    // Failed attempts since the last session: the first retry is at once.
    let mut failures = 0u32;
    let mut up = false;
    // SubAcks still due before calls may go out.
    let mut suback_due = 0usize;
    // The sync SUBSCRIBE's SubAck is due: sent once the subscriptions are
    // in place, it re-subscribes the replies filter (no retained messages).
    // A broker handles one client's packets in order and queues a filter's
    // retained messages when it handles its SUBSCRIBE, so this SubAck comes
    // after every retained presence: from then on, a device the gateway
    // has not heard of has no presence.
    let mut sync_due = false;
    // After the sync SubAck, the sync ends once no retained message has
    // arrived for `SYNC_SETTLE`: brokers that deliver retained messages
    // from a queue of their own (the embedded one, EMQX's retainer) can
    // send that SubAck before the last of them.
    let mut settle_until: Option<Instant> = None;
    // The link watchdog: after `keep_alive` with nothing received, probe
    // (re-SUBSCRIBE the replies filter: it holds no retained messages, and
    // every ACL that lets the gateway work allows it); with nothing
    // received for 1.5 x keep-alive the link is dead, even when a write is
    // stuck on full socket buffers and rumqttc's own pings cannot go out.
    let probe = Filter::new(router.subscriptions()[0].clone(), SUBSCRIPTION_QOS);
    let silent_limit = settings.keep_alive * 3 / 2;
    let mut last_inbound = Instant::now();
    let mut probed = false;
    // Between CONNACK and the last SubAck: a broker that never grants the
    // subscriptions must not keep the gateway "connecting" for ever (its
    // pings may still be answered), so they are due within 1.5 x keep-alive.
    let mut subscribed_by: Option<Instant> = None;
    // The last connect failure logged at warn: a refusal is worth one line
    // per streak and per reason, not one per retry.
    let mut last_failure = String::new();
    loop {
        let watch_until = up.then(|| {
            last_inbound
                + if probed {
                    silent_limit
                } else {
                    settings.keep_alive
                }
        });
        let event = tokio::select! {
            e = eventloop.poll() => e.map_err(|e| e.to_string()),
            _ = tokio::time::sleep_until(watch_until.unwrap_or_else(Instant::now)), if watch_until.is_some() => {
                if !probed {
                    probed = true;
                    match client.try_subscribe_many([probe.clone()]) {
                        Ok(()) => {
                            verifications.sent();
                        }
                        Err(e) => tracing::debug!(error = %e, "could not queue the link probe"),
                    }
                    continue;
                }
                Err(format!(
                    "nothing received from the broker for {} ms (keep-alive {} ms)",
                    silent_limit.as_millis(),
                    settings.keep_alive.as_millis()
                ))
            }
            _ = tokio::time::sleep_until(settle_until.unwrap_or_else(Instant::now)), if settle_until.is_some() => {
                settle_until = None;
                tracing::debug!("retained presence delivered");
                core.on_synced();
                continue;
            }
            _ = tokio::time::sleep_until(subscribed_by.unwrap_or_else(Instant::now)), if subscribed_by.is_some() => {
                Err(format!(
                    "the broker granted no subscriptions within {} ms of CONNACK (keep-alive {} ms)",
                    silent_limit.as_millis(),
                    settings.keep_alive.as_millis()
                ))
            }
            Some(command) = commands.recv() => match command {
                Command::Verify(done) => {
                    // Without a session `done` is dropped: LinkDown.
                    if up && client.try_subscribe_many([probe.clone()]).is_ok() {
                        let n = verifications.sent();
                        verifications.wait(n, done);
                    }
                    continue;
                }
                Command::Reconnect => Err("reconnect asked for (the link may not have survived a freeze)".to_owned()),
            },
            _ = stop.wait_for(|s| *s) => break,
        };
        // The gateway allows no topic aliases (its CONNECT sets no Topic
        // Alias Maximum), so one arriving is a protocol error; rumqttc
        // hands such a PUBLISH over with an empty topic and keeps the
        // connection, so the session drops it here.
        let event = match event {
            Ok(Event::Incoming(Packet::Publish(p)))
                if p.properties
                    .as_ref()
                    .is_some_and(|p| p.topic_alias.is_some()) =>
            {
                Err("protocol error: the broker sent a topic alias, and none is allowed".into())
            }
            e => e,
        };
        if let Ok(Event::Incoming(_)) = &event {
            last_inbound = Instant::now();
            probed = false;
            // Anything from the broker proves the link as a PINGRESP would.
            // rumqttc pings every keep-alive whatever the traffic and drops
            // the connection when the previous PINGRESP is still due; behind
            // a million retained presence messages it is, for longer than
            // a keep-alive, and each reconnect re-sends them all. Liveness
            // is the watchdog's above: nothing received for 1.5 x keep-alive.
            eventloop.state.await_pingresp = false;
        }
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = settings.min_backoff;
                failures = 0;
                subscribed_by = Some(Instant::now() + silent_limit);
                // Clean start: the broker has no subscriptions for us. As
                // few SUBSCRIBEs as the broker allows; ready on the last SubAck.
                suback_due = batches.len();
                for batch in &batches {
                    match client.try_subscribe_many(batch.clone()) {
                        Ok(()) => {
                            verifications.sent();
                        }
                        Err(e) => tracing::warn!(error = %e, "could not queue subscriptions"),
                    }
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                verifications.acked();
                let refused = ack.return_codes.iter().any(|c| {
                    !matches!(
                        c,
                        rumqttc::v5::mqttbytes::v5::SubscribeReasonCode::Success(_)
                    )
                });
                if refused {
                    tracing::error!(codes = ?ack.return_codes, "broker refused a subscription");
                }
                if up && sync_due {
                    sync_due = false;
                    settle_until = Some(Instant::now() + SYNC_SETTLE);
                    continue;
                }
                suback_due = suback_due.saturating_sub(1);
                if !up && suback_due == 0 {
                    up = true;
                    subscribed_by = None;
                    last_failure.clear();
                    tracing::info!(host = %settings.host, port = settings.port, "MQTT session up");
                    core.on_ready();
                    sync_due = client.try_subscribe_many([probe.clone()]).is_ok();
                    if sync_due {
                        verifications.sent();
                    } else {
                        tracing::warn!(
                            "could not queue the presence sync; presence is trusted as it comes"
                        );
                        core.on_synced();
                    }
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let Publish {
                    topic,
                    payload,
                    properties,
                    retain,
                    ..
                } = p;
                if retain && settle_until.is_some() {
                    settle_until = Some(Instant::now() + SYNC_SETTLE);
                }
                core.on_message(router.decode(&topic, payload, properties), retain);
            }
            Ok(_) => {}
            Err(e) => {
                verifications.reset();
                sync_due = false;
                settle_until = None;
                subscribed_by = None;
                if up {
                    up = false;
                    tracing::warn!(error = %e, "MQTT connection lost");
                } else if e != last_failure {
                    // The first failure of a streak, or a new reason (a
                    // CONNACK refusal says which): operators see it at
                    // the default level; identical retries stay at debug.
                    tracing::warn!(error = %e, "MQTT connect failed");
                    last_failure = e.clone();
                } else {
                    tracing::debug!(error = %e, "MQTT connect failed");
                }
                core.on_lost(&e);
                // Requests queued for the lost connection belong to calls
                // that just failed: never send them late.
                eventloop.pending.clear();
                // At once the first time (a broker restart or a dead link is
                // usually back at once), then capped exponential backoff
                // with jitter, so a fleet of gateways does not reconnect in step.
                let delay = if failures == 0 {
                    Duration::ZERO
                } else {
                    let jitter = rand::rng().random_range(0..=backoff.as_millis() as u64 / 2);
                    let d = backoff + Duration::from_millis(jitter);
                    backoff = (backoff * 2).min(settings.max_backoff);
                    d
                };
                failures += 1;
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
                eventloop.clean();
                eventloop.pending.clear();
                // Asked for during the backoff: a reconnect is under way
                // already (acting on it would only abort the next attempt),
                // and a verification belongs to the old link (its sender is
                // dropped: LinkDown).
                while commands.try_recv().is_ok() {}
            }
        }
    }
    // A clean goodbye when connected, without awaiting our own channel.
    let clean = up
        && client.try_disconnect().is_ok()
        && tokio::time::timeout(GOODBYE_TIMEOUT, async {
            while let Ok(ev) = eventloop.poll().await {
                if matches!(ev, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                    return true;
                }
            }
            false
        })
        .await
        .unwrap_or(false);
    core.on_lost("gateway stopped");
    clean
}

/// How long after the sync SubAck (and the last retained message) the
/// retained presence counts as all delivered. Short: calls to devices not
/// confirmed yet wait for it after every reconnect.
const SYNC_SETTLE: Duration = Duration::from_millis(100);

/// How long the DISCONNECT at the end may take to go out.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_are_split_to_the_brokers_limit() {
        let filters: Vec<String> = (0..19).map(|i| format!("t/{i}/#")).collect();
        let sizes = |max| {
            subscribe_batches(&filters, max)
                .iter()
                .map(Vec::len)
                .collect::<Vec<_>>()
        };
        assert_eq!(sizes(Some(8)), vec![8, 8, 3]);
        assert_eq!(sizes(None), vec![19]);
        let all: Vec<String> = subscribe_batches(&filters, Some(8))
            .into_iter()
            .flatten()
            .map(|f| f.path)
            .collect();
        assert_eq!(all, filters, "every filter once, in order");
    }
}
