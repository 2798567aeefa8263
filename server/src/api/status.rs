//! The one place core errors become gRPC statuses.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::Error;

/// Error domain in `google.rpc.ErrorInfo`.
pub const DOMAIN: &str = "thingcall";

/// The gRPC code of each reason (DESIGN.md's error table).
pub fn code(e: &Error) -> Code {
    match e {
        Error::InvalidArgument(_) | Error::PayloadTooLarge { .. } => Code::InvalidArgument,
        Error::DeviceOffline(_) | Error::BrokerUnavailable | Error::ShuttingDown => {
            Code::Unavailable
        }
        Error::DeviceNotFound(_) => Code::NotFound,
        Error::MethodNotSupported { .. } => Code::Unimplemented,
        Error::DeviceTimeout { .. } => Code::DeadlineExceeded,
        Error::DeviceDisconnected(_) => Code::Aborted,
        Error::Overloaded(_) => Code::ResourceExhausted,
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        let mut meta = std::collections::HashMap::new();
        match &e {
            Error::DeviceOffline(d) | Error::DeviceNotFound(d) | Error::DeviceDisconnected(d) => {
                meta.insert("device".to_owned(), d.clone());
            }
            Error::MethodNotSupported { device, method } => {
                meta.insert("device".to_owned(), device.clone());
                meta.insert("method".to_owned(), method.clone());
            }
            Error::DeviceTimeout { accepted, .. } => {
                meta.insert("accepted".to_owned(), accepted.to_string());
            }
            Error::PayloadTooLarge { limit, .. } => {
                meta.insert("limit".to_owned(), limit.to_string());
            }
            _ => {}
        }
        let details = ErrorDetails::with_error_info(e.reason(), DOMAIN, meta);
        Status::with_error_details(code(&e), e.to_string(), details)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_carries_reason_and_domain() {
        let s = Status::from(Error::DeviceOffline("d1".into()));
        assert_eq!(s.code(), Code::Unavailable);
        let info = s.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "DEVICE_OFFLINE");
        assert_eq!(info.domain, "thingcall");
        assert_eq!(info.metadata.get("device").map(String::as_str), Some("d1"));
    }
}
