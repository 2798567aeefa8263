//! Bad input gets its reason and never reaches MQTT: a subscriber on `#`
//! sees no request from any of them. Two tables: typed requests every
//! surface can carry (here), and raw bytes the typed request cannot express
//! (`bad_bytes`), counted as (surface, input) pairs.

mod bad_bytes;
mod common;

use std::time::Duration;

use common::{reason, req, secs_f, soon, Harness};
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::Event;
use thingcall_proto::v1::{InvokeRequest, ListDevicesRequest, WatchDeviceRequest};
use tonic::Code;

broker_tests!(bad_input_has_its_reason_and_publishes_nothing);

/// The table every surface shares: (label, request, reason).
fn bad_inputs() -> Vec<(&'static str, InvokeRequest, &'static str)> {
    let ok = || req("v-1", "echo", b"x");
    let with_meta = |k: &str, v: &str| InvokeRequest {
        metadata: [(k.to_string(), v.to_string())].into(),
        ..ok()
    };
    vec![
        ("empty target", req("", "echo", b""), "INVALID_ARGUMENT"),
        ("empty method", req("v-1", "", b""), "INVALID_ARGUMENT"),
        (
            "slash in target",
            req("a/b", "echo", b""),
            "INVALID_ARGUMENT",
        ),
        ("plus in target", req("a+", "echo", b""), "INVALID_ARGUMENT"),
        ("hash in target", req("a#", "echo", b""), "INVALID_ARGUMENT"),
        (
            "NUL in target",
            req("a\0b", "echo", b""),
            "INVALID_ARGUMENT",
        ),
        (
            "newline in target",
            req("a\nb", "echo", b""),
            "INVALID_ARGUMENT",
        ),
        (
            "leading $ in target",
            req("$SYS", "echo", b""),
            "INVALID_ARGUMENT",
        ),
        (
            "129-byte target",
            req(&"t".repeat(129), "echo", b""),
            "INVALID_ARGUMENT",
        ),
        (
            "slash in method",
            req("v-1", "a/b", b""),
            "INVALID_ARGUMENT",
        ),
        ("wildcard method", req("v-1", "+", b""), "INVALID_ARGUMENT"),
        ("hash method", req("v-1", "#", b""), "INVALID_ARGUMENT"),
        (
            "control char in method",
            req("v-1", "a\u{7}", b""),
            "INVALID_ARGUMENT",
        ),
        (
            "129-byte method",
            req("v-1", &"m".repeat(129), b""),
            "INVALID_ARGUMENT",
        ),
        (
            "zero timeout",
            InvokeRequest {
                timeout: secs_f(0.0),
                ..ok()
            },
            "INVALID_ARGUMENT",
        ),
        (
            "negative timeout",
            InvokeRequest {
                timeout: Some(prost_types::Duration {
                    seconds: -1,
                    nanos: 0,
                }),
                ..ok()
            },
            "INVALID_ARGUMENT",
        ),
        (
            "timeout over max",
            InvokeRequest {
                timeout: secs_f(301.0),
                ..ok()
            },
            "INVALID_ARGUMENT",
        ),
        (
            "negative connect_timeout",
            InvokeRequest {
                connect_timeout: Some(prost_types::Duration {
                    seconds: 0,
                    nanos: -5,
                }),
                ..ok()
            },
            "INVALID_ARGUMENT",
        ),
        (
            "payload over limit",
            InvokeRequest {
                payload: vec![7u8; 128 * 1024 + 1].into(),
                ..ok()
            },
            "PAYLOAD_TOO_LARGE",
        ),
        (
            "reserved metadata key",
            with_meta("deadline", "0"),
            "INVALID_ARGUMENT",
        ),
        ("empty metadata key", with_meta("", "v"), "INVALID_ARGUMENT"),
        (
            "NUL in metadata value",
            with_meta("k", "a\0"),
            "INVALID_ARGUMENT",
        ),
        (
            "control char in content type",
            InvokeRequest {
                content_type: "text/\nplain".into(),
                ..ok()
            },
            "INVALID_ARGUMENT",
        ),
    ]
}

/// Percent-encodes everything but unreserved characters.
fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The HTTP/JSON body carrying the same fields as `r`.
fn json_body(r: &InvokeRequest) -> String {
    use base64::Engine;
    let dur = |d: &prost_types::Duration| {
        let neg = d.seconds < 0 || d.nanos < 0;
        format!(
            "{}{}.{:09}s",
            if neg { "-" } else { "" },
            d.seconds.unsigned_abs(),
            d.nanos.unsigned_abs()
        )
    };
    let mut v = serde_json::json!({
        "payloadBase64": base64::engine::general_purpose::STANDARD.encode(&r.payload),
        "metadata": r.metadata,
    });
    if let Some(t) = &r.timeout {
        v["timeout"] = dur(t).into();
    }
    if let Some(t) = &r.connect_timeout {
        v["connectTimeout"] = dur(t).into();
    }
    if !r.content_type.is_empty() {
        v["contentType"] = r.content_type.clone().into();
    }
    v.to_string()
}

async fn bad_input_has_its_reason_and_publishes_nothing(h: Harness) {
    let _marker = h.device("v-marker").await;
    // A spy on every topic.
    let (spy, mut events) = h.spy().await;

    let mut c = h.client.clone();
    let mut web = common::http::grpc_web(&h.base());
    let cases = bad_inputs();
    assert!(cases.len() >= 20);
    // (surface, input) pairs sent, of both tables.
    let mut pairs = 0;
    for (label, r, want) in cases {
        pairs += 2;
        // gRPC and gRPC-web: the same reason in ErrorInfo.
        let err = c.invoke(r.clone()).await.expect_err(label);
        assert_eq!(reason(&err), want, "gRPC: {label}");
        assert_eq!(err.code(), Code::InvalidArgument, "gRPC: {label}");
        let err = web.invoke(r.clone()).await.expect_err(label);
        assert_eq!(reason(&err), want, "gRPC-web: {label}");
        // HTTP/JSON: the same reason in the JSON error, status from the table.
        if !r.target.is_empty() && !r.method.is_empty() {
            let url = format!(
                "{}/v1/devices/{}/methods/{}",
                h.base(),
                pct(&r.target),
                pct(&r.method)
            );
            pairs += 1;
            let resp = common::http::post(&url, &json_body(&r)).await;
            let v = resp.json();
            assert_eq!(v["error"]["reason"], want, "HTTP: {label}");
            let status = if want == "PAYLOAD_TOO_LARGE" {
                413
            } else {
                400
            };
            assert_eq!(resp.status, status, "HTTP: {label}");
        }
        // The seed API: only target and method travel in its query.
        let seed_expressible = r.timeout.is_none()
            && r.connect_timeout.is_none()
            && r.metadata.is_empty()
            && r.content_type.is_empty()
            && r.payload.len() <= 1;
        if seed_expressible {
            pairs += 1;
            let url = format!(
                "{}/invoke?request=x&method={}&target={}&timeout=3",
                h.base(),
                pct(&r.method),
                pct(&r.target)
            );
            let resp = common::http::get(&url).await;
            let v = resp.json();
            assert_eq!(resp.status, 400, "/invoke: {label}");
            assert_eq!(v["result"], "invalid_parameters", "/invoke: {label}");
            let seen_reason = v["reason"].as_str().unwrap_or_default();
            assert_eq!(seen_reason, want, "/invoke: {label}");
        }
    }
    for pattern in ["a/b", "#", "x\0"] {
        let e = c
            .watch_device(WatchDeviceRequest {
                target: pattern.into(),
                include_events: false,
            })
            .await
            .unwrap_err();
        assert_eq!(reason(&e), "INVALID_ARGUMENT", "watch {pattern:?}");
        let e = c
            .list_devices(ListDevicesRequest {
                target: pattern.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(reason(&e), "INVALID_ARGUMENT", "list {pattern:?}");
    }

    let raw = bad_bytes::cases();
    assert!(raw.len() >= 40, "{} raw cases", raw.len());
    for case in &raw {
        bad_bytes::check(&h.base(), case).await;
    }
    pairs += raw.len();
    assert!(pairs >= 100, "{pairs} (surface, input) pairs");

    // A valid call afterwards: its request must be the first publication
    // the spy sees (after the marker device's retained presence), on any
    // topic: a seed-contract request would not be under `/methods/`.
    let mut good = req("v-marker", "echo", b"marker");
    good.timeout = secs_f(30.0);
    c.invoke(good).await.expect("marker call");
    let first_request = soon("spy sees the marker request", async {
        loop {
            if let Event::Incoming(Packet::Publish(p)) =
                events.poll().await.expect("spy connection")
            {
                let topic = String::from_utf8_lossy(&p.topic).into_owned();
                if !topic.ends_with("/presence") {
                    return topic;
                }
            }
        }
    })
    .await;
    assert_eq!(
        first_request, "thingcall/devices/v-marker/methods/echo",
        "a bad request reached MQTT"
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), spy.disconnect()).await;
    h.stop().await;
}
