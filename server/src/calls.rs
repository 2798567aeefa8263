//! The correlation table: every call in flight, keyed by its 16-byte
//! correlation id. Plain state without I/O; the gateway core drives it.
//!
//! Each entry holds the sender half of a oneshot. Whoever removes the entry
//! completes the call, so a call completes exactly once whatever races
//! (reply vs. timeout vs. device offline vs. broker lost vs. cancel).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;
use tokio::sync::{oneshot, Notify};

use crate::error::Error;
pub use crate::outcome::{CallId, Reply};

/// What ends a call.
pub type Completion = Result<Reply, Error>;

struct Pending {
    /// Shared with the per-device count's key: one allocation per device
    /// in flight, not one per call.
    device: Arc<str>,
    accepted_at: Option<SystemTime>,
    tx: oneshot::Sender<Completion>,
}

/// What happened to an incoming reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Handed to its caller.
    Delivered,
    /// The call had ended without its reply (deadline, caller gone).
    Late,
    /// The call had already been answered.
    Duplicate,
    /// No call with that id in memory: made up, or ended too long ago.
    Unknown,
    /// A call with that id exists but targets another device: dropped and
    /// the call left waiting for its own device.
    Foreign,
}

/// How many ended calls the table remembers, to tell a late or duplicate
/// reply from a made-up one (about 130 KB at most).
const REMEMBERED: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Answered,
    Expired,
}

#[derive(Default)]
struct Inner {
    connected: bool,
    /// Draining: no new calls; [`CallTable::wait_empty`] waits for the rest.
    closed: bool,
    /// Callers of [`CallTable::wait_empty`] now: only then does emptying
    /// the table wake anyone (it empties after every call at low load).
    empty_waiters: usize,
    calls: HashMap<CallId, Pending>,
    /// Calls in flight per device (only devices with one or more).
    per_device: HashMap<Arc<str>, usize>,
    ended: HashMap<CallId, Ended>,
    ended_order: VecDeque<CallId>,
}

impl Inner {
    /// Takes call `id` out of the table, and out of its device's count.
    fn take(&mut self, id: &CallId) -> Option<Pending> {
        let p = self.calls.remove(id)?;
        if let Some(n) = self.per_device.get_mut(&*p.device) {
            *n -= 1;
            if *n == 0 {
                self.per_device.remove(&*p.device);
            }
        }
        Some(p)
    }

    fn remember(&mut self, id: CallId, how: Ended) {
        if self.ended_order.len() == REMEMBERED {
            if let Some(old) = self.ended_order.pop_front() {
                self.ended.remove(&old);
            }
        }
        self.ended.insert(id, how);
        self.ended_order.push_back(id);
    }

    /// Whether the last call of a closed table just ended: then the
    /// waiters of [`CallTable::wait_empty`] must be woken.
    fn drained(&self) -> bool {
        (self.closed || self.empty_waiters > 0) && self.calls.is_empty()
    }

    /// Why a reply for `id` found no call.
    fn missing(&self, id: CallId) -> Delivery {
        match self.ended.get(&id) {
            Some(Ended::Answered) => Delivery::Duplicate,
            Some(Ended::Expired) => Delivery::Late,
            None => Delivery::Unknown,
        }
    }
}

/// The table. One `parking_lot` mutex: every critical section is a hash
/// map operation, far shorter than a context switch, so sharding would buy
/// nothing on the cores this runs on.
pub struct CallTable {
    inner: Mutex<Inner>,
    limit: usize,
    /// Calls in flight one device may have.
    per_device_limit: usize,
    /// Woken when a closed table becomes empty.
    emptied: Notify,
}

impl CallTable {
    /// A table admitting at most `limit` calls in flight, and at most
    /// `per_device_limit` of them to one device.
    pub fn new(limit: usize, per_device_limit: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            limit,
            per_device_limit,
            emptied: Notify::new(),
        }
    }

    /// Wakes [`CallTable::wait_empty`] when `drained` (see [`Inner::drained`]).
    fn wake_if(&self, drained: bool) {
        if drained {
            self.emptied.notify_waiters();
        }
    }

    /// Registers a call. Fails with `ShuttingDown` once closed,
    /// `BrokerUnavailable` while disconnected (both checked under the same
    /// lock that drains the table, so no call slips in between) and
    /// `Overloaded` at the limit (the gateway's, or the device's).
    pub fn insert(&self, id: CallId, device: &str) -> Result<oneshot::Receiver<Completion>, Error> {
        let mut inner = self.inner.lock();
        if inner.closed {
            return Err(Error::ShuttingDown);
        }
        if !inner.connected {
            return Err(Error::BrokerUnavailable);
        }
        if inner.calls.len() >= self.limit {
            return Err(Error::Overloaded(self.limit));
        }
        let key = match inner.per_device.get_key_value(device) {
            Some((_, &n)) if n >= self.per_device_limit => {
                return Err(Error::DeviceOverloaded {
                    device: device.into(),
                    limit: self.per_device_limit,
                })
            }
            Some((key, _)) => key.clone(),
            None => Arc::from(device),
        };
        *inner.per_device.entry(key.clone()).or_insert(0) += 1;
        let (tx, rx) = oneshot::channel();
        inner.calls.insert(
            id,
            Pending {
                device: key,
                accepted_at: None,
                tx,
            },
        );
        Ok(rx)
    }

    /// Completes call `id` with `reply` if it targets `device`.
    pub fn complete(&self, id: CallId, device: &str, reply: Reply) -> Delivery {
        let (pending, drained) = {
            let mut inner = self.inner.lock();
            match inner.calls.get(&id) {
                None => return inner.missing(id),
                Some(p) if &*p.device != device => return Delivery::Foreign,
                Some(_) => {
                    inner.remember(id, Ended::Answered);
                    let pending = inner.take(&id).expect("present");
                    (pending, inner.drained())
                }
            }
        };
        self.wake_if(drained);
        let reply = Reply {
            accepted_at: pending.accepted_at,
            ..reply
        };
        // A receiver dropped at this instant is a cancelled caller: nothing to do.
        let _ = pending.tx.send(Ok(reply));
        Delivery::Delivered
    }

    /// Records the interim `stage=accepted` reply; same matching as `complete`.
    pub fn mark_accepted(&self, id: CallId, device: &str) -> Delivery {
        let mut inner = self.inner.lock();
        match inner.calls.get_mut(&id) {
            None => inner.missing(id),
            Some(p) if &*p.device != device => Delivery::Foreign,
            Some(p) => {
                p.accepted_at.get_or_insert_with(SystemTime::now);
                Delivery::Delivered
            }
        }
    }

    /// Removes a call without completing it (deadline passed, caller gone).
    /// Returns whether it was still pending and, if so, whether the device
    /// had accepted it; `None` means another path completed it first.
    pub fn remove(&self, id: CallId) -> Option<bool> {
        let (removed, drained) = {
            let mut inner = self.inner.lock();
            let removed = inner.take(&id)?;
            inner.remember(id, Ended::Expired);
            (removed, inner.drained())
        };
        self.wake_if(drained);
        Some(removed.accepted_at.is_some())
    }

    /// Fails every call in flight to `device` with `err`; returns how many.
    pub fn fail_device(&self, device: &str, err: &Error) -> usize {
        let (failed, drained): (Vec<Pending>, bool) = {
            let mut inner = self.inner.lock();
            let ids: Vec<CallId> = inner
                .calls
                .iter()
                .filter(|(_, p)| &*p.device == device)
                .map(|(id, _)| *id)
                .collect();
            for id in &ids {
                inner.remember(*id, Ended::Expired);
            }
            let failed = ids.iter().filter_map(|id| inner.take(id)).collect();
            (failed, inner.drained())
        };
        self.wake_if(drained);
        let n = failed.len();
        for p in failed {
            let _ = p.tx.send(Err(err.clone()));
        }
        n
    }

    /// Marks the MQTT connection up or down. Going down fails every call in
    /// flight with `BrokerUnavailable`: their requests or replies may be lost.
    pub fn set_connected(&self, connected: bool) {
        let mut inner = self.inner.lock();
        inner.connected = connected;
        if !connected {
            self.fail_all_locked(inner, &Error::BrokerUnavailable);
        }
    }

    /// Refuses new calls from now on (`ShuttingDown`); calls in flight go on.
    pub fn close(&self) {
        let mut inner = self.inner.lock();
        inner.closed = true;
        let drained = inner.drained();
        drop(inner);
        self.wake_if(drained);
    }

    /// Waits until no call is in flight. A closed table admits no new
    /// ones, so it stays empty; an open one may fill again at once.
    pub async fn wait_empty(&self) {
        /// Counts this waiter for as long as it waits, however it ends.
        struct Waiting<'a>(&'a CallTable);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.inner.lock().empty_waiters -= 1;
            }
        }
        self.inner.lock().empty_waiters += 1;
        let _waiting = Waiting(self);
        loop {
            let emptied = self.emptied.notified();
            tokio::pin!(emptied);
            // Registered before the check, so an emptying in between is seen.
            emptied.as_mut().enable();
            if self.is_empty() {
                return;
            }
            emptied.await;
        }
    }

    /// Fails every call in flight with `err`; returns how many.
    pub fn fail_all(&self, err: &Error) -> usize {
        self.fail_all_locked(self.inner.lock(), err)
    }

    fn fail_all_locked(&self, mut inner: parking_lot::MutexGuard<'_, Inner>, err: &Error) -> usize {
        let ids: Vec<CallId> = inner.calls.keys().copied().collect();
        for id in &ids {
            inner.remember(*id, Ended::Expired);
        }
        let failed: Vec<Pending> = inner.calls.drain().map(|(_, p)| p).collect();
        inner.per_device.clear();
        let drained = inner.drained();
        drop(inner);
        self.wake_if(drained);
        let n = failed.len();
        for p in failed {
            let _ = p.tx.send(Err(err.clone()));
        }
        n
    }

    /// Whether the MQTT session is up.
    pub fn connected(&self) -> bool {
        self.inner.lock().connected
    }

    /// Calls in flight.
    pub fn len(&self) -> usize {
        self.inner.lock().calls.len()
    }

    /// Whether no call is in flight.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn reply(body: &'static str) -> Reply {
        Reply {
            status: 200,
            payload: Bytes::from_static(body.as_bytes()),
            content_type: None,
            exec_us: None,
            accepted_at: None,
        }
    }

    fn id(n: u128) -> CallId {
        CallId::from(n)
    }

    fn table() -> CallTable {
        let t = CallTable::new(3, 3);
        t.set_connected(true);
        t
    }

    #[test]
    fn reply_reaches_its_caller_once() {
        let t = table();
        let mut rx = t.insert(id(1), "d1").unwrap();
        assert_eq!(t.complete(id(1), "d1", reply("a")), Delivery::Delivered);
        assert_eq!(rx.try_recv().unwrap(), Ok(reply("a")));
        assert_eq!(t.complete(id(1), "d1", reply("b")), Delivery::Duplicate);
        assert_eq!(t.complete(id(99), "d1", reply("c")), Delivery::Unknown);
        assert!(t.is_empty());
    }

    #[test]
    fn foreign_reply_is_dropped_and_call_keeps_waiting() {
        let t = table();
        let mut rx = t.insert(id(7), "d1").unwrap();
        assert_eq!(t.complete(id(7), "d2", reply("spoof")), Delivery::Foreign);
        assert!(rx.try_recv().is_err(), "nothing delivered");
        assert_eq!(t.complete(id(7), "d1", reply("real")), Delivery::Delivered);
        assert_eq!(rx.try_recv().unwrap(), Ok(reply("real")));
    }

    #[test]
    fn timeout_removes_and_reports_acceptance() {
        let t = table();
        let _rx = t.insert(id(1), "d1").unwrap();
        let _rx2 = t.insert(id(2), "d1").unwrap();
        assert_eq!(t.mark_accepted(id(2), "d1"), Delivery::Delivered);
        assert_eq!(t.mark_accepted(id(2), "dx"), Delivery::Foreign);
        assert_eq!(t.remove(id(1)), Some(false));
        assert_eq!(t.remove(id(2)), Some(true));
        assert_eq!(t.remove(id(2)), None, "second removal finds nothing");
        assert_eq!(t.complete(id(1), "d1", reply("late")), Delivery::Late);
        assert_eq!(t.mark_accepted(id(1), "d1"), Delivery::Late);
    }

    #[test]
    fn ended_calls_are_remembered_only_so_long() {
        let t = CallTable::new(REMEMBERED + 1, REMEMBERED + 1);
        t.set_connected(true);
        for n in 0..=REMEMBERED as u128 {
            let _rx = t.insert(id(n), "d").unwrap();
            t.complete(id(n), "d", reply("x"));
        }
        assert_eq!(
            t.complete(id(0), "d", reply("x")),
            Delivery::Unknown,
            "forgotten"
        );
        assert_eq!(t.complete(id(1), "d", reply("x")), Delivery::Duplicate);
    }

    #[test]
    fn device_offline_fails_only_its_calls() {
        let t = table();
        let mut a = t.insert(id(1), "d1").unwrap();
        let mut b = t.insert(id(2), "d2").unwrap();
        let err = Error::DeviceDisconnected("d1".into());
        assert_eq!(t.fail_device("d1", &err), 1);
        assert_eq!(a.try_recv().unwrap(), Err(err));
        assert!(b.try_recv().is_err());
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn disconnect_fails_all_and_refuses_new_calls() {
        let t = table();
        let mut a = t.insert(id(1), "d1").unwrap();
        t.set_connected(false);
        assert_eq!(a.try_recv().unwrap(), Err(Error::BrokerUnavailable));
        assert_eq!(t.insert(id(2), "d1").unwrap_err(), Error::BrokerUnavailable);
        assert!(t.is_empty());
        t.set_connected(true);
        assert!(t.insert(id(2), "d1").is_ok());
    }

    #[tokio::test]
    async fn closed_table_refuses_new_calls_and_reports_when_empty() {
        let t = table();
        let _a = t.insert(id(1), "d1").unwrap();
        let mut b = t.insert(id(2), "d1").unwrap();
        t.close();
        assert_eq!(t.insert(id(3), "d1").unwrap_err(), Error::ShuttingDown);
        let waiter = t.wait_empty();
        tokio::pin!(waiter);
        assert!(
            futures::poll!(waiter.as_mut()).is_pending(),
            "two calls left"
        );
        assert_eq!(t.complete(id(1), "d1", reply("a")), Delivery::Delivered);
        assert!(futures::poll!(waiter.as_mut()).is_pending(), "one left");
        assert_eq!(t.fail_all(&Error::ShuttingDown), 1);
        assert_eq!(b.try_recv().unwrap(), Err(Error::ShuttingDown));
        assert!(futures::poll!(waiter.as_mut()).is_ready(), "empty now");
    }

    #[test]
    fn limit_gives_overloaded() {
        let t = table();
        let _r: Vec<_> = (0..3).map(|i| t.insert(id(i), "d").unwrap()).collect();
        assert_eq!(t.insert(id(9), "d").unwrap_err(), Error::Overloaded(3));
        t.remove(id(0));
        assert!(t.insert(id(9), "d").is_ok());
    }

    #[test]
    fn one_device_cannot_take_the_whole_limit() {
        let t = CallTable::new(10, 2);
        t.set_connected(true);
        let _a = t.insert(id(1), "hot").unwrap();
        let _b = t.insert(id(2), "hot").unwrap();
        let e = t.insert(id(3), "hot").unwrap_err();
        assert_eq!(e.reason(), thingcall_proto::Reason::Overloaded);
        assert!(e.to_string().contains("device hot"), "{e}");
        let _c = t.insert(id(4), "cool").expect("another device");
        // Every way a call ends frees its device's slot.
        t.remove(id(1));
        let _d = t.insert(id(5), "hot").expect("a slot freed by remove");
        t.complete(id(2), "hot", reply("ok"));
        let _e = t.insert(id(6), "hot").expect("a slot freed by a reply");
        t.fail_device("hot", &Error::DeviceOffline("hot".into()));
        let _f = t
            .insert(id(7), "hot")
            .expect("slots freed by the device going offline");
        t.set_connected(false);
        t.set_connected(true);
        let _g = t
            .insert(id(8), "hot")
            .expect("slots freed by a lost connection");
        assert_eq!(t.inner.lock().per_device.get("hot"), Some(&1));
    }
}
