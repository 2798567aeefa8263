//! A call's life in the core: admission (validation, drain, presence,
//! the in-flight limit), the request out, the wait for its end (reply,
//! deadline, device offline, broker lost, drain), and the bookkeeping
//! (metrics, logs, trace, watchers). Calls with an idempotency key go
//! through the key table ([`crate::idempotency`]) first.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use thingcall_proto::v1::{device_event::Kind, InvocationOutcome, InvokeRequest};
use thingcall_proto::Reason;
use tracing::Instrument;

use super::Gateway;
use crate::calls::{CallTable, Completion};
use crate::error::Error;
use crate::idempotency::Claim;
use crate::outcome::{Answer, CallId, Failed};
use crate::presence::Reachability;
use crate::telemetry::{CallTrace, Caller};
use crate::validate;

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
    /// One call to the device, with its metrics, logs and trace.
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn would hold its arguments twice"
    )]
    pub(crate) fn invoke_once<G>(
        gateway: G,
        req: InvokeRequest,
        caller: Caller,
        id: CallId,
    ) -> impl Future<Output = Result<Answer, Failed>> + Send
    where
        G: std::ops::Deref<Target = Gateway> + Send + Sync,
    {
        // An `async move` block rather than an `async fn`: the latter keeps
        // a second copy of its arguments in the future. `gateway` is a
        // borrow or an `Arc`, whichever the caller has.
        async move {
            let this: &Gateway = &gateway;
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
            let trace = this
                .tracer
                .as_ref()
                .map(|t| CallTrace::start(t, &caller, &req.target, &req.method, id));
            if let Some(trace) = &trace {
                span.record("trace_id", tracing::field::display(trace.trace_id()));
            }
            // `call` borrows the request: a moved copy would sit in both
            // futures, which live as long as the call.
            let result = this
                .call(&req, id, &caller, received, trace.as_ref())
                .instrument(span.clone())
                .await;
            let exemplar = trace.as_ref().and_then(CallTrace::sampled_trace_id);
            if let Some(trace) = trace {
                trace.finish(result.as_ref().map(|a| &a.reply));
            }
            let outcome = result.as_ref().err().map(Error::reason);
            let took = received.elapsed();
            this.metrics
                .record_traced(&req.method, outcome, took, exemplar);
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
        caller: &'a Caller,
        received: Instant,
        trace: Option<&'a CallTrace>,
    ) -> impl Future<Output = Result<Answer, Error>> + Send + 'a {
        async move {
            let limits = validate::invoke(req, &self.cfg, received, caller.deadline)?;
            // After validation (bad input is INVALID_ARGUMENT whoever sends
            // it), before anything else: a denied call publishes nothing.
            caller.access.check_invoke(&req.target, &req.method)?;
            if self.draining.load(Ordering::Relaxed) {
                return Err(Error::ShuttingDown);
            }
            // Devices that announce no presence: the seed's, and any with
            // --call-unannounced.
            let call_unknown =
                self.cfg.call_unannounced || limits.contract == thingcall_proto::v1::Contract::Seed;
            let now = self.registry.read().reachability(&req.target, &req.method);
            if now != Reachability::Online && !(call_unknown && now == Reachability::Unknown) {
                // Boxed: the rare wait for a device stays out of every call's
                // future, which lives as long as the call.
                Box::pin(self.await_reachable(
                    &req.target,
                    &req.method,
                    limits.connect_deadline,
                    limits.deadline,
                    call_unknown,
                ))
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
            // (A reconnect in between makes it unconfirmed: not called either.)
            if matches!(
                self.registry.read().reachability(&req.target, &req.method),
                Reachability::Offline | Reachability::Unconfirmed
            ) {
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

    /// [`Gateway::invoke`] for a call with an idempotency key.
    pub(crate) async fn invoke_keyed(
        self: &Arc<Self>,
        req: InvokeRequest,
        caller: Caller,
    ) -> Result<Answer, Failed> {
        let received = Instant::now();
        let id = CallId::random();
        // Bad input and denied calls are refused as any call's are, and
        // never claim (or join) a key.
        let deadline = match validate::invoke(&req, &self.cfg, received, caller.deadline) {
            // Rules only: the rate token is taken by the call that runs.
            Ok(limits) if caller.access.may_invoke(&req.target, &req.method) => limits.deadline,
            _ => return Self::invoke_once(&**self, req, caller, id).await,
        };
        let method = req.method.clone();
        let (id, mut done, lead) = match self.idempotency.claim(&req, id) {
            Ok(Claim::Lead(ticket)) => {
                let done = ticket.subscribe();
                let gateway = Arc::clone(self);
                // Its own task: a caller that goes away (a client timing out
                // before it retries) does not cancel the call, so the retry
                // joins it or gets its outcome.
                tokio::spawn(async move {
                    let outcome = Gateway::invoke_once(&*gateway, req, caller, id).await;
                    ticket.end(outcome);
                });
                (id, done, true)
            }
            Ok(Claim::Join { id, done }) => (id, done, false),
            Ok(Claim::Replay(outcome)) => {
                return self.record_keyed(&method, received, id, &outcome);
            }
            Err(error) => {
                let failed = Err(Failed {
                    error,
                    request_id: id,
                });
                return self.record_keyed(&method, received, id, &failed);
            }
        };
        // The leader's task ends by its own deadline; a joiner waits up to its own.
        let waited = if lead {
            done.wait_for(Option::is_some).await.map(|o| o.clone())
        } else {
            match tokio::time::timeout_at(deadline.into(), done.wait_for(Option::is_some)).await {
                Ok(got) => got.map(|o| o.clone()),
                Err(_) => {
                    let timeout = Err(Failed {
                        error: Error::DeviceTimeout {
                            after: deadline.saturating_duration_since(received),
                            accepted: false,
                        },
                        request_id: id,
                    });
                    return self.record_keyed(&method, received, id, &timeout);
                }
            }
        };
        let outcome = match waited {
            Ok(Some(outcome)) => outcome,
            // The running call's task ended without an outcome (runtime shutdown).
            _ => Arc::new(Err(Failed {
                error: Error::ShuttingDown,
                request_id: id,
            })),
        };
        if lead {
            // Counted and logged by the call itself.
            return (*outcome).clone();
        }
        self.record_keyed(&method, received, id, &outcome)
    }

    /// Records a keyed call that did not run on its own (it joined, replayed,
    /// was refused or gave up waiting), and gives its outcome.
    fn record_keyed(
        &self,
        method: &str,
        received: Instant,
        id: CallId,
        outcome: &Result<Answer, Failed>,
    ) -> Result<Answer, Failed> {
        let reason = outcome.as_ref().err().map(|f| f.error.reason());
        self.metrics.record(method, reason, received.elapsed());
        tracing::debug!(
            request_id = %id,
            method,
            outcome = reason.map_or("OK", Reason::name),
            "keyed call finished without running"
        );
        outcome.clone()
    }
}
