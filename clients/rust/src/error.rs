//! The error model as a caller sees it: one [`CallError`] per failed call,
//! carrying the gateway's `google.rpc.ErrorInfo` reason, and the process exit
//! code the `thingcall` binary derives from it.

use std::collections::BTreeMap;
use std::error::Error as StdError;

use tonic::{Code, Status};
use tonic_types::StatusExt;

/// Reasons a [`CallError`] can carry, by name. The gateway's reasons come
/// from the `google.rpc.ErrorInfo` detail (domain `thingcall`) so callers can
/// match on a stable string instead of parsing messages; their names, gRPC
/// codes and exit codes are the shared table's ([`thingcall_proto::Reason`]).
/// [`UNREACHABLE`](reason::UNREACHABLE) is this client's own, for calls that
/// never got an answer from the gateway.
pub mod reason {
    use thingcall_proto::Reason;

    /// Bad target, method, timeout or metadata.
    pub const INVALID_ARGUMENT: &str = Reason::InvalidArgument.name();
    /// The payload exceeds the gateway's limit.
    pub const PAYLOAD_TOO_LARGE: &str = Reason::PayloadTooLarge.name();
    /// Missing or bad credentials.
    pub const UNAUTHENTICATED: &str = Reason::Unauthenticated.name();
    /// Policy forbids this target or method for the caller.
    pub const PERMISSION_DENIED: &str = Reason::PermissionDenied.name();
    /// The device is offline and did not come back within `connect_timeout`.
    pub const DEVICE_OFFLINE: &str = Reason::DeviceOffline.name();
    /// `GetDevice` of a device the gateway has never seen.
    pub const DEVICE_NOT_FOUND: &str = Reason::DeviceNotFound.name();
    /// The device announced its methods and this is not one of them.
    pub const METHOD_NOT_SUPPORTED: &str = Reason::MethodNotSupported.name();
    /// The device did not answer by the deadline.
    pub const DEVICE_TIMEOUT: &str = Reason::DeviceTimeout.name();
    /// The device went offline while the call was in flight.
    pub const DEVICE_DISCONNECTED: &str = Reason::DeviceDisconnected.name();
    /// The gateway is not connected to its MQTT broker.
    pub const BROKER_UNAVAILABLE: &str = Reason::BrokerUnavailable.name();
    /// A global or per-device in-flight limit was reached.
    pub const OVERLOADED: &str = Reason::Overloaded.name();
    /// The gateway is draining.
    pub const SHUTTING_DOWN: &str = Reason::ShuttingDown.name();
    /// The gateway could not be reached at all (connect failure, connection
    /// lost): the call may or may not have reached the device.
    pub const UNREACHABLE: &str = "UNREACHABLE";
}

/// Process exit codes of the `thingcall` binary, one per class of outcome, so
/// scripts can react (retry on 9, give up on 3) without parsing stderr.
pub mod exit {
    use thingcall_proto::Reason;

    /// The call succeeded and the device answered 2xx.
    pub const OK: u8 = 0;
    /// The device answered with a status outside 200..=299.
    pub const DEVICE_STATUS: u8 = 1;
    /// Bad command line (clap's own exit code).
    pub const USAGE: u8 = 2;
    /// `INVALID_ARGUMENT` or `PAYLOAD_TOO_LARGE`.
    pub const INVALID_ARGUMENT: u8 = Reason::InvalidArgument.exit_code();
    /// `DEVICE_OFFLINE`.
    pub const DEVICE_OFFLINE: u8 = Reason::DeviceOffline.exit_code();
    /// `DEVICE_TIMEOUT`.
    pub const DEVICE_TIMEOUT: u8 = Reason::DeviceTimeout.exit_code();
    /// `DEVICE_DISCONNECTED`.
    pub const DEVICE_DISCONNECTED: u8 = Reason::DeviceDisconnected.exit_code();
    /// `METHOD_NOT_SUPPORTED`.
    pub const METHOD_NOT_SUPPORTED: u8 = Reason::MethodNotSupported.exit_code();
    /// `BROKER_UNAVAILABLE`.
    pub const BROKER_UNAVAILABLE: u8 = Reason::BrokerUnavailable.exit_code();
    /// `OVERLOADED`.
    pub const OVERLOADED: u8 = Reason::Overloaded.exit_code();
    /// `SHUTTING_DOWN`.
    pub const SHUTTING_DOWN: u8 = Reason::ShuttingDown.exit_code();
    /// `UNAUTHENTICATED` or `PERMISSION_DENIED`.
    pub const DENIED: u8 = Reason::Unauthenticated.exit_code();
    /// The gateway could not be reached (transport error); `EX_UNAVAILABLE`.
    pub const UNREACHABLE: u8 = 69;
    /// Anything else; `EX_SOFTWARE`.
    pub const OTHER: u8 = 70;
}

/// The exit code table as shown by `thingcall --help`, kept next to
/// [`exit`] so the two cannot drift apart unnoticed.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
   0  ok
   1  the device answered with a status outside 200..=299
   2  usage error
   3  INVALID_ARGUMENT or PAYLOAD_TOO_LARGE
   4  DEVICE_OFFLINE
   5  DEVICE_TIMEOUT
   6  DEVICE_DISCONNECTED
   7  METHOD_NOT_SUPPORTED
   8  BROKER_UNAVAILABLE
   9  OVERLOADED
  10  SHUTTING_DOWN
  11  UNAUTHENTICATED or PERMISSION_DENIED
  69  gateway unreachable (transport error)
  70  anything else";

/// A failed call: the gateway's reason (from `ErrorInfo`; falls back to the
/// gRPC code name such as `NOT_FOUND` when absent, and [`reason::UNREACHABLE`]
/// when the gateway could not be reached), the message, and the gRPC code.
///
/// One flat type rather than an enum so that callers can match on the
/// reason string the gateway documents, and so that reasons added to the
/// gateway later still arrive intact.
///
/// Exit codes of the `thingcall` binary ([`CallError::exit_code`]):
/// 0 ok; 1 the device answered with a status outside 200..=299; 2 usage
/// error; 3 `INVALID_ARGUMENT` or `PAYLOAD_TOO_LARGE`; 4 `DEVICE_OFFLINE`;
/// 5 `DEVICE_TIMEOUT`; 6 `DEVICE_DISCONNECTED`; 7 `METHOD_NOT_SUPPORTED`;
/// 8 `BROKER_UNAVAILABLE`; 9 `OVERLOADED`; 10 `SHUTTING_DOWN`;
/// 11 `UNAUTHENTICATED` or `PERMISSION_DENIED`; 69 gateway unreachable
/// (transport error); 70 anything else.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct CallError {
    /// Stable machine-readable cause, e.g. `DEVICE_TIMEOUT`.
    pub reason: String,
    /// Human-readable explanation from the gateway (or the transport).
    pub message: String,
    /// The gRPC status code the error arrived with.
    pub code: Code,
    /// `ErrorInfo.metadata` from the gateway (e.g. whether a timed-out device
    /// had accepted the call); empty when there was none.
    pub metadata: BTreeMap<String, String>,
    /// How long to wait before trying again, from the gateway's
    /// `google.rpc.RetryInfo` (`OVERLOADED`, `SHUTTING_DOWN`).
    pub retry_after: Option<std::time::Duration>,
}

impl CallError {
    /// Builds an error by hand, for failures detected on the client side.
    pub fn new(reason: impl Into<String>, message: impl Into<String>, code: Code) -> Self {
        CallError {
            reason: reason.into(),
            message: message.into(),
            code,
            metadata: BTreeMap::new(),
            retry_after: None,
        }
    }

    /// The gateway could not be reached; `message` says why.
    pub fn unreachable(message: impl Into<String>) -> Self {
        CallError::new(reason::UNREACHABLE, message, Code::Unavailable)
    }

    /// True when the call never got an answer from the gateway, as opposed
    /// to the gateway reporting a failure.
    pub fn is_unreachable(&self) -> bool {
        self.reason == reason::UNREACHABLE
    }

    /// The `thingcall` exit code for this error (see the table on
    /// [`CallError`]); unknown reasons map to [`exit::OTHER`].
    pub fn exit_code(&self) -> u8 {
        match self.kind() {
            Some(r) => r.exit_code(),
            None if self.is_unreachable() => exit::UNREACHABLE,
            None => exit::OTHER,
        }
    }

    /// The row of the gateway's error table this error names, if any
    /// (`None` for [`reason::UNREACHABLE`] and for reasons this client
    /// does not know, such as a bare gRPC code name).
    pub fn kind(&self) -> Option<thingcall_proto::Reason> {
        thingcall_proto::Reason::from_name(&self.reason)
    }
}

impl From<Status> for CallError {
    /// Prefers the gateway's `ErrorInfo`; a status tonic produced locally
    /// from a connection failure becomes [`reason::UNREACHABLE`]; anything
    /// else keeps its gRPC code name as the reason.
    fn from(status: Status) -> Self {
        let code = status.code();
        let mut message = status.message().to_owned();
        if let Some(info) = status
            .get_details_error_info()
            .filter(|info| !info.reason.is_empty())
        {
            return CallError {
                reason: info.reason,
                message: non_empty(message, code),
                code,
                metadata: info.metadata.into_iter().collect(),
                retry_after: status
                    .get_details_retry_info()
                    .and_then(|retry| retry.retry_delay),
            };
        }
        if is_transport_failure(&status) {
            if let Some(source) = status.source() {
                append_chain(&mut message, source);
            }
            return CallError::new(reason::UNREACHABLE, non_empty(message, code), code);
        }
        CallError::new(code_name(code), non_empty(message, code), code)
    }
}

impl From<tonic::transport::Error> for CallError {
    /// A transport error means no gRPC exchange happened at all.
    fn from(err: tonic::transport::Error) -> Self {
        CallError::unreachable(error_chain(&err))
    }
}

/// A status that tonic built on this side of the wire (it has a `source`)
/// with a code it uses for broken connections. Statuses decoded from the
/// gateway's trailers never have a source.
fn is_transport_failure(status: &Status) -> bool {
    status.source().is_some()
        && matches!(
            status.code(),
            Code::Unavailable | Code::Unknown | Code::Cancelled
        )
}

fn non_empty(message: String, code: Code) -> String {
    if message.is_empty() {
        code.description().to_owned()
    } else {
        message
    }
}

/// `err` and its sources joined by ": ", skipping links whose text is
/// already present (wrappers often repeat their source's message).
pub(crate) fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    if let Some(source) = err.source() {
        append_chain(&mut text, source);
    }
    text
}

fn append_chain(text: &mut String, mut err: &(dyn StdError + 'static)) {
    loop {
        let part = err.to_string();
        if !part.is_empty() && !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        match err.source() {
            Some(next) => err = next,
            None => break,
        }
    }
}

/// The canonical upper-case name of a gRPC code (`NOT_FOUND`), used as the
/// reason when the gateway sent no `ErrorInfo`.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use tonic_types::ErrorDetails;

    fn with_reason(code: Code, reason: &str, metadata: HashMap<String, String>) -> Status {
        Status::with_error_details(
            code,
            "the gateway says so",
            ErrorDetails::with_error_info(reason, "thingcall", metadata),
        )
    }

    #[test]
    fn error_info_reason_wins_over_code() {
        let metadata = HashMap::from([("accepted".to_owned(), "true".to_owned())]);
        let err = CallError::from(with_reason(
            Code::DeadlineExceeded,
            "DEVICE_TIMEOUT",
            metadata,
        ));
        assert_eq!(err.reason, "DEVICE_TIMEOUT");
        assert_eq!(err.message, "the gateway says so");
        assert_eq!(err.code, Code::DeadlineExceeded);
        assert_eq!(
            err.metadata.get("accepted").map(String::as_str),
            Some("true")
        );
        assert_eq!(err.exit_code(), exit::DEVICE_TIMEOUT);
        assert_eq!(err.to_string(), "DEVICE_TIMEOUT: the gateway says so");
    }

    #[test]
    fn retry_info_says_when_to_try_again() {
        let busy = thingcall_proto::Reason::Overloaded.status("busy", HashMap::new());
        let err = CallError::from(busy);
        assert_eq!(err.reason, "OVERLOADED");
        assert_eq!(err.retry_after, Some(std::time::Duration::from_secs(1)));
        let slow = with_reason(Code::DeadlineExceeded, "DEVICE_TIMEOUT", HashMap::new());
        assert_eq!(CallError::from(slow).retry_after, None);
    }

    #[test]
    fn each_gateway_reason_maps_to_its_exit_code() {
        let cases = [
            (Code::InvalidArgument, "INVALID_ARGUMENT", 3),
            (Code::InvalidArgument, "PAYLOAD_TOO_LARGE", 3),
            (Code::Unavailable, "DEVICE_OFFLINE", 4),
            (Code::DeadlineExceeded, "DEVICE_TIMEOUT", 5),
            (Code::Aborted, "DEVICE_DISCONNECTED", 6),
            (Code::Unimplemented, "METHOD_NOT_SUPPORTED", 7),
            (Code::Unavailable, "BROKER_UNAVAILABLE", 8),
            (Code::ResourceExhausted, "OVERLOADED", 9),
            (Code::Unavailable, "SHUTTING_DOWN", 10),
            (Code::Unauthenticated, "UNAUTHENTICATED", 11),
            (Code::PermissionDenied, "PERMISSION_DENIED", 11),
            (Code::Internal, "SOMETHING_NEW", 70),
        ];
        for (code, reason, exit_code) in cases {
            let err = CallError::from(with_reason(code, reason, HashMap::new()));
            assert_eq!(err.reason, reason);
            assert_eq!(err.exit_code(), exit_code, "{reason}");
        }
    }

    #[test]
    fn without_details_the_code_name_is_the_reason() {
        let err = CallError::from(Status::not_found("no device demo-9"));
        assert_eq!(err.reason, "NOT_FOUND");
        assert_eq!(err.message, "no device demo-9");
        assert_eq!(err.exit_code(), exit::OTHER);

        // A plain UNAVAILABLE from the server is not a transport failure.
        let err = CallError::from(Status::unavailable("busy"));
        assert_eq!(err.reason, "UNAVAILABLE");
        assert_eq!(err.exit_code(), exit::OTHER);
    }

    #[test]
    fn empty_message_falls_back_to_code_description() {
        let err = CallError::from(Status::new(Code::Internal, ""));
        assert_eq!(err.reason, "INTERNAL");
        assert_eq!(err.message, Code::Internal.description());
    }

    #[test]
    fn locally_built_connection_status_is_unreachable() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let status = Status::from_error(Box::new(tonic::ConnectError(Box::new(io))));
        assert_eq!(status.code(), Code::Unavailable);
        let err = CallError::from(status);
        assert_eq!(err.reason, reason::UNREACHABLE);
        assert!(err.message.contains("refused"), "{}", err.message);
        assert_eq!(err.exit_code(), exit::UNREACHABLE);
        assert!(err.is_unreachable());
    }

    #[test]
    fn exit_code_table() {
        let code = |reason: &str| CallError::new(reason, "m", Code::Unknown).exit_code();
        assert_eq!(code("INVALID_ARGUMENT"), 3);
        assert_eq!(code("PAYLOAD_TOO_LARGE"), 3);
        assert_eq!(code("DEVICE_OFFLINE"), 4);
        assert_eq!(code("DEVICE_TIMEOUT"), 5);
        assert_eq!(code("DEVICE_DISCONNECTED"), 6);
        assert_eq!(code("METHOD_NOT_SUPPORTED"), 7);
        assert_eq!(code("BROKER_UNAVAILABLE"), 8);
        assert_eq!(code("OVERLOADED"), 9);
        assert_eq!(code("SHUTTING_DOWN"), 10);
        assert_eq!(code("UNAUTHENTICATED"), 11);
        assert_eq!(code("PERMISSION_DENIED"), 11);
        assert_eq!(code("UNREACHABLE"), 69);
        assert_eq!(code("DEVICE_NOT_FOUND"), 70);
        assert_eq!(code("NOT_FOUND"), 70);
        assert_eq!(code(""), 70);
    }

    #[test]
    fn help_text_names_each_reason_by_its_exit_code() {
        for r in thingcall_proto::Reason::ALL {
            if r.exit_code() == exit::OTHER {
                continue;
            }
            let line = EXIT_CODES_HELP
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{} ", r.exit_code())))
                .unwrap_or_else(|| panic!("no help line for exit code {}", r.exit_code()));
            assert!(line.contains(r.name()), "{line:?} does not name {r}");
        }
    }

    #[test]
    fn help_text_lists_every_exit_code() {
        for n in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 69, 70] {
            assert!(
                EXIT_CODES_HELP
                    .lines()
                    .any(|l| l.trim_start().starts_with(&format!("{n} "))),
                "exit code {n} missing from help"
            );
        }
    }

    #[test]
    fn chain_skips_repeated_text() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "connect failed: {}", self.0)
            }
        }
        impl StdError for Outer {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&self.0)
            }
        }
        let err = Outer(std::io::Error::other("refused"));
        assert_eq!(error_chain(&err), "connect failed: refused");
    }
}
