//! Devices for `thingcall devices` / `thingcall device`: an aligned table
//! and key/value lines for people, JSON for scripts.

use serde_json::{json, Value};
use thingcall_proto::v1::Device;

use super::{table, time};

/// The cells of one device, in column order: id, state, since, methods,
/// session; `-` for what is absent, so no cell is empty and every column
/// can be split on whitespace.
fn cells(d: &Device) -> [String; 5] {
    let or_dash = |s: String| if s.is_empty() { "-".to_owned() } else { s };
    [
        d.id.clone(),
        if d.online { "online" } else { "offline" }.to_owned(),
        time::timestamp(d.since.as_ref()),
        or_dash(d.methods.join(",")),
        or_dash(d.session.clone()),
    ]
}

/// `ID  STATE  SINCE  METHODS  SESSION`, columns as wide as their widest
/// cell, rows in the order given (callers sort). Ends with a newline.
pub fn table(devices: &[Device]) -> String {
    let header = ["ID", "STATE", "SINCE", "METHODS", "SESSION"].map(str::to_owned);
    let rows: Vec<[String; 5]> = std::iter::once(header)
        .chain(devices.iter().map(cells))
        .collect();
    table::align(&rows)
}

/// One device as `key: value` lines with the values aligned:
/// id, state, since, methods, session (the table's columns, one per line).
pub fn details(d: &Device) -> String {
    let keys = ["id:", "state:", "since:", "methods:", "session:"];
    let rows: Vec<[String; 2]> = keys
        .iter()
        .zip(cells(d))
        .map(|(k, v)| [(*k).to_owned(), v])
        .collect();
    table::align(&rows)
}

/// One device as a JSON object: `id`, `online`, `session`, `methods`,
/// `since` (RFC 3339 or null).
pub fn device_fields(d: &Device) -> Value {
    json!({
        "id": d.id,
        "online": d.online,
        "session": d.session,
        "methods": d.methods,
        "since": d.since.as_ref().map(|t| time::timestamp(Some(t))),
    })
}

/// A JSON array of [`device_fields`].
pub fn json_array(devices: &[Device]) -> Value {
    Value::Array(devices.iter().map(device_fields).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::Timestamp;

    fn devices() -> Vec<Device> {
        vec![
            Device {
                id: "demo-1".into(),
                online: true,
                methods: vec!["echo".into(), "sleep".into()],
                since: Some(Timestamp {
                    seconds: 1_795_663_207,
                    nanos: 123_000_000,
                }),
                session: "s-1".into(),
            },
            Device {
                id: "pump-long-name".into(),
                online: false,
                ..Default::default()
            },
        ]
    }

    #[test]
    fn table_is_aligned() {
        let expected = "\
ID              STATE    SINCE                     METHODS     SESSION
demo-1          online   2026-11-26T03:20:07.123Z  echo,sleep  s-1
pump-long-name  offline  -                         -           -
";
        assert_eq!(table(&devices()), expected);
    }

    #[test]
    fn empty_table_has_header() {
        assert_eq!(table(&[]), "ID  STATE  SINCE  METHODS  SESSION\n");
    }

    #[test]
    fn details_are_aligned_key_value_lines() {
        let expected = "\
id:       demo-1
state:    online
since:    2026-11-26T03:20:07.123Z
methods:  echo,sleep
session:  s-1
";
        assert_eq!(details(&devices()[0]), expected);
        let offline = details(&devices()[1]);
        assert!(offline.contains("state:    offline\n"), "{offline}");
        assert!(offline.lines().all(|l| !l.ends_with(' ')), "{offline}");
    }

    #[test]
    fn json_fields() {
        let v = json_array(&devices());
        assert_eq!(
            v[0],
            json!({
                "id": "demo-1",
                "online": true,
                "session": "s-1",
                "methods": ["echo", "sleep"],
                "since": "2026-11-26T03:20:07.123Z",
            })
        );
        assert_eq!(v[1]["since"], Value::Null);
        assert_eq!(v.as_array().unwrap().len(), 2);
    }
}
