//! The gateway core: every surface (gRPC, gRPC-web, HTTP/JSON and the seed
//! API) calls these methods, and nothing else does business logic.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::Either;
use opentelemetry_sdk::trace::SdkTracer;
use parking_lot::RwLock;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::AsyncClient;
use thingcall_proto::v1::{device_event::Kind, Contract, InvocationOutcome, InvokeRequest};
use thingcall_proto::wire::{SeedTopics, Topics};
use thingcall_proto::Reason;
use tokio::sync::watch;
use tracing::Instrument;

use crate::calls::{CallTable, Completion};
use crate::error::Error;
use crate::idempotency::Idempotency;
use crate::metrics::{self, CallMetrics, Snapshot};
pub use crate::outcome::{Answer, CallId, Failed};
use crate::presence::{Reachability, Registry};
use crate::telemetry::{CallTrace, Caller};
use crate::validate;
use crate::watch::Hub;

/// Settings of the core (a subset of the server's configuration).
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Unique per gateway process; part of its reply topic.
    pub gateway_id: String,
    /// MQTT topic root.
    pub topic_root: String,
    /// QoS of requests.
    pub qos: QoS,
    /// Reply deadline when a call gives none.
    pub default_timeout: Duration,
    /// Longest reply deadline a call may ask for.
    pub max_timeout: Duration,
    /// Largest request payload in bytes.
    pub max_payload: usize,
    /// Calls in flight before new ones get `OVERLOADED`.
    pub max_in_flight: usize,
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
}

/// Replies dropped without reaching a caller, by cause.
#[derive(Debug, Default)]
pub struct DropCounters {
    /// The call had ended without its reply (deadline, caller gone, device offline).
    pub late: AtomicU64,
    /// The call had already been answered.
    pub duplicate: AtomicU64,
    /// No call with that correlation id in memory: made up or long gone.
    pub unknown: AtomicU64,
    /// The call exists but targets another device (reply topic names a different device).
    pub foreign: AtomicU64,
    /// Not decodable: no or wrong-size CorrelationData, bad status, bad presence JSON.
    pub malformed: AtomicU64,
}

/// The core. Shared as `Arc<Gateway>` by the API adapters and the MQTT session.
pub struct Gateway {
    pub(crate) cfg: CoreConfig,
    pub(crate) topics: Topics,
    pub(crate) seed: SeedTopics,
    pub(crate) client: AsyncClient,
    pub(crate) calls: CallTable,
    pub(crate) registry: RwLock<Registry>,
    pub(crate) hub: Hub,
    draining: AtomicBool,
    /// Turns true with `draining`, for the rare waits that must wake then.
    drain_signal: watch::Sender<bool>,
    pub(crate) connected: watch::Sender<bool>,
    /// Counters of dropped replies.
    pub drops: DropCounters,
    /// Connections lost or refused (including failed connects), so a test or
    /// an operator can tell "still connecting" from "connecting fails".
    pub(crate) connection_failures: AtomicU64,
    /// MQTT sessions established (subscriptions in place), first included.
    pub(crate) sessions_up: AtomicU64,
    /// Outcomes and durations of calls, for `/metrics`.
    pub(crate) metrics: CallMetrics,
    /// Keys of idempotent calls in flight, and recent outcomes to replay.
    pub(crate) idempotency: Arc<Idempotency>,
    /// Set when the process exports traces; `None` costs calls nothing.
    pub(crate) tracer: Option<SdkTracer>,
}

/// Removes a call whose caller went away (future dropped) before it ended.
struct CancelGuard<'a> {
    calls: &'a CallTable,
    id: CallId,
    armed: bool,
}

impl Drop for CancelGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.calls.remove(self.id);
        }
    }
}

impl Gateway {
    /// A core publishing through `client`; the MQTT session feeds it.
    pub fn new(cfg: CoreConfig, client: AsyncClient) -> Self {
        Self {
            topics: Topics::new(cfg.topic_root.clone()),
            seed: SeedTopics::new(cfg.seed_client_prefix.clone()),
            calls: CallTable::new(cfg.max_in_flight),
            registry: RwLock::new(Registry::default()),
            hub: Hub::new(cfg.watch_buffer),
            draining: AtomicBool::new(false),
            drain_signal: watch::channel(false).0,
            connected: watch::channel(false).0,
            drops: DropCounters::default(),
            connection_failures: AtomicU64::new(0),
            sessions_up: AtomicU64::new(0),
            metrics: CallMetrics::new(cfg.metrics_max_methods),
            idempotency: Arc::new(Idempotency::new(
                cfg.idempotency_window,
                cfg.idempotency_max_bytes,
            )),
            tracer: None,
            client,
            cfg,
        }
    }

    /// The filters the MQTT session must hold.
    pub fn subscriptions(&self) -> Vec<String> {
        vec![
            self.topics.replies_filter(&self.cfg.gateway_id),
            self.topics.presence_filter(),
            self.topics.events_filter(),
            self.seed.ack_filter(),
        ]
    }

    /// Settings in force.
    pub fn config(&self) -> &CoreConfig {
        &self.cfg
    }

    /// Follows the MQTT session state (true once subscriptions are in place).
    pub fn connected(&self) -> watch::Receiver<bool> {
        self.connected.subscribe()
    }

    /// MQTT connections lost or refused since start.
    pub fn connection_failures(&self) -> u64 {
        self.connection_failures.load(Ordering::Relaxed)
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
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let hub = self.hub.stats();
        let snapshot = Snapshot {
            in_flight: self.calls.len(),
            devices_online: self.registry.read().online_count(),
            mqtt_connected: self.calls.connected(),
            mqtt_reconnects: load(&self.sessions_up).saturating_sub(1),
            dropped_late: load(&self.drops.late),
            dropped_duplicate: load(&self.drops.duplicate),
            dropped_unknown: load(&self.drops.unknown),
            dropped_foreign: load(&self.drops.foreign),
            dropped_malformed: load(&self.drops.malformed),
            watchers: hub.watchers.load(Ordering::Relaxed),
            watch_lagged: hub.lagged.load(Ordering::Relaxed),
            idempotent_replays: self.idempotency.replays(),
        };
        metrics::render(&self.metrics, &snapshot)
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

    /// Waits until every call in flight has ended (after [`Gateway::drain`]).
    pub async fn wait_drained(&self) {
        self.calls.wait_empty().await;
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
    ) -> impl Future<Output = Result<Answer, Failed>> + Send + '_ {
        // Not an `async fn`: that would keep its own copy of `req` and
        // `caller` next to the call's future for as long as the call lives.
        if req.idempotency_key.is_empty() {
            Either::Left(self.invoke_once(req, caller, CallId::random()))
        } else {
            // Boxed: keyed calls' extra state stays out of every other call's future.
            Either::Right(Box::pin(self.invoke_keyed(req, caller)))
        }
    }

    /// One call to the device, with its metrics, logs and trace.
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn would hold its arguments twice"
    )]
    pub(crate) fn invoke_once(
        &self,
        req: InvokeRequest,
        caller: Caller,
        id: CallId,
    ) -> impl Future<Output = Result<Answer, Failed>> + Send + '_ {
        // An `async move` block rather than an `async fn`: the latter keeps
        // a second copy of its arguments in the future.
        async move {
            let received = Instant::now();
            // Debug level: off by default, so the hot path pays only a cached
            // level check. Ids and names only; payloads and metadata values are
            // never logged (they may carry secrets).
            let span = tracing::debug_span!(
                "call",
                request_id = %id,
                target = %req.target,
                method = %req.method,
                trace_id = tracing::field::Empty,
            );
            let trace = self
                .tracer
                .as_ref()
                .map(|t| CallTrace::start(t, &caller, &req.target, &req.method, id));
            if let Some(trace) = &trace {
                span.record("trace_id", tracing::field::display(trace.trace_id()));
            }
            // `call` borrows the request: a moved copy would sit in both
            // futures, which live as long as the call.
            let result = self
                .call(&req, id, caller.deadline, received, trace.as_ref())
                .instrument(span.clone())
                .await;
            if let Some(trace) = trace {
                trace.finish(result.as_ref().map(|a| &a.reply));
            }
            let outcome = result.as_ref().err().map(Error::reason);
            let took = received.elapsed();
            self.metrics.record(&req.method, outcome, took);
            span.in_scope(|| {
                tracing::debug!(
                    outcome = outcome.map_or("OK", Reason::name),
                    elapsed_us = took.as_micros() as u64,
                    "call finished"
                );
            });
            result.map_err(|error| Failed {
                error,
                request_id: id,
            })
        }
    }

    /// [`Gateway::invoke`] without the bookkeeping.
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn would hold its arguments twice"
    )]
    fn call<'a>(
        &'a self,
        req: &'a InvokeRequest,
        id: CallId,
        caller_deadline: Option<Instant>,
        received: Instant,
        trace: Option<&'a CallTrace>,
    ) -> impl Future<Output = Result<Answer, Error>> + Send + 'a {
        async move {
            let limits = validate::invoke(req, &self.cfg, received, caller_deadline)?;
            if self.draining.load(Ordering::Relaxed) {
                return Err(Error::ShuttingDown);
            }
            let now = self.registry.read().reachability(&req.target, &req.method);
            if !matches!(now, Reachability::Unknown | Reachability::Online) {
                // Boxed: the rare wait for a device stays out of every call's
                // future, which lives as long as the call.
                Box::pin(self.await_reachable(&req.target, &req.method, limits.connect_deadline))
                    .await?;
            }

            let mut rx = self.calls.insert(id, &req.target)?;
            let mut guard = CancelGuard {
                calls: &self.calls,
                id,
                armed: true,
            };
            // Checked again now the call is in the table: an offline that landed
            // between the first check and the insert would otherwise be missed.
            if self.registry.read().reachability(&req.target, &req.method) == Reachability::Offline
            {
                return self.finish(
                    req,
                    id,
                    received,
                    Err(Error::DeviceOffline(req.target.clone())),
                );
            }
            if !self.publish_request(req, limits.contract, id, limits.deadline, trace) {
                return self.finish(req, id, received, Err(Error::BrokerUnavailable));
            }
            let result: Completion =
                match tokio::time::timeout_at(limits.deadline.into(), &mut rx).await {
                    Ok(Ok(done)) => done,
                    Ok(Err(_)) => Err(Error::BrokerUnavailable),
                    Err(_) => match self.calls.remove(id) {
                        Some(accepted) => Err(Error::DeviceTimeout {
                            after: limits.deadline.saturating_duration_since(received),
                            accepted,
                        }),
                        // Completed in the instant the deadline fired: take that.
                        None => rx.try_recv().unwrap_or(Err(Error::BrokerUnavailable)),
                    },
                };
            guard.armed = false;
            self.finish(req, id, received, result)
        }
    }

    fn finish(
        &self,
        req: &InvokeRequest,
        id: CallId,
        received: Instant,
        result: Completion,
    ) -> Result<Answer, Error> {
        let elapsed = received.elapsed();
        if self.hub.has_watchers() {
            let (outcome, status) = match &result {
                Ok(r) => ("OK", r.status),
                Err(e) => (e.reason().name(), 0),
            };
            self.hub.send(
                &req.target,
                Kind::Invocation(InvocationOutcome {
                    method: req.method.clone(),
                    request_id: id.to_string(),
                    outcome: outcome.to_owned(),
                    status,
                    elapsed: elapsed.try_into().ok(),
                }),
            );
        }
        result.map(|reply| Answer {
            reply,
            request_id: id,
            elapsed,
        })
    }

    /// Waits (up to `connect_deadline`) until the device may be called.
    async fn await_reachable(
        &self,
        device: &str,
        method: &str,
        connect_deadline: Option<Instant>,
    ) -> Result<(), Error> {
        let mut events = None;
        loop {
            match self.registry.read().reachability(device, method) {
                Reachability::Unknown | Reachability::Online => return Ok(()),
                Reachability::MethodNotSupported => {
                    return Err(Error::MethodNotSupported {
                        device: device.into(),
                        method: method.into(),
                    })
                }
                Reachability::Offline => {}
            }
            let until = match connect_deadline {
                Some(t) if t > Instant::now() => t,
                _ => return Err(Error::DeviceOffline(device.into())),
            };
            // Subscribe, then look again: no presence change is missed.
            let Some((rx, draining)) = events.as_mut() else {
                events = Some((self.hub.subscribe(), self.drain_signal.subscribe()));
                continue;
            };
            tokio::select! {
                _ = tokio::time::sleep_until(until.into()) => {
                    return Err(Error::DeviceOffline(device.into()));
                }
                // Draining publishes nothing new, so this call cannot go out.
                _ = draining.wait_for(|d| *d) => return Err(Error::ShuttingDown),
                _ = rx.recv() => {}
            }
        }
    }
}

/// Keeps `Arc<Gateway>` usable where the session wants `Arc<dyn Incoming>`.
pub fn as_incoming(g: &Arc<Gateway>) -> Arc<dyn crate::mqtt::Incoming> {
    g.clone()
}

#[cfg(test)]
pub(crate) mod tests;
