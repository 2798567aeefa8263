//! The invocation counter and duration histogram: one series per method
//! label, one cell per outcome in it.
//!
//! Written by hand rather than with a metrics crate: the hot path is one
//! read-locked map lookup and a few relaxed atomic adds when a call ends,
//! with no allocation; label
//! cardinality is bounded by construction (methods beyond a limit fold into
//! `other`, outcomes are the fixed reasons of the error table, device ids
//! never appear).

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::trace::TraceId;
use parking_lot::RwLock;
use thingcall_proto::{wire, Reason};

use super::exemplars::{Exemplar, Exemplars};
use super::{header, seconds, Outcome};

/// Outcomes a series counts: `OK`, then one per row of the error table.
const OUTCOMES: usize = Reason::ALL.len() + 1;

/// The index of `outcome` in a series.
fn slot(outcome: Outcome) -> usize {
    outcome.map_or(0, |r| r as usize + 1)
}

/// The label of the outcome in slot `i`.
fn label(i: usize) -> &'static str {
    match i {
        0 => "OK",
        i => Reason::ALL[i - 1].name(),
    }
}

/// Upper bounds of the duration histogram's buckets, in microseconds: from
/// a fast local device (0.5 ms) to the longest sensible deadline.
const BUCKETS_US: &[u64] = &[
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000, 30_000_000, 60_000_000,
];

/// Buckets of a histogram: one per bound, then +Inf.
const BUCKETS: usize = BUCKETS_US.len() + 1;

/// Label of the methods past the limit, and of names that are not valid ids.
pub const OTHER_METHOD: &str = "other";

/// Counts and durations of one method's calls, per outcome.
#[derive(Debug)]
pub struct Series {
    per_outcome: Box<[Cell]>,
}

#[derive(Debug, Default)]
struct Cell {
    count: AtomicU64,
    sum_us: AtomicU64,
    /// Not cumulative: each call lands in one bucket (the last is +Inf).
    buckets: [AtomicU64; BUCKETS],
    /// The latest sampled call of each bucket.
    exemplars: Exemplars<BUCKETS>,
}

impl Series {
    fn new() -> Self {
        Series {
            per_outcome: (0..OUTCOMES).map(|_| Cell::default()).collect(),
        }
    }

    /// Counts one finished call; a sampled one's trace becomes its
    /// bucket's exemplar.
    fn record(&self, outcome: Outcome, took: Duration, trace: Option<TraceId>) {
        let cell = &self.per_outcome[slot(outcome)];
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKETS_US.partition_point(|&le| le < us);
        cell.count.fetch_add(1, Ordering::Relaxed);
        cell.sum_us.fetch_add(us, Ordering::Relaxed);
        cell.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        if let Some(trace_id) = trace {
            cell.exemplars.store(bucket, &Exemplar::now(trace_id, us));
        }
    }
}

/// The method series, created on first use up to a limit.
#[derive(Debug)]
pub struct CallMetrics {
    methods: RwLock<HashMap<Box<str>, Series>>,
    other: Series,
    max_methods: usize,
}

impl CallMetrics {
    /// Keeps at most `max_methods` method labels; later ones count as `other`.
    pub fn new(max_methods: usize) -> Self {
        CallMetrics {
            methods: RwLock::new(HashMap::new()),
            other: Series::new(),
            max_methods,
        }
    }

    /// Counts one finished call of `method` with `outcome` (`None` for
    /// `OK`, else the error's reason). Only valid method names get their own label, so
    /// garbage input cannot mint labels; a name already labelled was valid
    /// when it was, so the common case is one read-locked lookup and no
    /// validation.
    pub fn record(&self, method: &str, outcome: Outcome, took: Duration) {
        self.record_traced(method, outcome, took, None);
    }

    /// [`CallMetrics::record`] for a call whose trace was sampled
    /// (`trace`): the trace becomes the exemplar of the call's bucket,
    /// so that an OpenMetrics scrape links the bucket to a trace that
    /// was exported. `None` records as `record` does, at the same cost.
    pub fn record_traced(
        &self,
        method: &str,
        outcome: Outcome,
        took: Duration,
        trace: Option<TraceId>,
    ) {
        if let Some(s) = self.methods.read().get(method) {
            return s.record(outcome, took, trace);
        }
        if wire::validate_id("method", method).is_err() {
            return self.other.record(outcome, took, trace);
        }
        let mut methods = self.methods.write();
        if methods.len() >= self.max_methods && !methods.contains_key(method) {
            return self.other.record(outcome, took, trace);
        }
        methods
            .entry(method.into())
            .or_insert_with(Series::new)
            .record(outcome, took, trace);
    }

    /// Writes the invocation counter and histogram, methods in name order;
    /// with `exemplars` (OpenMetrics only: the Prometheus text format has
    /// no syntax for them), each bucket's latest sampled call too.
    pub(super) fn render(&self, out: &mut String, exemplars: bool) {
        let methods = self.methods.read();
        let mut rows: Vec<(&str, &Series)> = methods.iter().map(|(m, s)| (&**m, s)).collect();
        rows.sort_unstable_by_key(|(m, _)| *m);
        rows.push((OTHER_METHOD, &self.other));

        header(
            out,
            "thingcall_invocations_total",
            "counter",
            "Calls finished, by method and outcome (OK or the error reason).",
        );
        for (method, series) in &rows {
            for (i, cell) in series.per_outcome.iter().enumerate() {
                let outcome = label(i);
                let n = cell.count.load(Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "thingcall_invocations_total{{method=\"{method}\",outcome=\"{outcome}\"}} {n}"
                    );
                }
            }
        }
        header(
            out,
            "thingcall_invocation_duration_seconds",
            "histogram",
            "Time from receiving a call to answering it, by method and outcome.",
        );
        for (method, series) in &rows {
            for (i, cell) in series.per_outcome.iter().enumerate() {
                let outcome = label(i);
                let count = cell.count.load(Ordering::Relaxed);
                if count == 0 {
                    continue;
                }
                let labels = format!("method=\"{method}\",outcome=\"{outcome}\"");
                let mut cumulative = 0;
                for (i, b) in cell.buckets.iter().enumerate() {
                    cumulative += b.load(Ordering::Relaxed);
                    let le = BUCKETS_US
                        .get(i)
                        .map_or_else(|| "+Inf".to_owned(), |us| seconds(*us));
                    let _ = write!(
                        out,
                        "thingcall_invocation_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}"
                    );
                    if let Some(e) = exemplars.then(|| cell.exemplars.load(i)).flatten() {
                        e.write(out);
                    }
                    out.push('\n');
                }
                let sum = seconds(cell.sum_us.load(Ordering::Relaxed));
                let _ = writeln!(
                    out,
                    "thingcall_invocation_duration_seconds_sum{{{labels}}} {sum}"
                );
                let _ = writeln!(
                    out,
                    "thingcall_invocation_duration_seconds_count{{{labels}}} {count}"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_past_the_limit_and_invalid_names_fold_into_other() {
        let m = CallMetrics::new(2);
        m.record("a", None, Duration::from_millis(1));
        m.record("b", None, Duration::from_millis(1));
        m.record("c", None, Duration::from_millis(1));
        m.record("bad/name", Some(Reason::InvalidArgument), Duration::ZERO);
        m.record("a", None, Duration::from_millis(1));
        let mut out = String::new();
        m.render(&mut out, false);
        assert!(out.contains("thingcall_invocations_total{method=\"a\",outcome=\"OK\"} 2"));
        assert!(out.contains("thingcall_invocations_total{method=\"b\",outcome=\"OK\"} 1"));
        assert!(out.contains("thingcall_invocations_total{method=\"other\",outcome=\"OK\"} 1"));
        assert!(out.contains(
            "thingcall_invocations_total{method=\"other\",outcome=\"INVALID_ARGUMENT\"} 1"
        ));
        assert!(!out.contains("method=\"c\""));
        assert!(!out.contains("bad/name"));
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_the_count() {
        let m = CallMetrics::new(8);
        m.record("echo", None, Duration::from_micros(400)); // <= 0.0005
        m.record("echo", None, Duration::from_micros(700)); // <= 0.001
        m.record("echo", None, Duration::from_secs(120)); // +Inf only
        let mut out = String::new();
        m.render(&mut out, false);
        let l = "method=\"echo\",outcome=\"OK\"";
        assert!(out.contains(&format!(
            "thingcall_invocation_duration_seconds_bucket{{{l},le=\"0.0005\"}} 1"
        )));
        assert!(out.contains(&format!(
            "thingcall_invocation_duration_seconds_bucket{{{l},le=\"0.001\"}} 2"
        )));
        assert!(out.contains(&format!(
            "thingcall_invocation_duration_seconds_bucket{{{l},le=\"60\"}} 2"
        )));
        assert!(out.contains(&format!(
            "thingcall_invocation_duration_seconds_bucket{{{l},le=\"+Inf\"}} 3"
        )));
        assert!(out.contains(&format!(
            "thingcall_invocation_duration_seconds_count{{{l}}} 3"
        )));
        assert!(out.contains(&format!(
            "thingcall_invocation_duration_seconds_sum{{{l}}} 120.0011"
        )));
    }

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    fn trace(hex: &str) -> Option<TraceId> {
        Some(TraceId::from_hex(hex).unwrap())
    }

    fn rendered(m: &CallMetrics, exemplars: bool) -> String {
        let mut out = String::new();
        m.render(&mut out, exemplars);
        out
    }

    /// The bucket lines carrying an exemplar: (line without it, exemplar).
    fn with_exemplars(out: &str) -> Vec<(&str, &str)> {
        out.lines().filter_map(|l| l.split_once(" # ")).collect()
    }

    #[test]
    fn a_sampled_call_is_the_exemplar_of_exactly_its_bucket() {
        let m = CallMetrics::new(8);
        m.record("echo", None, Duration::from_micros(400));
        m.record_traced("echo", None, Duration::from_micros(810), trace(TRACE));
        m.record("echo", None, Duration::from_micros(900));
        let out = rendered(&m, true);
        let got = with_exemplars(&out);
        assert_eq!(got.len(), 1, "{out}");
        let (line, exemplar) = got[0];
        assert_eq!(
            line,
            "thingcall_invocation_duration_seconds_bucket{method=\"echo\",outcome=\"OK\",le=\"0.001\"} 3"
        );
        let (labels, rest) = exemplar.split_once(' ').unwrap();
        assert_eq!(labels, format!("{{trace_id=\"{TRACE}\"}}"));
        let (value, at) = rest.split_once(' ').unwrap();
        assert_eq!(value, "0.00081");
        let at: f64 = at.parse().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!((now - at).abs() < 60.0, "{at} is about now ({now})");
        // Counters, sums and counts carry none.
        assert!(!out.contains("_total{method=\"echo\",outcome=\"OK\"} 3 #"));
    }

    #[test]
    fn the_latest_sampled_call_of_a_bucket_wins_and_series_keep_their_own() {
        let m = CallMetrics::new(8);
        let other = "00000000000000000000000000000001";
        m.record_traced("echo", None, Duration::from_micros(700), trace(other));
        m.record_traced("echo", None, Duration::from_micros(800), trace(TRACE));
        m.record_traced(
            "echo",
            Some(Reason::DeviceTimeout),
            Duration::from_secs(120),
            trace(other),
        );
        let out = rendered(&m, true);
        let got = with_exemplars(&out);
        assert_eq!(got.len(), 2, "{out}");
        assert!(got[0].0.contains("outcome=\"OK\",le=\"0.001\"}"));
        assert!(got[0].1.contains(TRACE));
        assert!(got[1].0.contains("outcome=\"DEVICE_TIMEOUT\",le=\"+Inf\"}"));
        assert!(got[1]
            .1
            .starts_with(&format!("{{trace_id=\"{other}\"}} 120 ")));
    }

    #[test]
    fn untraced_calls_give_no_exemplar_and_prometheus_text_never_has_one() {
        let m = CallMetrics::new(8);
        m.record("echo", None, Duration::from_micros(810));
        m.record_traced("echo", None, Duration::from_micros(820), None);
        // Untraced only: the same text in both formats, and no storage.
        assert_eq!(rendered(&m, true), rendered(&m, false));
        let series = &m.methods.read()["echo"];
        assert!(series.per_outcome[0].exemplars.load(1).is_none());

        m.record_traced("echo", None, Duration::from_micros(830), trace(TRACE));
        let prometheus = rendered(&m, false);
        assert!(!prometheus.contains(TRACE), "{prometheus}");
        assert!(with_exemplars(&prometheus).is_empty(), "{prometheus}");
        // The Prometheus text is the one it was before exemplars.
        let untraced = CallMetrics::new(8);
        for us in [810, 820, 830] {
            untraced.record("echo", None, Duration::from_micros(us));
        }
        assert_eq!(prometheus, rendered(&untraced, false));
    }

    #[test]
    fn every_reason_of_the_table_has_its_own_label() {
        let labels: Vec<_> = (0..OUTCOMES).map(label).collect();
        assert_eq!(labels[0], "OK");
        for r in Reason::ALL {
            assert_eq!(labels[slot(Some(r))], r.name());
        }
    }
}
