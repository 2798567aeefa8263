//! What arrives from MQTT, decoded by the session: replies completing
//! calls, presence feeding the registry, device events for watchers. Runs
//! on the session task, so nothing here blocks or awaits.

use std::time::SystemTime;

use bytes::Bytes;
use thingcall_proto::v1::{self, device_event::Kind};
use thingcall_proto::wire::Presence;

use super::queries::device_proto;
use super::Gateway;
use crate::calls::Delivery;
use crate::error::Error;
use crate::message::Inbound;
use crate::presence::Change;

impl Gateway {
    fn count(&self, delivery: Delivery) {
        match delivery {
            Delivery::Delivered => {}
            Delivery::Late => {
                self.tally(|t| &mut t.dropped_late);
            }
            Delivery::Duplicate => {
                self.tally(|t| &mut t.dropped_duplicate);
            }
            Delivery::Unknown => {
                self.tally(|t| &mut t.dropped_unknown);
            }
            Delivery::Foreign => {
                tracing::warn!("reply for a call to another device dropped");
                self.tally(|t| &mut t.dropped_foreign);
            }
        }
    }

    fn on_presence(&self, device: &str, presence: Option<Presence>, retained: bool) {
        let mut reg = self.registry.write();
        let change = reg.apply(device, presence, retained, SystemTime::now());
        // Built only for watchers: a sync of a million retained documents
        // should not copy each device's state for nobody. (A watcher that
        // starts now takes its snapshot after this write lock is released,
        // so it has this change.)
        let state = self
            .hub
            .has_watchers()
            .then(|| reg.get(device).map(|s| device_proto(device, s)));
        drop(reg);
        match change {
            Change::Ignored => return,
            // Unchanged: watchers saw it already; calls waiting on it go on.
            Change::Confirmed => return self.presence_changed(),
            // Either way the connection that calls in flight went to is gone.
            Change::Offline | Change::NewSession => {
                let n = self
                    .calls
                    .fail_device(device, &Error::DeviceDisconnected(device.into()));
                tracing::debug!(device, failed = n, ?change, "device connection ended");
            }
            Change::Online | Change::Removed => {}
        }
        if let Some(state) = state {
            let state = state.unwrap_or_else(|| v1::Device {
                id: device.into(),
                ..Default::default()
            });
            self.hub.send(device, Kind::Presence(state));
        }
        self.presence_changed();
    }
}

impl crate::mqtt::Incoming for Gateway {
    fn on_ready(&self) {
        // Before calls may go out on the new session.
        self.presence_session_began();
        self.tally(|t| &mut t.sessions_up);
        self.calls.set_connected(true);
        self.connected.send_replace(true);
    }

    fn on_lost(&self, why: &str) {
        tracing::debug!(why, "MQTT session down");
        self.tally(|t| &mut t.connection_failures);
        self.calls.set_connected(false);
        self.connected.send_replace(false);
        // Calls waiting on a device's presence fail now, not at their limit.
        self.presence_changed();
    }

    fn on_synced(&self) {
        self.presence_synced();
    }

    fn on_message(&self, message: Inbound<'_>, retained: bool) {
        match message {
            Inbound::Reply { device, id, reply } => {
                self.count(self.calls.complete(id, device, reply))
            }
            Inbound::Accepted { device, id } => self.count(self.calls.mark_accepted(id, device)),
            Inbound::Presence { device, presence } => self.on_presence(device, presence, retained),
            Inbound::Event {
                device,
                name,
                payload,
                content_type,
            } => self.on_event(device, name, payload, content_type),
            Inbound::Mismatched => {
                self.tally(|t| &mut t.dropped_foreign);
            }
            Inbound::Malformed => {
                self.tally(|t| &mut t.dropped_malformed);
            }
            Inbound::Unrelated => {}
        }
    }
}

impl Gateway {
    fn on_event(&self, device: &str, name: &str, payload: Bytes, content_type: Option<String>) {
        if self.hub.has_watchers() {
            self.hub.send(
                device,
                Kind::Event(v1::DeviceMessage {
                    name: name.to_owned(),
                    payload,
                    content_type: content_type.unwrap_or_default(),
                }),
            );
        }
    }
}
