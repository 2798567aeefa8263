//! The one place core errors become HTTP responses: the status of the
//! shared error table (`thingcall_proto::Reason`), `Retry-After` for
//! `OVERLOADED` and `SHUTTING_DOWN`, and the body
//! `{"error":{"code","reason","message","requestId"}}` (the id when a call
//! failed); the seed API gives its own body shape to the same mapping.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::error::Error;
use crate::outcome::{CallId, Failed};

/// HTTP status of `e`, from the shared error table.
pub fn status(e: &Error) -> StatusCode {
    StatusCode::from_u16(e.reason().http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
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

impl ApiError {
    /// The response for this error with `body`: the status of the error
    /// table and, for reasons that say "try later", `Retry-After`. Every
    /// HTTP surface answers errors through here, whatever its body's shape.
    pub fn respond_with(&self, body: Value) -> Response {
        let reason = self.0.reason();
        let mut resp = (status(&self.0), Json(body)).into_response();
        if let Some(secs) = reason.retry_after_secs() {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({
            "code": status(&self.0).as_u16(),
            "reason": self.0.reason().name(),
            "message": self.0.to_string(),
        });
        if let Some(id) = self.1 {
            error["requestId"] = id.to_string().into();
        }
        self.respond_with(json!({ "error": error }))
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
