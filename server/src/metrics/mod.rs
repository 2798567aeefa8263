//! Call metrics kept by the core and rendered on `/metrics`, as
//! Prometheus text or, to a scraper that asks for it, as OpenMetrics text
//! with trace-id exemplars on the duration histogram ([`Format`]).
//!
//! Written by hand rather than with a metrics crate: see [`CallMetrics`]
//! for why, and `docs/metrics-exemplars.md` for the measurement behind
//! keeping it so once exemplars came.

use std::fmt::Write;
use std::sync::atomic::AtomicU64;

use thingcall_proto::Reason;

mod exemplars;
mod invocations;
mod openmetrics;

pub use invocations::{CallMetrics, Series, OTHER_METHOD};
pub use openmetrics::Format;

/// How a call ended: `None` is `OK` (the device answered), else the reason.
pub type Outcome = Option<Reason>;

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

/// The core's part of the `/metrics` page, with exemplars when `format`
/// has them; [`Format::finish`] makes the whole page (this and what other
/// parts add) one of `format`.
pub fn render(calls: &CallMetrics, s: &Snapshot, format: Format) -> String {
    let mut out = String::with_capacity(4096);
    calls.render(&mut out, format.exemplars());
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

pub(crate) fn header(out: &mut String, name: &str, kind: &str, help: &str) {
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
pub(crate) fn seconds(us: u64) -> String {
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
    use std::time::Duration;

    use super::*;

    /// The whole page as `format`, the fan-outs' part included.
    fn page(calls: &CallMetrics, format: Format) -> String {
        let mut text = render(calls, &Snapshot::default(), format);
        crate::fanout::Share::new(8).render(&mut text);
        format.finish(text)
    }

    #[test]
    fn the_openmetrics_page_follows_the_spec_where_prometheus_text_differs() {
        let calls = CallMetrics::new(8);
        let trace = opentelemetry::trace::TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736");
        calls.record_traced("echo", None, Duration::from_millis(3), trace.ok());
        let prometheus = page(&calls, Format::Prometheus);
        let om = page(&calls, Format::OpenMetrics);
        assert!(!prometheus.contains("# EOF"));
        assert!(om.ends_with("\n# EOF\n"), "{om}");

        // Every counter family `x`: `# TYPE x counter`, samples `x_total`.
        let mut family = ("", "");
        let mut counters = 0;
        for line in om.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                family = rest.split_once(' ').unwrap();
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let name = line.split(['{', ' ']).next().unwrap();
            match family.1 {
                "counter" => {
                    counters += 1;
                    assert!(!family.0.ends_with("_total"), "{line}");
                    assert_eq!(name, format!("{}_total", family.0), "{line}");
                }
                "histogram" => assert!(
                    ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| name == format!("{}{s}", family.0)),
                    "{line}"
                ),
                _ => assert_eq!(name, family.0, "{line}"),
            }
        }
        assert!(counters > 10, "{om}");

        // Apart from the counters' metadata, the exemplar and `# EOF`, the
        // same samples in both.
        let samples = |t: &str| -> Vec<String> {
            t.lines()
                .filter(|l| !l.starts_with('#'))
                .map(|l| l.split(" # ").next().unwrap().to_owned())
                .collect()
        };
        assert_eq!(samples(&om), samples(&prometheus));
        assert_eq!(om.matches(" # {trace_id=").count(), 1, "{om}");
        assert_eq!(prometheus.matches("trace_id").count(), 0);
    }
}
