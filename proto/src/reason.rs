//! The error table every surface shares: one [`Reason`] per way a call or
//! query can fail, with its stable name (`google.rpc.ErrorInfo.reason` and
//! the JSON `error.reason`), its gRPC code, its HTTP status and the exit
//! code of the `thingcall` CLI. The gateway's error type, its metrics
//! labels, the Rust client's errors and the bench's tally all read it, so a
//! reason added here reaches each of them at once.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The `google.rpc.ErrorInfo.domain` of thingcall's errors.
pub const DOMAIN: &str = "thingcall";

/// Why a call or query did not produce the device's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// Malformed input: bad id, bad timeout, bad metadata.
    InvalidArgument,
    /// Payload over the configured limit.
    PayloadTooLarge,
    /// No or bad credentials.
    Unauthenticated,
    /// The caller's policy forbids this target or method.
    PermissionDenied,
    /// The device is known to be offline (and `connect_timeout` passed).
    DeviceOffline,
    /// `GetDevice` of a device the gateway has never seen.
    DeviceNotFound,
    /// The device announced its methods and this is not one of them.
    MethodNotSupported,
    /// No reply by the deadline.
    DeviceTimeout,
    /// The device went offline while the call was in flight.
    DeviceDisconnected,
    /// The gateway has no MQTT connection.
    BrokerUnavailable,
    /// Too many calls in flight.
    Overloaded,
    /// The gateway is draining.
    ShuttingDown,
}

/// One row of the table.
struct Row {
    name: &'static str,
    grpc: Code,
    http: u16,
    exit: u8,
}

impl Reason {
    /// Every reason, in the table's order.
    pub const ALL: [Reason; 12] = [
        Reason::InvalidArgument,
        Reason::PayloadTooLarge,
        Reason::Unauthenticated,
        Reason::PermissionDenied,
        Reason::DeviceOffline,
        Reason::DeviceNotFound,
        Reason::MethodNotSupported,
        Reason::DeviceTimeout,
        Reason::DeviceDisconnected,
        Reason::BrokerUnavailable,
        Reason::Overloaded,
        Reason::ShuttingDown,
    ];

    const fn row(self) -> Row {
        let (name, grpc, http, exit) = match self {
            Reason::InvalidArgument => ("INVALID_ARGUMENT", Code::InvalidArgument, 400, 3),
            Reason::PayloadTooLarge => ("PAYLOAD_TOO_LARGE", Code::InvalidArgument, 413, 3),
            Reason::Unauthenticated => ("UNAUTHENTICATED", Code::Unauthenticated, 401, 11),
            Reason::PermissionDenied => ("PERMISSION_DENIED", Code::PermissionDenied, 403, 11),
            Reason::DeviceOffline => ("DEVICE_OFFLINE", Code::Unavailable, 404, 4),
            // Exit 70, "anything else": not a call outcome, and the CLI always said so.
            Reason::DeviceNotFound => ("DEVICE_NOT_FOUND", Code::NotFound, 404, 70),
            Reason::MethodNotSupported => ("METHOD_NOT_SUPPORTED", Code::Unimplemented, 501, 7),
            Reason::DeviceTimeout => ("DEVICE_TIMEOUT", Code::DeadlineExceeded, 504, 5),
            Reason::DeviceDisconnected => ("DEVICE_DISCONNECTED", Code::Aborted, 502, 6),
            Reason::BrokerUnavailable => ("BROKER_UNAVAILABLE", Code::Unavailable, 503, 8),
            Reason::Overloaded => ("OVERLOADED", Code::ResourceExhausted, 429, 9),
            Reason::ShuttingDown => ("SHUTTING_DOWN", Code::Unavailable, 503, 10),
        };
        Row {
            name,
            grpc,
            http,
            exit,
        }
    }

    /// The stable name, e.g. `DEVICE_TIMEOUT`.
    pub const fn name(self) -> &'static str {
        self.row().name
    }

    /// The reason named `name`, if it is one.
    pub fn from_name(name: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The gRPC status code.
    pub const fn grpc_code(self) -> Code {
        self.row().grpc
    }

    /// The HTTP status.
    pub const fn http_status(self) -> u16 {
        self.row().http
    }

    /// The exit code of the `thingcall` CLI.
    pub const fn exit_code(self) -> u8 {
        self.row().exit
    }

    /// Seconds a caller should wait before trying again, for the reasons
    /// that say "not now" rather than "not so" (HTTP `Retry-After`).
    pub const fn retry_after_secs(self) -> Option<u32> {
        match self {
            Reason::Overloaded | Reason::ShuttingDown => Some(1),
            _ => None,
        }
    }
}

impl Reason {
    /// A gRPC status of this reason: its code, `message`, and the
    /// `google.rpc.ErrorInfo{reason, domain, metadata}` every thingcall
    /// error carries, so callers branch on the reason and not on text. The
    /// gateway's errors and the codec's decode failures both come through
    /// here, which keeps the two the same shape.
    pub fn status(self, message: impl Into<String>, metadata: HashMap<String, String>) -> Status {
        let mut details = ErrorDetails::with_error_info(self.name(), DOMAIN, metadata);
        // "Try later" in gRPC's own words, as HTTP's Retry-After says it.
        if let Some(secs) = self.retry_after_secs() {
            details.set_retry_info(Some(std::time::Duration::from_secs(secs.into())));
        }
        Status::with_error_details(self.grpc_code(), message, details)
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for r in Reason::ALL {
            assert_eq!(Reason::from_name(r.name()), Some(r));
        }
        let mut names: Vec<_> = Reason::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Reason::ALL.len());
        assert_eq!(Reason::from_name("NOT_A_REASON"), None);
    }

    #[test]
    fn the_error_table() {
        let row = |r: Reason| (r.grpc_code(), r.http_status(), r.exit_code());
        assert_eq!(
            row(Reason::InvalidArgument),
            (Code::InvalidArgument, 400, 3)
        );
        assert_eq!(
            row(Reason::PayloadTooLarge),
            (Code::InvalidArgument, 413, 3)
        );
        assert_eq!(row(Reason::DeviceOffline), (Code::Unavailable, 404, 4));
        assert_eq!(
            row(Reason::MethodNotSupported),
            (Code::Unimplemented, 501, 7)
        );
        assert_eq!(row(Reason::DeviceTimeout), (Code::DeadlineExceeded, 504, 5));
        assert_eq!(row(Reason::DeviceDisconnected), (Code::Aborted, 502, 6));
        assert_eq!(row(Reason::BrokerUnavailable), (Code::Unavailable, 503, 8));
        assert_eq!(row(Reason::Overloaded), (Code::ResourceExhausted, 429, 9));
        assert_eq!(row(Reason::ShuttingDown), (Code::Unavailable, 503, 10));
        assert_eq!(
            row(Reason::Unauthenticated),
            (Code::Unauthenticated, 401, 11)
        );
        assert_eq!(
            row(Reason::PermissionDenied),
            (Code::PermissionDenied, 403, 11)
        );
        assert_eq!(Reason::Overloaded.retry_after_secs(), Some(1));
        assert_eq!(Reason::DeviceTimeout.retry_after_secs(), None);
    }

    /// gRPC callers get the same "try later" as HTTP's `Retry-After`: a
    /// RetryInfo beside the ErrorInfo, only on the reasons that say "not now".
    #[test]
    fn try_later_reasons_carry_retry_info() {
        use tonic_types::StatusExt;
        let status = Reason::Overloaded.status("busy", HashMap::new());
        let retry = status.get_details_retry_info().expect("RetryInfo");
        assert_eq!(retry.retry_delay, Some(std::time::Duration::from_secs(1)));
        assert_eq!(
            status.get_details_error_info().unwrap().reason,
            "OVERLOADED"
        );
        let status = Reason::DeviceTimeout.status("slow", HashMap::new());
        assert!(status.get_details_retry_info().is_none());
    }
}
