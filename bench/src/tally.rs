//! What the calls did: the outcome of each call and a latency histogram of
//! every completed call (ok or not), kept per worker and merged.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use hdrhistogram::Histogram;
use thingcall_proto::Reason;

/// Longest latency the histogram tells apart: one hour, in µs.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// How one call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The device answered with a 2xx status.
    Ok,
    /// Anything else, by reason: the gateway's ErrorInfo reason,
    /// `DEVICE_STATUS_<n>`, `DEVICE_TIMEOUT`, `TRANSPORT`, ...
    Failed(Cow<'static, str>),
}

impl Outcome {
    /// No reply within the call's deadline.
    pub const DEVICE_TIMEOUT: Outcome = Outcome::reason(Reason::DeviceTimeout);
    /// A connection could not be made or broke.
    pub const TRANSPORT: Outcome = Outcome::Failed(Cow::Borrowed("TRANSPORT"));
    /// The gateway did not answer at all within the deadline plus a grace.
    pub const CLIENT_TIMEOUT: Outcome = Outcome::Failed(Cow::Borrowed("CLIENT_TIMEOUT"));
    /// A reply this client could not read.
    pub const MALFORMED_REPLY: Outcome = Outcome::Failed(Cow::Borrowed("MALFORMED_REPLY"));

    /// A failure for a row of the gateway's error table.
    pub const fn reason(r: Reason) -> Outcome {
        Outcome::Failed(Cow::Borrowed(r.name()))
    }

    /// A failure named by the gateway: borrowed from the error table when it
    /// is one of its reasons (no allocation per failed call), else owned.
    pub fn named(name: String) -> Outcome {
        match Reason::from_name(&name) {
            Some(r) => Outcome::reason(r),
            None => Outcome::Failed(Cow::Owned(name)),
        }
    }

    /// `Ok` for a device status in 200..=299, else `DEVICE_STATUS_<n>`.
    pub fn from_device_status(status: i32) -> Outcome {
        if (200..=299).contains(&status) {
            Outcome::Ok
        } else {
            Outcome::Failed(Cow::Owned(format!("DEVICE_STATUS_{status}")))
        }
    }

    /// The name in the report: `ok` or the reason.
    #[cfg(test)]
    pub fn name(&self) -> &str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed(reason) => reason,
        }
    }
}

/// Latencies and outcomes of a set of calls. Each worker keeps its own and
/// they are merged at the end, so recording takes no lock.
#[derive(Debug, Clone)]
pub struct Tally {
    latency_us: Histogram<u64>,
    ok: u64,
    failed: HashMap<Cow<'static, str>, u64>,
}

/// An empty latency histogram in µs: 1 µs to one hour, 3 significant
/// digits. Shared with [`super::breakdown`] so its histograms merge and
/// read the same way as the latency one.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// `d` in whole µs, saturating (the histograms' unit).
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            latency_us: latency_histogram(),
            ok: 0,
            failed: HashMap::new(),
        }
    }
}

impl Tally {
    /// Records one completed call.
    pub fn record(&mut self, latency: Duration, outcome: Outcome) {
        self.latency_us.saturating_record(micros(latency));
        match outcome {
            Outcome::Ok => self.ok += 1,
            Outcome::Failed(reason) => *self.failed.entry(reason).or_default() += 1,
        }
    }

    /// Adds `other`'s calls to these.
    pub fn merge(&mut self, other: Tally) {
        self.latency_us
            .add(&other.latency_us)
            .expect("histograms with the same bounds add up");
        self.ok += other.ok;
        for (reason, n) in other.failed {
            *self.failed.entry(reason).or_default() += n;
        }
    }

    /// Completed calls.
    pub fn count(&self) -> u64 {
        self.latency_us.len()
    }

    /// Calls whose outcome was ok.
    pub fn ok(&self) -> u64 {
        self.ok
    }

    /// Calls whose outcome was not ok.
    pub fn errors(&self) -> u64 {
        self.failed.values().sum()
    }

    /// Calls per outcome name, `ok` included (also when zero).
    pub fn outcomes(&self) -> BTreeMap<String, u64> {
        let mut all: BTreeMap<String, u64> = self
            .failed
            .iter()
            .map(|(reason, n)| (reason.to_string(), *n))
            .collect();
        all.insert("ok".to_owned(), self.ok);
        all
    }

    /// p50, p90, p99, p99.9 and max in µs (zeros without calls).
    pub fn percentiles_us(&self) -> [u64; 5] {
        let [p50, p90, p99, p999] = quantiles_us(&self.latency_us);
        [p50, p90, p99, p999, self.latency_us.max()]
    }

    /// Mean latency in µs.
    pub fn mean_us(&self) -> f64 {
        self.latency_us.mean()
    }
}

/// p50, p90, p99 and p99.9 of `h` (zeros when it is empty).
pub fn quantiles_us(h: &Histogram<u64>) -> [u64; 4] {
    if h.is_empty() {
        return [0; 4];
    }
    [0.5, 0.9, 0.99, 0.999].map(|q| h.value_at_quantile(q))
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// 900 ok calls of 1..=900 µs, 100 `DEVICE_STATUS_500` of 901..=1000 µs
    /// and one 3 ms `DEVICE_TIMEOUT`, recorded by two workers.
    pub fn sample_tally() -> Tally {
        let mut a = Tally::default();
        let mut b = Tally::default();
        for us in 1..=900u64 {
            a.record(Duration::from_micros(us), Outcome::Ok);
        }
        for us in 901..=1000u64 {
            b.record(Duration::from_micros(us), Outcome::from_device_status(500));
        }
        b.record(Duration::from_millis(3), Outcome::DEVICE_TIMEOUT);
        a.merge(b);
        a
    }

    #[test]
    fn outcomes_and_counts() {
        let t = sample_tally();
        assert_eq!(t.count(), 1001);
        assert_eq!(t.ok(), 900);
        assert_eq!(t.errors(), 101);
        let o = t.outcomes();
        assert_eq!(o["ok"], 900);
        assert_eq!(o["DEVICE_STATUS_500"], 100);
        assert_eq!(o["DEVICE_TIMEOUT"], 1);
        assert_eq!(Outcome::from_device_status(204), Outcome::Ok);
        assert_eq!(Outcome::from_device_status(199).name(), "DEVICE_STATUS_199");
        assert_eq!(Tally::default().outcomes()["ok"], 0);
    }

    #[test]
    fn percentiles_are_ordered_and_close() {
        let [p50, p90, p99, p999, max] = sample_tally().percentiles_us();
        assert!(p50 <= p90 && p90 <= p99 && p99 <= p999 && p999 <= max);
        assert!((500..=501).contains(&p50), "{p50}");
        assert!((900..=901).contains(&p90), "{p90}");
        assert!((2998..=3002).contains(&max), "{max}");
        assert_eq!(Tally::default().percentiles_us(), [0; 5]);
    }
}
