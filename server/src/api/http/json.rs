//! JSON shapes of the HTTP API, following the proto3 JSON mapping (camelCase
//! names, durations as `"0.004s"`, timestamps as RFC 3339, bytes as
//! base64), except that payloads are carried as JSON when they are JSON.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use thingcall_proto::v1::{self, device_event::Kind, Contract, InvokeRequest};

use crate::error::Error;
use crate::gateway::Answer;

/// Body of `POST /v1/devices/{target}/methods/{method}`; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InvokeBody {
    /// As the caller wrote it: a device gets the caller's exact JSON, never
    /// a number re-rounded through f64 (`5e44`, `12345678901234567890123`).
    payload: Option<Box<serde_json::value::RawValue>>,
    payload_base64: Option<String>,
    timeout: Option<String>,
    connect_timeout: Option<String>,
    idempotency_key: Option<String>,
    content_type: Option<String>,
    #[serde(default)]
    metadata: HashMap<String, String>,
    contract: Option<String>,
}

/// Turns the path and body into the core's request.
pub fn invoke_request(target: String, method: String, body: &[u8]) -> Result<InvokeRequest, Error> {
    let body: InvokeBody = if body.iter().all(u8::is_ascii_whitespace) {
        InvokeBody::default()
    } else {
        serde_json::from_slice(body).map_err(|e| Error::invalid(format!("request body: {e}")))?
    };
    let (payload, default_type) = payload(body.payload, body.payload_base64)?;
    let contract = contract(body.contract.as_deref())?;
    Ok(InvokeRequest {
        target,
        method,
        payload: payload.into(),
        timeout: body.timeout.map(|t| duration("timeout", &t)).transpose()?,
        connect_timeout: body
            .connect_timeout
            .map(|t| duration("connectTimeout", &t))
            .transpose()?,
        content_type: body.content_type.unwrap_or_else(|| default_type.to_owned()),
        idempotency_key: body.idempotency_key.unwrap_or_default(),
        metadata: body.metadata,
        contract: contract as i32,
    })
}

/// A body's `payload` (JSON, kept as written) or `payloadBase64`, and the
/// content type it implies.
pub fn payload(
    json: Option<Box<serde_json::value::RawValue>>,
    base64: Option<String>,
) -> Result<(Vec<u8>, &'static str), Error> {
    // `"payload": null` is no payload, as for every optional field.
    let json = json.filter(|v| v.get() != "null");
    Ok(match (json, base64) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid("give payload or payloadBase64, not both"))
        }
        (Some(v), None) => {
            // Kept raw, yet held to what a parse accepts, as before: no lone
            // surrogate (`"\ud800"`), no number past f64 (`1e400`).
            serde_json::from_str::<Value>(v.get())
                .map_err(|e| Error::invalid(format!("payload: {e}")))?;
            (v.get().as_bytes().to_vec(), "application/json")
        }
        (None, Some(b)) => (
            B64.decode(b)
                .map_err(|e| Error::invalid(format!("payloadBase64: {e}")))?,
            "",
        ),
        (None, None) => (Vec::new(), ""),
    })
}

/// A body's `contract`: `native`, `seed`, or none for the gateway's default.
pub fn contract(name: Option<&str>) -> Result<Contract, Error> {
    match name {
        None | Some("") => Ok(Contract::Unspecified),
        Some(c) => Contract::from_str_name(&format!("CONTRACT_{}", c.to_ascii_uppercase()))
            .ok_or_else(|| Error::invalid(format!("contract {c:?} is not native or seed"))),
    }
}

/// Parses a duration: proto JSON (`"5s"`, `"0.250s"`) or humantime (`"250ms"`, `"1m"`).
pub fn duration(what: &str, s: &str) -> Result<prost_types::Duration, Error> {
    let bad = || {
        Error::invalid(format!(
            "{what} {s:?} is not a duration like \"5s\" or \"250ms\""
        ))
    };
    let t = s.trim();
    if let Some(secs) = t.strip_suffix('s').filter(|n| n.starts_with('-')) {
        // Negative: well-formed, and refused by the core's validation.
        let v: f64 = secs.parse().map_err(|_| bad())?;
        return Ok(prost_types::Duration {
            seconds: v.trunc() as i64,
            nanos: (v.fract() * 1e9) as i32,
        });
    }
    // `try_from`: a number of seconds past what a `Duration` holds
    // ("1e20s") is refused, not a panic of the handler.
    let secs = t.strip_suffix('s').and_then(|n| n.parse::<f64>().ok());
    let d = match secs.and_then(|v| Duration::try_from_secs_f64(v).ok()) {
        Some(d) => d,
        None => humantime::parse_duration(t).map_err(|_| bad())?,
    };
    d.try_into().map_err(|_| bad())
}

/// Formats a duration the proto3 JSON way: `"0.004210s"`.
pub fn fmt_duration(d: Duration) -> String {
    let nanos = d.subsec_nanos();
    match nanos {
        0 => format!("{}s", d.as_secs()),
        n if n % 1_000_000 == 0 => format!("{}.{:03}s", d.as_secs(), n / 1_000_000),
        n if n % 1_000 == 0 => format!("{}.{:06}s", d.as_secs(), n / 1_000),
        n => format!("{}.{:09}s", d.as_secs(), n),
    }
}

pub(super) fn fmt_proto_duration(d: &prost_types::Duration) -> String {
    fmt_duration(Duration::try_from(*d).unwrap_or_default())
}

fn fmt_time(t: &prost_types::Timestamp) -> Value {
    SystemTime::try_from(*t)
        .map(|t| Value::String(humantime::format_rfc3339_millis(t).to_string()))
        .unwrap_or(Value::Null)
}

/// Whether a reply should be shown as JSON.
fn is_json(content_type: Option<&str>, payload: &[u8]) -> Option<Value> {
    match content_type {
        Some(ct) if !ct.is_empty() && !ct.contains("json") => None,
        _ => serde_json::from_slice(payload).ok(),
    }
}

/// The device's payload as `"payload": <JSON>` when it is JSON, else as
/// `"payloadBase64"`.
fn put_payload(obj: &mut Map<String, Value>, content_type: Option<&str>, payload: &[u8]) {
    match is_json(content_type, payload) {
        Some(v) => obj.insert("payload".into(), v),
        None => obj.insert("payloadBase64".into(), B64.encode(payload).into()),
    };
}

/// The JSON of a successful Invoke.
pub fn answer(a: &Answer) -> Value {
    let r = &a.reply;
    answered(
        r.status,
        r.content_type.as_deref(),
        &r.payload,
        a.request_id.to_string(),
        a.elapsed,
        r.exec_us.map(Duration::from_micros),
    )
}

/// The JSON of a device's answer as the API carries it (`InvokeResponse`).
pub fn response(r: &v1::InvokeResponse) -> Value {
    let d = |d: &Option<prost_types::Duration>| d.and_then(|d| Duration::try_from(d).ok());
    answered(
        r.status,
        Some(r.content_type.as_str()).filter(|c| !c.is_empty()),
        &r.payload,
        r.request_id.clone(),
        d(&r.elapsed).unwrap_or_default(),
        d(&r.device_time),
    )
}

fn answered(
    status: i32,
    content_type: Option<&str>,
    payload: &[u8],
    request_id: String,
    elapsed: Duration,
    device_time: Option<Duration>,
) -> Value {
    let mut obj = Map::new();
    obj.insert("status".into(), status.into());
    put_payload(&mut obj, content_type, payload);
    obj.insert(
        "contentType".into(),
        content_type.unwrap_or_default().into(),
    );
    obj.insert("requestId".into(), request_id.into());
    obj.insert("elapsed".into(), fmt_duration(elapsed).into());
    if let Some(d) = device_time {
        obj.insert("deviceTime".into(), fmt_duration(d).into());
    }
    Value::Object(obj)
}

/// The JSON of a device.
pub fn device(d: &v1::Device) -> Value {
    json!({
        "id": d.id,
        "online": d.online,
        "methods": d.methods,
        "since": d.since.as_ref().map(fmt_time).unwrap_or(Value::Null),
        "session": d.session,
    })
}

/// The SSE event name and JSON of a watch event.
pub fn event(ev: &v1::DeviceEvent) -> (&'static str, Value) {
    let (name, body) = match &ev.kind {
        Some(Kind::Presence(d)) => ("presence", device(d)),
        Some(Kind::Synced(s)) => ("synced", json!({"devices": s.devices})),
        Some(Kind::Invocation(o)) => (
            "invocation",
            json!({
                "method": o.method,
                "requestId": o.request_id,
                "outcome": o.outcome,
                "status": o.status,
                "elapsed": o.elapsed.as_ref().map(fmt_proto_duration),
            }),
        ),
        Some(Kind::Lagged(l)) => ("lagged", json!({"dropped": l.dropped.to_string()})),
        Some(Kind::Closing(c)) => ("closing", json!({"reason": c.reason})),
        Some(Kind::Event(m)) => {
            let mut obj = Map::new();
            obj.insert("name".into(), m.name.clone().into());
            put_payload(&mut obj, Some(m.content_type.as_str()), &m.payload);
            obj.insert("contentType".into(), m.content_type.clone().into());
            ("event", Value::Object(obj))
        }
        None => ("unknown", Value::Null),
    };
    let mut obj = Map::new();
    if !ev.device.is_empty() {
        obj.insert("device".into(), ev.device.clone().into());
    }
    obj.insert(
        "time".into(),
        ev.time.as_ref().map(fmt_time).unwrap_or(Value::Null),
    );
    obj.insert(name.into(), body);
    (name, Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;
    use thingcall_proto::Reason;

    #[test]
    fn durations() {
        assert_eq!(
            duration("t", "5s").unwrap(),
            prost_types::Duration {
                seconds: 5,
                nanos: 0
            }
        );
        assert_eq!(
            duration("t", "0.25s").unwrap(),
            prost_types::Duration {
                seconds: 0,
                nanos: 250_000_000
            }
        );
        assert_eq!(
            duration("t", "250ms").unwrap(),
            prost_types::Duration {
                seconds: 0,
                nanos: 250_000_000
            }
        );
        assert!(duration("t", "-1s").unwrap().seconds < 0);
        assert!(duration("t", "soon").is_err());
        // These panicked the handler (found writing the http_json fuzz target).
        for huge in ["1e20s", "18446744073709551616s", "1.8e308s"] {
            assert!(duration("t", huge).is_err(), "{huge}");
        }
        assert_eq!(fmt_duration(Duration::from_micros(4210)), "0.004210s");
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1.500s");
        assert_eq!(fmt_duration(Duration::from_secs(3)), "3s");
    }

    #[test]
    fn bodies() {
        let r = invoke_request(
            "d".into(),
            "m".into(),
            br#"{"payload":{"hello":"world"},"timeout":"5s"}"#,
        )
        .unwrap();
        assert_eq!(&r.payload[..], br#"{"hello":"world"}"#);
        assert_eq!(r.content_type, "application/json");
        assert_eq!(r.timeout.unwrap().seconds, 5);
        // The caller's JSON as written: no number re-rounded through f64
        // (fuzzing found `5e44` arriving as another number), no reformatting.
        for payload in [
            "5e44",
            "12345678901234567890123",
            "21.666666666666600",
            r#"{"a" : [1, 2.50]}"#,
        ] {
            let body = format!(r#"{{"payload": {payload} }}"#);
            let r = invoke_request("d".into(), "m".into(), body.as_bytes()).unwrap();
            assert_eq!(r.payload, payload.as_bytes(), "{payload}");
        }
        let r = invoke_request(
            "d".into(),
            "m".into(),
            br#"{"payload":null,"payloadBase64":"AA=="}"#,
        )
        .unwrap();
        assert_eq!(&r.payload[..], [0]);
        let r = invoke_request("d".into(), "m".into(), br#"{"payload":null}"#).unwrap();
        assert!(r.payload.is_empty() && r.content_type.is_empty());
        let r = invoke_request("d".into(), "m".into(), br#"{"payloadBase64":"AAEC"}"#).unwrap();
        assert_eq!(&r.payload[..], [0, 1, 2]);
        let r = invoke_request("d".into(), "m".into(), b"").unwrap();
        assert!(r.payload.is_empty());
        for bad in [
            &br#"{"payload":1,"payloadBase64":"AA=="}"#[..],
            b"{",
            br#"{"nope":1}"#,
            br#"{"payloadBase64":"!"}"#,
            br#"{"payload":"\ud800"}"#,
            br#"{"payload":1e400}"#,
        ] {
            assert_eq!(
                invoke_request("d".into(), "m".into(), bad)
                    .unwrap_err()
                    .reason(),
                Reason::InvalidArgument
            );
        }
        let r = invoke_request("d".into(), "m".into(), br#"{"contract":"seed"}"#).unwrap();
        assert_eq!(r.contract, Contract::Seed as i32);
    }

    /// A device's JSON numbers reach the caller as the same numbers: parsed
    /// correctly rounded (serde_json's `float_roundtrip`), so the text
    /// written back parses to the very value the device sent.
    #[test]
    fn answered_numbers_survive_the_round_trip() {
        for n in [
            "5e44",
            "0.1",
            "21.666666666666600",
            "1.7976931348623157e308",
            "4.9e-324",
        ] {
            let mut o = Map::new();
            put_payload(&mut o, Some("application/json"), n.as_bytes());
            let written = serde_json::to_string(&o["payload"]).unwrap();
            let sent: f64 = n.parse().unwrap();
            assert_eq!(
                written.parse::<f64>().unwrap(),
                sent,
                "{n} came back as {written}"
            );
        }
    }

    #[test]
    fn payload_is_json_only_when_it_is() {
        let mut o = Map::new();
        put_payload(&mut o, Some("application/json"), br#"{"a":1}"#);
        assert_eq!(o["payload"], json!({"a": 1}));
        let mut o = Map::new();
        put_payload(&mut o, Some("application/octet-stream"), b"123");
        assert_eq!(o["payloadBase64"], "MTIz");
        let mut o = Map::new();
        put_payload(&mut o, None, b"not json");
        assert_eq!(o["payloadBase64"], "bm90IGpzb24=");
    }
}
