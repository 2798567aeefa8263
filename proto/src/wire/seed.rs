//! The AWS sample's MQTT contract ("seed"), so devices built for the
//! sample this project replaces work unchanged: requests on
//! `{target}/{method}/{client_prefix}/{m_id}`, acks on
//! `{client_prefix}/{m_id}/{target}/{method}/ack`, JSON payloads.

use serde::{Deserialize, Serialize};

/// The AWS sample's topic layout ("seed" contract) for one gateway's client
/// prefix: requests on `{target}/{method}/{client_prefix}/{m_id}`, acks on
/// `{client_prefix}/{m_id}/{target}/{method}/ack`. Devices built for the
/// sample speak it unchanged; they announce no presence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedTopics {
    client_prefix: String,
}

impl SeedTopics {
    /// The seed topics of the gateway identified by `client_prefix` (the
    /// sample's own gateway uses `invocation_client`).
    pub fn new(client_prefix: impl Into<String>) -> Self {
        Self {
            client_prefix: client_prefix.into(),
        }
    }

    /// The client prefix naming this gateway in request and ack topics.
    pub fn client_prefix(&self) -> &str {
        &self.client_prefix
    }

    /// Where a request for `method` on `target` with message id `m_id` is
    /// published: `{target}/{method}/{client_prefix}/{m_id}`.
    pub fn request(&self, target: &str, method: &str, m_id: &str) -> String {
        format!("{target}/{method}/{}/{m_id}", self.client_prefix)
    }

    /// Where the device answers that request:
    /// `{client_prefix}/{m_id}/{target}/{method}/ack`.
    pub fn ack(&self, m_id: &str, target: &str, method: &str) -> String {
        format!("{}/{m_id}/{target}/{method}/ack", self.client_prefix)
    }

    /// What a gateway subscribes to for its acks: `{client_prefix}/+/+/+/ack`.
    pub fn ack_filter(&self) -> String {
        format!("{}/+/+/+/ack", self.client_prefix)
    }

    /// Splits an ack topic of this prefix into `(m_id, target, method)`;
    /// `None` for any other topic or an empty level.
    pub fn parse_ack<'a>(&self, topic: &'a str) -> Option<(&'a str, &'a str, &'a str)> {
        let rest = topic
            .strip_prefix(self.client_prefix.as_str())?
            .strip_prefix('/')?
            .strip_suffix("/ack")?;
        let mut levels = rest.split('/');
        let (m_id, target, method) = (levels.next()?, levels.next()?, levels.next()?);
        let complete =
            levels.next().is_none() && !m_id.is_empty() && !target.is_empty() && !method.is_empty();
        complete.then_some((m_id, target, method))
    }
}

/// What a seed device subscribes to for its requests: `{device}/#`.
pub fn seed_device_filter(device: &str) -> String {
    format!("{device}/#")
}

/// The parts of a seed request topic `{target}/{method}/{client_prefix}/{m_id}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeedRequestTopic<'a> {
    /// The device addressed.
    pub target: &'a str,
    /// The method to run.
    pub method: &'a str,
    /// The requesting gateway's prefix; the ack topic starts with it.
    pub client_prefix: &'a str,
    /// The request's message id (a UUID in the sample).
    pub m_id: &'a str,
}

/// Splits a seed request topic `{target}/{method}/{client_prefix}/{m_id}`
/// (exactly four non-empty levels) into its parts; `None` otherwise.
pub fn parse_seed_request(topic: &str) -> Option<SeedRequestTopic<'_>> {
    let mut levels = topic.split('/');
    let parts = SeedRequestTopic {
        target: levels.next()?,
        method: levels.next()?,
        client_prefix: levels.next()?,
        m_id: levels.next()?,
    };
    let complete = levels.next().is_none()
        && [parts.target, parts.method, parts.client_prefix, parts.m_id]
            .iter()
            .all(|l| !l.is_empty());
    complete.then_some(parts)
}

/// The JSON payload of a seed request:
/// `{"timestamp":"<unix ms>","request":"<string>","id":"<m_id>"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedRequest {
    /// When the gateway sent the request, unix milliseconds as a string.
    pub timestamp: String,
    /// The request argument, handed to the device's method.
    pub request: String,
    /// The message id, repeated from the topic.
    pub id: String,
}

/// The JSON payload of a seed ack: `{"id":"<m_id>","response":<any JSON>}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeedAck {
    /// The message id of the request answered.
    pub id: String,
    /// The device's answer, any JSON value (`null` when absent).
    #[serde(default)]
    pub response: serde_json::Value,
}

/// Why a message on a seed ack topic answers nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedAckError {
    /// Not the sample's ack JSON.
    Malformed,
    /// The ack names another message id than its topic: trust neither.
    Mismatched,
}

/// Decodes the ack payload of the request `m_id` (from its topic): the
/// device's `response` as JSON text.
pub fn decode_seed_ack(m_id: &str, payload: &[u8]) -> Result<Vec<u8>, SeedAckError> {
    /// The ack with its response kept as the device wrote it: parsed into a
    /// `Value` and written again, a number such as `21.666666666666600`
    /// would reach the caller changed.
    #[derive(Deserialize)]
    struct Raw<'a> {
        id: std::borrow::Cow<'a, str>,
        #[serde(borrow, default)]
        response: Option<&'a serde_json::value::RawValue>,
    }
    let ack: Raw<'_> = serde_json::from_slice(payload).map_err(|_| SeedAckError::Malformed)?;
    if ack.id != m_id {
        return Err(SeedAckError::Mismatched);
    }
    Ok(ack
        .response
        .map_or(&b"null"[..], |r| r.get().as_bytes())
        .to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_acks_response_reaches_the_caller_as_the_device_wrote_it() {
        let payload = br#"{"id":"m1","response":{"temp":21.666666666666600, "unit":"C"}}"#;
        assert_eq!(
            decode_seed_ack("m1", payload).unwrap(),
            br#"{"temp":21.666666666666600, "unit":"C"}"#
        );
        assert_eq!(decode_seed_ack("m1", br#"{"id":"m1"}"#).unwrap(), b"null");
        assert_eq!(
            decode_seed_ack("m2", payload),
            Err(SeedAckError::Mismatched)
        );
        assert_eq!(decode_seed_ack("m1", b"{"), Err(SeedAckError::Malformed));
    }

    #[test]
    fn seed_topics() {
        let t = SeedTopics::new("invocation_client");
        assert_eq!(t.client_prefix(), "invocation_client");
        assert_eq!(
            t.request("Device001", "reqid-ABCD", "m1"),
            "Device001/reqid-ABCD/invocation_client/m1"
        );
        assert_eq!(
            t.ack("m1", "Device001", "reqid-ABCD"),
            "invocation_client/m1/Device001/reqid-ABCD/ack"
        );
        assert_eq!(t.ack_filter(), "invocation_client/+/+/+/ack");
        assert_eq!(
            t.parse_ack("invocation_client/m1/Device001/reqid-ABCD/ack"),
            Some(("m1", "Device001", "reqid-ABCD"))
        );
        for bad in [
            "other_client/m1/Device001/reqid-ABCD/ack",
            "invocation_client2/m1/Device001/reqid-ABCD/ack",
            "invocation_client/m1/Device001/ack",
            "invocation_client/m1/Device001/reqid-ABCD/x/ack",
            "invocation_client/m1/Device001/reqid-ABCD/nack",
            "invocation_client//Device001/reqid-ABCD/ack",
            "invocation_client/m1//reqid-ABCD/ack",
            "invocation_client/m1/Device001//ack",
            "invocation_client/ack",
            "",
        ] {
            assert_eq!(t.parse_ack(bad), None, "{bad:?} parsed");
        }
        assert_eq!(seed_device_filter("Device001"), "Device001/#");
    }

    #[test]
    fn seed_request_topics() {
        let t = SeedTopics::new("gw");
        let topic = t.request("d1", "echo", "m1");
        assert_eq!(
            parse_seed_request(&topic),
            Some(SeedRequestTopic {
                target: "d1",
                method: "echo",
                client_prefix: "gw",
                m_id: "m1",
            })
        );
        for bad in [
            "d1/echo/gw",
            "d1/echo/gw/m1/x",
            "d1//gw/m1",
            "/echo/gw/m1",
            "d1/echo/gw/",
            "",
        ] {
            assert_eq!(parse_seed_request(bad), None, "{bad:?} parsed");
        }
        // A seed ack (five levels) is never mistaken for a request.
        assert_eq!(parse_seed_request(&t.ack("m1", "d1", "echo")), None);
    }

    #[test]
    fn seed_payloads() {
        let req: SeedRequest =
            serde_json::from_str(r#"{"timestamp":"1","request":"my_request_1","id":"m1"}"#)
                .unwrap();
        assert_eq!(
            req,
            SeedRequest {
                timestamp: "1".into(),
                request: "my_request_1".into(),
                id: "m1".into(),
            }
        );
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            r#"{"timestamp":"1","request":"my_request_1","id":"m1"}"#
        );
        assert!(serde_json::from_str::<SeedRequest>(r#"{"request":"x"}"#).is_err());

        let ack = SeedAck {
            id: "m1".into(),
            response: serde_json::json!({"temp": 21.5}),
        };
        let text = serde_json::to_string(&ack).unwrap();
        assert_eq!(text, r#"{"id":"m1","response":{"temp":21.5}}"#);
        assert_eq!(serde_json::from_str::<SeedAck>(&text).unwrap(), ack);
        let bare: SeedAck = serde_json::from_str(r#"{"id":"m2"}"#).unwrap();
        assert_eq!(bare.response, serde_json::Value::Null);
        assert_eq!(
            decode_seed_ack("m1", text.as_bytes()).unwrap(),
            br#"{"temp":21.5}"#
        );
        assert_eq!(
            decode_seed_ack("m2", text.as_bytes()),
            Err(SeedAckError::Mismatched)
        );
        assert_eq!(decode_seed_ack("m1", b"{"), Err(SeedAckError::Malformed));
    }
}
