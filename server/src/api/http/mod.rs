//! HTTP/JSON adapter: the same core calls as gRPC, for curl, API Gateway and
//! load-balancer integrations. Routes:
//!
//! - `POST /v1/devices/{target}/methods/{method}`: Invoke
//! - `GET /v1/devices`, `GET /v1/devices/{target}`: ListDevices, GetDevice
//! - `GET /v1/devices/{target}/events`, `GET /v1/events?target=`: WatchDevice as Server-Sent Events
//! - `POST /v1/invoke-many`: InvokeMany as NDJSON (or Server-Sent Events)
//! - `GET /metrics`: Prometheus text, or OpenMetrics with trace-id exemplars
//!   when `Accept` asks for `application/openmetrics-text`
//! - `GET /livez`, `GET /readyz`: the gRPC health statuses for HTTP-only
//!   checks (an ALB's HTTP/1 target group, an `httpGet` probe)

pub mod error;
pub mod extract;
mod fanout;
pub mod json;
mod sse;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::auth::Access;
use crate::error::Error;
use crate::gateway::Gateway;
use crate::metrics::Format;
use crate::telemetry::{Caller, Surface};
pub use error::ApiError;
use extract::{Path, Query};
#[doc(hidden)]
pub use fanout::parse as invoke_many_request;

/// How an Invoke over HTTP/JSON names its span.
const INVOKE: Surface = Surface {
    span_name: "POST /v1/devices/{target}/methods/{method}",
    attributes: &[
        ("http.request.method", "POST"),
        ("http.route", "/v1/devices/{target}/methods/{method}"),
    ],
};

/// The HTTP/JSON routes over `core`.
pub fn router(core: Arc<Gateway>) -> Router {
    Router::new()
        .route("/v1/devices/{target}/methods/{method}", post(invoke))
        .route("/v1/devices", get(list_devices))
        .route("/v1/devices/{target}", get(get_device))
        .route("/v1/devices/{target}/events", get(sse::device_events))
        .route("/v1/events", get(sse::events))
        .route("/v1/invoke-many", post(fanout::invoke_many))
        .route("/metrics", get(metrics))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(core)
}

/// Reads a request body up to `limit` bytes; more is `PAYLOAD_TOO_LARGE`,
/// and a body that breaks off (the caller went away, a bad chunk) is
/// `INVALID_ARGUMENT`, not "too large".
pub async fn read_body(body: Body, limit: usize) -> Result<bytes::Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let e = e.into_inner();
        let error = if e.is::<http_body_util::LengthLimitError>() {
            Error::PayloadTooLarge {
                size: limit + 1,
                limit,
            }
        } else {
            Error::invalid(format!("the request body could not be read: {e}"))
        };
        ApiError(error, None)
    })
}

/// Not an `async fn`: the headers are read before the future is made, so it
/// holds the body and the call only, not the whole request (twice) for as
/// long as the call lives.
fn invoke(
    State(core): State<Arc<Gateway>>,
    Path((target, method)): Path<(String, String)>,
    request: Request,
) -> impl Future<Output = Result<Response, ApiError>> {
    let started = Instant::now();
    // The whole request rather than a `HeaderMap` extractor, which would
    // copy every header of every call.
    let (parts, body) = request.into_parts();
    let access = crate::auth::layer::access(&parts.extensions);
    let json = extract::json_content_type(&parts.headers);
    let caller =
        Caller::from_headers(core.tracing(), &parts.headers, INVOKE, None).with_access(access);
    async move {
        if !json {
            let msg = "the body must be JSON (content-type application/json, or none)";
            return Err(Error::invalid(msg).into());
        }
        // Room for base64 (4/3) and the JSON around the payload.
        let limit = core.config().max_payload / 3 * 4 + 64 * 1024;
        let body = read_body(body, limit).await?;
        let req = json::invoke_request(target, method, &body)?;
        drop(body);
        let answer = core.invoke(req, caller).await?;
        let mut response = Json(json::answer(&answer)).into_response();
        let timing = server_timing(&answer, started.elapsed());
        if let Ok(v) = HeaderValue::from_str(&timing) {
            response.headers_mut().insert("server-timing", v);
        }
        Ok(response)
    }
}

/// `Server-Timing` of an answered call, in milliseconds: `device` (the
/// device's own `exec-us`, when it sent one), `network` (the rest of the
/// MQTT round trip: broker and links, both ways), `gateway` (this handler's
/// own time around the call) and `total` (receipt to reply).
fn server_timing(answer: &crate::gateway::Answer, handler: Duration) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let total = answer.elapsed;
    let gateway = handler.saturating_sub(total);
    match answer.reply.exec_us.map(Duration::from_micros) {
        Some(device) => format!(
            "gateway;dur={:.3}, network;dur={:.3}, device;dur={:.3}, total;dur={:.3}",
            ms(gateway),
            ms(total.saturating_sub(device)),
            ms(device),
            ms(total)
        ),
        None => format!("gateway;dur={:.3}, total;dur={:.3}", ms(gateway), ms(total)),
    }
}

/// Liveness: 200 while the process serves requests, like the gRPC health
/// check of service `""`.
async fn livez() -> &'static str {
    "live\n"
}

/// Readiness: 200 while the MQTT session is up and the gateway is not
/// draining, 503 otherwise, like the gRPC health of
/// `thingcall.v1.DeviceGateway`: a balancer sends calls only where they
/// can reach a device.
async fn readyz(State(core): State<Arc<Gateway>>) -> Response {
    use axum::http::StatusCode;
    if core.is_draining() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: shutting down\n",
        )
            .into_response()
    } else if !*core.connected().borrow() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no broker session\n",
        )
            .into_response()
    } else {
        (StatusCode::OK, "ready\n").into_response()
    }
}

/// The core's metrics as Prometheus text, or as OpenMetrics (with
/// trace-id exemplars) when the scraper's `Accept` asks for it.
async fn metrics(State(core): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    use axum::http::header::{ACCEPT, CONTENT_TYPE, VARY};
    let format = Format::negotiate(
        headers
            .get_all(ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    );
    (
        [(CONTENT_TYPE, format.content_type()), (VARY, "accept")],
        core.metrics_text_as(format),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    #[serde(default)]
    target: String,
    #[serde(default)]
    page_size: i32,
    #[serde(default)]
    page_token: String,
}

async fn list_devices(
    State(core): State<Arc<Gateway>>,
    access: Access,
    Query(q): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let page = core.list_devices(&access, &q.target, q.page_size, &q.page_token)?;
    Ok(Json(serde_json::json!({
        "devices": page.devices.iter().map(json::device).collect::<Vec<_>>(),
        "nextPageToken": page.next_page_token,
    })))
}

async fn get_device(
    State(core): State<Arc<Gateway>>,
    access: Access,
    Path(target): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(json::device(&core.get_device(&access, &target)?)))
}

/// Unknown paths: a JSON 404 rather than a gRPC "unimplemented".
pub async fn not_found() -> Response {
    let body = serde_json::json!({"error": {"code": 404, "reason": "NOT_FOUND", "message": "no such route"}});
    (axum::http::StatusCode::NOT_FOUND, Json(body)).into_response()
}

/// A known route called with the wrong method: the same JSON error shape
/// as every other refusal (axum alone answers with an empty body), and
/// nothing reaches the core.
pub async fn method_not_allowed() -> Response {
    let body = serde_json::json!({"error": {"code": 405, "reason": "METHOD_NOT_ALLOWED", "message": "this route does not take that HTTP method"}});
    (axum::http::StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call in flight holds this future (see the core's
    /// `call_futures_stay_small`): it must not carry the request with it.
    #[test]
    fn invoke_future_stays_small() {
        let g = crate::gateway::tests::test_gateway();
        let request = Request::new(Body::empty());
        let f = invoke(State(g), Path(("d".into(), "m".into())), request);
        let size = std::mem::size_of_val(&f);
        assert!(
            size <= 1152,
            "the HTTP invoke handler's future is {size} bytes"
        );
    }
}
