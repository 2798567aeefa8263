//! The presence registry: what the gateway knows of each device, fed by the
//! retained presence documents on `{root}/devices/{id}/presence`. Plain
//! state without I/O; the core holds it behind a lock.
//!
//! Presence is trusted only within the MQTT session it arrived in. Each new
//! session starts an epoch ([`Registry::begin_session`]): what was known
//! before turns *unconfirmed* until a presence message for the device
//! arrives in the new session (the retained one re-delivered on subscribe,
//! or the device announcing again). [`Registry::mark_synced`] records that
//! the retained presence has all arrived; [`Registry::expire_unconfirmed`]
//! ends the grace period, turning devices never confirmed offline.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use thingcall_proto::wire::Presence;

/// One device as last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceState {
    /// Connected, as far as its presence says.
    pub online: bool,
    /// Session id of the connection the state belongs to.
    pub session: String,
    /// Announced methods, sorted; empty = not announced. Shared between
    /// devices that announce the same list, so thousands of identical
    /// devices cost one list.
    pub methods: Arc<[String]>,
    /// When the gateway saw the last change.
    pub since: SystemTime,
    /// The registry epoch (MQTT session) of the last presence message about
    /// the device: older than the registry's means unconfirmed.
    pub confirmed: u32,
}

/// The effect of one presence message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The device is online (came back, or first seen).
    Online,
    /// The device is online on a new connection while the gateway knew it
    /// online on another: calls in flight to the old one have lost it.
    NewSession,
    /// The device went offline: calls in flight to it have lost it.
    Offline,
    /// Stale (a Will from an older session) or identical: nothing changed.
    Ignored,
    /// The retained presence was cleared: the device is forgotten.
    Removed,
    /// Known from an earlier session and unchanged, now confirmed in this one.
    Confirmed,
}

/// What the registry says about calling `method` on a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reachability {
    /// Never announced presence: call it and wait (seed-style devices).
    Unknown,
    /// Online and (if it announced methods) serving this method.
    Online,
    /// Known offline.
    Offline,
    /// Online, but its announced methods do not include this one.
    MethodNotSupported,
    /// Online as of an earlier MQTT session, not yet confirmed in this one:
    /// calling it now could burn the call's deadline on a stale "online".
    Unconfirmed,
}

/// Devices by id, sorted so listing pages are stable.
#[derive(Default)]
pub struct Registry {
    devices: BTreeMap<String, DeviceState>,
    method_lists: Vec<Arc<[String]>>,
    /// Bumped at each new MQTT session (wraps; only equality matters).
    epoch: u32,
    /// The current session's retained presence has all arrived.
    synced: bool,
    /// Some session's retained presence has all arrived: the registry knows
    /// every device that ever announced itself.
    ever_synced: bool,
    /// When the current session began.
    session_start: Option<Instant>,
    /// The current session's grace period is over: devices it has not
    /// confirmed are offline once its retained presence has arrived.
    grace_over: bool,
    /// Devices online, kept as presence changes so `/metrics` and health
    /// never walk a million entries under the lock.
    online: usize,
    /// Of those, the ones confirmed in the current session.
    online_confirmed: usize,
    /// How the current session's sync is going.
    sync: SyncProgress,
}

/// How far the current session's presence sync has come, for operators
/// telling a gateway still syncing from one that is done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncProgress {
    /// Retained presence messages received in this session.
    pub retained: u64,
    /// When the last of them arrived.
    pub last_retained: Option<SystemTime>,
    /// From the session's start to the end of its sync; `None` while it runs.
    pub took: Option<Duration>,
}

impl Registry {
    /// Applies a presence message; `None` is an empty (cleared) retained
    /// message. `retained` says the broker sent it from its store (the
    /// sync on subscribe), not as it was published.
    pub fn apply(
        &mut self,
        device: &str,
        presence: Option<Presence>,
        retained: bool,
        now: SystemTime,
    ) -> Change {
        if retained {
            self.sync.retained += 1;
            self.sync.last_retained = Some(now);
        }
        let before = self.class_of(device);
        let change = self.apply_inner(device, presence, now);
        let after = self.class_of(device);
        self.recount(before, after);
        change
    }

    /// (online, confirmed in this session) of a known device.
    fn class_of(&self, device: &str) -> Option<(bool, bool)> {
        let epoch = self.epoch;
        self.devices
            .get(device)
            .map(|d| (d.online, d.confirmed == epoch))
    }

    /// Moves one device from class `before` to `after` in the counts.
    fn recount(&mut self, before: Option<(bool, bool)>, after: Option<(bool, bool)>) {
        if before == after {
            return;
        }
        if let Some((online, confirmed)) = before {
            self.online -= usize::from(online);
            self.online_confirmed -= usize::from(online && confirmed);
        }
        if let Some((online, confirmed)) = after {
            self.online += usize::from(online);
            self.online_confirmed += usize::from(online && confirmed);
        }
    }

    fn apply_inner(&mut self, device: &str, presence: Option<Presence>, now: SystemTime) -> Change {
        let epoch = self.epoch;
        let Some(p) = presence else {
            return match self.devices.remove(device) {
                Some(_) => Change::Removed,
                None => Change::Ignored,
            };
        };
        let current = self.devices.get_mut(device);
        if !p.online {
            return match current {
                // A Will or goodbye from another session than the one we
                // know: that connection is long gone, the device is not.
                Some(cur) if cur.session != p.session => cur.confirm(epoch),
                Some(cur) if !cur.online => cur.confirm(epoch),
                Some(cur) => {
                    cur.online = false;
                    cur.since = now;
                    cur.confirmed = epoch;
                    Change::Offline
                }
                None => {
                    let methods = self.intern(Vec::new());
                    self.devices.insert(
                        device.to_owned(),
                        DeviceState {
                            online: false,
                            session: p.session,
                            methods,
                            since: now,
                            confirmed: epoch,
                        },
                    );
                    Change::Offline
                }
            };
        }
        let mut methods = p.methods;
        methods.sort_unstable();
        methods.dedup();
        let mut change = Change::Online;
        if let Some(cur) = current {
            if cur.online && cur.session == p.session && *cur.methods == methods[..] {
                return cur.confirm(epoch);
            }
            if cur.online && cur.session != p.session {
                change = Change::NewSession;
            }
        }
        let methods = self.intern(methods);
        self.devices.insert(
            device.to_owned(),
            DeviceState {
                online: true,
                session: p.session,
                methods,
                since: now,
                confirmed: epoch,
            },
        );
        change
    }

    /// A new MQTT session: presence from before it is unconfirmed, and the
    /// session's retained presence has yet to arrive.
    /// Gives the session's epoch, for [`Registry::end_grace`].
    pub fn begin_session(&mut self, now: Instant) -> u32 {
        self.epoch = self.epoch.wrapping_add(1);
        self.synced = false;
        self.grace_over = false;
        self.session_start = Some(now);
        self.online_confirmed = 0;
        self.sync = SyncProgress::default();
        self.epoch
    }

    /// When the current session began; `None` before the first.
    pub fn session_start(&self) -> Option<Instant> {
        self.session_start
    }

    /// The current session's retained presence has all arrived. When its
    /// grace period is already over, devices it has not confirmed turn
    /// offline now; gives their ids.
    pub fn mark_synced(&mut self, now: SystemTime) -> Vec<String> {
        self.synced = true;
        self.ever_synced = true;
        self.sync.took = self.session_start.map(|t| t.elapsed());
        if self.grace_over {
            self.expire_unconfirmed(now)
        } else {
            Vec::new()
        }
    }

    /// The grace period of session `epoch` is over: once its retained
    /// presence has arrived, devices it has not confirmed turn offline.
    /// Gives the ids that turned offline now (none for an older session).
    pub fn end_grace(&mut self, epoch: u32, now: SystemTime) -> Vec<String> {
        if epoch != self.epoch {
            return Vec::new();
        }
        self.grace_over = true;
        if self.synced {
            self.expire_unconfirmed(now)
        } else {
            Vec::new()
        }
    }

    /// Whether the current session's retained presence has all arrived.
    pub fn synced(&self) -> bool {
        self.synced
    }

    /// Whether some session's retained presence has all arrived, so a
    /// device the registry does not know never announced itself.
    pub fn ever_synced(&self) -> bool {
        self.ever_synced
    }

    /// Devices online as of an earlier session and not confirmed since
    /// turn offline. Gives their ids, for watchers.
    fn expire_unconfirmed(&mut self, now: SystemTime) -> Vec<String> {
        let epoch = self.epoch;
        let mut expired = Vec::new();
        for (id, d) in self.devices.iter_mut() {
            if d.online && d.confirmed != epoch {
                d.online = false;
                d.since = now;
                d.confirmed = epoch;
                expired.push(id.clone());
            }
        }
        self.online -= expired.len();
        expired
    }

    /// Shares identical method lists between devices.
    fn intern(&mut self, methods: Vec<String>) -> Arc<[String]> {
        if let Some(found) = self.method_lists.iter().find(|m| ***m == methods[..]) {
            return found.clone();
        }
        let list: Arc<[String]> = methods.into();
        // Bounded: beyond a few hundred distinct lists, stop sharing.
        if self.method_lists.len() < 256 {
            self.method_lists.push(list.clone());
        }
        list
    }

    /// Whether a call of `method` on `device` should go out.
    pub fn reachability(&self, device: &str, method: &str) -> Reachability {
        match self.devices.get(device) {
            None => Reachability::Unknown,
            Some(d) if !d.online => Reachability::Offline,
            Some(d) if d.confirmed != self.epoch => Reachability::Unconfirmed,
            Some(d)
                if !d.methods.is_empty()
                    && d.methods
                        .binary_search_by(|m| m.as_str().cmp(method))
                        .is_err() =>
            {
                Reachability::MethodNotSupported
            }
            Some(_) => Reachability::Online,
        }
    }

    /// One device.
    pub fn get(&self, device: &str) -> Option<&DeviceState> {
        self.devices.get(device)
    }

    /// Devices matching `pattern` (see `wire::glob_match`) with ids after
    /// `after`, in id order (callers take what they need).
    pub fn list<'a>(
        &'a self,
        pattern: &'a str,
        after: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a str, &'a DeviceState)> + 'a {
        use std::ops::Bound;
        use thingcall_proto::wire::{glob_match, glob_prefix};
        // Every match starts with the pattern's literal prefix: seek there
        // and stop past it, so `pump-7*` over a million ids reads only
        // the pumps whose ids start with `pump-7`.
        let prefix = glob_prefix(pattern);
        let lower = match after {
            Some(a) if a >= prefix => Bound::Excluded(a),
            _ => Bound::Included(prefix),
        };
        self.devices
            .range::<str, _>((lower, Bound::Unbounded))
            .take_while(move |(id, _)| id.starts_with(prefix))
            .filter(move |(id, _)| glob_match(pattern, id))
            .map(|(id, s)| (id.as_str(), s))
    }

    /// Devices currently online.
    pub fn online_count(&self) -> usize {
        self.online
    }

    /// Devices online as of an earlier session, not yet confirmed in this one.
    pub fn unconfirmed_count(&self) -> usize {
        self.online - self.online_confirmed
    }

    /// How the current session's presence sync is going.
    pub fn sync_progress(&self) -> SyncProgress {
        self.sync
    }

    /// Devices known.
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// Whether no device is known.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }
}

impl DeviceState {
    /// Marks an unchanged device confirmed in `epoch`.
    fn confirm(&mut self, epoch: u32) -> Change {
        if self.confirmed == epoch {
            return Change::Ignored;
        }
        self.confirmed = epoch;
        Change::Confirmed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn online(session: &str, methods: &[&str]) -> Option<Presence> {
        Some(Presence {
            online: true,
            session: session.into(),
            methods: methods.iter().map(|m| m.to_string()).collect(),
        })
    }

    fn offline(session: &str) -> Option<Presence> {
        Some(Presence {
            online: false,
            session: session.into(),
            methods: vec![],
        })
    }

    #[test]
    fn online_offline_cycle() {
        let mut r = Registry::default();
        let now = SystemTime::now();
        assert_eq!(r.reachability("d", "echo"), Reachability::Unknown);
        assert_eq!(
            r.apply("d", online("s1", &["echo"]), false, now),
            Change::Online
        );
        assert_eq!(r.reachability("d", "echo"), Reachability::Online);
        assert_eq!(
            r.reachability("d", "nope"),
            Reachability::MethodNotSupported
        );
        assert_eq!(
            r.apply("d", online("s1", &["echo"]), false, now),
            Change::Ignored
        );
        assert_eq!(r.apply("d", offline("s1"), false, now), Change::Offline);
        assert_eq!(r.reachability("d", "echo"), Reachability::Offline);
        assert_eq!(r.apply("d", offline("s1"), false, now), Change::Ignored);
        assert_eq!(r.online_count(), 0);
    }

    #[test]
    fn stale_will_from_older_session_is_ignored() {
        let mut r = Registry::default();
        let now = SystemTime::now();
        r.apply("d", online("s1", &[]), false, now);
        // Device reconnected before the broker fired the old session's Will.
        assert_eq!(
            r.apply("d", online("s2", &[]), false, now),
            Change::NewSession
        );
        assert_eq!(r.apply("d", offline("s1"), false, now), Change::Ignored);
        assert_eq!(r.reachability("d", "anything"), Reachability::Online);
        assert_eq!(r.get("d").unwrap().session, "s2");
    }

    #[test]
    fn unannounced_methods_allow_any() {
        let mut r = Registry::default();
        r.apply("d", online("s1", &[]), false, SystemTime::now());
        assert_eq!(r.reachability("d", "whatever"), Reachability::Online);
    }

    #[test]
    fn cleared_retained_forgets_device() {
        let mut r = Registry::default();
        r.apply("d", online("s1", &[]), false, SystemTime::now());
        assert_eq!(
            r.apply("d", None, false, SystemTime::now()),
            Change::Removed
        );
        assert_eq!(
            r.apply("d", None, false, SystemTime::now()),
            Change::Ignored
        );
        assert!(r.is_empty());
    }

    #[test]
    fn list_filters_pages_and_shares_method_lists() {
        let mut r = Registry::default();
        let now = SystemTime::now();
        for id in ["pump-2", "pump-1", "valve-1", "pump-3"] {
            r.apply(id, online("s", &["b", "a"]), false, now);
        }
        let ids: Vec<_> = r.list("pump-*", None).map(|(id, _)| id).collect();
        assert_eq!(ids, ["pump-1", "pump-2", "pump-3"]);
        let ids: Vec<_> = r.list("pump-*", Some("pump-1")).map(|(id, _)| id).collect();
        assert_eq!(ids, ["pump-2", "pump-3"]);
        // A page token before the literal prefix, or after it.
        let ids: Vec<_> = r.list("pump-*", Some("a")).map(|(id, _)| id).collect();
        assert_eq!(ids, ["pump-1", "pump-2", "pump-3"]);
        assert_eq!(r.list("pump-*", Some("pump-3")).count(), 0);
        assert_eq!(r.list("pump-*", Some("valve")).count(), 0);
        let ids: Vec<_> = r.list("*-1", None).map(|(id, _)| id).collect();
        assert_eq!(ids, ["pump-1", "valve-1"]);
        let ids: Vec<_> = r.list("pump-2", None).map(|(id, _)| id).collect();
        assert_eq!(ids, ["pump-2"]);
        let a = &r.get("pump-1").unwrap().methods;
        let b = &r.get("valve-1").unwrap().methods;
        assert!(Arc::ptr_eq(a, b));
        assert_eq!(&a[..], ["a".to_string(), "b".to_string()]);
    }

    #[test]
    fn a_new_session_makes_earlier_presence_unconfirmed_until_heard_again() {
        let mut r = Registry::default();
        let now = SystemTime::now();
        let t = Instant::now();
        r.begin_session(t);
        r.mark_synced(now);
        r.apply("a", online("s1", &["echo"]), false, now);
        r.apply("b", online("s1", &["echo"]), false, now);
        r.apply("c", offline("s1"), false, now);
        let epoch = r.begin_session(t);
        assert!(!r.synced() && r.ever_synced());
        assert_eq!(r.reachability("a", "echo"), Reachability::Unconfirmed);
        assert_eq!(r.reachability("c", "echo"), Reachability::Offline);
        assert_eq!(r.unconfirmed_count(), 2);
        // The retained message again: confirmed, nothing else changed.
        assert_eq!(
            r.apply("a", online("s1", &["echo"]), false, now),
            Change::Confirmed
        );
        assert_eq!(
            r.apply("a", online("s1", &["echo"]), false, now),
            Change::Ignored
        );
        assert_eq!(r.reachability("a", "echo"), Reachability::Online);
        // The grace ends before the sync: nothing expires yet...
        assert!(r.end_grace(epoch, now).is_empty());
        assert_eq!(r.reachability("b", "echo"), Reachability::Unconfirmed);
        // ...and when the retained presence has all arrived, "b" (whose
        // retained presence the broker lost) is offline.
        assert_eq!(r.mark_synced(now), ["b".to_string()]);
        assert_eq!(r.reachability("b", "echo"), Reachability::Offline);
        assert_eq!(r.unconfirmed_count(), 0);
        // It announces again: online, confirmed.
        assert_eq!(
            r.apply("b", online("s2", &["echo"]), false, now),
            Change::Online
        );
        assert_eq!(r.reachability("b", "echo"), Reachability::Online);
    }

    /// The counts kept as presence changes match a walk over every device,
    /// whatever the order of messages, sessions, syncs and grace periods.
    #[test]
    fn counts_follow_every_change() {
        let mut r = Registry::default();
        let now = SystemTime::now();
        let walk = |r: &Registry| {
            let e = r.epoch;
            let online = r.devices.values().filter(|d| d.online);
            let unconfirmed = online.clone().filter(|d| d.confirmed != e).count();
            (online.count(), unconfirmed)
        };
        let mut x: u64 = 7;
        for step in 0..20_000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let device = format!("d{}", (x >> 33) % 40);
            let session = format!("s{}", (x >> 40) % 3);
            match (x >> 50) % 9 {
                0..=2 => {
                    r.apply(&device, online(&session, &["a"]), step % 2 == 0, now);
                }
                3 | 4 => {
                    r.apply(&device, offline(&session), step % 3 == 0, now);
                }
                5 => {
                    r.apply(&device, None, true, now);
                }
                6 => {
                    r.begin_session(Instant::now());
                }
                7 => {
                    r.end_grace(r.epoch, now);
                }
                _ => {
                    r.mark_synced(now);
                }
            }
            assert_eq!(
                (r.online_count(), r.unconfirmed_count()),
                walk(&r),
                "step {step}"
            );
        }
    }

    #[test]
    fn the_sync_counts_retained_presence_per_session() {
        let mut r = Registry::default();
        let now = SystemTime::now();
        r.begin_session(Instant::now());
        r.apply("a", online("s1", &[]), true, now);
        r.apply("b", online("s1", &[]), true, now);
        r.apply("c", online("s1", &[]), false, now);
        let p = r.sync_progress();
        assert_eq!((p.retained, p.last_retained, p.took), (2, Some(now), None));
        r.mark_synced(now);
        assert!(r.sync_progress().took.is_some());
        r.begin_session(Instant::now());
        assert_eq!(r.sync_progress(), SyncProgress::default());
    }

    #[test]
    fn the_grace_of_an_older_session_expires_nothing() {
        let mut r = Registry::default();
        let now = SystemTime::now();
        let first = r.begin_session(Instant::now());
        r.mark_synced(now);
        r.apply("a", online("s1", &[]), false, now);
        r.begin_session(Instant::now());
        r.mark_synced(now);
        assert!(r.end_grace(first, now).is_empty());
        assert_eq!(r.reachability("a", "x"), Reachability::Unconfirmed);
    }
}
