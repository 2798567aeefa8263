//! Idempotent calls: a device runs a keyed request once, however often the
//! caller retries it.
//!
//! A call naming an `idempotency_key` claims that key for its target. While
//! the call is in flight, calls with the same key join it and get its
//! outcome; after it ends, calls within `--idempotency-window` get that
//! outcome again. Neither publishes anything.
//!
//! Kept are the outcomes after which the device may have run the method:
//! its answer, `DEVICE_TIMEOUT` and `DEVICE_DISCONNECTED`. A call refused
//! before it could reach the device (offline, overloaded, broker
//! unavailable, draining) leaves the key free, so a retry really retries.
//!
//! The same key with another method, payload, content type or contract is
//! refused with `INVALID_ARGUMENT`: answering it with another request's
//! outcome would be wrong. Timeout and metadata may differ between retries.
//!
//! Keys are scoped by target, so a fan-out may use one key for every device.
//! Memory is bounded by the window and by `--idempotency-max-bytes`; the
//! oldest outcomes go first.

use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use thingcall_proto::v1::InvokeRequest;
use tokio::sync::watch;

use crate::error::Error;
use crate::outcome::{Answer, CallId, Failed};

/// A keyed call's outcome, shared by every caller that sent its key.
pub type Outcome = Arc<Result<Answer, Failed>>;

/// (target, idempotency key).
type Key = (String, String);

/// Bookkeeping per kept outcome beyond its payload and strings: the map
/// and queue entries and the reply's fixed fields.
const ENTRY_OVERHEAD: usize = 256;

/// The keys of calls in flight and of outcomes kept for replay. No I/O.
pub struct Idempotency {
    window: Duration,
    max_bytes: usize,
    state: Mutex<State>,
    /// Calls answered from another call with their key (joined or replayed).
    replays: watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    slots: HashMap<Key, Slot>,
    /// Kept outcomes, oldest first: (expiry, key, generation). An entry whose
    /// generation no longer matches its slot is stale and skipped.
    kept: VecDeque<(Instant, Key, u64)>,
    bytes: usize,
    generations: u64,
}

enum Slot {
    Running {
        fingerprint: u64,
        id: CallId,
        done: watch::Receiver<Option<Outcome>>,
    },
    Ended {
        fingerprint: u64,
        outcome: Outcome,
        bytes: usize,
        generation: u64,
    },
}

/// What a keyed call does, decided by [`Idempotency::claim`].
pub enum Claim {
    /// No call holds the key: this one runs it and ends the ticket.
    Lead(Ticket),
    /// A call with the key is in flight: wait for its outcome.
    Join {
        /// The running call's id, which the joiner reports too.
        id: CallId,
        /// Receives the outcome.
        done: watch::Receiver<Option<Outcome>>,
    },
    /// A call with the key ended within the window: its outcome.
    Replay(Outcome),
}

/// The right and duty to run a keyed call. Ending it publishes the outcome
/// to joiners and keeps it for replays; dropping it unended frees the key.
pub struct Ticket {
    table: Arc<Idempotency>,
    key: Key,
    fingerprint: u64,
    id: CallId,
    done: Option<watch::Sender<Option<Outcome>>>,
}

impl Idempotency {
    /// Keeps ended outcomes `window` long, at most about `max_bytes` of them.
    pub fn new(window: Duration, max_bytes: usize) -> Self {
        Self {
            window,
            max_bytes,
            state: Mutex::new(State::default()),
            replays: watch::channel(0).0,
        }
    }

    /// Claims `req.idempotency_key` on `req.target` for the call `id`.
    /// Fails when the key is held by a different request.
    pub fn claim(self: &Arc<Self>, req: &InvokeRequest, id: CallId) -> Result<Claim, Error> {
        let fingerprint = fingerprint(req);
        let key = (req.target.clone(), req.idempotency_key.clone());
        let mut st = self.state.lock();
        st.expire(Instant::now(), self.max_bytes);
        let held = match st.slots.get(&key) {
            None => None,
            Some(Slot::Running {
                fingerprint: f,
                id,
                done,
            }) => Some((
                *f,
                Claim::Join {
                    id: *id,
                    done: done.clone(),
                },
            )),
            Some(Slot::Ended {
                fingerprint: f,
                outcome,
                ..
            }) => Some((*f, Claim::Replay(outcome.clone()))),
        };
        if let Some((held_for, claim)) = held {
            if held_for != fingerprint {
                return Err(Error::invalid(format!(
                    "idempotency_key is held by a different request to {} \
                     (its method, payload, content type or contract differ)",
                    req.target
                )));
            }
            self.replays.send_modify(|n| *n += 1);
            return Ok(claim);
        }
        let (tx, rx) = watch::channel(None);
        st.slots.insert(
            key.clone(),
            Slot::Running {
                fingerprint,
                id,
                done: rx,
            },
        );
        Ok(Claim::Lead(Ticket {
            table: Arc::clone(self),
            key,
            fingerprint,
            id,
            done: Some(tx),
        }))
    }

    /// Calls answered from another call with the same key.
    pub fn replays(&self) -> u64 {
        *self.replays.borrow()
    }

    /// Follows [`Idempotency::replays`].
    pub fn follow_replays(&self) -> watch::Receiver<u64> {
        self.replays.subscribe()
    }

    /// Keys held now, running or kept (for tests and introspection).
    pub fn len(&self) -> usize {
        self.state.lock().slots.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn settle(&self, ticket: &Ticket, outcome: &Outcome) {
        let mut st = self.state.lock();
        let ours =
            matches!(st.slots.get(&ticket.key), Some(Slot::Running { id, .. }) if *id == ticket.id);
        if !ours {
            return;
        }
        if self.window.is_zero() || !worth_keeping(outcome) {
            st.slots.remove(&ticket.key);
            return;
        }
        let bytes = size_of_kept(&ticket.key, outcome);
        st.generations += 1;
        let generation = st.generations;
        st.slots.insert(
            ticket.key.clone(),
            Slot::Ended {
                fingerprint: ticket.fingerprint,
                outcome: Arc::clone(outcome),
                bytes,
                generation,
            },
        );
        st.bytes += bytes;
        st.kept
            .push_back((Instant::now() + self.window, ticket.key.clone(), generation));
        st.expire(Instant::now(), self.max_bytes);
    }

    fn release(&self, ticket: &Ticket) {
        let mut st = self.state.lock();
        if matches!(st.slots.get(&ticket.key), Some(Slot::Running { id, .. }) if *id == ticket.id) {
            st.slots.remove(&ticket.key);
        }
    }
}

impl State {
    /// Drops kept outcomes past their expiry, then the oldest while over budget.
    fn expire(&mut self, now: Instant, max_bytes: usize) {
        while let Some((at, _, _)) = self.kept.front() {
            if *at > now && self.bytes <= max_bytes {
                break;
            }
            let Some((_, key, generation)) = self.kept.pop_front() else {
                break;
            };
            if let Some(Slot::Ended {
                generation: g,
                bytes,
                ..
            }) = self.slots.get(&key)
            {
                if *g == generation {
                    self.bytes -= *bytes;
                    self.slots.remove(&key);
                }
            }
        }
    }
}

impl Ticket {
    /// A receiver of the outcome, for the caller that claimed the key.
    pub fn subscribe(&self) -> watch::Receiver<Option<Outcome>> {
        self.done
            .as_ref()
            .map(|tx| tx.subscribe())
            .expect("a ticket is ended only once, by value")
    }

    /// Records the call's outcome and hands it to every waiting caller.
    pub fn end(mut self, outcome: Result<Answer, Failed>) {
        let outcome = Arc::new(outcome);
        // The table first: a joiner that retries at once finds the outcome kept.
        self.table.settle(&self, &outcome);
        if let Some(tx) = self.done.take() {
            tx.send_replace(Some(outcome));
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.done.is_some() {
            self.table.release(self);
        }
    }
}

/// Whether the device may have run the call: then a retry must not run it again.
fn worth_keeping(outcome: &Result<Answer, Failed>) -> bool {
    match outcome {
        Ok(_) => true,
        Err(f) => matches!(
            f.error,
            Error::DeviceTimeout { .. } | Error::DeviceDisconnected(_)
        ),
    }
}

fn size_of_kept(key: &Key, outcome: &Result<Answer, Failed>) -> usize {
    let reply = match outcome {
        Ok(a) => a.reply.payload.len() + a.reply.content_type.as_ref().map_or(0, String::len),
        Err(f) => f.error.to_string().len(),
    };
    ENTRY_OVERHEAD + 2 * (key.0.len() + key.1.len()) + reply
}

/// What must match for a retry to be the same request.
fn fingerprint(req: &InvokeRequest) -> u64 {
    let mut h = DefaultHasher::new();
    req.method.hash(&mut h);
    req.payload.hash(&mut h);
    req.content_type.hash(&mut h);
    req.contract.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests;
