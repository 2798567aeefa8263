//! A failure as `-o json` prints it on stderr: one object, so a script that
//! asked for JSON can parse the error the same way as the answer (the exit
//! code still says which class it was, without parsing anything).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

/// What an error object says. `request_id` comes from the gateway's
/// `ErrorInfo` metadata (`requestId`) when a call was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReport<'a> {
    /// Stable cause: a gateway reason, `UNREACHABLE`, or one of the CLI's
    /// own (`USAGE`, `DEVICE_STATUS`, `LOCAL`, ...).
    pub reason: &'a str,
    /// For people.
    pub message: &'a str,
    /// The process exit code this failure gets.
    pub exit_code: u8,
    /// `ErrorInfo.metadata` (empty when none).
    pub metadata: &'a BTreeMap<String, String>,
    /// Fields of the failure's own (`status` for a device status).
    pub extra: Map<String, Value>,
}

/// `{"reason", "message", "requestId" (string or null), "exitCode",
/// "metadata", ...extra}`.
pub fn json(e: &ErrorReport<'_>) -> Value {
    let mut obj = Map::new();
    obj.insert("reason".into(), json!(e.reason));
    obj.insert("message".into(), json!(e.message));
    obj.insert(
        "requestId".into(),
        e.metadata
            .get("requestId")
            .map_or(Value::Null, |id| json!(id)),
    );
    obj.insert("exitCode".into(), json!(e.exit_code));
    obj.insert("metadata".into(), json!(e.metadata));
    obj.extend(e.extra.clone());
    Value::Object(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_id_comes_from_the_metadata() {
        let metadata = BTreeMap::from([
            ("requestId".to_owned(), "r-9".to_owned()),
            ("accepted".to_owned(), "true".to_owned()),
        ]);
        let v = json(&ErrorReport {
            reason: "DEVICE_TIMEOUT",
            message: "no reply\nin time",
            exit_code: 5,
            metadata: &metadata,
            extra: Map::new(),
        });
        assert_eq!(
            v,
            json!({
                "reason": "DEVICE_TIMEOUT",
                "message": "no reply\nin time",
                "requestId": "r-9",
                "exitCode": 5,
                "metadata": {"requestId": "r-9", "accepted": "true"},
            })
        );
        assert!(!v.to_string().contains('\n'), "one line");
    }

    #[test]
    fn no_call_no_request_id_and_extra_fields_kept() {
        let none = BTreeMap::new();
        let mut extra = Map::new();
        extra.insert("status".into(), json!(500));
        let v = json(&ErrorReport {
            reason: "DEVICE_STATUS",
            message: "device answered status 500",
            exit_code: 1,
            metadata: &none,
            extra,
        });
        assert_eq!(v["requestId"], Value::Null);
        assert_eq!(v["status"], 500);
        assert_eq!(v["metadata"], json!({}));
    }
}
