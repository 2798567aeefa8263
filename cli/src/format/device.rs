//! Devices for `thingcall devices` / `thingcall device`: an aligned table
//! for people, JSON for scripts.

use serde_json::{json, Value};
use thingcall_proto::v1::Device;

use super::time;

/// `ID  ONLINE  SINCE  METHODS` with columns padded to the widest cell,
/// rows in the order given (callers sort). Ends with a newline.
pub fn table(devices: &[Device]) -> String {
    let rows: Vec<[String; 4]> = devices
        .iter()
        .map(|d| {
            [
                d.id.clone(),
                if d.online { "yes" } else { "no" }.to_owned(),
                time::timestamp(d.since.as_ref()),
                if d.methods.is_empty() {
                    "-".to_owned()
                } else {
                    d.methods.join(",")
                },
            ]
        })
        .collect();
    let header = ["ID", "ONLINE", "SINCE", "METHODS"].map(str::to_owned);
    let mut widths = [0usize; 4];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
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
ID              ONLINE  SINCE                     METHODS
demo-1          yes     2026-11-26T03:20:07.123Z  echo,sleep
pump-long-name  no      -                         -
";
        assert_eq!(table(&devices()), expected);
    }

    #[test]
    fn empty_table_has_header() {
        assert_eq!(table(&[]), "ID  ONLINE  SINCE  METHODS\n");
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
