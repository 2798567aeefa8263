//! The invariants of a chaos run and their checker, with no I/O, so that
//! every way of breaking one can be fed in by a unit test and seen reported.
//!
//! Only timing, routing and accounting are invariants; *which* documented
//! reason a call gets is not (a call to a rebooting device may fairly end
//! DEVICE_DISCONNECTED, DEVICE_OFFLINE or DEVICE_TIMEOUT depending on when
//! the gateway learns of it).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use thingcall_proto::Reason;

use super::rss::RssVerdict;

/// How far past its deadline a call may resolve, measured at the caller:
/// the gateway's timer, a reply on its way, the caller's own scheduling.
pub const GRACE: Duration = Duration::from_millis(50);
/// Examples of each broken invariant kept for the report.
const EXAMPLES: usize = 5;

/// How one call ended, as the caller saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The device's reply came back through the gateway.
    Reply {
        /// The device's status.
        status: i32,
        /// Whether the payload was exactly the nonce this call sent.
        echoed: bool,
        /// The status the schedule gives this call's device.
        planned: i32,
    },
    /// The gateway answered with an error; its reason (`UNREACHABLE` when
    /// the gateway could not be reached).
    Failed(String),
    /// Nothing came back at all (the caller gave up well past the deadline).
    NoAnswer,
}

/// One issued call and how it resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// The call's number in the schedule.
    pub index: u64,
    /// Its deadline.
    pub deadline: Duration,
    /// From sending to resolution, at the caller.
    pub latency: Duration,
    /// What came back.
    pub outcome: Outcome,
}

impl Resolution {
    /// Latency minus deadline in µs: negative = resolved early.
    pub fn lateness_us(&self) -> i64 {
        self.latency.as_micros() as i64 - self.deadline.as_micros() as i64
    }

    /// The outcome's name in the report.
    pub fn label(&self) -> String {
        match &self.outcome {
            Outcome::Reply { .. } if self.misrouted() => "MISROUTED".to_owned(),
            Outcome::Reply { status, .. } if (200..=299).contains(status) => "ok".to_owned(),
            Outcome::Reply { status, .. } => format!("DEVICE_STATUS_{status}"),
            Outcome::Failed(reason) => reason.clone(),
            Outcome::NoAnswer => "NO_ANSWER".to_owned(),
        }
    }

    /// A device reply that is not this call's: another payload, or a
    /// status the schedule does not give this call.
    pub fn misrouted(&self) -> bool {
        matches!(&self.outcome, Outcome::Reply { status, echoed, planned }
            if !echoed || status != planned)
    }
}

/// Everything the checker judges.
#[derive(Debug)]
pub struct Evidence<'a> {
    /// Calls started.
    pub issued: u64,
    /// One per call that returned to its worker.
    pub resolutions: &'a [Resolution],
    /// `thingcall_invocations_in_flight` after the drain; `None` when
    /// `/metrics` could not be read.
    pub in_flight_end: Option<u64>,
    /// The RSS judgement.
    pub rss: &'a RssVerdict,
}

/// Lateness percentiles in µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lateness {
    /// Median.
    pub p50: i64,
    /// 99th percentile.
    pub p99: i64,
    /// Worst.
    pub max: i64,
}

/// What the run did and which invariants it broke.
#[derive(Debug)]
pub struct Verdict {
    /// Calls started.
    pub issued: u64,
    /// Calls the gateway answered (any outcome but NO_ANSWER).
    pub resolved: u64,
    /// Calls by outcome label.
    pub outcomes: BTreeMap<String, u64>,
    /// Lateness of every resolved call.
    pub lateness: Option<Lateness>,
    /// Lateness of the calls that ended DEVICE_TIMEOUT (the ones decided
    /// by the deadline itself).
    pub timeout_lateness: Option<Lateness>,
    /// One line per broken invariant; empty = the run passed.
    pub broken: Vec<String>,
}

/// Percentiles of `values` (sorted here), `None` when empty.
fn lateness(mut values: Vec<i64>) -> Option<Lateness> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    Some(Lateness {
        p50: at(0.50),
        p99: at(0.99),
        max: *values.last().expect("not empty"),
    })
}

/// `n` resolutions described by `what`, a few of them shown.
fn examples<'a>(what: &str, bad: impl Iterator<Item = &'a Resolution>) -> Option<String> {
    let bad: Vec<&Resolution> = bad.collect();
    if bad.is_empty() {
        return None;
    }
    let mut line = format!("{} call(s) {what}; e.g.", bad.len());
    for r in bad.iter().take(EXAMPLES) {
        let _ = write!(
            line,
            " #{} {} after {:.1} ms (deadline {} ms);",
            r.index,
            r.label(),
            r.latency.as_secs_f64() * 1e3,
            r.deadline.as_millis()
        );
    }
    line.pop();
    Some(line)
}

/// Checks every invariant against `e`.
pub fn check(e: &Evidence) -> Verdict {
    let rs = e.resolutions;
    let mut outcomes = BTreeMap::new();
    for r in rs {
        *outcomes.entry(r.label()).or_insert(0) += 1;
    }
    let answered: Vec<&Resolution> = rs
        .iter()
        .filter(|r| r.outcome != Outcome::NoAnswer)
        .collect();
    let resolved = answered.len() as u64;
    let mut broken = Vec::new();
    broken.extend(examples(
        &format!("resolved later than deadline + {} ms", GRACE.as_millis()),
        rs.iter().filter(|r| r.latency > r.deadline + GRACE),
    ));
    if resolved != e.issued {
        broken.push(format!(
            "resolved != issued: {resolved} of {} calls resolved",
            e.issued
        ));
    }
    broken.extend(examples(
        "misrouted (a reply that is not the call's own nonce and planned status)",
        rs.iter().filter(|r| r.misrouted()),
    ));
    broken.extend(examples(
        "failed with a reason outside the documented table",
        rs.iter()
            .filter(|r| matches!(&r.outcome, Outcome::Failed(n) if Reason::from_name(n).is_none())),
    ));
    match e.in_flight_end {
        Some(0) => {}
        Some(n) => broken.push(format!(
            "thingcall_invocations_in_flight is {n} after every call resolved (expected 0)"
        )),
        None => {
            broken.push("thingcall_invocations_in_flight could not be read from /metrics".into())
        }
    }
    if let RssVerdict::Grew { .. } = e.rss {
        broken.push(format!("gateway RSS not flat: {}", e.rss.describe()));
    }
    let timeouts = answered
        .iter()
        .filter(|r| matches!(&r.outcome, Outcome::Failed(n) if n == Reason::DeviceTimeout.name()))
        .map(|r| r.lateness_us())
        .collect();
    Verdict {
        issued: e.issued,
        resolved,
        outcomes,
        lateness: lateness(answered.iter().map(|r| r.lateness_us()).collect()),
        timeout_lateness: lateness(timeouts),
        broken,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(index: u64, deadline_ms: u64, latency_ms: u64, outcome: Outcome) -> Resolution {
        Resolution {
            index,
            deadline: Duration::from_millis(deadline_ms),
            latency: Duration::from_millis(latency_ms),
            outcome,
        }
    }

    fn ok() -> Outcome {
        Outcome::Reply {
            status: 200,
            echoed: true,
            planned: 200,
        }
    }

    fn timeout() -> Outcome {
        Outcome::Failed("DEVICE_TIMEOUT".into())
    }

    fn verdict(issued: u64, rs: &[Resolution], in_flight: Option<u64>, rss: RssVerdict) -> Verdict {
        check(&Evidence {
            issued,
            resolutions: rs,
            in_flight_end: in_flight,
            rss: &rss,
        })
    }

    fn clean(rs: &[Resolution]) -> Verdict {
        verdict(
            rs.len() as u64,
            rs,
            Some(0),
            RssVerdict::NotJudged("test".into()),
        )
    }

    #[test]
    fn a_clean_run_passes_with_its_figures() {
        let rs = [
            call(0, 100, 20, ok()),
            call(1, 10, 12, timeout()),
            call(
                2,
                500,
                90,
                Outcome::Reply {
                    status: 500,
                    echoed: true,
                    planned: 500,
                },
            ),
            call(3, 5, 5, Outcome::Failed("DEVICE_DISCONNECTED".into())),
            call(4, 30, 79, Outcome::Failed("DEVICE_OFFLINE".into())),
        ];
        let v = clean(&rs);
        assert!(v.broken.is_empty(), "{:?}", v.broken);
        assert_eq!((v.issued, v.resolved), (5, 5));
        assert_eq!(v.outcomes["ok"], 1);
        assert_eq!(v.outcomes["DEVICE_STATUS_500"], 1);
        assert_eq!(v.outcomes["DEVICE_TIMEOUT"], 1);
        let t = v.timeout_lateness.unwrap();
        assert_eq!((t.p50, t.max), (2_000, 2_000));
        assert_eq!(v.lateness.unwrap().max, 49_000);
    }

    #[test]
    fn a_late_resolution_is_reported() {
        let v = clean(&[call(0, 100, 20, ok()), call(7, 10, 61, timeout())]);
        assert_eq!(v.broken.len(), 1, "{:?}", v.broken);
        assert!(
            v.broken[0].contains("later than deadline + 50 ms"),
            "{}",
            v.broken[0]
        );
        assert!(v.broken[0].contains("#7 DEVICE_TIMEOUT"), "{}", v.broken[0]);
    }

    #[test]
    fn a_misroute_is_reported() {
        let foreign = Outcome::Reply {
            status: 200,
            echoed: false,
            planned: 200,
        };
        let wrong_status = Outcome::Reply {
            status: 200,
            echoed: true,
            planned: 500,
        };
        let v = clean(&[call(3, 100, 20, foreign), call(4, 100, 20, wrong_status)]);
        assert_eq!(v.outcomes["MISROUTED"], 2);
        assert_eq!(v.broken.len(), 1, "{:?}", v.broken);
        assert!(
            v.broken[0].starts_with("2 call(s) misrouted"),
            "{}",
            v.broken[0]
        );
    }

    #[test]
    fn lost_calls_break_the_accounting() {
        // A call that never came back, and one whose worker vanished.
        let rs = [
            call(0, 100, 5_100, Outcome::NoAnswer),
            call(1, 100, 20, ok()),
        ];
        let v = verdict(3, &rs, Some(0), RssVerdict::NotJudged("test".into()));
        assert_eq!(v.resolved, 1);
        assert!(
            v.broken
                .iter()
                .any(|b| b == "resolved != issued: 1 of 3 calls resolved"),
            "{:?}",
            v.broken
        );
        assert!(
            v.broken.iter().any(|b| b.contains("#0 NO_ANSWER")),
            "{:?}",
            v.broken
        );
    }

    #[test]
    fn undocumented_reasons_are_reported() {
        let v = clean(&[
            call(0, 100, 1, Outcome::Failed("UNREACHABLE".into())),
            call(1, 100, 1, Outcome::Failed("INTERNAL".into())),
            call(2, 100, 1, Outcome::Failed("OVERLOADED".into())),
        ]);
        assert_eq!(v.broken.len(), 1, "{:?}", v.broken);
        assert!(
            v.broken[0].starts_with("2 call(s) failed with a reason outside"),
            "{}",
            v.broken[0]
        );
    }

    #[test]
    fn calls_left_in_flight_and_growing_memory_are_reported() {
        let rs = [call(0, 100, 20, ok())];
        let v = verdict(1, &rs, Some(3), RssVerdict::NotJudged("test".into()));
        assert_eq!(
            v.broken,
            ["thingcall_invocations_in_flight is 3 after every call resolved (expected 0)"]
        );
        let v = verdict(1, &rs, None, RssVerdict::NotJudged("test".into()));
        assert!(v.broken[0].contains("could not be read"));
        let grew = RssVerdict::Grew {
            first_kib: 10_000,
            last_kib: 20_000,
            allowed_kib: 11_024,
        };
        let v = verdict(1, &rs, Some(0), grew);
        assert_eq!(v.broken.len(), 1);
        assert!(
            v.broken[0].starts_with("gateway RSS not flat"),
            "{}",
            v.broken[0]
        );
    }
}
