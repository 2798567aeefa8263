//! The contract's messages as plain values: what a gateway sends a device,
//! what a device answers, and the few numbers both derive the same way.
//! Encoding them into MQTT packets and decoding packets into them is
//! [`super::mqtt`]'s job (cargo feature `mqtt`); these types carry no MQTT
//! library's type, so any layer may hold them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

/// MessageExpiryInterval for a deadline `remaining` away: whole seconds
/// rounded up, at least 1 (some brokers read 0 as "never"), so a device
/// never sees a request expire early; the `deadline` property carries the
/// exact instant.
pub fn expiry_secs(remaining: Duration) -> u32 {
    let secs = remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0);
    secs.clamp(1, u64::from(u32::MAX)) as u32
}

/// Milliseconds since the Unix epoch, as the `deadline` property and the
/// seed `timestamp` write them.
pub fn unix_ms(t: SystemTime) -> u64 {
    u64::try_from(t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()).unwrap_or(u64::MAX)
}

/// A request to a device of the native contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeRequest {
    /// `{root}/devices/{device}/methods/{method}`.
    pub topic: String,
    /// Where the device answers: `{root}/gateways/{gateway}/replies/{device}`.
    pub response_topic: String,
    /// The call's 16-byte CorrelationData.
    pub correlation: [u8; 16],
    /// The call payload.
    pub payload: Bytes,
    /// The caller's deadline: the `deadline` property, and the expiry.
    pub deadline: SystemTime,
    /// The payload's MIME type, when the caller gave one.
    pub content_type: Option<String>,
    /// Further user properties (idempotency key, trace context, caller
    /// metadata), sent after `deadline`. Leave capacity for one more, and
    /// encoding allocates no second vector.
    pub user_properties: Vec<(String, String)>,
}

/// A request to a device of the AWS sample's ("seed") contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedRequestMessage {
    /// `{target}/{method}/{client_prefix}/{m_id}`.
    pub topic: String,
    /// The JSON body.
    pub body: super::SeedRequest,
    /// Time until the caller's deadline: the expiry (the seed contract has
    /// no deadline property).
    pub remaining: Duration,
}

/// A message on a gateway's reply topic, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyMessage {
    /// The interim `stage=accepted` reply: received, working on it.
    Accepted {
        /// The call it is about.
        correlation: [u8; 16],
    },
    /// The final reply.
    Final(FinalReply),
}

/// A device's final reply to one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalReply {
    /// The call it answers.
    pub correlation: [u8; 16],
    /// The `status` property, 200 when absent.
    pub status: i32,
    /// The `exec-us` property, when present and a number.
    pub exec_us: Option<u64>,
    /// The reply's ContentType.
    pub content_type: Option<String>,
    /// The reply payload.
    pub payload: Bytes,
}

/// Why a message on a reply topic answers nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// No CorrelationData, or not 16 bytes of it.
    Correlation,
    /// A `status` property that is not a number, on a reply to `correlation`.
    Status {
        /// The call the reply names.
        correlation: [u8; 16],
    },
}

/// A request as a device reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceRequest {
    /// Where to reply; a request without one cannot be answered.
    pub response_topic: Option<String>,
    /// To echo in the reply.
    pub correlation: Option<Bytes>,
    /// The `deadline` property, when present and readable.
    pub deadline: Option<SystemTime>,
    /// The `deadline` property was there but not a number of milliseconds.
    pub deadline_unreadable: bool,
    /// The payload's MIME type.
    pub content_type: Option<String>,
    /// Every user property as sent (the caller's metadata among them).
    pub user_properties: Vec<(String, String)>,
}

/// Parses a `deadline` property value (Unix milliseconds).
pub fn parse_deadline(ms: &str) -> Option<SystemTime> {
    ms.trim()
        .parse::<u64>()
        .ok()
        .map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_rounds_up_and_is_never_zero() {
        assert_eq!(expiry_secs(Duration::ZERO), 1);
        assert_eq!(expiry_secs(Duration::from_millis(1)), 1);
        assert_eq!(expiry_secs(Duration::from_millis(1000)), 1);
        assert_eq!(expiry_secs(Duration::from_millis(1001)), 2);
        assert_eq!(expiry_secs(Duration::from_secs(300)), 300);
    }

    #[test]
    fn deadlines() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(parse_deadline(&unix_ms(t).to_string()), Some(t));
        assert_eq!(
            parse_deadline(" 5 "),
            Some(UNIX_EPOCH + Duration::from_millis(5))
        );
        assert_eq!(parse_deadline("soon"), None);
    }
}
