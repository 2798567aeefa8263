//! The one place core errors become gRPC statuses.

use std::collections::HashMap;

use tonic::{Code, Status};

use crate::error::Error;
use crate::gateway::Failed;

pub use thingcall_proto::reason::DOMAIN;

/// The gRPC code of `e`, from the shared error table.
pub fn code(e: &Error) -> Code {
    e.reason().grpc_code()
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        status(&e, error_info(&e))
    }
}

/// A failed call also names its request id in the ErrorInfo metadata.
impl From<Failed> for Status {
    fn from(f: Failed) -> Self {
        let mut meta = error_info(&f.error);
        meta.insert("requestId".to_owned(), f.request_id.to_string());
        status(&f.error, meta)
    }
}

/// The status of `e` with ErrorInfo `meta`, in the table's one shape
/// ([`thingcall_proto::Reason::status`], which the codec's decode failures
/// share).
fn status(e: &Error, meta: HashMap<String, String>) -> Status {
    e.reason().status(e.to_string(), meta)
}

/// The ErrorInfo metadata of `e`: the device, method or limit it concerns.
fn error_info(e: &Error) -> HashMap<String, String> {
    let mut meta = HashMap::new();
    match e {
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
        Error::DeviceOverloaded { device, limit } => {
            meta.insert("device".to_owned(), device.clone());
            meta.insert("limit".to_owned(), limit.to_string());
        }
        _ => {}
    }
    meta
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::StatusExt;

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
