//! A device: its options, the task that keeps it connected (reconnecting
//! with backoff, a fresh presence session each time) and the handle that
//! observes and stops it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use rand::Rng;
use rumqttc::v5::mqttbytes::v5::PublishProperties;
use rumqttc::v5::mqttbytes::QoS;
use thingcall_proto::wire::{validate_id, Topics};
use tokio::sync::watch;
use tracing::{debug, error, info};

use crate::handlers::Handlers;
use crate::outbox::Outbox;
use crate::seen::Seen;
use crate::session::{self, AbortOnDrop, End};

/// First reconnect delay after a failure.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// Longest reconnect delay, so a device returns soon after a broker does.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long a connection must have been online for its loss to restart
/// the backoff from [`BACKOFF_MIN`].
const STABLE_AFTER: Duration = Duration::from_secs(10);

/// Which MQTT contract a device speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Contract {
    /// thingcall's own contract (`thingcall_proto::wire::Topics`): retained
    /// presence with a Will, ResponseTopic and CorrelationData, statuses.
    #[default]
    Native,
    /// The AWS sample's contract (`thingcall_proto::wire::SeedTopics`):
    /// requests on `{id}/{method}/{client_prefix}/{m_id}`, JSON acks, no
    /// presence, no Will, no statuses; methods without a handler get the
    /// sample's answer ([`crate::seed_response`]).
    Seed,
}

/// How one device connects and behaves. Plain data so a simulator can
/// build thousands from one template.
#[derive(Clone, Debug)]
pub struct DeviceOptions {
    /// Device id: the MQTT client id and the `{device}` topic level.
    pub id: String,
    /// Broker host name or address.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// The HTTP path when the broker is reached over MQTT over WebSockets
    /// (`ws://`, or `wss://` with `tls`), e.g. `/mqtt`; `None` (the
    /// default) for MQTT straight over TCP.
    pub websocket: Option<String>,
    /// Wire contract (default [`Contract::Native`]).
    pub contract: Contract,
    /// Topic layout (default root `thingcall`); must match the gateway's.
    /// Native contract only, like `ack` and `announce_methods`.
    pub topics: Topics,
    /// Send the interim `stage=accepted` reply before running the handler,
    /// so callers can tell "slow" from "never received".
    pub ack: bool,
    /// Added before every final reply, to simulate a slow device or link.
    pub latency: Duration,
    /// Probability 0..1 of answering status 500 `injected failure` instead
    /// of running the handler, to exercise callers' error paths.
    pub fail_rate: f64,
    /// Put handler names in the presence `methods` (default true) so the
    /// gateway can refuse unknown methods without a round trip.
    pub announce_methods: bool,
    /// MQTT keep-alive (default 30 s; 5 s to about 18 h is used); how fast the
    /// broker notices a dead device and publishes its Will.
    pub keep_alive: Duration,
    /// Broker login, when the broker wants one (default none).
    pub credentials: Option<thingcall_proto::wire::Credentials>,
    /// TLS to the broker (default none: plain TCP): the CA or the system's
    /// roots, a client certificate for mutual TLS, ALPN. Read at every
    /// connect, so a renewed certificate is used from the next one on.
    pub tls: Option<thingcall_proto::wire::tls::TlsFiles>,
    /// AWS IoT Core's SigV4 login over `wss://` (default none): the
    /// upgrade URL is signed again at every connect.
    pub sigv4: Option<thingcall_proto::aws::iot::Signer>,
    /// Largest MQTT packet the device accepts (its MQTT 5 Maximum Packet
    /// Size; default [`DEFAULT_MAX_PACKET`]). The broker drops a request
    /// over it without a word and the call ends `DEVICE_TIMEOUT`, so give
    /// at least the gateway's `--max-payload` plus
    /// [`thingcall_proto::size::PACKET_HEADROOM`].
    pub max_packet: u32,
}

/// Largest packet a device accepts by default: the gateway's default
/// 128 KiB payload limit plus properties, with room to spare (rumqttc's own
/// default is only 10 KiB).
pub const DEFAULT_MAX_PACKET: u32 = 256 * 1024;

impl DeviceOptions {
    /// Options for device `id` on broker `host:port` with the defaults:
    /// native contract, root `thingcall`, no ack, no latency, no failures, methods announced,
    /// 30 s keep-alive.
    pub fn new(id: impl Into<String>, host: impl Into<String>, port: u16) -> Self {
        Self {
            id: id.into(),
            host: host.into(),
            port,
            websocket: None,
            contract: Contract::Native,
            topics: Topics::default(),
            ack: false,
            latency: Duration::ZERO,
            fail_rate: 0.0,
            announce_methods: true,
            keep_alive: Duration::from_secs(30),
            credentials: None,
            tls: None,
            sigv4: None,
            max_packet: DEFAULT_MAX_PACKET,
        }
    }

    /// Options for device `id` at a parsed broker URL (`mqtt://`,
    /// `mqtts://`, `ws://`, `wss://`): host, port and WebSocket path from
    /// the URL, and for `mqtts://`/`wss://` TLS trusting the system's roots
    /// (set [`DeviceOptions::tls`] for a CA or a client certificate).
    pub fn at(id: impl Into<String>, url: &thingcall_proto::wire::BrokerUrl) -> Self {
        DeviceOptions {
            websocket: url.websocket.clone(),
            tls: url.tls.then(thingcall_proto::wire::tls::TlsFiles::default),
            ..DeviceOptions::new(id, url.host.clone(), url.port)
        }
    }
}

/// Counters a test can assert on to see what the device did with requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// Requests accepted and answered: handler run, unknown method (501) or
    /// injected failure.
    pub executed: u64,
    /// Requests dropped unrun because their `deadline` had passed.
    pub expired: u64,
    /// Requests dropped because their correlation id was already run.
    pub duplicates: u64,
}

/// The live counters behind [`DeviceStats`].
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) executed: AtomicU64,
    pub(crate) expired: AtomicU64,
    pub(crate) duplicates: AtomicU64,
}

/// Connection state published to [`DeviceHandle`]s.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Status {
    /// Times the device has come online.
    pub(crate) connections: u64,
    /// Whether it is online now.
    pub(crate) online: bool,
}

/// What a device's tasks and its handle share (one allocation per device).
pub(crate) struct Shared {
    pub(crate) opts: DeviceOptions,
    pub(crate) handlers: Handlers,
    pub(crate) stats: Counters,
    /// Correlation ids already run, across connections.
    pub(crate) seen: Mutex<Seen>,
    status: watch::Sender<Status>,
    /// The current connection's outbox while online, for device events.
    current: Mutex<Option<Arc<Outbox>>>,
}

impl Shared {
    /// Marks the device online on `outbox`'s connection, or offline (`None`).
    pub(crate) fn set_online(&self, outbox: Option<Arc<Outbox>>) {
        let online = outbox.is_some();
        *self.current.lock() = outbox;
        self.status.send_if_modified(|s| {
            let changed = s.online != online;
            s.online = online;
            if online {
                s.connections += 1;
            }
            changed || online
        });
    }
}

/// Starts a device task on the current tokio runtime and returns at once
/// (panics outside a runtime, like `tokio::spawn`). The device connects,
/// serves `handlers` and reconnects until stopped. An id that breaks the
/// wire contract is logged as an error and the device never comes online.
pub fn spawn_device(opts: DeviceOptions, handlers: Handlers) -> DeviceHandle {
    let (status, status_rx) = watch::channel(Status::default());
    let (stop, stop_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        opts,
        handlers,
        stats: Counters::default(),
        seen: Mutex::new(Seen::new()),
        status,
        current: Mutex::new(None),
    });
    let task = AbortOnDrop(tokio::spawn(supervise(shared.clone(), stop_rx)));
    DeviceHandle {
        shared,
        status: status_rx,
        stop,
        task: Some(task),
    }
}

/// Controls one running device. Dropping it stops the device abruptly (like
/// [`DeviceHandle::kill`]).
pub struct DeviceHandle {
    shared: Arc<Shared>,
    status: watch::Receiver<Status>,
    stop: watch::Sender<bool>,
    task: Option<AbortOnDrop<()>>,
}

impl DeviceHandle {
    /// The device id, to label what a caller does with many handles.
    pub fn id(&self) -> &str {
        &self.shared.opts.id
    }

    /// The wire contract it speaks: only a native device announces presence.
    pub fn contract(&self) -> Contract {
        self.shared.opts.contract
    }

    /// Resolves once the device is subscribed to its requests AND its
    /// retained online presence was acknowledged by the broker (a seed
    /// device: once subscribed), i.e. once a request sent now will be served. Resolves again after each reconnect;
    /// see [`DeviceHandle::wait_connection`] to wait for a later one.
    pub async fn wait_online(&self) {
        self.wait_connection(1).await;
    }

    /// Resolves once the device is online on its `n`th connection or later,
    /// so a test can wait for the reconnect after a reboot (`n` = previous
    /// [`DeviceHandle::connections`] + 1).
    pub async fn wait_connection(&self, n: u64) {
        let mut rx = self.status.clone();
        // The sender lives in `shared`, which this handle keeps alive.
        let _ = rx.wait_for(|s| s.online && s.connections >= n).await;
    }

    /// Whether the device is online right now.
    pub fn is_online(&self) -> bool {
        self.status.borrow().online
    }

    /// Number of times this device has come online (1 after the first
    /// connect), so callers can detect reconnects.
    pub fn connections(&self) -> u64 {
        self.status.borrow().connections
    }

    /// Publishes a device event on `{root}/devices/{id}/events/{name}` (QoS 0)
    /// and resolves once it was written to the connection. Fails when the
    /// device is offline or `name` is not a valid topic level.
    pub async fn publish_event(&self, name: &str, payload: impl Into<Bytes>) -> Result<(), String> {
        validate_id("event name", name).map_err(|e| e.to_string())?;
        let outbox = self
            .shared
            .current
            .lock()
            .clone()
            .ok_or("device is offline")?;
        let topic = self.shared.opts.topics.event(self.id(), name);
        let props = PublishProperties::default();
        let ticket = outbox
            .publish(topic, QoS::AtMostOnce, false, payload.into(), props)
            .await
            .map_err(|e| format!("event not sent: {e}"))?;
        ticket
            .confirmed()
            .await
            .map_err(|e| format!("event not sent: {e}"))
    }

    /// Clean stop: publishes the retained offline presence
    /// `{"online":false,"session":S}` (not for a seed device), sends
    /// DISCONNECT (so the broker drops the Will) and ends the task. Resolves when done (at most ~5 s).
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(mut task) = self.task.take() {
            let _ = (&mut task.0).await;
        }
    }

    /// Abrupt stop: closes the TCP connection without DISCONNECT so the
    /// broker publishes the Will (a seed device has none); the task ends and does not reconnect.
    pub fn kill(self) {
        drop(self);
    }

    /// Counters for tests: requests executed, requests dropped because
    /// their deadline had passed, duplicates dropped.
    pub fn stats(&self) -> DeviceStats {
        let c = &self.shared.stats;
        DeviceStats {
            executed: c.executed.load(Ordering::Relaxed),
            expired: c.expired.load(Ordering::Relaxed),
            duplicates: c.duplicates.load(Ordering::Relaxed),
        }
    }
}

impl Drop for DeviceHandle {
    fn drop(&mut self) {
        // Abort before the stop sender goes away with the other fields.
        if let Some(task) = self.task.take() {
            task.0.abort();
        }
    }
}

impl std::fmt::Debug for DeviceHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceHandle")
            .field("id", &self.id())
            .field("online", &self.is_online())
            .field("connections", &self.connections())
            .finish()
    }
}

/// The device task: one connection after another until stopped.
async fn supervise(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let id = shared.opts.id.clone();
    if let Err(e) = validate_id("device id", &id) {
        error!(device = %id, "device not started: {e}");
        return;
    }
    let mut backoff = Backoff::default();
    loop {
        let session = uuid::Uuid::new_v4().to_string();
        let (end, online_since) = session::run(&shared, &session, &mut stop).await;
        shared.set_online(None);
        let pause = match end {
            End::Stopped => return,
            End::Reconnect(after) => {
                info!(device = %id, "reconnecting in {after:?} as asked by a handler");
                backoff = Backoff::default();
                after
            }
            End::Failed(why) => {
                if let Some(since) = online_since {
                    // Only a connection that held for a while resets the
                    // backoff: two processes fighting over one client id
                    // must not reconnect in a tight loop.
                    if since.elapsed() >= STABLE_AFTER {
                        backoff = Backoff::default();
                    }
                    info!(device = %id, "connection lost: {why}");
                } else {
                    debug!(device = %id, "connect failed: {why}");
                }
                backoff.next_delay()
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = session::stop_requested(&mut stop) => return,
        }
    }
}

/// Capped exponential backoff with jitter, so thousands of devices that
/// lost the same broker do not all return in the same millisecond.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: BACKOFF_MIN }
    }
}

impl Backoff {
    /// A delay between half and all of the current step; doubles the step.
    fn next_delay(&mut self) -> Duration {
        let step = self.next;
        self.next = (step * 2).min(BACKOFF_MAX);
        step.mul_f64(rand::rng().random_range(0.5..=1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_from_a_url() {
        let url = thingcall_proto::wire::BrokerUrl::parse("wss://broker.example/ws").unwrap();
        let o = DeviceOptions::at("d1", &url);
        assert_eq!((o.host.as_str(), o.port), ("broker.example", 443));
        assert_eq!(o.websocket.as_deref(), Some("/ws"));
        assert!(o.tls.is_some());
        let plain = thingcall_proto::wire::BrokerUrl::parse("mqtt://b").unwrap();
        let o = DeviceOptions::at("d1", &plain);
        assert!(o.websocket.is_none() && o.tls.is_none());
    }

    #[test]
    fn backoff_grows_to_cap_with_jitter() {
        let mut b = Backoff::default();
        let first = b.next_delay();
        assert!(first >= BACKOFF_MIN / 2 && first <= BACKOFF_MIN);
        let mut last = first;
        for _ in 0..20 {
            last = b.next_delay();
            assert!(last <= BACKOFF_MAX);
        }
        assert!(last >= BACKOFF_MAX / 2);
    }

    #[test]
    fn defaults() {
        let o = DeviceOptions::new("d1", "localhost", 1883);
        assert_eq!(o.topics.root(), "thingcall");
        assert!(o.announce_methods && !o.ack);
        assert_eq!(o.contract, Contract::Native);
        assert_eq!(o.keep_alive, Duration::from_secs(30));
    }
}
