//! Call metrics kept by the core and rendered as Prometheus text on
//! `/metrics`.
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

use parking_lot::RwLock;
use thingcall_proto::{wire, Reason};

/// How a call ended: `None` is `OK` (the device answered), else the reason.
pub type Outcome = Option<Reason>;

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
    buckets: [AtomicU64; BUCKETS_US.len() + 1],
}

impl Series {
    fn new() -> Self {
        Series {
            per_outcome: (0..OUTCOMES).map(|_| Cell::default()).collect(),
        }
    }

    /// Counts one finished call.
    fn record(&self, outcome: Outcome, took: Duration) {
        let cell = &self.per_outcome[slot(outcome)];
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKETS_US.partition_point(|&le| le < us);
        cell.count.fetch_add(1, Ordering::Relaxed);
        cell.sum_us.fetch_add(us, Ordering::Relaxed);
        cell.buckets[bucket].fetch_add(1, Ordering::Relaxed);
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
        if let Some(s) = self.methods.read().get(method) {
            return s.record(outcome, took);
        }
        if wire::validate_id("method", method).is_err() {
            return self.other.record(outcome, took);
        }
        let mut methods = self.methods.write();
        if methods.len() >= self.max_methods && !methods.contains_key(method) {
            return self.other.record(outcome, took);
        }
        methods
            .entry(method.into())
            .or_insert_with(Series::new)
            .record(outcome, took);
    }

    /// Writes the invocation counter and histogram, methods in name order.
    fn render(&self, out: &mut String) {
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
                    let _ = writeln!(
                        out,
                        "thingcall_invocation_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}"
                    );
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

/// The listener's connection counts, kept by the listener and read at
/// scrape time.
#[derive(Debug, Default)]
pub struct Connections {
    /// Connections open now (TLS handshakes included).
    pub open: AtomicU64,
    /// Connections accepted and closed at once: the connection cap was reached.
    pub refused: AtomicU64,
    /// TLS handshakes that failed or did not finish in time.
    pub tls_failed: AtomicU64,
    /// Connections closed for having no request for the idle timeout.
    pub idle_closed: AtomicU64,
    /// Connections closed because their first request did not arrive
    /// within the header timeout.
    pub header_timeouts: AtomicU64,
}

/// Figures read at scrape time from the parts of the core that own them.
#[derive(Debug, Default, Clone, Copy)]
pub struct Snapshot {
    /// Calls waiting for their device.
    pub in_flight: usize,
    /// Devices whose presence says online.
    pub devices_online: usize,
    /// Devices online as of an earlier MQTT session, not yet confirmed.
    pub devices_unconfirmed: usize,
    /// Whether the current session's retained presence has all arrived.
    pub presence_synced: bool,
    /// Devices known, online or not.
    pub devices_known: usize,
    /// How the current session's presence sync is going.
    pub sync: crate::presence::SyncProgress,
    /// Calls that waited on unconfirmed presence: called, offline,
    /// not found, other.
    pub presence_waits: [u64; 4],
    /// Whether the MQTT session is up with its subscriptions.
    pub mqtt_connected: bool,
    /// Sessions established after the first one.
    pub mqtt_reconnects: u64,
    /// Replies with no waiting call: after their deadline.
    pub dropped_late: u64,
    /// Replies with no waiting call: the call was already answered.
    pub dropped_duplicate: u64,
    /// Replies with no waiting call, never seen: made up or older than memory.
    pub dropped_unknown: u64,
    /// Replies on another device's reply topic.
    pub dropped_foreign: u64,
    /// Messages that could not be decoded.
    pub dropped_malformed: u64,
    /// Open watch streams.
    pub watchers: usize,
    /// Events watchers missed because they read too slowly.
    pub watch_lagged: u64,
    /// Keyed calls answered from another call with their key.
    pub idempotent_replays: u64,
    /// Caller connections open now.
    pub connections_open: u64,
    /// Caller connections closed at once for the connection cap.
    pub connections_refused: u64,
    /// Failed or timed-out TLS handshakes.
    pub tls_handshakes_failed: u64,
    /// Caller connections closed for being idle.
    pub connections_idle_closed: u64,
    /// Caller connections closed for sending no request in time.
    pub connections_header_timeouts: u64,
}

/// The whole `/metrics` page.
pub fn render(calls: &CallMetrics, s: &Snapshot) -> String {
    let mut out = String::with_capacity(4096);
    calls.render(&mut out);
    gauge(
        &mut out,
        "thingcall_invocations_in_flight",
        "Calls waiting for their device's reply.",
        s.in_flight as u64,
    );
    gauge(
        &mut out,
        "thingcall_devices_online",
        "Devices whose presence says online.",
        s.devices_online as u64,
    );
    gauge(
        &mut out,
        "thingcall_devices_unconfirmed",
        "Devices online as of an earlier MQTT session, not yet confirmed by the current one.",
        s.devices_unconfirmed as u64,
    );
    gauge(
        &mut out,
        "thingcall_presence_synced",
        "1 once the current MQTT session's retained presence has all arrived.",
        u64::from(s.presence_synced),
    );
    gauge(
        &mut out,
        "thingcall_devices_known",
        "Devices the gateway knows, online or offline.",
        s.devices_known as u64,
    );
    gauge(
        &mut out,
        "thingcall_presence_sync_retained",
        "Retained presence messages received in the current MQTT session: the sync's progress.",
        s.sync.retained,
    );
    header(
        &mut out,
        "thingcall_presence_last_retained_timestamp_seconds",
        "gauge",
        "When the last retained presence message arrived (Unix time); 0 before the first.",
    );
    let last = s
        .sync
        .last_retained
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_micros() as u64);
    let _ = writeln!(
        out,
        "thingcall_presence_last_retained_timestamp_seconds {}",
        seconds(last)
    );
    if let Some(took) = s.sync.took {
        header(
            &mut out,
            "thingcall_presence_sync_duration_seconds",
            "gauge",
            "How long the current MQTT session's presence sync took, from the session's start (absent while it runs).",
        );
        let _ = writeln!(
            out,
            "thingcall_presence_sync_duration_seconds {}",
            seconds(took.as_micros() as u64)
        );
    }
    header(
        &mut out,
        "thingcall_presence_waits_total",
        "counter",
        "Calls that waited for a device's presence to be confirmed after a (re)connect, by how the wait ended.",
    );
    for (outcome, n) in ["called", "offline", "not_found", "other"]
        .into_iter()
        .zip(s.presence_waits)
    {
        let _ = writeln!(
            out,
            "thingcall_presence_waits_total{{outcome=\"{outcome}\"}} {n}"
        );
    }
    gauge(
        &mut out,
        "thingcall_mqtt_connected",
        "1 when the MQTT session is up with its subscriptions in place.",
        u64::from(s.mqtt_connected),
    );
    counter(
        &mut out,
        "thingcall_mqtt_reconnects_total",
        "MQTT sessions established after the first.",
        s.mqtt_reconnects,
    );
    header(
        &mut out,
        "thingcall_replies_dropped_total",
        "counter",
        "Device replies that reached no caller, by cause.",
    );
    for (cause, n) in [
        ("late", s.dropped_late),
        ("duplicate", s.dropped_duplicate),
        ("unknown", s.dropped_unknown),
        ("foreign", s.dropped_foreign),
        ("malformed", s.dropped_malformed),
    ] {
        let _ = writeln!(
            out,
            "thingcall_replies_dropped_total{{cause=\"{cause}\"}} {n}"
        );
    }
    gauge(
        &mut out,
        "thingcall_watchers",
        "Open WatchDevice and event streams.",
        s.watchers as u64,
    );
    counter(
        &mut out,
        "thingcall_watch_events_lagged_total",
        "Events watchers missed because they read too slowly.",
        s.watch_lagged,
    );
    counter(
        &mut out,
        "thingcall_idempotent_replays_total",
        "Keyed calls answered with the outcome of an earlier or running call with their key.",
        s.idempotent_replays,
    );
    gauge(
        &mut out,
        "thingcall_connections_open",
        "Caller connections open on the gateway's port.",
        s.connections_open,
    );
    counter(
        &mut out,
        "thingcall_connections_refused_total",
        "Caller connections closed at once because --max-connections were open.",
        s.connections_refused,
    );
    counter(
        &mut out,
        "thingcall_connections_idle_closed_total",
        "Caller connections closed after --http-idle-timeout with no request.",
        s.connections_idle_closed,
    );
    counter(
        &mut out,
        "thingcall_connections_header_timeout_total",
        "Caller connections closed because no request arrived within --http-header-timeout.",
        s.connections_header_timeouts,
    );
    counter(
        &mut out,
        "thingcall_tls_handshakes_failed_total",
        "TLS handshakes on the gateway's port that failed or timed out.",
        s.tls_handshakes_failed,
    );
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    header(out, name, "counter", help);
    let _ = writeln!(out, "{name} {value}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    header(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {value}");
}

/// Microseconds as decimal seconds, exactly (no float rounding).
fn seconds(us: u64) -> String {
    let frac = us % 1_000_000;
    if frac == 0 {
        format!("{}", us / 1_000_000)
    } else {
        let s = format!("{}.{:06}", us / 1_000_000, frac);
        s.trim_end_matches('0').to_owned()
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
        m.render(&mut out);
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
        m.render(&mut out);
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

    #[test]
    fn every_reason_of_the_table_has_its_own_label() {
        let labels: Vec<_> = (0..OUTCOMES).map(label).collect();
        assert_eq!(labels[0], "OK");
        for r in Reason::ALL {
            assert_eq!(labels[slot(Some(r))], r.name());
        }
    }
}
