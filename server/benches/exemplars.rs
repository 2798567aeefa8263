//! What one observation of the duration histogram costs, with and without
//! a trace-id exemplar, from 1 and from 2 threads at once on the same
//! series and bucket (a hot method): the hand-written
//! [`CallMetrics`] against `prometheus-client`'s `HistogramWithExemplars`
//! in a `Family`, the library the issue proposed instead. The figures and
//! the decision they led to are in `docs/metrics-exemplars.md`.
//!
//! `cargo bench -p thingcall-server --bench exemplars`
//!
//! Plain timing rather than criterion: the point is contention between
//! threads, which criterion's one-thread loop does not show. Each figure is
//! the median of a few runs of wall time per observation per thread.

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::trace::TraceId;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use thingcall_server::metrics::CallMetrics;

/// Observations per thread per run.
const N: u64 = 2_000_000;
const RUNS: usize = 5;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    method: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TraceLabel {
    trace_id: String,
}

/// The buckets of `CallMetrics`, in seconds.
const BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// Median nanoseconds per observation of `observe(thread, i)` run `N`
/// times on each of `threads` threads started together.
fn measure<F>(threads: usize, observe: F) -> f64
where
    F: Fn(usize, u64) + Send + Sync + 'static,
{
    let observe = Arc::new(observe);
    let mut runs: Vec<f64> = (0..RUNS)
        .map(|_| {
            let start = Arc::new(Barrier::new(threads + 1));
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let (observe, start) = (observe.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        let began = Instant::now();
                        for i in 0..N {
                            observe(t, black_box(i));
                        }
                        began.elapsed()
                    })
                })
                .collect();
            start.wait();
            let slowest: Duration = handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .max()
                .unwrap();
            slowest.as_nanos() as f64 / N as f64
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[RUNS / 2]
}

fn trace_id(thread: usize) -> TraceId {
    TraceId::from_bytes(
        (0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736u128 + thread as u128).to_be_bytes(),
    )
}

fn main() {
    let took = Duration::from_micros(810);
    let secs = took.as_secs_f64();
    println!("ns per observation per thread (median of {RUNS} runs of {N}):");
    println!("{:<58} {:>9} {:>9}", "", "1 thread", "2 threads");
    let row = |name: &str, run: &dyn Fn(usize) -> f64| {
        println!("{name:<58} {:>9.1} {:>9.1}", run(1), run(2));
    };

    row("hand-written, untraced", &|threads| {
        let m = Arc::new(CallMetrics::new(64));
        measure(threads, move |_, _| m.record("echo", None, took))
    });
    row("hand-written, exemplar", &|threads| {
        let m = Arc::new(CallMetrics::new(64));
        measure(threads, move |t, _| {
            m.record_traced("echo", None, took, Some(trace_id(t)))
        })
    });

    let family = || {
        let f: Family<CallLabels, HistogramWithExemplars<TraceLabel>> =
            Family::new_with_constructor(|| HistogramWithExemplars::new(BUCKETS.into_iter()));
        let labels = CallLabels {
            method: "echo".into(),
            outcome: "OK".into(),
        };
        Arc::new((f, labels))
    };
    row(
        "prometheus-client 0.24 HistogramWithExemplars, none",
        &|threads| {
            let f = family();
            measure(threads, move |_, _| {
                f.0.get_or_create(&f.1).observe(secs, None, None)
            })
        },
    );
    row(
        "prometheus-client 0.24 HistogramWithExemplars, exemplar",
        &|threads| {
            let f = family();
            let ids: Arc<Vec<String>> =
                Arc::new((0..threads).map(|t| trace_id(t).to_string()).collect());
            measure(threads, move |t, _| {
                f.0.get_or_create(&f.1).observe(
                    secs,
                    Some(TraceLabel {
                        trace_id: ids[t].clone(),
                    }),
                    Some(SystemTime::now()),
                )
            })
        },
    );
}
