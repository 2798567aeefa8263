//! The AWS sample's HTTP API, for callers written against it:
//! `GET /invoke?request=..&method=..&target=..&timeout=3`, always over the
//! seed MQTT contract. Same JSON shapes as the sample, with two deliberate
//! differences: a timeout answers 504 (the sample: 500) and bad input 400
//! (the sample: 500), so callers can tell them apart without parsing.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use thingcall_proto::v1::{Contract, InvokeRequest};
use thingcall_proto::Reason;

use crate::api::http::{extract, ApiError};
use crate::error::Error;
use crate::gateway::Gateway;
use crate::outcome::Answer;
use crate::telemetry::{Caller, Surface};

/// The sample's default when `timeout` is absent, and its range.
const DEFAULT_TIMEOUT_SECS: u64 = 10;
const TIMEOUT_RANGE: std::ops::RangeInclusive<u64> = 1..=60;

/// How the seed `GET /invoke` names its span.
const INVOKE: Surface = Surface {
    span_name: "GET /invoke",
    attributes: &[("http.request.method", "GET"), ("http.route", "/invoke")],
};

/// `GET /invoke`.
pub fn router(core: Arc<Gateway>) -> Router {
    Router::new()
        .route("/invoke", get(invoke))
        .method_not_allowed_fallback(crate::api::http::method_not_allowed)
        .with_state(core)
}

#[derive(Debug, Deserialize)]
struct InvokeQuery {
    request: Option<String>,
    method: Option<String>,
    target: Option<String>,
    timeout: Option<String>,
}

/// Not an `async fn`: the headers are read before the future is made, so a
/// call in flight does not hold the whole request (twice). The query is
/// decoded here, not by an extractor, so that every refusal of it (invalid
/// UTF-8 in any parameter, a parameter twice) answers in the seed's
/// `invalid_parameters` shape; nothing is ever decoded lossily.
fn invoke(State(core): State<Arc<Gateway>>, request: Request) -> impl Future<Output = Response> {
    let started = Instant::now();
    let query = extract::query::<InvokeQuery>(request.uri());
    let access = crate::auth::layer::access(request.extensions());
    let caller =
        Caller::from_headers(core.tracing(), request.headers(), INVOKE, None).with_access(access);
    async move {
        let req = match query.and_then(seed_request) {
            Ok(req) => req,
            Err(e) => return failure(ApiError(e, None), started),
        };
        match core.invoke(req, caller).await {
            Ok(answer) => ok(&answer, started),
            Err(failed) => failure(failed.into(), started),
        }
    }
}

/// The InvokeRequest of a query, or why it is refused.
fn seed_request(q: InvokeQuery) -> Result<InvokeRequest, Error> {
    let missing: Vec<&str> = [
        ("request", &q.request),
        ("method", &q.method),
        ("target", &q.target),
    ]
    .into_iter()
    .filter(|(_, v)| v.as_deref().is_none_or(str::is_empty))
    .map(|(k, _)| k)
    .collect();
    if !missing.is_empty() {
        let msg = format!("missing parameter(s): {}", missing.join(", "));
        return Err(Error::invalid(msg));
    }
    let timeout = match q.timeout.as_deref().map(str::parse::<u64>) {
        None => DEFAULT_TIMEOUT_SECS,
        Some(Ok(t)) if TIMEOUT_RANGE.contains(&t) => t,
        Some(_) => {
            let msg = "timeout must be a whole number of seconds from 1 to 60";
            return Err(Error::invalid(msg));
        }
    };
    Ok(InvokeRequest {
        target: q.target.unwrap_or_default(),
        method: q.method.unwrap_or_default(),
        payload: q.request.unwrap_or_default().into_bytes().into(),
        timeout: Duration::from_secs(timeout).try_into().ok(),
        contract: Contract::Seed as i32,
        ..Default::default()
    })
}

/// The sample's answer to a call the device answered.
fn ok(answer: &Answer, started: Instant) -> Response {
    let elapsed = started.elapsed().as_millis().to_string();
    let response: Value = serde_json::from_slice(&answer.reply.payload)
        .unwrap_or_else(|_| String::from_utf8_lossy(&answer.reply.payload).into());
    Json(json!({"result": "ok", "elapsed": elapsed, "response": response})).into_response()
}

/// The sample's answer shape for a request refused before it was read
/// (authentication).
pub fn refusal(e: Error) -> Response {
    failure(ApiError(e, None), Instant::now())
}

/// The sample's answer shapes for a failure, with the status and headers of
/// the one HTTP error mapping: `timeout` (with `elapsed`), `invalid_parameters`
/// for bad input, and the reason in lower case otherwise. Each also names
/// the `reason` and, when a call was made, its `requestId`.
fn failure(err: ApiError, started: Instant) -> Response {
    let elapsed = started.elapsed().as_millis().to_string();
    let reason = err.0.reason();
    let mut body = match reason {
        Reason::DeviceTimeout => json!({"result": "timeout", "elapsed": elapsed}),
        Reason::InvalidArgument | Reason::PayloadTooLarge => {
            json!({"result": "invalid_parameters", "response": err.0.to_string()})
        }
        _ => json!({
            "result": reason.name().to_ascii_lowercase(),
            "elapsed": elapsed,
            "response": err.0.to_string(),
        }),
    };
    body["reason"] = reason.name().into();
    if let Some(id) = err.1 {
        body["requestId"] = id.to_string().into();
    }
    err.respond_with(body)
}
