//! The one place core errors become HTTP responses:
//! `{"error":{"code","reason","message","requestId"}}` (the id when a call
//! failed) with the status of DESIGN.md's
//! error table, and `Retry-After` on 429.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::calls::CallId;
use crate::error::Error;
use crate::gateway::Failed;

/// Seconds a client should wait after `OVERLOADED` or `SHUTTING_DOWN`
/// before trying again (a draining gateway's load balancer will have moved
/// it to another replica by then).
const RETRY_AFTER_SECS: &str = "1";

/// HTTP status of each reason.
pub fn status(e: &Error) -> StatusCode {
    match e {
        Error::InvalidArgument(_) => StatusCode::BAD_REQUEST,
        Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        Error::DeviceOffline(_) | Error::DeviceNotFound(_) => StatusCode::NOT_FOUND,
        Error::MethodNotSupported { .. } => StatusCode::NOT_IMPLEMENTED,
        Error::DeviceTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        Error::DeviceDisconnected(_) => StatusCode::BAD_GATEWAY,
        Error::BrokerUnavailable | Error::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        Error::Overloaded(_) => StatusCode::TOO_MANY_REQUESTS,
    }
}

/// A core error as an HTTP response, with the call's request id when the
/// error ended a call.
#[derive(Debug)]
pub struct ApiError(pub Error, pub Option<CallId>);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e, None)
    }
}

impl From<Failed> for ApiError {
    fn from(f: Failed) -> Self {
        ApiError(f.error, Some(f.request_id))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = status(&self.0);
        let mut error = json!({
            "code": code.as_u16(),
            "reason": self.0.reason(),
            "message": self.0.to_string(),
        });
        if let Some(id) = self.1 {
            error["requestId"] = uuid::Uuid::from_u128(id).to_string().into();
        }
        let body = json!({ "error": error });
        let mut resp = (code, Json(body)).into_response();
        if matches!(self.0, Error::Overloaded(_) | Error::ShuttingDown) {
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        assert_eq!(status(&Error::invalid("x")), 400);
        assert_eq!(status(&Error::PayloadTooLarge { size: 2, limit: 1 }), 413);
        assert_eq!(status(&Error::DeviceOffline("d".into())), 404);
        assert_eq!(
            status(&Error::MethodNotSupported {
                device: "d".into(),
                method: "m".into()
            }),
            501
        );
        assert_eq!(
            status(&Error::DeviceTimeout {
                after: Default::default(),
                accepted: false
            }),
            504
        );
        assert_eq!(status(&Error::DeviceDisconnected("d".into())), 502);
        assert_eq!(status(&Error::BrokerUnavailable), 503);
        assert_eq!(status(&Error::ShuttingDown), 503);
        let r = ApiError(Error::Overloaded(5), None).into_response();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        let r = ApiError(Error::ShuttingDown, None).into_response();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    }
}
