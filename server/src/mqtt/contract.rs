//! The gateway's side of the wire contract over rumqttc: the filters it
//! subscribes to, and every publish that arrives decoded, through the
//! shared codec (`thingcall_proto::wire::mqtt`), into an [`Inbound`] value
//! for the core. Requests out are encoded by [`super::outbox`].

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::PublishProperties;
use thingcall_proto::wire::{
    self, decode_seed_ack, DeviceTopic, Presence, ReplyMessage, SeedAckError, SeedTopics, Topics,
};

use crate::message::Inbound;
use crate::outcome::{CallId, Reply};

/// Tells the gateway's topics apart and decodes what arrives on them.
#[derive(Debug, Clone)]
pub struct Router {
    topics: Topics,
    seed: SeedTopics,
    gateway_id: String,
}

impl Router {
    /// The topics of gateway `gateway_id` under `topics`, with its seed
    /// contract's client prefix.
    pub fn new(topics: Topics, gateway_id: String, seed: SeedTopics) -> Self {
        Self {
            topics,
            seed,
            gateway_id,
        }
    }

    /// The filters the session must hold: this gateway's replies, every
    /// device's presence and events, and this gateway's seed acks.
    pub fn subscriptions(&self) -> Vec<String> {
        vec![
            self.topics.replies_filter(&self.gateway_id),
            self.topics.presence_filter(),
            self.topics.events_filter(),
            self.seed.ack_filter(),
        ]
    }

    /// Decodes one publish; the payload moves into the value, no copy.
    pub fn decode<'a>(
        &self,
        topic: &'a [u8],
        payload: Bytes,
        properties: Option<PublishProperties>,
    ) -> Inbound<'a> {
        let Ok(topic) = std::str::from_utf8(topic) else {
            return Inbound::Malformed;
        };
        if let Some(device) = self.topics.parse_reply(&self.gateway_id, topic) {
            return match wire::mqtt::decode_reply(properties, payload) {
                Ok(ReplyMessage::Accepted { correlation }) => Inbound::Accepted {
                    device,
                    id: CallId::from_bytes(correlation),
                },
                Ok(ReplyMessage::Final(r)) => Inbound::Reply {
                    device,
                    id: CallId::from_bytes(r.correlation),
                    reply: Reply {
                        status: r.status,
                        payload: r.payload,
                        content_type: r.content_type,
                        exec_us: r.exec_us,
                        accepted_at: None,
                    },
                },
                Err(_) => Inbound::Malformed,
            };
        }
        if let Some((m_id, device, _method)) = self.seed.parse_ack(topic) {
            let Some(id) = CallId::parse(m_id) else {
                return Inbound::Malformed;
            };
            return match decode_seed_ack(m_id, &payload) {
                // The sample's device answers JSON, with no status.
                Ok(response) => Inbound::Reply {
                    device,
                    id,
                    reply: Reply {
                        status: 200,
                        payload: response.into(),
                        content_type: Some(wire::mqtt::JSON.to_owned()),
                        exec_us: None,
                        accepted_at: None,
                    },
                },
                Err(SeedAckError::Mismatched) => Inbound::Mismatched,
                Err(SeedAckError::Malformed) => Inbound::Malformed,
            };
        }
        match self.topics.parse_device(topic) {
            Some((device, DeviceTopic::Presence)) if payload.is_empty() => Inbound::Presence {
                device,
                presence: None,
            },
            Some((device, DeviceTopic::Presence)) => match Presence::from_json(&payload) {
                Some(p) => Inbound::Presence {
                    device,
                    presence: Some(p),
                },
                None => {
                    tracing::debug!(device, "malformed presence ignored");
                    Inbound::Malformed
                }
            },
            Some((device, DeviceTopic::Event(name))) => Inbound::Event {
                device,
                name,
                payload,
                content_type: properties.and_then(|p| p.content_type),
            },
            _ => Inbound::Unrelated,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        Router::new(Topics::default(), "gw".into(), SeedTopics::new("seedgw"))
    }

    #[test]
    fn each_topic_decodes_to_its_kind() {
        let r = router();
        let id = CallId::random();
        let props = |corr: &[u8]| {
            Some(PublishProperties {
                correlation_data: Some(Bytes::copy_from_slice(corr)),
                ..Default::default()
            })
        };
        let got = r.decode(
            b"thingcall/gateways/gw/replies/d1",
            Bytes::from_static(b"ok"),
            props(&id.to_bytes()),
        );
        assert!(
            matches!(got, Inbound::Reply { device: "d1", id: i, ref reply } if i == id && reply.status == 200 && &reply.payload[..] == b"ok")
        );
        let got = r.decode(
            b"thingcall/gateways/gw/replies/d1",
            Bytes::new(),
            props(b"short"),
        );
        assert!(matches!(got, Inbound::Malformed));
        let other_gw = r.decode(
            b"thingcall/gateways/gw2/replies/d1",
            Bytes::new(),
            props(&id.to_bytes()),
        );
        assert!(matches!(other_gw, Inbound::Unrelated));

        let ack = format!(r#"{{"id":"{id}","response":{{"v":1}}}}"#);
        let topic = format!("seedgw/{id}/Device001/read/ack");
        let got = r.decode(topic.as_bytes(), Bytes::from(ack), None);
        assert!(
            matches!(got, Inbound::Reply { device: "Device001", id: i, ref reply } if i == id && &reply.payload[..] == br#"{"v":1}"#)
        );
        let other = format!(r#"{{"id":"{}","response":1}}"#, CallId::random());
        assert!(matches!(
            r.decode(topic.as_bytes(), Bytes::from(other), None),
            Inbound::Mismatched
        ));

        let online = Presence {
            online: true,
            session: "s".into(),
            methods: vec![],
        }
        .to_json();
        let got = r.decode(b"thingcall/devices/d1/presence", online.into(), None);
        assert!(
            matches!(got, Inbound::Presence { device: "d1", presence: Some(ref p) } if p.online)
        );
        let got = r.decode(b"thingcall/devices/d1/presence", Bytes::new(), None);
        assert!(matches!(got, Inbound::Presence { presence: None, .. }));
        let got = r.decode(
            b"thingcall/devices/d1/presence",
            Bytes::from_static(b"{"),
            None,
        );
        assert!(matches!(got, Inbound::Malformed));
        let got = r.decode(
            b"thingcall/devices/d1/events/door",
            Bytes::from_static(b"open"),
            None,
        );
        assert!(matches!(
            got,
            Inbound::Event {
                device: "d1",
                name: "door",
                ..
            }
        ));
        assert!(matches!(
            r.decode(b"\xff", Bytes::new(), None),
            Inbound::Malformed
        ));
    }
}
