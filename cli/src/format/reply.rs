//! `thingcall invoke -o json`: the device's answer as one JSON object, in
//! the HTTP/JSON API's field names (camelCase, proto3 JSON durations), so a
//! script can move between `curl` and `thingcall` without renaming fields.

use base64::Engine as _;
use serde_json::{json, Value};
use thingcall_client::proto::InvokeResponse;

/// How `payload` is written in the object, named by `payloadEncoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// The payload was valid UTF-8 and is the string itself.
    Utf8,
    /// Anything else, standard base64 with padding: no byte is lost.
    Base64,
}

impl Encoding {
    fn name(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf8",
            Encoding::Base64 => "base64",
        }
    }
}

/// The payload as a JSON string and how it was written. Text stays text
/// (JSON escapes whatever needs it); other bytes become base64.
pub fn payload(bytes: &[u8]) -> (String, Encoding) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_owned(), Encoding::Utf8),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(bytes),
            Encoding::Base64,
        ),
    }
}

/// `{"status", "payload", "payloadEncoding", "contentType", "requestId",
/// "elapsed", "deviceTime"}`; durations like `"0.001175s"`, null when the
/// gateway or device sent none. Every key is always present.
pub fn json(reply: &InvokeResponse) -> Value {
    let (text, encoding) = payload(&reply.payload);
    let duration = |d: Option<&prost_types::Duration>| match d {
        Some(d) => json!(d.to_string()),
        None => Value::Null,
    };
    json!({
        "status": reply.status,
        "payload": text,
        "payloadEncoding": encoding.name(),
        "contentType": reply.content_type,
        "requestId": reply.request_id,
        "elapsed": duration(reply.elapsed.as_ref()),
        "deviceTime": duration(reply.device_time.as_ref()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(payload: &[u8]) -> InvokeResponse {
        InvokeResponse {
            status: 200,
            payload: payload.to_vec().into(),
            content_type: "text/plain".into(),
            request_id: "r-1".into(),
            elapsed: Some(prost_types::Duration {
                seconds: 0,
                nanos: 1_175_000,
            }),
            device_time: None,
        }
    }

    #[test]
    fn text_payload_stays_text() {
        assert_eq!(
            json(&reply("héllo \"x\"\n".as_bytes())),
            json!({
                "status": 200,
                "payload": "héllo \"x\"\n",
                "payloadEncoding": "utf8",
                "contentType": "text/plain",
                "requestId": "r-1",
                "elapsed": "0.001175s",
                "deviceTime": null,
            })
        );
    }

    #[test]
    fn binary_payload_is_base64() {
        let v = json(&reply(b"\x00\xffbin"));
        assert_eq!(v["payload"], "AP9iaW4=");
        assert_eq!(v["payloadEncoding"], "base64");
        assert_eq!(payload(b""), (String::new(), Encoding::Utf8));
    }

    #[test]
    fn one_line_when_printed() {
        let line = json(&reply(b"a\nb")).to_string();
        assert!(!line.contains('\n'), "{line}");
    }
}
