//! Trace-id exemplars of the duration histogram: for each bucket of each
//! (method, outcome) series, the latest sampled call that landed in it, so
//! a slow bucket on a dashboard links to one trace that made it slow.
//!
//! Kept off the hot path of untraced calls: a series holds no exemplar
//! storage until its first sampled call (then one allocation, once), and an
//! untraced call never looks at it. A sampled call writes its bucket's slot
//! with a seqlock made of atomics: one compare-exchange and five relaxed
//! stores, no lock and no allocation; a scrape reads the slots without
//! ever making a call wait. Two calls writing the same slot at once: one
//! wins, the other's exemplar is dropped (either is as recent; an exemplar
//! is a sample, not a count).

use std::fmt::Write;
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::TraceId;

use super::seconds;

/// The one label of an exemplar.
const LABEL: &str = "trace_id";

// OpenMetrics caps an exemplar's label names and values at 128 UTF-8
// characters together; a trace id is 32 hex digits.
const _: () = assert!(LABEL.len() + 32 <= 128);

/// One call's exemplar: its trace, duration and when it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exemplar {
    /// The call's trace (sampled, so exported and findable).
    pub trace_id: TraceId,
    /// The call's duration, in microseconds (the histogram's unit).
    pub value_us: u64,
    /// When it was recorded, in microseconds since the Unix epoch.
    pub at_us: u64,
}

impl Exemplar {
    /// An exemplar of `trace_id` for a call of `value_us` ending now.
    pub fn now(trace_id: TraceId, value_us: u64) -> Exemplar {
        let at_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        Exemplar {
            trace_id,
            value_us,
            at_us,
        }
    }

    /// Appends the OpenMetrics exemplar of a sample line:
    /// ` # {trace_id="…"} <seconds> <unix seconds>`.
    pub fn write(&self, out: &mut String) {
        let _ = write!(
            out,
            " # {{{LABEL}=\"{}\"}} {} {}",
            self.trace_id,
            seconds(self.value_us),
            seconds(self.at_us)
        );
    }
}

/// One bucket's latest exemplar. `seq` is 0 while empty, odd while a
/// call writes it, and even (and past 0) once written.
#[derive(Debug, Default)]
struct Slot {
    seq: AtomicU64,
    trace_hi: AtomicU64,
    trace_lo: AtomicU64,
    value_us: AtomicU64,
    at_us: AtomicU64,
}

impl Slot {
    fn store(&self, e: &Exemplar) {
        let s = self.seq.load(Ordering::Relaxed);
        if s & 1 == 1
            || self
                .seq
                .compare_exchange(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            // Another call is writing this slot now: its exemplar stands.
            return;
        }
        // Orders the odd `seq` before the fields: a reader that sees any new
        // field sees the odd (or a later) `seq` on its second look.
        fence(Ordering::Release);
        let id = u128::from_be_bytes(e.trace_id.to_bytes());
        self.trace_hi.store((id >> 64) as u64, Ordering::Relaxed);
        self.trace_lo.store(id as u64, Ordering::Relaxed);
        self.value_us.store(e.value_us, Ordering::Relaxed);
        self.at_us.store(e.at_us, Ordering::Relaxed);
        self.seq.store(s + 2, Ordering::Release);
    }

    /// The slot's exemplar, or `None` when empty or still being written
    /// after a few looks (the next scrape will have it).
    fn load(&self) -> Option<Exemplar> {
        for _ in 0..4 {
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 == 0 {
                return None;
            }
            if s1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let hi = self.trace_hi.load(Ordering::Relaxed);
            let lo = self.trace_lo.load(Ordering::Relaxed);
            let value_us = self.value_us.load(Ordering::Relaxed);
            let at_us = self.at_us.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == s1 {
                let id = (u128::from(hi) << 64) | u128::from(lo);
                return Some(Exemplar {
                    trace_id: TraceId::from_bytes(id.to_be_bytes()),
                    value_us,
                    at_us,
                });
            }
        }
        None
    }
}

/// The exemplars of one series' `N` buckets.
#[derive(Debug, Default)]
pub struct Exemplars<const N: usize> {
    slots: OnceLock<Box<[Slot; N]>>,
}

impl<const N: usize> Exemplars<N> {
    /// Makes `e` the exemplar of `bucket` (an index below `N`).
    pub fn store(&self, bucket: usize, e: &Exemplar) {
        let slots = self
            .slots
            .get_or_init(|| Box::new(std::array::from_fn(|_| Slot::default())));
        slots[bucket].store(e);
    }

    /// The exemplar of `bucket`, if a sampled call landed there.
    pub fn load(&self, bucket: usize) -> Option<Exemplar> {
        self.slots.get()?.get(bucket)?.load()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    fn id(hex: &str) -> TraceId {
        TraceId::from_hex(hex).unwrap()
    }

    #[test]
    fn an_exemplar_renders_as_openmetrics_within_the_label_limit() {
        let e = Exemplar {
            trace_id: id(ID),
            value_us: 810,
            at_us: 1_700_000_000_123_000,
        };
        let mut out = String::new();
        e.write(&mut out);
        assert_eq!(
            out,
            format!(" # {{trace_id=\"{ID}\"}} 0.00081 1700000000.123")
        );
        let labels = out.split('{').nth(1).unwrap().split('}').next().unwrap();
        let (name, value) = labels.split_once('=').unwrap();
        assert!(name.chars().count() + value.trim_matches('"').chars().count() <= 128);
    }

    #[test]
    fn a_slot_keeps_the_latest_exemplar_and_nothing_before_the_first() {
        let ex = Exemplars::<3>::default();
        assert_eq!(ex.load(0), None);
        assert!(ex.slots.get().is_none(), "no storage before a sampled call");
        let first = Exemplar::now(id(ID), 100);
        ex.store(1, &first);
        assert_eq!(ex.load(1), Some(first));
        assert_eq!(ex.load(0), None);
        assert_eq!(ex.load(2), None);
        let later = Exemplar::now(id(&"ab".repeat(16)), 200);
        ex.store(1, &later);
        assert_eq!(ex.load(1), Some(later));
    }

    #[test]
    fn concurrent_writers_never_tear_an_exemplar() {
        // Each writer stores exemplars whose fields all derive from one
        // number; a reader that ever sees a mix has seen a torn write.
        let ex = std::sync::Arc::new(Exemplars::<1>::default());
        let writers: Vec<_> = (1..=2u64)
            .map(|w| {
                let ex = ex.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000u64 {
                        let n = w << 32 | i;
                        let trace_id = TraceId::from_bytes(u128::from(n).to_be_bytes());
                        ex.store(
                            0,
                            &Exemplar {
                                trace_id,
                                value_us: n,
                                at_us: n,
                            },
                        );
                    }
                })
            })
            .collect();
        while !writers.iter().all(|w| w.is_finished()) {
            if let Some(e) = ex.load(0) {
                let n = u128::from_be_bytes(e.trace_id.to_bytes());
                assert_eq!(n, u128::from(e.value_us));
                assert_eq!(e.value_us, e.at_us);
            }
        }
        for w in writers {
            w.join().unwrap();
        }
        assert!(ex.load(0).is_some());
    }
}
