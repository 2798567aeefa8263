//! `POST /v1/invoke-many`: InvokeMany over HTTP/JSON. The body is the
//! proto's `InvokeManyRequest` in JSON (camelCase, durations as `"5s"`,
//! the payload as JSON or `payloadBase64`, enums by short name); the
//! answer streams one JSON object per line (`application/x-ndjson`):
//! `{"result": {...}}` per device, then `{"summary": {...}}`. With
//! `Accept: text/event-stream` the same objects come as Server-Sent
//! Events named `result` and `summary`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use thingcall_proto::v1::{
    invoke_many_event::Kind, AbortPolicy, DeviceResult, InvokeManyEvent, InvokeManyRequest,
    InvokeManySummary, OfflinePolicy, Ramp,
};
use tokio_stream::StreamExt;

use super::json::{self, fmt_proto_duration};
use super::{extract, read_body, ApiError};
use crate::error::Error;
use crate::gateway::Gateway;
use crate::telemetry::{Caller, Surface};

/// How each call of an InvokeMany over HTTP/JSON names its span.
const INVOKE_MANY: Surface = Surface {
    span_name: "POST /v1/invoke-many",
    attributes: &[
        ("http.request.method", "POST"),
        ("http.route", "/v1/invoke-many"),
    ],
};

/// A heartbeat comment keeps proxies from closing a quiet stream.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// The request body; only `method` and one of `targets`/`pattern` are needed.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ManyBody {
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    pattern: String,
    #[serde(default)]
    method: String,
    payload: Option<Box<serde_json::value::RawValue>>,
    payload_base64: Option<String>,
    timeout: Option<String>,
    connect_timeout: Option<String>,
    content_type: Option<String>,
    #[serde(default)]
    metadata: HashMap<String, String>,
    contract: Option<String>,
    offline: Option<String>,
    #[serde(default)]
    max_concurrency: u32,
    #[serde(default)]
    rate: f64,
    ramp: Option<RampBody>,
    abort: Option<AbortBody>,
    idempotency_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RampBody {
    start_rate: f64,
    factor: f64,
    step_successes: u32,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AbortBody {
    failure_ratio: f64,
    #[serde(default)]
    min_results: u32,
}

/// The body as the core's request (public for the fuzzing rig).
pub fn parse(body: &[u8]) -> Result<InvokeManyRequest, Error> {
    let b: ManyBody =
        serde_json::from_slice(body).map_err(|e| Error::invalid(format!("request body: {e}")))?;
    let (payload, default_type) = json::payload(b.payload, b.payload_base64)?;
    let offline = match b.offline.as_deref() {
        None | Some("") => OfflinePolicy::Unspecified,
        Some(o) => {
            OfflinePolicy::from_str_name(&format!("OFFLINE_POLICY_{}", o.to_ascii_uppercase()))
                .ok_or_else(|| {
                    Error::invalid(format!("offline {o:?} is not report, skip or wait"))
                })?
        }
    };
    let duration = |what, v: Option<String>| v.map(|t| json::duration(what, &t)).transpose();
    Ok(InvokeManyRequest {
        targets: b.targets,
        pattern: b.pattern,
        method: b.method,
        payload: payload.into(),
        timeout: duration("timeout", b.timeout)?,
        connect_timeout: duration("connectTimeout", b.connect_timeout)?,
        content_type: b.content_type.unwrap_or_else(|| default_type.to_owned()),
        metadata: b.metadata,
        contract: json::contract(b.contract.as_deref())? as i32,
        offline: offline as i32,
        max_concurrency: b.max_concurrency,
        rate: b.rate,
        ramp: b.ramp.map(|r| Ramp {
            start_rate: r.start_rate,
            factor: r.factor,
            step_successes: r.step_successes,
        }),
        abort: b.abort.map(|a| AbortPolicy {
            failure_ratio: a.failure_ratio,
            min_results: a.min_results,
        }),
        idempotency_key: b.idempotency_key.unwrap_or_default(),
    })
}

/// The route's handler: checks the request whole (a bad one is answered
/// with the JSON error body and publishes nothing), then streams.
pub(super) async fn invoke_many(
    State(core): State<Arc<Gateway>>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body): (_, Body) = request.into_parts();
    let access = crate::auth::layer::access(&parts.extensions);
    if !extract::json_content_type(&parts.headers) {
        let msg = "the body must be JSON (content-type application/json, or none)";
        return Err(Error::invalid(msg).into());
    }
    let sse = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    let caller =
        Caller::from_headers(core.tracing(), &parts.headers, INVOKE_MANY, None).with_access(access);
    // The targets list may be long: room for 100000 ids of 128 bytes.
    let limit = core.config().max_payload / 3 * 4 + 16 * 1024 * 1024;
    let body = read_body(body, limit).await?;
    let events = core.invoke_many(parse(&body)?, caller)?;
    drop(body);
    if sse {
        let events = events.map(|ev| {
            let (name, body) = event(&ev);
            Ok::<_, Infallible>(Event::default().event(name).data(body.to_string()))
        });
        return Ok(Sse::new(events)
            .keep_alive(KeepAlive::new().interval(HEARTBEAT))
            .into_response());
    }
    let lines = events.map(|ev| {
        let (name, body) = event(&ev);
        let mut line = json!({ name: body }).to_string();
        line.push('\n');
        Ok::<_, Infallible>(line)
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            // Proxies (nginx) would otherwise hold the lines back.
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(lines),
    )
        .into_response())
}

/// The name and JSON of one event.
fn event(ev: &InvokeManyEvent) -> (&'static str, Value) {
    match &ev.kind {
        Some(Kind::Result(r)) => ("result", result(r)),
        Some(Kind::Summary(s)) => ("summary", summary(s)),
        None => ("unknown", Value::Null),
    }
}

fn result(r: &DeviceResult) -> Value {
    let mut obj = Map::new();
    obj.insert("device".into(), r.device.clone().into());
    obj.insert("outcome".into(), r.outcome.clone().into());
    if let Some(resp) = &r.response {
        obj.insert("response".into(), json::response(resp));
    }
    if !r.message.is_empty() {
        obj.insert("message".into(), r.message.clone().into());
    }
    obj.insert("requestId".into(), r.request_id.clone().into());
    if let Some(d) = &r.elapsed {
        obj.insert("elapsed".into(), fmt_proto_duration(d).into());
    }
    Value::Object(obj)
}

fn summary(s: &InvokeManySummary) -> Value {
    let d = |d: &Option<prost_types::Duration>| d.as_ref().map(fmt_proto_duration);
    json!({
        "targets": s.targets,
        "attempted": s.attempted,
        "succeeded": s.succeeded,
        "failed": s.failed,
        "outcomes": s.outcomes,
        "p50": d(&s.p50),
        "p99": d(&s.p99),
        "notAttempted": s.not_attempted,
        "notAttemptedDevices": s.not_attempted_devices.iter()
            .map(|n| json!({"device": n.device, "reason": n.reason}))
            .collect::<Vec<_>>(),
        "ended": s.ended,
        "elapsed": d(&s.elapsed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_map_to_the_request() {
        let r = parse(
            br#"{"pattern":"pump-*","method":"reboot","payload":{"a":1},"timeout":"2s",
                "offline":"skip","maxConcurrency":5,"rate":10,
                "ramp":{"startRate":1,"factor":2,"stepSuccesses":3},
                "abort":{"failureRatio":0.25,"minResults":4},"idempotencyKey":"k"}"#,
        )
        .unwrap();
        assert_eq!(r.pattern, "pump-*");
        assert_eq!(&r.payload[..], br#"{"a":1}"#);
        assert_eq!(r.content_type, "application/json");
        assert_eq!(r.timeout.unwrap().seconds, 2);
        assert_eq!(r.offline, OfflinePolicy::Skip as i32);
        assert_eq!((r.max_concurrency, r.rate), (5, 10.0));
        assert_eq!(r.ramp.unwrap().step_successes, 3);
        assert_eq!(r.abort.unwrap().min_results, 4);
        assert_eq!(r.idempotency_key, "k");
    }

    #[test]
    fn bad_bodies_are_invalid_argument() {
        for bad in [
            &b"{"[..],
            br#"{"method":"m","nope":1}"#,
            br#"{"method":"m","offline":"sometimes"}"#,
            br#"{"method":"m","rate":"fast"}"#,
            br#"{"method":"m","ramp":{"factor":2}}"#,
            br#"{"method":"m","timeout":"soon"}"#,
            br#"{"method":"m","payload":1,"payloadBase64":"AA=="}"#,
        ] {
            let e = parse(bad).unwrap_err();
            assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
        }
    }
}
