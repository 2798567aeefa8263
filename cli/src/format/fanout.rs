//! `thingcall invoke-many`'s output: the failed devices and the summary as
//! aligned tables for people, or one JSON object per event for scripts.

use serde_json::{json, Value};
use thingcall_client::proto::{DeviceResult, InvokeManySummary};

use super::{reply, table, time};

/// Failed devices the text output lists one by one; the rest are counted.
pub const LISTED_FAILURES: usize = 20;

/// `{"result": {"device", "outcome", "response", "message", "requestId",
/// "elapsed"}}`; `response` is `invoke -o json`'s object, or null.
pub fn result_json(r: &DeviceResult) -> Value {
    json!({"result": {
        "device": r.device,
        "outcome": r.outcome,
        "response": r.response.as_ref().map(reply::json),
        "message": r.message,
        "requestId": r.request_id,
        "elapsed": r.elapsed.as_ref().map(ToString::to_string),
    }})
}

/// `{"summary": {...}}` in the HTTP API's field names.
pub fn summary_json(s: &InvokeManySummary) -> Value {
    let d = |d: &Option<prost_types::Duration>| d.as_ref().map(ToString::to_string);
    json!({"summary": {
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
    }})
}

/// The text report: up to [`LISTED_FAILURES`] failed devices (of
/// `failures`, in the order they ended), then outcomes and devices not
/// attempted with their counts, then one line of totals.
pub fn report(failures: &[DeviceResult], failed: u32, s: &InvokeManySummary) -> String {
    let mut out = String::new();
    if !failures.is_empty() {
        let mut rows = vec![vec![
            "DEVICE".to_owned(),
            "OUTCOME".into(),
            "MESSAGE".into(),
        ]];
        rows.extend(failures.iter().take(LISTED_FAILURES).map(|r| {
            let message = match &r.response {
                Some(resp) => String::from_utf8_lossy(&resp.payload).into_owned(),
                None => r.message.clone(),
            };
            vec![r.device.clone(), r.outcome.clone(), one_line(&message)]
        }));
        out.push_str(&table::align(&rows));
        let more = failed as usize - failures.len().min(LISTED_FAILURES);
        if more > 0 {
            out.push_str(&format!("... and {more} more failed\n"));
        }
        out.push('\n');
    }
    let mut rows = vec![vec!["OUTCOME".to_owned(), "DEVICES".into()]];
    let mut outcomes: Vec<(&String, &u32)> = s.outcomes.iter().collect();
    // Most frequent first, then by name: the table reads top-down.
    outcomes.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    rows.extend(
        outcomes
            .into_iter()
            .map(|(k, v)| vec![k.clone(), v.to_string()]),
    );
    let mut skipped: Vec<(&String, &u32)> = s.not_attempted.iter().collect();
    skipped.sort();
    rows.extend(
        skipped
            .into_iter()
            .map(|(k, v)| vec![format!("not attempted: {k}"), v.to_string()]),
    );
    out.push_str(&table::align(&rows));
    out.push_str(&format!(
        "\n{} devices, {} called, {} ok, {} failed; p50 {}, p99 {}; took {}; {}\n",
        s.targets,
        s.attempted,
        s.succeeded,
        s.failed,
        time::duration(s.p50.as_ref()),
        time::duration(s.p99.as_ref()),
        time::duration(s.elapsed.as_ref()),
        s.ended
    ));
    out
}

/// A message on one line, at most 80 characters.
fn one_line(s: &str) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match flat.char_indices().nth(80) {
        Some((i, _)) => format!("{}...", &flat[..i]),
        None => flat,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: i32) -> Option<prost_types::Duration> {
        Some(prost_types::Duration {
            seconds: 0,
            nanos: n * 1_000_000,
        })
    }

    fn summary() -> InvokeManySummary {
        InvokeManySummary {
            targets: 5,
            attempted: 4,
            succeeded: 3,
            failed: 1,
            outcomes: [("OK".into(), 3), ("DEVICE_TIMEOUT".into(), 1)].into(),
            p50: ms(12),
            p99: ms(40),
            not_attempted: [("OFFLINE".into(), 1)].into(),
            ended: "COMPLETED".into(),
            elapsed: ms(900),
            ..Default::default()
        }
    }

    #[test]
    fn the_report_lists_failures_then_outcomes_then_totals() {
        let failed = DeviceResult {
            device: "pump-7".into(),
            outcome: "DEVICE_TIMEOUT".into(),
            message: "no reply\nfrom the device".into(),
            ..Default::default()
        };
        let text = report(&[failed], 1, &summary());
        assert_eq!(
            text,
            "DEVICE  OUTCOME         MESSAGE\n\
             pump-7  DEVICE_TIMEOUT  no reply from the device\n\
             \n\
             OUTCOME                 DEVICES\n\
             OK                      3\n\
             DEVICE_TIMEOUT          1\n\
             not attempted: OFFLINE  1\n\
             \n\
             5 devices, 4 called, 3 ok, 1 failed; p50 12.0ms, p99 40.0ms; took 900.0ms; COMPLETED\n"
        );
    }

    #[test]
    fn only_the_first_failures_are_listed() {
        let failures: Vec<DeviceResult> = (0..30)
            .map(|i| DeviceResult {
                device: format!("d{i}"),
                outcome: "DEVICE_OFFLINE".into(),
                ..Default::default()
            })
            .collect();
        let text = report(&failures[..LISTED_FAILURES], 30, &summary());
        assert!(text.contains("d19 "), "{text}");
        assert!(!text.contains("d20 "), "{text}");
        assert!(text.contains("... and 10 more failed\n"), "{text}");
    }

    #[test]
    fn json_lines_use_the_api_names() {
        let s = summary_json(&summary());
        assert_eq!(s["summary"]["notAttempted"]["OFFLINE"], 1);
        assert_eq!(s["summary"]["p50"], "0.012s");
        let r = result_json(&DeviceResult {
            device: "a".into(),
            outcome: "OK".into(),
            response: Some(Default::default()),
            ..Default::default()
        });
        assert_eq!(r["result"]["response"]["status"], 0);
        assert_eq!(r["result"]["device"], "a");
    }
}
