//! One `WatchDevice` event as one line: readable text for people, or a JSON
//! object for scripts (`--json`). Exactly one line either way, so output can
//! be piped through `grep` or `jq`.

use base64::Engine as _;
use serde_json::{json, Map, Value};
use thingcall_proto::v1::device_event::Kind;
use thingcall_proto::v1::DeviceEvent;

use super::device::device_fields;
use super::time;

/// Text form, e.g.
/// `2026-11-26T03:20:07.123Z demo-1 online session=s1 methods=echo,sleep`;
/// `synced` and `lagged` are about the stream, not a device, so they carry
/// neither time nor device.
pub fn line(ev: &DeviceEvent) -> String {
    let head = || format!("{} {}", time::timestamp(ev.time.as_ref()), ev.device);
    match &ev.kind {
        Some(Kind::Presence(d)) if d.online => {
            let mut s = format!("{} online session={}", head(), d.session);
            if !d.methods.is_empty() {
                s.push_str(" methods=");
                s.push_str(&d.methods.join(","));
            }
            s
        }
        Some(Kind::Presence(_)) => format!("{} offline", head()),
        Some(Kind::Synced(s)) => {
            let noun = if s.devices == 1 { "device" } else { "devices" };
            format!("synced {} {noun}", s.devices)
        }
        Some(Kind::Invocation(o)) => {
            let mut s = format!("{} invoke {} {}", head(), o.method, o.outcome);
            if o.outcome == "OK" {
                s.push_str(&format!(" status={}", o.status));
            }
            s.push_str(&format!(
                " {} request_id={}",
                time::duration(o.elapsed.as_ref()),
                o.request_id
            ));
            s
        }
        Some(Kind::Lagged(l)) => format!("lagged: {} events dropped", l.dropped),
        Some(Kind::Closing(c)) => format!("closing: {}", c.reason),
        Some(Kind::Event(m)) => format!(
            "{} event {} {}",
            head(),
            m.name,
            one_line(&String::from_utf8_lossy(&m.payload))
        ),
        None => format!("{} unknown event", head()),
    }
}

/// JSON form: `device`, `time` (RFC 3339), `kind`, then the kind's fields.
/// A device event's payload is a string when it is UTF-8, otherwise
/// `payload_base64`, so no bytes are lost.
pub fn json(ev: &DeviceEvent) -> Value {
    let mut obj = Map::new();
    obj.insert("device".into(), json!(ev.device));
    obj.insert(
        "time".into(),
        match &ev.time {
            Some(t) => json!(time::timestamp(Some(t))),
            None => Value::Null,
        },
    );
    let kind = match &ev.kind {
        Some(Kind::Presence(d)) => {
            let Value::Object(fields) = device_fields(d) else {
                unreachable!("device_fields returns an object")
            };
            obj.extend(fields.into_iter().filter(|(k, _)| k != "id"));
            "presence"
        }
        Some(Kind::Synced(s)) => {
            obj.insert("devices".into(), json!(s.devices));
            "synced"
        }
        Some(Kind::Invocation(o)) => {
            obj.insert("method".into(), json!(o.method));
            obj.insert("request_id".into(), json!(o.request_id));
            obj.insert("outcome".into(), json!(o.outcome));
            obj.insert("status".into(), json!(o.status));
            obj.insert(
                "elapsed_ms".into(),
                match time::to_std(o.elapsed.as_ref()) {
                    Some(d) => json!(time::millis(d)),
                    None => Value::Null,
                },
            );
            "invocation"
        }
        Some(Kind::Lagged(l)) => {
            obj.insert("dropped".into(), json!(l.dropped));
            "lagged"
        }
        Some(Kind::Closing(c)) => {
            obj.insert("reason".into(), json!(c.reason));
            "closing"
        }
        Some(Kind::Event(m)) => {
            obj.insert("name".into(), json!(m.name));
            obj.insert("content_type".into(), json!(m.content_type));
            match std::str::from_utf8(&m.payload) {
                Ok(text) => obj.insert("payload".into(), json!(text)),
                Err(_) => obj.insert(
                    "payload_base64".into(),
                    json!(base64::engine::general_purpose::STANDARD.encode(&m.payload)),
                ),
            };
            "event"
        }
        None => "unknown",
    };
    obj.insert("kind".into(), json!(kind));
    Value::Object(obj)
}

/// Escapes line breaks and other control characters so a payload cannot
/// split one event over several lines.
fn one_line(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::{Duration, Timestamp};
    use thingcall_proto::v1::{Device, DeviceMessage, InvocationOutcome, Lagged, Synced};

    const TIME: Timestamp = Timestamp {
        seconds: 1_795_663_207,
        nanos: 123_000_000,
    };

    fn ev(device: &str, kind: Kind) -> DeviceEvent {
        DeviceEvent {
            device: device.into(),
            time: Some(TIME),
            kind: Some(kind),
        }
    }

    fn online() -> Kind {
        Kind::Presence(Device {
            id: "demo-1".into(),
            online: true,
            methods: vec!["echo".into(), "sleep".into()],
            since: Some(TIME),
            session: "s-1".into(),
        })
    }

    fn outcome(outcome: &str) -> Kind {
        Kind::Invocation(InvocationOutcome {
            method: "echo".into(),
            request_id: "r-1".into(),
            outcome: outcome.into(),
            status: 200,
            elapsed: Some(Duration {
                seconds: 0,
                nanos: 1_200_000,
            }),
        })
    }

    fn message(payload: &[u8]) -> Kind {
        Kind::Event(DeviceMessage {
            name: "door".into(),
            payload: payload.to_vec().into(),
            content_type: "text/plain".into(),
        })
    }

    #[test]
    fn presence_lines() {
        assert_eq!(
            line(&ev("demo-1", online())),
            "2026-11-26T03:20:07.123Z demo-1 online session=s-1 methods=echo,sleep"
        );
        let offline = Kind::Presence(Device {
            id: "demo-1".into(),
            online: false,
            session: "s-1".into(),
            ..Default::default()
        });
        assert_eq!(
            line(&ev("demo-1", offline)),
            "2026-11-26T03:20:07.123Z demo-1 offline"
        );
        let no_methods = Kind::Presence(Device {
            online: true,
            session: "s-2".into(),
            ..Default::default()
        });
        assert_eq!(
            line(&ev("demo-2", no_methods)),
            "2026-11-26T03:20:07.123Z demo-2 online session=s-2"
        );
    }

    #[test]
    fn stream_lines() {
        assert_eq!(
            line(&ev("", Kind::Synced(Synced { devices: 3 }))),
            "synced 3 devices"
        );
        assert_eq!(
            line(&ev("", Kind::Synced(Synced { devices: 1 }))),
            "synced 1 device"
        );
        assert_eq!(
            line(&ev("", Kind::Lagged(Lagged { dropped: 12 }))),
            "lagged: 12 events dropped"
        );
    }

    #[test]
    fn invocation_lines() {
        assert_eq!(
            line(&ev("demo-1", outcome("OK"))),
            "2026-11-26T03:20:07.123Z demo-1 invoke echo OK status=200 1.2ms request_id=r-1"
        );
        assert_eq!(
            line(&ev("demo-1", outcome("DEVICE_TIMEOUT"))),
            "2026-11-26T03:20:07.123Z demo-1 invoke echo DEVICE_TIMEOUT 1.2ms request_id=r-1"
        );
    }

    #[test]
    fn device_event_lines_stay_on_one_line() {
        assert_eq!(
            line(&ev("demo-1", message(b"open"))),
            "2026-11-26T03:20:07.123Z demo-1 event door open"
        );
        assert_eq!(
            line(&ev("demo-1", message(b"a\nb\xff"))),
            "2026-11-26T03:20:07.123Z demo-1 event door a\\nb\u{fffd}"
        );
    }

    #[test]
    fn missing_time_and_kind() {
        let e = DeviceEvent {
            device: "x".into(),
            time: None,
            kind: None,
        };
        assert_eq!(line(&e), "- x unknown event");
        assert_eq!(
            json(&e),
            serde_json::json!({"device": "x", "time": null, "kind": "unknown"})
        );
    }

    #[test]
    fn json_objects() {
        assert_eq!(
            json(&ev("demo-1", online())),
            serde_json::json!({
                "device": "demo-1",
                "time": "2026-11-26T03:20:07.123Z",
                "kind": "presence",
                "online": true,
                "session": "s-1",
                "methods": ["echo", "sleep"],
                "since": "2026-11-26T03:20:07.123Z",
            })
        );
        assert_eq!(
            json(&ev("demo-1", outcome("OK"))),
            serde_json::json!({
                "device": "demo-1",
                "time": "2026-11-26T03:20:07.123Z",
                "kind": "invocation",
                "method": "echo",
                "request_id": "r-1",
                "outcome": "OK",
                "status": 200,
                "elapsed_ms": 1.2,
            })
        );
        assert_eq!(
            json(&ev("", Kind::Lagged(Lagged { dropped: 5 })))["dropped"],
            5
        );
        assert_eq!(
            json(&ev("", Kind::Synced(Synced { devices: 2 })))["kind"],
            "synced"
        );
        let text = json(&ev("demo-1", message(b"open")));
        assert_eq!(text["payload"], "open");
        assert_eq!(text["name"], "door");
        let binary = json(&ev("demo-1", message(&[0xff, 0x00])));
        assert_eq!(binary["payload_base64"], "/wA=");
        assert!(binary.get("payload").is_none());
    }

    #[test]
    fn json_is_one_line() {
        let s = json(&ev("demo-1", message(b"a\nb"))).to_string();
        assert!(!s.contains('\n'));
    }
}
