//! The presence registry: what the gateway knows of each device, fed by the
//! retained presence documents on `{root}/devices/{id}/presence`. Plain
//! state without I/O; the core holds it behind a lock.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

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
}

/// The effect of one presence message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The device is online (new session, or came back).
    Online,
    /// The device went offline: calls in flight to it have lost it.
    Offline,
    /// Stale (a Will from an older session) or identical: nothing changed.
    Ignored,
    /// The retained presence was cleared: the device is forgotten.
    Removed,
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
}

/// Devices by id, sorted so listing pages are stable.
#[derive(Default)]
pub struct Registry {
    devices: BTreeMap<String, DeviceState>,
    method_lists: Vec<Arc<[String]>>,
}

impl Registry {
    /// Applies a presence message; `None` is an empty (cleared) retained message.
    pub fn apply(&mut self, device: &str, presence: Option<Presence>, now: SystemTime) -> Change {
        let Some(p) = presence else {
            return match self.devices.remove(device) {
                Some(_) => Change::Removed,
                None => Change::Ignored,
            };
        };
        let current = self.devices.get(device);
        if !p.online {
            return match current {
                // A Will or goodbye from another session than the one we
                // know: that connection is long gone, the device is not.
                Some(cur) if cur.session != p.session => Change::Ignored,
                Some(cur) if !cur.online => Change::Ignored,
                Some(_) => {
                    let cur = self.devices.get_mut(device).expect("present");
                    cur.online = false;
                    cur.since = now;
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
                        },
                    );
                    Change::Offline
                }
            };
        }
        let mut methods = p.methods;
        methods.sort_unstable();
        methods.dedup();
        if let Some(cur) = current {
            if cur.online && cur.session == p.session && *cur.methods == methods[..] {
                return Change::Ignored;
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
            },
        );
        Change::Online
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
    /// `after`, at most `limit`, in id order.
    pub fn list<'a>(
        &'a self,
        pattern: &'a str,
        after: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a str, &'a DeviceState)> + 'a {
        use std::ops::Bound;
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.devices
            .range::<str, _>((lower, Bound::Unbounded))
            .filter(move |(id, _)| thingcall_proto::wire::glob_match(pattern, id))
            .map(|(id, s)| (id.as_str(), s))
    }

    /// Devices currently online.
    pub fn online_count(&self) -> usize {
        self.devices.values().filter(|d| d.online).count()
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
        assert_eq!(r.apply("d", online("s1", &["echo"]), now), Change::Online);
        assert_eq!(r.reachability("d", "echo"), Reachability::Online);
        assert_eq!(
            r.reachability("d", "nope"),
            Reachability::MethodNotSupported
        );
        assert_eq!(r.apply("d", online("s1", &["echo"]), now), Change::Ignored);
        assert_eq!(r.apply("d", offline("s1"), now), Change::Offline);
        assert_eq!(r.reachability("d", "echo"), Reachability::Offline);
        assert_eq!(r.apply("d", offline("s1"), now), Change::Ignored);
        assert_eq!(r.online_count(), 0);
    }

    #[test]
    fn stale_will_from_older_session_is_ignored() {
        let mut r = Registry::default();
        let now = SystemTime::now();
        r.apply("d", online("s1", &[]), now);
        // Device reconnected before the broker fired the old session's Will.
        assert_eq!(r.apply("d", online("s2", &[]), now), Change::Online);
        assert_eq!(r.apply("d", offline("s1"), now), Change::Ignored);
        assert_eq!(r.reachability("d", "anything"), Reachability::Online);
        assert_eq!(r.get("d").unwrap().session, "s2");
    }

    #[test]
    fn unannounced_methods_allow_any() {
        let mut r = Registry::default();
        r.apply("d", online("s1", &[]), SystemTime::now());
        assert_eq!(r.reachability("d", "whatever"), Reachability::Online);
    }

    #[test]
    fn cleared_retained_forgets_device() {
        let mut r = Registry::default();
        r.apply("d", online("s1", &[]), SystemTime::now());
        assert_eq!(r.apply("d", None, SystemTime::now()), Change::Removed);
        assert_eq!(r.apply("d", None, SystemTime::now()), Change::Ignored);
        assert!(r.is_empty());
    }

    #[test]
    fn list_filters_pages_and_shares_method_lists() {
        let mut r = Registry::default();
        let now = SystemTime::now();
        for id in ["pump-2", "pump-1", "valve-1", "pump-3"] {
            r.apply(id, online("s", &["b", "a"]), now);
        }
        let ids: Vec<_> = r.list("pump-*", None).map(|(id, _)| id).collect();
        assert_eq!(ids, ["pump-1", "pump-2", "pump-3"]);
        let ids: Vec<_> = r.list("pump-*", Some("pump-1")).map(|(id, _)| id).collect();
        assert_eq!(ids, ["pump-2", "pump-3"]);
        let a = &r.get("pump-1").unwrap().methods;
        let b = &r.get("valve-1").unwrap().methods;
        assert!(Arc::ptr_eq(a, b));
        assert_eq!(&a[..], ["a".to_string(), "b".to_string()]);
    }
}
