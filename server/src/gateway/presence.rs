//! Whether a call may go out now, and presence across reconnects.
//!
//! Presence is trusted only within the MQTT session it arrived in (see
//! [`crate::presence`]). After a new session, a device known from before
//! is *unconfirmed* until a presence message about it arrives in this one:
//! its retained presence, re-delivered on subscribe, or the device
//! announcing again. A call to it waits for that, up to its
//! `connect_timeout` (and, while the session's retained presence is still
//! arriving, up to `--presence-grace` after the session began), then fails
//! with `DEVICE_OFFLINE`: it never burns its deadline on a stale "online".
//! When the grace period ends (and the retained presence has arrived),
//! devices still unconfirmed turn offline for watchers and listings.
//!
//! A native call to a device never seen fails with `DEVICE_NOT_FOUND` once
//! the retained presence has arrived, unless its `connect_timeout` asks to
//! wait for it; seed-contract calls, and every call with
//! `--call-unannounced`, go out as before (their devices announce nothing).

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use thingcall_proto::v1::{self, device_event::Kind};

use super::queries::device_proto;
use super::{Gateway, Tallies};
use crate::error::Error;
use crate::presence::Reachability;

impl Gateway {
    /// Waits, when it must, until the device may be called: online (and
    /// serving `method`), or never seen with `call_unknown`. Returns at once
    /// for a device confirmed online.
    pub(super) async fn await_reachable(
        &self,
        device: &str,
        method: &str,
        connect_deadline: Option<Instant>,
        deadline: Instant,
        call_unknown: bool,
    ) -> Result<(), Error> {
        let mut changes = None;
        // Whether the wait was on presence not yet confirmed or synced,
        // which `/metrics` counts.
        let mut provisional = false;
        let result = loop {
            let (reach, sync_limit) = {
                let reg = self.registry.read();
                // Until the session's retained presence has arrived, what the
                // registry says may be about to change.
                let limit = if reg.synced() {
                    None
                } else {
                    reg.session_start().map(|t| t + self.cfg.presence_grace)
                };
                (reg.reachability(device, method), limit)
            };
            match reach {
                Reachability::Online => break Ok(()),
                Reachability::Unknown if call_unknown => break Ok(()),
                Reachability::MethodNotSupported => {
                    break Err(Error::MethodNotSupported {
                        device: device.into(),
                        method: method.into(),
                    })
                }
                Reachability::Offline | Reachability::Unconfirmed | Reachability::Unknown => {}
            }
            provisional |= reach == Reachability::Unconfirmed || sync_limit.is_some();
            if !self.calls.connected() {
                break Err(Error::BrokerUnavailable);
            }
            let missing = || match reach {
                Reachability::Unknown => Error::DeviceNotFound(device.into()),
                _ => Error::DeviceOffline(device.into()),
            };
            let until = connect_deadline.max(sync_limit).map(|t| t.min(deadline));
            let until = match until {
                Some(t) if t > Instant::now() => t,
                _ => break Err(missing()),
            };
            // Subscribe, then look again: no presence change is missed.
            let Some((rx, draining)) = changes.as_mut() else {
                changes = Some((self.presence_seq.subscribe(), self.drain_signal.subscribe()));
                continue;
            };
            tokio::select! {
                _ = tokio::time::sleep_until(until.into()) => {}
                // Draining publishes nothing new, so this call cannot go out.
                _ = draining.wait_for(|d| *d) => break Err(Error::ShuttingDown),
                _ = rx.changed() => {}
            }
        };
        if provisional {
            let field: fn(&mut Tallies) -> &mut u64 = match &result {
                Ok(()) => |t| &mut t.presence_waits_called,
                Err(Error::DeviceOffline(_)) => |t| &mut t.presence_waits_offline,
                Err(Error::DeviceNotFound(_)) => |t| &mut t.presence_waits_not_found,
                Err(_) => |t| &mut t.presence_waits_other,
            };
            self.tally(field);
        }
        result
    }

    /// Wakes calls waiting on presence.
    pub(super) fn presence_changed(&self) {
        self.presence_seq.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A new MQTT session: what is known of devices turns unconfirmed
    /// before any call can go out on it.
    pub(super) fn presence_session_began(&self) {
        let epoch = self.registry.write().begin_session(Instant::now());
        self.sessions.send_replace(epoch);
        self.presence_changed();
    }

    /// The session's retained presence has all arrived.
    pub(super) fn presence_synced(&self) {
        let mut reg = self.registry.write();
        let expired = reg.mark_synced(SystemTime::now());
        self.announce_expired(reg, expired);
    }

    /// Turns devices never confirmed offline once `--presence-grace` has
    /// passed in each session; runs as long as the gateway.
    pub async fn run_presence_grace(self: Arc<Self>) {
        let mut sessions = self.sessions.subscribe();
        loop {
            let epoch = *sessions.borrow_and_update();
            if epoch != 0 {
                tokio::select! {
                    _ = tokio::time::sleep(self.cfg.presence_grace) => {
                        let mut reg = self.registry.write();
                        let expired = reg.end_grace(epoch, SystemTime::now());
                        self.announce_expired(reg, expired);
                    }
                    changed = sessions.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        continue;
                    }
                }
            }
            if sessions.changed().await.is_err() {
                return;
            }
        }
    }

    /// Tells watchers of the devices that just turned offline for want of
    /// confirmation, and wakes waiting calls.
    fn announce_expired(
        &self,
        reg: parking_lot::RwLockWriteGuard<'_, crate::presence::Registry>,
        expired: Vec<String>,
    ) {
        let states: Vec<v1::Device> = expired
            .iter()
            .filter_map(|id| reg.get(id).map(|s| device_proto(id, s)))
            .collect();
        drop(reg);
        if !states.is_empty() {
            tracing::info!(
                devices = states.len(),
                "devices not confirmed since the reconnect are now offline"
            );
        }
        for state in states {
            let id = state.id.clone();
            self.hub.send(&id, Kind::Presence(state));
        }
        self.presence_changed();
    }
}
