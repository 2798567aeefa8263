//! What a fan-out has done so far: outcomes, durations, devices left out,
//! and whether it should stop (the abort threshold). Ends in the summary
//! the stream closes with.

use std::collections::BTreeMap;
use std::time::Duration;

use thingcall_proto::v1::{InvokeManySummary, NotAttempted};

/// The outcome of an answered call.
pub const OK: &str = "OK";
/// Devices the summary names one by one at most; the rest are counted.
pub const NAMED_NOT_ATTEMPTED: usize = 1000;

/// Stop when more than `ratio` of at least `min` results failed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Abort {
    ratio: f64,
    min: u32,
}

impl Abort {
    /// The threshold; the error says what is wrong.
    pub fn new(ratio: f64, min: u32) -> Result<Self, String> {
        if !(0.0..1.0).contains(&ratio) {
            return Err(
                "abort failure_ratio must be at least 0 and below 1 (0 stops at the first failure)"
                    .into(),
            );
        }
        Ok(Abort {
            ratio,
            min: min.max(1),
        })
    }
}

/// Why a device was not called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skipped {
    /// Offline (or unknown, or unconfirmed) with `OFFLINE_POLICY_SKIP`.
    Offline,
    /// Left when the abort threshold was passed.
    Aborted,
    /// Left when the gateway began to shut down.
    ShuttingDown,
}

impl Skipped {
    /// The name callers see.
    pub fn name(self) -> &'static str {
        match self {
            Skipped::Offline => "OFFLINE",
            Skipped::Aborted => "ABORTED",
            Skipped::ShuttingDown => "SHUTTING_DOWN",
        }
    }
}

/// The running count of one fan-out.
#[derive(Debug, Default)]
pub struct Tally {
    targets: u32,
    succeeded: u32,
    failed: u32,
    outcomes: BTreeMap<String, u32>,
    /// Each result's elapsed time, in microseconds, for the percentiles.
    elapsed_us: Vec<u64>,
    skipped: BTreeMap<&'static str, u32>,
    named: Vec<NotAttempted>,
}

impl Tally {
    /// A device was selected (called or not).
    pub fn selected(&mut self) {
        self.targets += 1;
    }

    /// A call ended with `outcome` after `elapsed`.
    pub fn result(&mut self, outcome: &str, elapsed: Duration) {
        if outcome == OK {
            self.succeeded += 1;
        } else {
            self.failed += 1;
        }
        match self.outcomes.get_mut(outcome) {
            Some(n) => *n += 1,
            None => {
                self.outcomes.insert(outcome.to_owned(), 1);
            }
        }
        self.elapsed_us.push(elapsed.as_micros() as u64);
    }

    /// `device` was not called, for `why`.
    pub fn skipped(&mut self, device: &str, why: Skipped) {
        *self.skipped.entry(why.name()).or_insert(0) += 1;
        if self.named.len() < NAMED_NOT_ATTEMPTED {
            self.named.push(NotAttempted {
                device: device.to_owned(),
                reason: why.name().to_owned(),
            });
        }
    }

    /// Whether `abort` says stop, given the results so far.
    pub fn should_abort(&self, abort: Option<Abort>) -> bool {
        let Some(a) = abort else { return false };
        let results = self.succeeded + self.failed;
        results >= a.min && f64::from(self.failed) > a.ratio * f64::from(results)
    }

    /// The summary, ending as `ended` after `elapsed`.
    pub fn summary(mut self, ended: &str, elapsed: Duration) -> InvokeManySummary {
        self.elapsed_us.sort_unstable();
        let pct = |p: f64| -> Option<prost_types::Duration> {
            let n = self.elapsed_us.len();
            if n == 0 {
                return None;
            }
            // Nearest rank.
            let rank = ((p * n as f64).ceil() as usize).clamp(1, n);
            Duration::from_micros(self.elapsed_us[rank - 1])
                .try_into()
                .ok()
        };
        InvokeManySummary {
            targets: self.targets,
            attempted: self.succeeded + self.failed,
            succeeded: self.succeeded,
            failed: self.failed,
            p50: pct(0.50),
            p99: pct(0.99),
            outcomes: self.outcomes.into_iter().collect(),
            not_attempted: self
                .skipped
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            not_attempted_devices: self.named,
            ended: ended.to_owned(),
            elapsed: elapsed.try_into().ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_summary_counts_outcomes_and_percentiles() {
        let mut t = Tally::default();
        for i in 1..=100 {
            t.selected();
            let outcome = if i % 10 == 0 { "DEVICE_TIMEOUT" } else { OK };
            t.result(outcome, ms(i));
        }
        t.selected();
        t.skipped("gone", Skipped::Offline);
        let s = t.summary("COMPLETED", ms(5));
        assert_eq!(
            (s.targets, s.attempted, s.succeeded, s.failed),
            (101, 100, 90, 10)
        );
        assert_eq!(s.outcomes["OK"], 90);
        assert_eq!(s.outcomes["DEVICE_TIMEOUT"], 10);
        assert_eq!(s.p50, Some(ms(50).try_into().unwrap()));
        assert_eq!(s.p99, Some(ms(99).try_into().unwrap()));
        assert_eq!(s.not_attempted["OFFLINE"], 1);
        assert_eq!(s.not_attempted_devices[0].device, "gone");
        assert_eq!(s.ended, "COMPLETED");
    }

    #[test]
    fn abort_waits_for_its_minimum_then_compares_the_ratio() {
        let abort = Some(Abort::new(0.5, 4).unwrap());
        let mut t = Tally::default();
        t.result("X", ms(1));
        t.result("X", ms(1));
        t.result("X", ms(1));
        assert!(!t.should_abort(abort), "3 results, under the minimum");
        t.result(OK, ms(1));
        assert!(t.should_abort(abort), "3 of 4 failed");
        let mut t = Tally::default();
        for o in ["X", "X", OK, OK] {
            t.result(o, ms(1));
        }
        assert!(!t.should_abort(abort), "half failed is not more than half");
        assert!(!t.should_abort(None));
    }

    #[test]
    fn only_the_first_thousand_skipped_devices_are_named() {
        let mut t = Tally::default();
        for i in 0..1500 {
            t.skipped(&format!("d{i}"), Skipped::Aborted);
        }
        let s = t.summary("ABORTED", ms(1));
        assert_eq!(s.not_attempted["ABORTED"], 1500);
        assert_eq!(s.not_attempted_devices.len(), NAMED_NOT_ATTEMPTED);
    }

    #[test]
    fn bad_thresholds_are_refused() {
        for r in [-0.1, 1.0, 2.0, f64::NAN] {
            assert!(Abort::new(r, 1).is_err(), "{r}");
        }
        assert!(Abort::new(0.0, 0).is_ok());
    }
}
