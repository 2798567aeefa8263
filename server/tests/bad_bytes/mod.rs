//! The raw-byte half of the bad-input table: what the typed `InvokeRequest`
//! cannot express, sent as bytes. Hand-built protobuf and gRPC frames over
//! h2c and gRPC-web (binary and text), percent-encoded invalid UTF-8 in
//! HTTP paths and queries, invalid UTF-8 and wrong shapes in JSON bodies,
//! wrong content types, an oversize body, and the seed `/invoke` with bad
//! bytes in each parameter. Each case names its surface and the reason it
//! must get; [`check`] sends it and asserts the status and the reason.

mod send;

use http::Method;
use thingcall_proto::Reason;

use crate::common;
use send::{grpc, http};

/// Where a case is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    Grpc,
    GrpcWeb,
    Http,
    Seed,
}

/// One request of raw bytes.
#[derive(Debug, Clone)]
pub enum Raw {
    /// A gRPC call to `path` (`/thingcall.v1.DeviceGateway/...`) with this
    /// body; `web` is the gRPC-web content type (HTTP/1.1), `None` h2c.
    Grpc {
        web: Option<&'static str>,
        path: &'static str,
        body: Vec<u8>,
    },
    /// An HTTP request; `content_type` as raw header bytes.
    Http {
        method: Method,
        path: String,
        content_type: Option<Vec<u8>>,
        body: Vec<u8>,
    },
}

/// One (surface, input) pair with the reason it must get.
#[derive(Debug, Clone)]
pub struct Case {
    pub surface: Surface,
    pub label: &'static str,
    pub raw: Raw,
    pub reason: Reason,
}

const INVOKE: &str = "/thingcall.v1.DeviceGateway/Invoke";
const GET_DEVICE: &str = "/thingcall.v1.DeviceGateway/GetDevice";
const LIST_DEVICES: &str = "/thingcall.v1.DeviceGateway/ListDevices";
const WATCH_DEVICE: &str = "/thingcall.v1.DeviceGateway/WatchDevice";

/// A protobuf length-delimited field (`string`, `bytes`, a message).
fn field(number: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![(number << 3) | 2];
    let mut len = value.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(value);
    out
}

/// One gRPC frame: flag 0, big-endian length, the message.
fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// An InvokeRequest for v-1/echo with `extra` fields after target and method.
fn invoke_with(extra: &[u8]) -> Vec<u8> {
    frame(&cat(&[&field(1, b"v-1"), &field(2, b"echo"), extra]))
}

/// The gRPC bodies, each sent over h2c and over gRPC-web.
fn grpc_bodies() -> Vec<(&'static str, &'static str, Vec<u8>, Reason)> {
    use Reason::{InvalidArgument as Invalid, PayloadTooLarge};
    let valid = invoke_with(&[]);
    vec![
        (
            "invalid UTF-8 in target",
            INVOKE,
            frame(&cat(&[&field(1, b"v-\xff"), &field(2, b"echo")])),
            Invalid,
        ),
        (
            "invalid UTF-8 in method",
            INVOKE,
            frame(&cat(&[&field(1, b"v-1"), &field(2, b"ech\xc3\x28")])),
            Invalid,
        ),
        (
            "invalid UTF-8 in a metadata value",
            INVOKE,
            invoke_with(&field(8, &cat(&[&field(1, b"k"), &field(2, b"\xff")]))),
            Invalid,
        ),
        (
            "invalid UTF-8 in content_type",
            INVOKE,
            invoke_with(&field(6, b"text/\xfe")),
            Invalid,
        ),
        (
            "invalid UTF-8 in idempotency_key",
            INVOKE,
            invoke_with(&field(7, b"key-\xc3")),
            Invalid,
        ),
        (
            "invalid UTF-8 in GetDevice target",
            GET_DEVICE,
            frame(&field(1, b"\xff")),
            Invalid,
        ),
        (
            "invalid UTF-8 in ListDevices page_token",
            LIST_DEVICES,
            frame(&field(3, b"\xfe\xfe")),
            Invalid,
        ),
        (
            "invalid UTF-8 in WatchDevice target",
            WATCH_DEVICE,
            frame(&field(1, b"pump-\xff*")),
            Invalid,
        ),
        ("garbage protobuf", INVOKE, frame(&[0xff; 8]), Invalid),
        (
            "protobuf field cut short",
            INVOKE,
            frame(&[0x0a, 0x10, b'v', b'-']),
            Invalid,
        ),
        (
            "gRPC frame cut short",
            INVOKE,
            vec![0, 0, 0, 0, 20, 0x0a, 0x01, b'v'],
            Invalid,
        ),
        (
            "gRPC frame header cut short",
            INVOKE,
            vec![0, 0, 0],
            Invalid,
        ),
        ("no message", INVOKE, Vec::new(), Invalid),
        ("two messages", INVOKE, cat(&[&valid, &valid]), Invalid),
        ("frame flag 7", INVOKE, cat(&[&[7], &valid[1..]]), Invalid),
        (
            "frame declaring 2 GiB",
            INVOKE,
            vec![0, 0x7f, 0xff, 0xff, 0xff, 0x0a],
            PayloadTooLarge,
        ),
    ]
}

/// The HTTP/JSON requests: (label, method, path, content type, body, reason).
type HttpCase = (
    &'static str,
    Method,
    &'static str,
    Option<&'static [u8]>,
    Vec<u8>,
    Reason,
);

fn http_requests() -> Vec<HttpCase> {
    use Reason::{InvalidArgument as Invalid, PayloadTooLarge};
    let json: Option<&'static [u8]> = Some(b"application/json");
    let invoke = "/v1/devices/v-1/methods/echo";
    let post = |label, body: &[u8]| (label, Method::POST, invoke, json, body.to_vec(), Invalid);
    let get = |label, path| (label, Method::GET, path, None, Vec::new(), Invalid);
    // Over the Invoke body limit (max-payload 128 KiB as base64, plus 64 KiB).
    let oversize = format!(r#"{{"payload":"{}"}}"#, "a".repeat(300 * 1024));
    vec![
        (
            "%FF as the target in the path",
            Method::POST,
            "/v1/devices/%FF/methods/echo",
            json,
            b"{}".to_vec(),
            Invalid,
        ),
        (
            "invalid UTF-8 in the method in the path",
            Method::POST,
            "/v1/devices/v-1/methods/ech%C3%28",
            json,
            b"{}".to_vec(),
            Invalid,
        ),
        (
            "a cut UTF-8 sequence in the method in the path",
            Method::POST,
            "/v1/devices/v-1/methods/echo%E2%82",
            json,
            b"{}".to_vec(),
            Invalid,
        ),
        get("%FF in GetDevice's path", "/v1/devices/%FF"),
        get("%FF in the events path", "/v1/devices/%FF/events"),
        get("non-numeric pageSize", "/v1/devices?pageSize=abc"),
        get("negative pageSize", "/v1/devices?pageSize=-1"),
        get("pageSize over i32", "/v1/devices?pageSize=99999999999"),
        get("pageSize over the page limit", "/v1/devices?pageSize=10001"),
        get("%FF in the list target", "/v1/devices?target=%FF"),
        get("%FE in pageToken", "/v1/devices?pageToken=%FE"),
        get("%FF in a query name", "/v1/devices?%FF=1"),
        get("%FF in the events target", "/v1/events?target=pump-%FF"),
        get("includeEvents not a bool", "/v1/events?includeEvents=maybe"),
        post(
            "invalid UTF-8 in a JSON string",
            b"{\"contentType\":\"\xff\"}",
        ),
        post(
            "invalid UTF-8 in a metadata value",
            b"{\"metadata\":{\"k\":\"a\xffb\"}}",
        ),
        post(
            "a cut UTF-8 sequence in the payload",
            b"{\"payload\":\"\xc3\"}",
        ),
        post("timeout of the wrong type", br#"{"timeout":5}"#),
        post("metadata of the wrong type", br#"{"metadata":["k"]}"#),
        post("a JSON array for a body", b"[]"),
        post("timeout not a duration", br#"{"timeout":"soon"}"#),
        post("payloadBase64 not base64", br#"{"payloadBase64":"!!"}"#),
        post("an unknown field", br#"{"payloadd":1}"#),
        post("malformed JSON", br#"{"payload" 1}"#),
        post("JSON cut short", br#"{"payload":{"a":"#),
        (
            "text/plain body",
            Method::POST,
            invoke,
            Some(b"text/plain"),
            b"{}".to_vec(),
            Invalid,
        ),
        (
            "octet-stream body",
            Method::POST,
            invoke,
            Some(b"application/octet-stream"),
            b"{}".to_vec(),
            Invalid,
        ),
        (
            "content type that is not UTF-8",
            Method::POST,
            invoke,
            Some(b"application/json\xff"),
            b"{}".to_vec(),
            Invalid,
        ),
        (
            "oversize body",
            Method::POST,
            invoke,
            json,
            oversize.into_bytes(),
            PayloadTooLarge,
        ),
    ]
}

/// The seed `/invoke` queries: one bad parameter in an otherwise good query.
fn seed_queries() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "%FF in target",
            "request=x&method=echo&target=v-%FF&timeout=3",
        ),
        ("%FF in method", "request=x&method=%FF&target=v-1&timeout=3"),
        (
            "%FF in request",
            "request=%FF&method=echo&target=v-1&timeout=3",
        ),
        (
            "a cut sequence in request",
            "request=ok%C3&method=echo&target=v-1",
        ),
        (
            "a cut sequence in target",
            "request=x&method=echo&target=v-1%E2%82",
        ),
        (
            "%FF in timeout",
            "request=x&method=echo&target=v-1&timeout=%FF",
        ),
        (
            "%FF in a parameter name",
            "request=x&method=echo&target=v-1&%FF=1",
        ),
        (
            "non-numeric timeout",
            "request=x&method=echo&target=v-1&timeout=abc",
        ),
        ("zero timeout", "request=x&method=echo&target=v-1&timeout=0"),
        (
            "timeout over 60",
            "request=x&method=echo&target=v-1&timeout=61",
        ),
        (
            "negative timeout",
            "request=x&method=echo&target=v-1&timeout=-1",
        ),
        (
            "timeout over u64",
            "request=x&method=echo&target=v-1&timeout=99999999999999999999999",
        ),
        (
            "target twice",
            "request=x&method=echo&target=v-1&target=v-2",
        ),
        ("no method", "request=x&target=v-1"),
        ("empty target", "request=x&method=echo&target="),
        ("slash in target", "request=x&method=echo&target=a%2Fb"),
    ]
}

/// Every raw case.
pub fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for (label, path, body, reason) in grpc_bodies() {
        for (surface, web) in [
            (Surface::Grpc, None),
            (Surface::GrpcWeb, Some("application/grpc-web+proto")),
        ] {
            let body = body.clone();
            let raw = Raw::Grpc { web, path, body };
            out.push(Case {
                surface,
                label,
                raw,
                reason,
            });
        }
    }
    out.push(Case {
        surface: Surface::GrpcWeb,
        label: "grpc-web-text that is not base64",
        raw: Raw::Grpc {
            web: Some("application/grpc-web-text"),
            path: INVOKE,
            body: b"!!!!".to_vec(),
        },
        reason: Reason::InvalidArgument,
    });
    for (label, method, path, content_type, body, reason) in http_requests() {
        let raw = Raw::Http {
            method,
            path: path.into(),
            content_type: content_type.map(<[u8]>::to_vec),
            body,
        };
        out.push(Case {
            surface: Surface::Http,
            label,
            raw,
            reason,
        });
    }
    for (label, query) in seed_queries() {
        let raw = Raw::Http {
            method: Method::GET,
            path: format!("/invoke?{query}"),
            content_type: None,
            body: Vec::new(),
        };
        out.push(Case {
            surface: Surface::Seed,
            label,
            raw,
            reason: Reason::InvalidArgument,
        });
    }
    out
}

/// Sends `case` to the gateway at `base` and asserts its status and reason.
pub async fn check(base: &str, case: &Case) {
    let what = format!("{:?}: {}", case.surface, case.label);
    match &case.raw {
        Raw::Grpc { web, path, body } => {
            let status = grpc(base, *web, path, body.clone()).await;
            let status = status.unwrap_or_else(|| panic!("{what}: no gRPC status"));
            assert_eq!(status.code(), case.reason.grpc_code(), "{what}: {status:?}");
            assert_eq!(common::reason(&status), case.reason.name(), "{what}");
        }
        Raw::Http {
            method,
            path,
            content_type,
            body,
        } => {
            let reply = http(base, method.clone(), path, content_type.as_deref(), body).await;
            assert_eq!(reply.status, case.reason.http_status(), "{what}");
            let v = reply.json();
            if case.surface == Surface::Seed {
                assert_eq!(v["result"], "invalid_parameters", "{what}: {v}");
                assert_eq!(v["reason"], case.reason.name(), "{what}: {v}");
            } else {
                assert_eq!(v["error"]["reason"], case.reason.name(), "{what}: {v}");
                assert_eq!(v["error"]["code"], case.reason.http_status(), "{what}");
            }
        }
    }
}
