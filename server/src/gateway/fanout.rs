//! The InvokeMany driver: one task per fan-out that walks its devices and
//! starts each device's call when its concurrency, its pace and the
//! gateway's fan-out share allow (see [`crate::fanout`]), and streams a
//! result per call and then the summary.
//!
//! Results go to the caller through a small bounded channel: a slow reader
//! slows the fan-out down (no result is ever dropped), and a reader gone
//! away stops it.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use thingcall_proto::v1::{
    invoke_many_event::Kind, Contract, DeviceResult, InvokeManyEvent, InvokeManyRequest,
    InvokeRequest, OfflinePolicy,
};
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio_stream::wrappers::ReceiverStream;

use super::Gateway;
use crate::error::Error;
use crate::fanout::plan::{self, Plan, Targets};
use crate::fanout::tally::{Skipped, Tally, OK};
use crate::outcome::{Answer, Failed};
use crate::presence::Reachability;
use crate::telemetry::Caller;

/// Events waiting for a slow reader before the fan-out waits for it.
const EVENT_BUFFER: usize = 64;
/// Devices a glob fan-out reads from the registry at a time.
const CHUNK: usize = 256;

impl Gateway {
    /// Runs `req.method` on every device `req` names, as [`Gateway::invoke`]
    /// would run it on each, and streams their results and a summary. A bad
    /// request is refused whole, before anything is published.
    pub fn invoke_many(
        self: &Arc<Self>,
        req: InvokeManyRequest,
        caller: Caller,
    ) -> Result<ReceiverStream<InvokeManyEvent>, Error> {
        let plan = plan::plan(req, &self.cfg, Instant::now(), caller.deadline)?;
        if self.is_draining() {
            return Err(Error::ShuttingDown);
        }
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        let driver = Driver {
            gateway: Arc::clone(self),
            source: Source::new(plan.targets.clone()),
            plan,
            caller,
            tx,
            tally: Tally::default(),
            calls: FuturesUnordered::new(),
            stop: None,
            cancelled: false,
            draining: self.draining(),
        };
        tokio::spawn(driver.run());
        Ok(ReceiverStream::new(rx))
    }
}

/// How one call of the fan-out ended.
struct Done {
    device: String,
    result: Result<Answer, Failed>,
    started: Instant,
}

struct Driver {
    gateway: Arc<Gateway>,
    plan: Plan,
    source: Source,
    caller: Caller,
    tx: mpsc::Sender<InvokeManyEvent>,
    tally: Tally,
    calls: FuturesUnordered<BoxFuture<'static, Done>>,
    /// Why no more calls start, once that is decided.
    stop: Option<Skipped>,
    /// The caller went away: no more calls, no more events.
    cancelled: bool,
    /// Turns true when the gateway drains: a fan-out waiting on its pace
    /// stops at once rather than at its next slot.
    draining: tokio::sync::watch::Receiver<bool>,
}

impl Driver {
    async fn run(mut self) {
        let started = Instant::now();
        let gateway = Arc::clone(&self.gateway);
        let _active = gateway.fanouts.enter();
        let permits = gateway.fanouts.permits();
        let method = self.plan.call.method.clone();
        // As a single call would go out: see `Gateway::call`.
        let call_unknown = gateway.cfg.call_unannounced || self.contract() == Contract::Seed;
        while self.stop.is_none() && !self.cancelled {
            let Some(device) = self.source.next(&gateway, &self.caller, &method) else {
                break;
            };
            self.tally.selected();
            if gateway.is_draining() {
                self.stop = Some(Skipped::ShuttingDown);
                self.tally.skipped(&device, Skipped::ShuttingDown);
                break;
            }
            if self.plan.offline == OfflinePolicy::Skip
                && !callable_now(&gateway, &device, &method, call_unknown)
            {
                self.tally.skipped(&device, Skipped::Offline);
                continue;
            }
            // A slot of this fan-out's own, then its pace, then the share.
            self.wait_for_slot().await;
            if let Some(at) = self.plan.pacer.next_start() {
                self.until(tokio::time::sleep_until(at.into())).await;
            }
            let permit = match self.until(Arc::clone(&permits).acquire_owned()).await {
                Some(Ok(permit)) => permit,
                // Stopped while waiting (the semaphore is never closed):
                // this device was not called either.
                _ => {
                    if let Some(why) = self.stop {
                        self.tally.skipped(&device, why);
                    }
                    break;
                }
            };
            if gateway.is_draining() {
                self.stop = Some(Skipped::ShuttingDown);
                self.tally.skipped(&device, Skipped::ShuttingDown);
                break;
            }
            self.plan.pacer.started(Instant::now());
            self.start(device, permit);
        }
        if let Some(why) = self.stop {
            while let Some(device) = self.source.next(&gateway, &self.caller, &method) {
                self.tally.selected();
                self.tally.skipped(&device, why);
            }
        }
        // Calls already sent finish or time out, reported unless the caller left.
        while let Some(done) = self.calls.next().await {
            self.finished(done).await;
        }
        if self.cancelled {
            gateway.fanouts.count_cancelled();
            return;
        }
        let ended = match self.stop {
            None => "COMPLETED",
            Some(why) => why.name(),
        };
        let summary = std::mem::take(&mut self.tally).summary(ended, started.elapsed());
        let _ = self
            .tx
            .send(InvokeManyEvent {
                kind: Some(Kind::Summary(summary)),
            })
            .await;
    }

    fn contract(&self) -> Contract {
        match Contract::try_from(self.plan.call.contract) {
            Ok(Contract::Unspecified) | Err(_) => self.gateway.cfg.default_contract,
            Ok(c) => c,
        }
    }

    /// Waits until fewer than `max_concurrency` calls are in flight,
    /// handling those that end; returns early when the fan-out stops.
    async fn wait_for_slot(&mut self) {
        while self.calls.len() >= self.plan.concurrency && self.stop.is_none() && !self.cancelled {
            tokio::select! {
                biased;
                () = self.tx.closed() => self.cancelled = true,
                Some(done) = self.calls.next() => self.finished(done).await,
            }
        }
    }

    /// Waits for `f` while handling calls that end meanwhile; `None` when
    /// the fan-out stopped (abort, caller gone) before `f` was ready.
    async fn until<F: Future>(&mut self, f: F) -> Option<F::Output> {
        let mut f = pin!(f);
        loop {
            if self.stop.is_some() || self.cancelled {
                return None;
            }
            let mut draining = self.draining.clone();
            tokio::select! {
                biased;
                () = self.tx.closed() => {
                    self.cancelled = true;
                }
                _ = async { draining.wait_for(|d| *d).await.is_ok() } => {
                    self.stop = Some(Skipped::ShuttingDown);
                }
                Some(done) = self.calls.next(), if !self.calls.is_empty() => {
                    self.finished(done).await;
                }
                out = &mut f => return Some(out),
            }
        }
    }

    /// Starts `device`'s call, holding `permit` of the share until it ends.
    fn start(&mut self, device: String, permit: OwnedSemaphorePermit) {
        let req = InvokeRequest {
            target: device.clone(),
            idempotency_key: if self.plan.key.is_empty() {
                String::new()
            } else {
                format!("{}:{device}", self.plan.key)
            },
            ..self.plan.call.clone()
        };
        let gateway = Arc::clone(&self.gateway);
        let caller = self.caller.clone();
        self.calls.push(Box::pin(async move {
            let started = Instant::now();
            let result = gateway.invoke(req, caller).await;
            drop(permit);
            Done {
                device,
                result,
                started,
            }
        }));
    }

    /// Counts a call that ended, checks the abort threshold, and sends its
    /// result (unless the caller left).
    async fn finished(&mut self, done: Done) {
        let (outcome, result) = device_result(done);
        let elapsed = result
            .elapsed
            .and_then(|d| std::time::Duration::try_from(d).ok())
            .unwrap_or_default();
        self.tally.result(&outcome, elapsed);
        if outcome == OK {
            self.plan.pacer.succeeded();
        }
        if self.stop.is_none() && self.tally.should_abort(self.plan.abort) {
            self.stop = Some(Skipped::Aborted);
            self.gateway.fanouts.count_aborted();
        }
        if self.cancelled {
            return;
        }
        let event = InvokeManyEvent {
            kind: Some(Kind::Result(result)),
        };
        if self.tx.send(event).await.is_err() {
            self.cancelled = true;
        }
    }
}

/// Whether a call to `device` would go out now, without waiting: the
/// check `OFFLINE_POLICY_SKIP` makes.
fn callable_now(g: &Gateway, device: &str, method: &str, call_unknown: bool) -> bool {
    match g.registry.read().reachability(device, method) {
        Reachability::Online | Reachability::MethodNotSupported => true,
        Reachability::Unknown => call_unknown,
        Reachability::Offline | Reachability::Unconfirmed => false,
    }
}

/// A call's end as the stream reports it, with its outcome's name.
fn device_result(done: Done) -> (String, DeviceResult) {
    match done.result {
        Ok(answer) => {
            let status = answer.reply.status;
            let outcome = if status < 400 {
                OK.to_owned()
            } else {
                format!("DEVICE_STATUS_{status}")
            };
            let response = answer.into_response();
            let result = DeviceResult {
                device: done.device,
                outcome: outcome.clone(),
                request_id: response.request_id.clone(),
                elapsed: response.elapsed,
                response: Some(response),
                message: String::new(),
            };
            (outcome, result)
        }
        Err(failed) => {
            let outcome = failed.error.reason().name().to_owned();
            let result = DeviceResult {
                device: done.device,
                outcome: outcome.clone(),
                response: None,
                message: failed.error.to_string(),
                request_id: failed.request_id.to_string(),
                elapsed: done.started.elapsed().try_into().ok(),
            };
            (outcome, result)
        }
    }
}

/// The fan-out's devices, one at a time: the caller's list, or a glob
/// read from the registry a chunk at a time in id order (so a fan-out over
/// a million devices never copies them all, nor holds the registry's lock
/// for long). A glob takes only the devices the caller may invoke.
struct Source {
    list: Option<std::vec::IntoIter<String>>,
    pattern: String,
    /// The last id read from the registry.
    after: Option<String>,
    buffer: VecDeque<String>,
    exhausted: bool,
}

impl Source {
    fn new(targets: Targets) -> Self {
        let (list, pattern) = match targets {
            Targets::List(ids) => (Some(ids.into_iter()), String::new()),
            Targets::Pattern(p) => (None, p),
        };
        Source {
            list,
            pattern,
            after: None,
            buffer: VecDeque::new(),
            exhausted: false,
        }
    }

    fn next(&mut self, g: &Gateway, caller: &Caller, method: &str) -> Option<String> {
        if let Some(list) = &mut self.list {
            return list.next();
        }
        while self.buffer.is_empty() && !self.exhausted {
            let ids: Vec<String> = g
                .registry
                .read()
                .list(&self.pattern, self.after.as_deref())
                .take(CHUNK)
                .map(|(id, _)| id.to_owned())
                .collect();
            let read = ids.len();
            self.after = ids.last().cloned().or(self.after.take());
            self.buffer.extend(
                ids.into_iter()
                    .filter(|id| caller.access.may_invoke(id, method)),
            );
            self.exhausted = read < CHUNK;
        }
        self.buffer.pop_front()
    }
}
