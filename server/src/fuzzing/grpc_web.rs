//! gRPC-web requests of any body to every gRPC method the port serves.

use axum::body::Body;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use super::rig::{self, Rig};

/// The gRPC methods of the gateway's port, and whether each is unary.
const METHODS: [(&str, bool); 8] = [
    ("/thingcall.v1.DeviceGateway/Invoke", true),
    ("/thingcall.v1.DeviceGateway/ListDevices", true),
    ("/thingcall.v1.DeviceGateway/GetDevice", true),
    ("/thingcall.v1.DeviceGateway/WatchDevice", false),
    ("/grpc.health.v1.Health/Check", true),
    ("/grpc.health.v1.Health/Watch", false),
    (
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        false,
    ),
    (
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        false,
    ),
];

/// The first byte picks the method (low 3 bits), the request's encoding
/// (bit 3: `application/grpc-web-text`, base64, else binary) and the one
/// asked for in `accept` (bit 4: text); the rest is the request body, sent
/// as is to the gateway's whole router (over a drained gateway, so every
/// call ends at once). Every answer is HTTP 200 in the encoding asked for,
/// a gRPC-web body of well-formed frames: messages, then one trailer frame
/// last, unless the status came in the headers; a `grpc-status` from 0 to
/// 16 in exactly one of the two places; a unary method answers one message
/// exactly when its status is OK; and Invoke never succeeds (no device).
pub fn grpc_web(data: &[u8]) {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let (path, unary) = METHODS[usize::from(pick & 7)];
    let encoding = |text| {
        if text {
            "application/grpc-web-text"
        } else {
            "application/grpc-web+proto"
        }
    };
    let text = pick & 16 != 0;
    let request = http::Request::post(path)
        .header(http::header::CONTENT_TYPE, encoding(pick & 8 != 0))
        .header(http::header::ACCEPT, encoding(text))
        .header("x-grpc-web", "1")
        .body(Body::from(body.to_vec()))
        .expect("a POST with a static path builds");
    let (parts, body, _) = Rig::with(|rig| rig.runtime.block_on(rig::send(&rig.drained, request)));
    assert_eq!(parts.status, http::StatusCode::OK, "{path}: {parts:?}");
    let answered_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let answered_text = answered_type.starts_with("application/grpc-web-text");
    assert!(
        answered_type.starts_with("application/grpc-web") && answered_text == text,
        "{path}: asked for {}, answered {answered_type:?}",
        encoding(text)
    );
    let raw = if text {
        base64_quanta(&body).unwrap_or_else(|| panic!("{path}: the text answer is not base64"))
    } else {
        body.to_vec()
    };
    let frames = frames(&raw).unwrap_or_else(|e| panic!("{path}: {e} in {raw:?}"));
    let (messages, trailer) = match frames.split_last() {
        Some((&(0x80, trailer), messages)) => (messages, Some(trailer)),
        _ => (&frames[..], None),
    };
    assert!(
        messages.iter().all(|&(flag, _)| flag == 0),
        "{path}: a trailer before a message, or a compressed message: {frames:?}"
    );
    let in_header = parts
        .headers
        .get("grpc-status")
        .map(|v| v.to_str().unwrap_or("?").to_owned());
    let in_trailer = trailer.and_then(|t| {
        String::from_utf8_lossy(t)
            .split("\r\n")
            .find_map(|l| l.strip_prefix("grpc-status:").map(|v| v.trim().to_owned()))
    });
    let status = match (in_header, in_trailer) {
        (Some(s), None) if trailer.is_none() && messages.is_empty() => s,
        (None, Some(s)) => s,
        other => panic!("{path}: grpc-status in headers and trailer frame: {other:?}"),
    };
    let code: u8 = status
        .parse()
        .unwrap_or_else(|_| panic!("{path}: grpc-status {status:?}"));
    assert!(code <= 16, "{path}: grpc-status {code}");
    if unary {
        assert_eq!(
            code == 0,
            messages.len() == 1,
            "{path}: status {code} with {} messages",
            messages.len()
        );
    }
    if path.ends_with("/Invoke") {
        assert_ne!(code, 0, "Invoke succeeded on a drained gateway");
    }
}

/// gRPC-web frames: a flag byte, a big-endian u32 length, that many bytes.
fn frames(mut body: &[u8]) -> Result<Vec<(u8, &[u8])>, String> {
    let mut out = Vec::new();
    while !body.is_empty() {
        let Some((head, rest)) = body.split_at_checked(5) else {
            return Err(format!("a truncated frame header ({} bytes)", body.len()));
        };
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let Some((frame, rest)) = rest.split_at_checked(len) else {
            return Err(format!("a frame of {len} bytes with {} left", rest.len()));
        };
        out.push((head[0], frame));
        body = rest;
    }
    Ok(out)
}

/// Base64 as gRPC-web-text writes it: padded chunks one after another, so
/// read four characters at a time.
fn base64_quanta(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    for quantum in text.chunks(4) {
        out.extend(B64.decode(quantum).ok()?);
    }
    Some(out)
}
