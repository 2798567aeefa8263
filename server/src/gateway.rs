//! The gateway core: every surface (gRPC, gRPC-web, HTTP/JSON and the seed
//! API) calls these methods, and nothing else does business logic. Its
//! state is private; it meets MQTT only through decoded values
//! ([`crate::message::Inbound`], from the session) and the [`Outbox`].
//!
//! - `call`: admission, a call's life and keyed calls;
//! - `publish`: a call's request as the plain value the outbox encodes;
//! - `inbound`: replies, presence and events from the session;
//! - `presence`: whether a call may go out now, and presence after a
//!   reconnect (confirmation, sync, grace);
//! - `queries`: get, list and watch devices.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::Either;
use opentelemetry_sdk::trace::SdkTracer;
use parking_lot::RwLock;
use thingcall_proto::v1::{Contract, InvokeRequest};
use thingcall_proto::wire::{SeedTopics, Topics};
use tokio::sync::watch;

use crate::calls::CallTable;
use crate::error::Error;
use crate::idempotency::Idempotency;
use crate::metrics::{self, CallMetrics, Snapshot};
use crate::mqtt::{Outbox, Router};
pub use crate::outcome::{Answer, CallId, Failed};
use crate::presence::Registry;
use crate::telemetry::Caller;
use crate::watch::Hub;

/// Settings of the core (a subset of the server's configuration).
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Unique per gateway process; part of its reply topic.
    pub gateway_id: String,
    /// MQTT topic root.
    pub topic_root: String,
    /// Reply deadline when a call gives none.
    pub default_timeout: Duration,
    /// Longest reply deadline a call may ask for.
    pub max_timeout: Duration,
    /// Largest request payload in bytes.
    pub max_payload: usize,
    /// Calls in flight before new ones get `OVERLOADED`.
    pub max_in_flight: usize,
    /// Calls in flight to one device before more are refused with
    /// OVERLOADED, so one hot device cannot take the whole limit.
    pub max_in_flight_per_device: usize,
    /// Events buffered per watcher before it lags.
    pub watch_buffer: usize,
    /// Contract of calls that do not name one.
    pub default_contract: Contract,
    /// This gateway's `client_prefix` in the seed contract: it receives acks
    /// under `{client_prefix}/+/+/+/ack` only, so give each replica its own.
    pub seed_client_prefix: String,
    /// Method names that get their own metrics label; later ones are `other`.
    pub metrics_max_methods: usize,
    /// How long an idempotent call's outcome is replayed after it ends.
    pub idempotency_window: Duration,
    /// Budget of kept idempotent outcomes (payloads included), in bytes.
    pub idempotency_max_bytes: usize,
    /// What the broker allows (its profile's): requests whose topics it
    /// would refuse are refused before anything is published.
    pub broker_limits: thingcall_proto::wire::BrokerLimits,
    /// After a new MQTT session, how long presence from before it stays
    /// provisional: calls to such devices wait for confirmation (up to
    /// their `connect_timeout`, and while the retained presence is still
    /// arriving, up to this); when it ends, devices still unconfirmed are
    /// shown offline.
    pub presence_grace: Duration,
    /// Call devices that never announced presence (and wait for them), as
    /// before presence existed, instead of refusing native calls to them
    /// with `DEVICE_NOT_FOUND`.
    pub call_unannounced: bool,
}

/// What happened outside the calls themselves, counted since start: replies
/// that reached no caller, by cause, and the MQTT session's ups and downs.
/// Followed through [`Gateway::tallies`], so tests and operators wait on a
/// change instead of polling; they change rarely, never per answered call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tallies {
    /// Replies whose call had ended without them (deadline, caller gone, device offline).
    pub dropped_late: u64,
    /// Replies to calls already answered.
    pub dropped_duplicate: u64,
    /// Replies to no call in memory: made up, or long gone.
    pub dropped_unknown: u64,
    /// Replies on another device's reply topic, and seed acks naming another call.
    pub dropped_foreign: u64,
    /// Undecodable messages: no or wrong-size CorrelationData, bad status, bad JSON.
    pub dropped_malformed: u64,
    /// MQTT connections lost or refused (failed connects included), so a
    /// test or an operator can tell "still connecting" from "connecting fails".
    pub connection_failures: u64,
    /// MQTT sessions established (subscriptions in place), the first included.
    pub sessions_up: u64,
    /// Calls that waited on presence not yet confirmed in this MQTT session
    /// (or not yet synced), by how the wait ended: the call went out...
    pub presence_waits_called: u64,
    /// ...it failed with `DEVICE_OFFLINE`...
    pub presence_waits_offline: u64,
    /// ...with `DEVICE_NOT_FOUND`...
    pub presence_waits_not_found: u64,
    /// ...or otherwise (broker lost, shutting down).
    pub presence_waits_other: u64,
}

/// The core. Shared as `Arc<Gateway>` by the API adapters and the MQTT session.
pub struct Gateway {
    cfg: CoreConfig,
    topics: Topics,
    seed: SeedTopics,
    outbox: Outbox,
    calls: CallTable,
    registry: Arc<RwLock<Registry>>,
    hub: Hub,
    draining: AtomicBool,
    /// Turns true with `draining`, for the rare waits that must wake then.
    drain_signal: watch::Sender<bool>,
    connected: watch::Sender<bool>,
    /// Bumped on every presence change, confirmation, sync and session
    /// change, for calls waiting on a device's presence.
    presence_seq: watch::Sender<u64>,
    /// The registry epoch of the current MQTT session, for the grace timer.
    sessions: watch::Sender<u32>,
    /// Dropped replies and session changes.
    tallies: watch::Sender<Tallies>,
    /// Outcomes and durations of calls, for `/metrics`.
    metrics: CallMetrics,
    /// Keys of idempotent calls in flight, and recent outcomes to replay.
    idempotency: Arc<Idempotency>,
    /// Set when the process exports traces; `None` costs calls nothing.
    tracer: Option<SdkTracer>,
    /// Kept by the listener, shown on `/metrics`.
    connections: Arc<crate::metrics::Connections>,
    /// The fan-outs' share of `--max-in-flight` (see [`crate::fanout`]).
    fanouts: crate::fanout::Share,
}

impl Gateway {
    /// A core publishing through `outbox`; the MQTT session feeds it.
    pub fn new(cfg: CoreConfig, outbox: Outbox) -> Self {
        Self {
            topics: Topics::new(cfg.topic_root.clone()),
            seed: SeedTopics::new(cfg.seed_client_prefix.clone()),
            calls: CallTable::new(cfg.max_in_flight, cfg.max_in_flight_per_device),
            registry: Arc::new(RwLock::new(Registry::default())),
            hub: Hub::new(cfg.watch_buffer),
            draining: AtomicBool::new(false),
            drain_signal: watch::channel(false).0,
            connected: watch::channel(false).0,
            presence_seq: watch::channel(0).0,
            sessions: watch::channel(0).0,
            tallies: watch::channel(Tallies::default()).0,
            metrics: CallMetrics::new(cfg.metrics_max_methods),
            idempotency: Arc::new(Idempotency::new(
                cfg.idempotency_window,
                cfg.idempotency_max_bytes,
            )),
            tracer: None,
            connections: Arc::default(),
            fanouts: crate::fanout::Share::new(cfg.max_in_flight),
            outbox,
            cfg,
        }
    }

    /// The connection counts the listener keeps for `/metrics`.
    pub fn connections(&self) -> Arc<crate::metrics::Connections> {
        self.connections.clone()
    }

    /// The topics this gateway subscribes to and how what arrives on them
    /// is decoded, for its MQTT session.
    pub fn router(&self) -> Router {
        Router::new(
            self.topics.clone(),
            self.cfg.gateway_id.clone(),
            self.seed.clone(),
        )
    }

    /// Settings in force.
    pub fn config(&self) -> &CoreConfig {
        &self.cfg
    }

    /// Follows the MQTT session state (true once subscriptions are in place).
    pub fn connected(&self) -> watch::Receiver<bool> {
        self.connected.subscribe()
    }

    /// Follows the counts of dropped replies and session changes.
    pub fn tallies(&self) -> watch::Receiver<Tallies> {
        self.tallies.subscribe()
    }

    /// Follows the count of keyed calls answered by a running or earlier
    /// call with their key.
    pub fn idempotent_replays(&self) -> watch::Receiver<u64> {
        self.idempotency.follow_replays()
    }

    /// Counts one more of what `field` picks.
    fn tally(&self, field: fn(&mut Tallies) -> &mut u64) {
        self.tallies.send_modify(|t| *field(t) += 1);
    }

    /// Traces every call with `tracer` (see [`crate::telemetry`]).
    pub fn with_tracer(mut self, tracer: SdkTracer) -> Self {
        self.tracer = Some(tracer);
        self
    }

    /// Whether calls are traced: adapters read the caller's trace context
    /// from its headers only then.
    pub fn tracing(&self) -> bool {
        self.tracer.is_some()
    }

    /// Calls in flight.
    pub fn in_flight(&self) -> usize {
        self.calls.len()
    }

    /// The Prometheus text of `/metrics`: call outcomes and durations, and
    /// the state of the session, devices, replies and watchers now.
    pub fn metrics_text(&self) -> String {
        self.metrics_text_as(metrics::Format::Prometheus)
    }

    /// The `/metrics` page in `format`: OpenMetrics adds the trace-id
    /// exemplars of the duration histogram.
    pub fn metrics_text_as(&self, format: metrics::Format) -> String {
        let t = *self.tallies.borrow();
        let hub = self.hub.stats();
        // One read guard, dropped before anything else: parking_lot's
        // RwLock is fair, so a second `read()` in the same statement waits
        // behind a writer that waits for the first (a deadlock under a
        // presence burst).
        let (devices_online, devices_unconfirmed, presence_synced, devices_known, sync) = {
            let reg = self.registry.read();
            (
                reg.online_count(),
                reg.unconfirmed_count(),
                reg.synced(),
                reg.len(),
                reg.sync_progress(),
            )
        };
        let snapshot = Snapshot {
            in_flight: self.calls.len(),
            devices_online,
            devices_unconfirmed,
            presence_synced,
            devices_known,
            sync,
            presence_waits: [
                t.presence_waits_called,
                t.presence_waits_offline,
                t.presence_waits_not_found,
                t.presence_waits_other,
            ],
            mqtt_connected: self.calls.connected(),
            mqtt_reconnects: t.sessions_up.saturating_sub(1),
            dropped_late: t.dropped_late,
            dropped_duplicate: t.dropped_duplicate,
            dropped_unknown: t.dropped_unknown,
            dropped_foreign: t.dropped_foreign,
            dropped_malformed: t.dropped_malformed,
            watchers: *hub.watchers.borrow(),
            watch_lagged: hub.lagged.load(Ordering::Relaxed),
            idempotent_replays: self.idempotency.replays(),
            connections_open: self.connections.open.load(Ordering::Relaxed),
            connections_refused: self.connections.refused.load(Ordering::Relaxed),
            tls_handshakes_failed: self.connections.tls_failed.load(Ordering::Relaxed),
            connections_idle_closed: self.connections.idle_closed.load(Ordering::Relaxed),
            connections_header_timeouts: self.connections.header_timeouts.load(Ordering::Relaxed),
        };
        let mut text = metrics::render(&self.metrics, &snapshot, format);
        self.fanouts.render(&mut text);
        format.finish(text)
    }

    /// Refuses new calls and watches from now on (`SHUTTING_DOWN`): nothing
    /// more is published. Calls in flight go on; calls still waiting for an
    /// offline device to come online fail with `SHUTTING_DOWN` at once.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.calls.close();
        self.drain_signal.send_replace(true);
    }

    /// Whether [`Gateway::drain`] was called.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Follows the drain: turns true when [`Gateway::drain`] is called.
    pub fn draining(&self) -> watch::Receiver<bool> {
        self.drain_signal.subscribe()
    }

    /// Waits until no call is in flight: after [`Gateway::drain`], until
    /// every call has ended; before it, a moment that may pass at once.
    pub async fn wait_idle(&self) {
        self.calls.wait_empty().await;
    }

    /// Follows the number of open watch streams.
    pub fn watchers(&self) -> watch::Receiver<usize> {
        self.hub.watchers()
    }

    /// Fails every call still in flight with `SHUTTING_DOWN`; returns how
    /// many. For the end of the drain window.
    pub fn abort_calls(&self) -> usize {
        self.calls.fail_all(&Error::ShuttingDown)
    }

    /// Ends every watch stream, each with a final `closing` event.
    pub fn close_watchers(&self) {
        self.hub.close();
    }

    /// Runs `req.method` on `req.target` and waits for the answer.
    /// `caller` adds the caller's own deadline and trace context. A call
    /// with an idempotency key runs on the device at most once per key
    /// (see [`crate::idempotency`]).
    pub fn invoke(
        self: &Arc<Self>,
        req: InvokeRequest,
        caller: Caller,
    ) -> impl Future<Output = Result<Answer, Failed>> + Send + 'static {
        self.clone().invoke_owned(req, caller)
    }

    /// [`Gateway::invoke`] on a gateway the future owns a share of, so it
    /// can run where a borrowed one cannot (hyper's stream task) without
    /// an `async` block around it keeping `req` and `caller` twice.
    pub fn invoke_owned(
        self: Arc<Self>,
        req: InvokeRequest,
        caller: Caller,
    ) -> impl Future<Output = Result<Answer, Failed>> + Send + 'static {
        // Not an `async fn`: that would keep its own copy of `req` and
        // `caller` next to the call's future for as long as the call lives.
        if req.idempotency_key.is_empty() {
            Either::Left(Self::invoke_once(self, req, caller, CallId::random()))
        } else {
            // Boxed: keyed calls' extra state stays out of every other call's future.
            Either::Right(Box::pin(
                async move { self.invoke_keyed(req, caller).await },
            ))
        }
    }
}

/// Keeps `Arc<Gateway>` usable where the session wants `Arc<dyn Incoming>`.
pub fn as_incoming(g: &Arc<Gateway>) -> Arc<dyn crate::mqtt::Incoming> {
    g.clone()
}

mod call;
mod fanout;
mod inbound;
mod presence;
mod publish;
pub(crate) mod queries;
#[cfg(test)]
pub(crate) mod tests;
