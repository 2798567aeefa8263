//! InvokeMany: one method on many devices, paced and bounded.
//!
//! A fan-out is checked whole before its first call ([`plan`]), then a
//! driver task (`gateway::fanout`) walks its devices: each device's call is
//! an ordinary [`crate::gateway::Gateway::invoke`], so it gets exactly the
//! outcome (and the metrics, traces, idempotency and policy checks) a
//! single Invoke would. The driver starts a call only when all three allow:
//!
//! - the fan-out's own concurrency (`max_concurrency`);
//! - its pace ([`pacer`]: a rate, optionally ramped);
//! - the gateway's fan-out share ([`Share`]): all fan-outs together hold
//!   at most half of `--max-in-flight`, so single Invoke calls always have
//!   the other half, however many fan-outs run. Fan-outs queue for the
//!   share in order (a fair semaphore), so none of them starves the rest.
//!
//! It stops starting calls when the abort threshold is passed ([`tally`]),
//! when the gateway drains, or when the caller goes away; calls already
//! sent then finish or time out, and are never retried.

pub mod pacer;
pub mod plan;
pub mod tally;

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Semaphore;

/// The gateway's fan-out share, and what `/metrics` shows of fan-outs.
#[derive(Debug)]
pub struct Share {
    permits: Arc<Semaphore>,
    size: usize,
    active: AtomicUsize,
    started: AtomicU64,
    aborted: AtomicU64,
    cancelled: AtomicU64,
}

impl Share {
    /// The share of a gateway with `max_in_flight` calls at most: half,
    /// and at least one call.
    pub fn new(max_in_flight: usize) -> Self {
        let size = (max_in_flight / 2).max(1);
        Share {
            permits: Arc::new(Semaphore::new(size)),
            size,
            active: AtomicUsize::new(0),
            started: AtomicU64::new(0),
            aborted: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
        }
    }

    /// The semaphore a fan-out's call holds a permit of while it runs.
    pub fn permits(&self) -> Arc<Semaphore> {
        Arc::clone(&self.permits)
    }

    /// Calls all fan-outs may have in flight at once.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Fan-out calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.size - self.permits.available_permits()
    }

    /// Fan-outs running now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// A fan-out begins; it counts as active until the guard drops.
    pub fn enter(&self) -> Active<'_> {
        self.active.fetch_add(1, Ordering::Relaxed);
        self.started.fetch_add(1, Ordering::Relaxed);
        Active(self)
    }

    /// A fan-out passed its abort threshold.
    pub fn count_aborted(&self) {
        self.aborted.fetch_add(1, Ordering::Relaxed);
    }

    /// A fan-out's caller went away before its end.
    pub fn count_cancelled(&self) {
        self.cancelled.fetch_add(1, Ordering::Relaxed);
    }

    /// The fan-out lines of `/metrics`.
    pub fn render(&self, out: &mut String) {
        let gauges = [
            (
                "thingcall_fanouts_active",
                "InvokeMany fan-outs running.",
                self.active() as u64,
            ),
            (
                "thingcall_fanout_calls_in_flight",
                "Calls of fan-outs in flight (part of thingcall_invocations_in_flight).",
                self.in_flight() as u64,
            ),
            (
                "thingcall_fanout_share",
                "Calls all fan-outs may have in flight at once (half of --max-in-flight).",
                self.size as u64,
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        let name = "thingcall_fanouts_total";
        let _ = writeln!(
            out,
            "# HELP {name} InvokeMany fan-outs started, and how many of them were aborted or cancelled.\n# TYPE {name} counter"
        );
        for (label, n) in [
            ("started", &self.started),
            ("aborted", &self.aborted),
            ("cancelled", &self.cancelled),
        ] {
            let _ = writeln!(
                out,
                "{name}{{event=\"{label}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
    }
}

/// Keeps a fan-out counted as active.
pub struct Active<'a>(&'a Share);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_is_half_the_gateway_and_at_least_one() {
        assert_eq!(Share::new(10_000).size(), 5_000);
        assert_eq!(Share::new(3).size(), 1);
        assert_eq!(Share::new(1).size(), 1);
    }

    #[test]
    fn metrics_show_active_fanouts_and_share() {
        let s = Share::new(8);
        let a = s.enter();
        let _p = s.permits().try_acquire_owned().unwrap();
        let mut out = String::new();
        s.render(&mut out);
        assert!(out.contains("thingcall_fanouts_active 1\n"), "{out}");
        assert!(
            out.contains("thingcall_fanout_calls_in_flight 1\n"),
            "{out}"
        );
        assert!(out.contains("thingcall_fanout_share 4\n"), "{out}");
        assert!(
            out.contains("thingcall_fanouts_total{event=\"started\"} 1\n"),
            "{out}"
        );
        drop(a);
        assert_eq!(s.active(), 0);
    }
}
