//! What arrives from MQTT: replies completing calls, presence feeding the
//! registry, device events for watchers. Runs on the session task, so
//! nothing here blocks or awaits.

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{Publish, PublishProperties};
use thingcall_proto::v1::{self, device_event::Kind};
use thingcall_proto::wire::{self, DeviceTopic, Presence, SeedAck};

use crate::calls::{CallId, Delivery, Reply};
use crate::devices::device_proto;
use crate::error::Error;
use crate::gateway::Gateway;
use crate::presence::Change;

impl Gateway {
    /// Takes the publish's parts by value: the payload and content type
    /// move into the reply, no copy.
    fn on_reply(&self, device: &str, payload: Bytes, properties: Option<PublishProperties>) {
        let Some(props) = properties else {
            self.drops.malformed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let id = match props.correlation_data.as_deref().map(<[u8; 16]>::try_from) {
            Some(Ok(b)) => CallId::from_bytes(b),
            _ => {
                self.drops.malformed.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        let props_list = &props.user_properties;
        let delivery = if wire::user_property(props_list, wire::PROP_STAGE)
            == Some(wire::STAGE_ACCEPTED)
        {
            self.calls.mark_accepted(id, device)
        } else {
            let status = match wire::user_property(props_list, wire::PROP_STATUS).map(str::parse) {
                None => 200,
                Some(Ok(s)) => s,
                Some(Err(_)) => {
                    self.drops.malformed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            let exec_us =
                wire::user_property(props_list, wire::PROP_EXEC_US).and_then(|v| v.parse().ok());
            let reply = Reply {
                status,
                payload,
                content_type: props.content_type,
                exec_us,
                accepted_at: None,
            };
            self.calls.complete(id, device, reply)
        };
        self.count(delivery);
    }

    /// An ack in the AWS sample's contract: `{"id": m_id, "response": ...}`
    /// on `{client_prefix}/{m_id}/{target}/{method}/ack`. The device's
    /// `response` becomes a JSON reply with status 200.
    fn on_seed_ack(&self, m_id: &str, device: &str, payload: &[u8]) {
        let (Some(id), Some(ack)) = (
            CallId::parse(m_id),
            serde_json::from_slice::<SeedAck>(payload).ok(),
        ) else {
            self.drops.malformed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if ack.id != m_id {
            // An ack naming another call than its topic: trust neither.
            self.drops.foreign.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let reply = Reply {
            status: 200,
            payload: serde_json::to_vec(&ack.response)
                .expect("JSON value serializes")
                .into(),
            content_type: Some("application/json".to_owned()),
            exec_us: None,
            accepted_at: None,
        };
        self.count(self.calls.complete(id, device, reply));
    }

    fn count(&self, delivery: Delivery) {
        match delivery {
            Delivery::Delivered => {}
            Delivery::Late => {
                self.drops.late.fetch_add(1, Ordering::Relaxed);
            }
            Delivery::Duplicate => {
                self.drops.duplicate.fetch_add(1, Ordering::Relaxed);
            }
            Delivery::Unknown => {
                self.drops.unknown.fetch_add(1, Ordering::Relaxed);
            }
            Delivery::Foreign => {
                tracing::warn!("reply for a call to another device dropped");
                self.drops.foreign.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn on_presence(&self, device: &str, payload: &[u8]) {
        let presence = if payload.is_empty() {
            None
        } else {
            match Presence::from_json(payload) {
                Some(p) => Some(p),
                None => {
                    tracing::debug!(device, "malformed presence ignored");
                    self.drops.malformed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        };
        let mut reg = self.registry.write();
        let change = reg.apply(device, presence, SystemTime::now());
        let state = reg.get(device).map(|s| device_proto(device, s));
        drop(reg);
        match change {
            Change::Ignored => return,
            Change::Offline => {
                let n = self
                    .calls
                    .fail_device(device, &Error::DeviceDisconnected(device.into()));
                tracing::debug!(device, failed = n, "device offline");
            }
            Change::Online | Change::Removed => {}
        }
        let state = state.unwrap_or_else(|| v1::Device {
            id: device.into(),
            ..Default::default()
        });
        self.hub.send(device, Kind::Presence(state));
    }
}

impl crate::mqtt::Incoming for Gateway {
    fn on_ready(&self) {
        self.sessions_up.fetch_add(1, Ordering::Relaxed);
        self.calls.set_connected(true);
        self.connected.send_replace(true);
    }

    fn on_lost(&self, why: &str) {
        tracing::debug!(why, "MQTT session down");
        self.connection_failures.fetch_add(1, Ordering::Relaxed);
        self.calls.set_connected(false);
        self.connected.send_replace(false);
    }

    fn on_publish(&self, p: Publish) {
        let Ok(topic) = std::str::from_utf8(&p.topic) else {
            self.drops.malformed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if let Some(device) = self.topics.parse_reply(&self.cfg.gateway_id, topic) {
            return self.on_reply(device, p.payload, p.properties);
        }
        if let Some((m_id, device, _method)) = self.seed.parse_ack(topic) {
            return self.on_seed_ack(m_id, device, &p.payload);
        }
        match self.topics.parse_device(topic) {
            Some((device, DeviceTopic::Presence)) => self.on_presence(device, &p.payload),
            Some((device, DeviceTopic::Event(name))) if self.hub.has_watchers() => {
                let content_type = p.properties.as_ref().and_then(|pp| pp.content_type.clone());
                self.hub.send(
                    device,
                    Kind::Event(v1::DeviceMessage {
                        name: name.to_owned(),
                        payload: p.payload.clone(),
                        content_type: content_type.unwrap_or_default(),
                    }),
                );
            }
            _ => {}
        }
    }
}
