//! The contract's messages in and out of rumqttc's MQTT 5 packets: the one
//! codec the gateway, the device library and the bench share (cargo
//! feature `mqtt`, so API-only users never compile an MQTT client).

use std::time::SystemTime;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::PublishProperties;

use super::message::{
    expiry_secs, parse_deadline, unix_ms, DeviceRequest, FinalReply, Malformed, NativeRequest,
    ReplyMessage, SeedRequestMessage,
};
use super::{user_property, PROP_DEADLINE, PROP_EXEC_US, PROP_STAGE, PROP_STATUS, STAGE_ACCEPTED};

/// ContentType of the seed contract's JSON bodies and of presence.
pub const JSON: &str = "application/json";

/// A message ready for `publish_with_properties`.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// Where it goes.
    pub topic: String,
    /// Its payload.
    pub payload: Bytes,
    /// Its MQTT 5 properties.
    pub properties: PublishProperties,
}

impl NativeRequest {
    /// The request's packet: ResponseTopic, CorrelationData, the expiry of
    /// the time left until the deadline (as of `now`), ContentType, and the
    /// `deadline` user property before the others.
    pub fn encode(self, now: SystemTime) -> Encoded {
        let remaining = self.deadline.duration_since(now).unwrap_or_default();
        // Into the caller's vector: no second allocation per request when it
        // left room for this one (see `NativeRequest::user_properties`).
        let mut user_properties = self.user_properties;
        user_properties.insert(
            0,
            (PROP_DEADLINE.to_owned(), unix_ms(self.deadline).to_string()),
        );
        Encoded {
            topic: self.topic,
            payload: self.payload,
            properties: PublishProperties {
                message_expiry_interval: Some(expiry_secs(remaining)),
                response_topic: Some(self.response_topic),
                correlation_data: Some(Bytes::copy_from_slice(&self.correlation)),
                content_type: self.content_type,
                user_properties,
                ..Default::default()
            },
        }
    }
}

impl SeedRequestMessage {
    /// The request's packet: its JSON body, marked as JSON, with the expiry
    /// of the time left (MQTT 5 brokers enforce it even for the sample's
    /// devices).
    pub fn encode(self) -> Encoded {
        let payload = serde_json::to_vec(&self.body).expect("seed request serializes");
        Encoded {
            topic: self.topic,
            payload: payload.into(),
            properties: PublishProperties {
                message_expiry_interval: Some(expiry_secs(self.remaining)),
                content_type: Some(JSON.to_owned()),
                ..Default::default()
            },
        }
    }
}

/// Decodes a message on a reply topic: the CorrelationData (16 bytes),
/// then `stage=accepted` (interim) or the final reply's `status` (200 when
/// absent), `exec-us` and ContentType. Takes the parts by value: the
/// payload and content type move into the reply, no copy.
pub fn decode_reply(
    properties: Option<PublishProperties>,
    payload: Bytes,
) -> Result<ReplyMessage, Malformed> {
    let props = properties.ok_or(Malformed::Correlation)?;
    let correlation = props
        .correlation_data
        .as_deref()
        .and_then(|c| <[u8; 16]>::try_from(c).ok())
        .ok_or(Malformed::Correlation)?;
    let user = &props.user_properties;
    if user_property(user, PROP_STAGE) == Some(STAGE_ACCEPTED) {
        return Ok(ReplyMessage::Accepted { correlation });
    }
    let status = match user_property(user, PROP_STATUS).map(|s| s.trim().parse()) {
        None => 200,
        Some(Ok(s)) => s,
        Some(Err(_)) => return Err(Malformed::Status { correlation }),
    };
    let exec_us = user_property(user, PROP_EXEC_US).and_then(|v| v.trim().parse().ok());
    Ok(ReplyMessage::Final(FinalReply {
        correlation,
        status,
        exec_us,
        content_type: props.content_type,
        payload,
    }))
}

/// Decodes the properties of a request, as a device reads them.
pub fn decode_request(properties: Option<PublishProperties>) -> DeviceRequest {
    let props = properties.unwrap_or_default();
    let raw_deadline = user_property(&props.user_properties, PROP_DEADLINE);
    let deadline = raw_deadline.and_then(parse_deadline);
    DeviceRequest {
        deadline_unreadable: raw_deadline.is_some() && deadline.is_none(),
        deadline,
        response_topic: props.response_topic,
        correlation: props.correlation_data,
        content_type: props.content_type,
        user_properties: props.user_properties,
    }
}

/// The properties of a device's final reply: the request's CorrelationData
/// echoed, `status`, `exec-us` and the payload's ContentType.
pub fn reply_properties(
    correlation: Option<Bytes>,
    status: i32,
    exec_us: u64,
    content_type: Option<String>,
) -> PublishProperties {
    PublishProperties {
        correlation_data: correlation,
        user_properties: vec![
            (PROP_STATUS.into(), status.to_string()),
            (PROP_EXEC_US.into(), exec_us.to_string()),
        ],
        content_type,
        ..Default::default()
    }
}

/// The properties of a device's interim `stage=accepted` reply.
pub fn accepted_properties(correlation: Option<Bytes>) -> PublishProperties {
    PublishProperties {
        correlation_data: correlation,
        user_properties: vec![(PROP_STAGE.into(), STAGE_ACCEPTED.into())],
        ..Default::default()
    }
}

/// Properties marking a JSON payload (presence, the seed contract).
pub fn json_properties() -> PublishProperties {
    PublishProperties {
        content_type: Some(JSON.into()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn a_request_a_device_decodes_as_it_was_sent() {
        let now = UNIX_EPOCH + Duration::from_millis(1_700_000_000_000);
        let deadline = now + Duration::from_millis(1500);
        let out = NativeRequest {
            topic: "t/devices/d/methods/echo".into(),
            response_topic: "t/gateways/g/replies/d".into(),
            correlation: [7; 16],
            payload: Bytes::from_static(b"hi"),
            deadline,
            content_type: Some("text/plain".into()),
            user_properties: vec![("k".into(), "v".into())],
        }
        .encode(now);
        assert_eq!(out.properties.message_expiry_interval, Some(2));
        assert_eq!(out.properties.user_properties[0].0, PROP_DEADLINE);
        let got = decode_request(Some(out.properties));
        assert_eq!(
            got.response_topic.as_deref(),
            Some("t/gateways/g/replies/d")
        );
        assert_eq!(got.correlation.as_deref(), Some(&[7u8; 16][..]));
        assert_eq!(got.deadline, Some(deadline));
        assert!(!got.deadline_unreadable);
        assert_eq!(got.content_type.as_deref(), Some("text/plain"));
        assert_eq!(user_property(&got.user_properties, "k"), Some("v"));
    }

    #[test]
    fn replies_decode_as_devices_send_them() {
        let corr = Some(Bytes::from_static(&[9; 16]));
        let props = reply_properties(corr.clone(), 500, 42, Some("application/json".into()));
        assert_eq!(
            decode_reply(Some(props), Bytes::from_static(b"{}")),
            Ok(ReplyMessage::Final(FinalReply {
                correlation: [9; 16],
                status: 500,
                exec_us: Some(42),
                content_type: Some("application/json".into()),
                payload: Bytes::from_static(b"{}"),
            }))
        );
        assert_eq!(
            decode_reply(Some(accepted_properties(corr.clone())), Bytes::new()),
            Ok(ReplyMessage::Accepted {
                correlation: [9; 16]
            })
        );
        let bare = PublishProperties {
            correlation_data: corr.clone(),
            ..Default::default()
        };
        assert!(matches!(
            decode_reply(Some(bare), Bytes::new()),
            Ok(ReplyMessage::Final(FinalReply {
                status: 200,
                exec_us: None,
                ..
            }))
        ));
        let bad_status = PublishProperties {
            correlation_data: corr,
            user_properties: vec![(PROP_STATUS.into(), "x".into())],
            ..Default::default()
        };
        assert_eq!(
            decode_reply(Some(bad_status), Bytes::new()),
            Err(Malformed::Status {
                correlation: [9; 16]
            })
        );
        assert_eq!(
            decode_reply(None, Bytes::new()),
            Err(Malformed::Correlation)
        );
        let short = PublishProperties {
            correlation_data: Some(Bytes::from_static(b"abc")),
            ..Default::default()
        };
        assert_eq!(
            decode_reply(Some(short), Bytes::new()),
            Err(Malformed::Correlation)
        );
    }

    #[test]
    fn unreadable_deadlines_are_flagged() {
        let props = PublishProperties {
            user_properties: vec![(PROP_DEADLINE.into(), "soon".into())],
            ..Default::default()
        };
        let got = decode_request(Some(props));
        assert_eq!(got.deadline, None);
        assert!(got.deadline_unreadable);
        assert!(!decode_request(None).deadline_unreadable);
    }
}
