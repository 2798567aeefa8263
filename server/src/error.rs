//! The one error type of the gateway core. Every surface (gRPC, HTTP/JSON
//! and the seed API) maps it in exactly one place.

use std::time::Duration;

use thingcall_proto::Reason;

/// Why a call or query did not produce the device's answer.
///
/// Each variant belongs to one [`Reason`] of the shared error table, whose
/// name callers see in `google.rpc.ErrorInfo.reason` (gRPC) or the JSON
/// error body (HTTP), and whose code and status every surface uses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Malformed input: bad id, bad timeout, bad metadata.
    #[error("{0}")]
    InvalidArgument(String),
    /// Payload over the configured limit.
    #[error("payload is {size} bytes, over the limit of {limit} bytes")]
    PayloadTooLarge {
        /// Size of the rejected payload.
        size: usize,
        /// The configured limit (`--max-payload`).
        limit: usize,
    },
    /// The device is known to be offline (and `connect_timeout` passed).
    #[error("device {0} is offline")]
    DeviceOffline(String),
    /// The device is not known to the gateway at all (GetDevice only).
    #[error("device {0} is not known to this gateway")]
    DeviceNotFound(String),
    /// The device announced its methods and this is not one of them.
    #[error("device {device} does not serve method {method}")]
    MethodNotSupported {
        /// The target device.
        device: String,
        /// The refused method.
        method: String,
    },
    /// No reply by the deadline.
    #[error("no reply from the device within {}ms ({})", after.as_millis(),
        if *accepted { "the device had accepted the call" } else { "the device never acknowledged the call" })]
    DeviceTimeout {
        /// Time from receipt to the deadline.
        after: Duration,
        /// Whether an interim `stage=accepted` reply had arrived.
        accepted: bool,
    },
    /// The device's presence went offline while the call was in flight.
    #[error("device {0} went offline while the call was in flight")]
    DeviceDisconnected(String),
    /// The gateway has no MQTT connection (now, or lost it mid-call).
    #[error("the gateway is not connected to the MQTT broker")]
    BrokerUnavailable,
    /// Too many calls in flight.
    #[error("{0} calls are in flight, the gateway's limit")]
    Overloaded(usize),
    /// Too many calls in flight to one device (`--max-in-flight-per-device`).
    #[error("{limit} calls to device {device} are in flight, the limit per device")]
    DeviceOverloaded {
        /// The device.
        device: String,
        /// The limit.
        limit: usize,
    },
    /// The gateway is draining.
    #[error("the gateway is shutting down")]
    ShuttingDown,
    /// No credentials, or ones that do not verify. The message says which
    /// check failed and never repeats the credential.
    #[error("{0}")]
    Unauthenticated(String),
    /// The policy does not allow this caller this call or query.
    #[error("{0}")]
    PermissionDenied(String),
    /// The caller's own rate limit (policy `[[limit]]`) is used up.
    #[error("{0} is over its call rate")]
    RateLimited(String),
}

impl Error {
    /// The row of the error table this error belongs to.
    pub fn reason(&self) -> Reason {
        match self {
            Error::InvalidArgument(_) => Reason::InvalidArgument,
            Error::PayloadTooLarge { .. } => Reason::PayloadTooLarge,
            Error::DeviceOffline(_) => Reason::DeviceOffline,
            Error::DeviceNotFound(_) => Reason::DeviceNotFound,
            Error::MethodNotSupported { .. } => Reason::MethodNotSupported,
            Error::DeviceTimeout { .. } => Reason::DeviceTimeout,
            Error::DeviceDisconnected(_) => Reason::DeviceDisconnected,
            Error::BrokerUnavailable => Reason::BrokerUnavailable,
            Error::Overloaded(_) | Error::DeviceOverloaded { .. } => Reason::Overloaded,
            Error::ShuttingDown => Reason::ShuttingDown,
            Error::Unauthenticated(_) => Reason::Unauthenticated,
            Error::PermissionDenied(_) => Reason::PermissionDenied,
            Error::RateLimited(_) => Reason::Overloaded,
        }
    }

    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }
}

impl From<thingcall_proto::wire::IdError> for Error {
    fn from(e: thingcall_proto::wire::IdError) -> Self {
        Error::InvalidArgument(e.to_string())
    }
}
