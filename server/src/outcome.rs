//! What every layer of the gateway shares about one call: its id, the
//! device's reply, and how the call ended. A leaf: it depends on nothing
//! else in the crate but the error type.

use std::fmt;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::error::Error;

/// A call's correlation id: a random UUID, whose 16 bytes (big-endian) are
/// the MQTT CorrelationData and whose text is the `requestId` callers see
/// (and the seed contract's `m_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallId(u128);

impl CallId {
    /// A fresh random id.
    pub fn random() -> Self {
        CallId(uuid::Uuid::new_v4().as_u128())
    }

    /// The id carried in 16 bytes of CorrelationData.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        CallId(u128::from_be_bytes(bytes))
    }

    /// The 16 bytes of CorrelationData.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    /// The id written as UUID text (the seed contract's `m_id`), if it is one.
    pub fn parse(text: &str) -> Option<Self> {
        uuid::Uuid::parse_str(text)
            .ok()
            .map(|u| CallId(u.as_u128()))
    }
}

impl From<u128> for CallId {
    fn from(n: u128) -> Self {
        CallId(n)
    }
}

/// UUID text, e.g. `7d81ab26-b6d9-4b10-9064-3f281a9c11a9`.
impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&uuid::Uuid::from_u128(self.0).hyphenated(), f)
    }
}

/// The device's final reply to one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP-like status from the `status` user property, 200 when absent.
    pub status: i32,
    /// Reply payload, shared with the MQTT buffer (no copy).
    pub payload: Bytes,
    /// MQTT ContentType of the reply.
    pub content_type: Option<String>,
    /// Device-reported execution time in µs (`exec-us`).
    pub exec_us: Option<u64>,
    /// When the device's interim `accepted` reply came, if it sent one
    /// (filled in by the call table when the call completes).
    pub accepted_at: Option<SystemTime>,
}

/// The device's answer to a call.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The reply as the device sent it.
    pub reply: Reply,
    /// The call's correlation id.
    pub request_id: CallId,
    /// Gateway receipt to reply.
    pub elapsed: Duration,
}

impl Answer {
    /// The answer as the API returns it (`InvokeResponse`), the payload moved.
    pub fn into_response(self) -> thingcall_proto::v1::InvokeResponse {
        let reply = self.reply;
        thingcall_proto::v1::InvokeResponse {
            status: reply.status,
            payload: reply.payload,
            content_type: reply.content_type.unwrap_or_default(),
            request_id: self.request_id.to_string(),
            elapsed: self.elapsed.try_into().ok(),
            device_time: reply
                .exec_us
                .and_then(|us| Duration::from_micros(us).try_into().ok()),
        }
    }
}

/// A call that ended without the device's answer: the reason, and the
/// call's id, which callers get back so a failure can be found in logs and
/// traces too.
#[derive(Debug, Clone)]
pub struct Failed {
    /// Why the call failed.
    pub error: Error,
    /// The call's correlation id (its request id).
    pub request_id: CallId,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_id_three_spellings() {
        let id = CallId::random();
        assert_eq!(CallId::from_bytes(id.to_bytes()), id);
        let text = id.to_string();
        assert_eq!(text.len(), 36, "{text}");
        assert_eq!(CallId::parse(&text), Some(id));
        assert_eq!(CallId::parse("not-a-uuid"), None);
        assert_eq!(
            CallId::from(0x7d81ab26_b6d9_4b10_9064_3f281a9c11a9).to_string(),
            "7d81ab26-b6d9-4b10-9064-3f281a9c11a9"
        );
    }
}
