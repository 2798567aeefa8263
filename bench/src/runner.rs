//! Runs the calls: `concurrency` worker tasks each take the next call
//! number until the count is reached or the time is up, and keep their own
//! [`Tally`] (and [`Breakdown`]) so the hot loop takes no lock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::breakdown::Breakdown;
use super::modes::Caller;
use super::tally::{Outcome, Tally};

/// When a phase stops taking new calls.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Calls to start (`u64::MAX`: no limit).
    pub calls: u64,
    /// Time after which no new call starts; calls in flight finish (each
    /// is bounded by its own timeout).
    pub duration: Duration,
}

/// What one phase measured.
#[derive(Debug)]
pub struct Phase {
    /// Every completed call.
    pub tally: Tally,
    /// Where the ok calls' time went, when asked for.
    pub breakdown: Option<Breakdown>,
    /// From the start of the phase to the last call's completion.
    pub window: Duration,
}

/// Shared counters of a phase.
#[derive(Default)]
struct Counters {
    next: AtomicU64,
    done: AtomicU64,
    stop: AtomicBool,
}

/// A timed phase's clock: sets the phase's stop flag once its duration has
/// passed, and shows its count of finished calls on the progress bar every
/// `every`. Both tasks end when it is dropped. Shared by every timed phase
/// (the bench legs and the chaos run).
pub(crate) struct Clock(tokio::task::JoinHandle<()>, tokio::task::JoinHandle<()>);

impl Clock {
    /// Starts the clock of a phase whose counters are `counters`, with its
    /// stop flag and done count picked by `stop` and `done`.
    pub(crate) fn start<C: Send + Sync + 'static>(
        counters: &Arc<C>,
        stop: fn(&C) -> &AtomicBool,
        done: fn(&C) -> &AtomicU64,
        duration: Duration,
        progress: &ProgressBar,
        every: Duration,
    ) -> Self {
        let timer = {
            let counters = counters.clone();
            tokio::spawn(async move {
                tokio::time::sleep(duration).await;
                stop(&counters).store(true, Ordering::Relaxed);
            })
        };
        let ticker = {
            let (counters, progress) = (counters.clone(), progress.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    progress.set_position(done(&counters).load(Ordering::Relaxed));
                }
            })
        };
        Self(timer, ticker)
    }
}

impl Drop for Clock {
    fn drop(&mut self) {
        self.0.abort();
        self.1.abort();
    }
}

/// Runs one phase with `concurrency` workers over `targets` devices
/// (round-robin by call number), updating `progress` every 100 ms. With
/// `breakdown` (`Some(through_gateway)`) the ok calls' figures are recorded
/// too, each worker in its own [`Breakdown`] made in the worker: a clone of
/// an empty one would copy its histograms' whole memory.
pub async fn run(
    caller: &Caller,
    targets: usize,
    concurrency: u16,
    limits: Limits,
    progress: &ProgressBar,
    breakdown: Option<bool>,
) -> Phase {
    let counters = Arc::new(Counters::default());
    let start = Instant::now();
    let clock = Clock::start(
        &counters,
        |c| &c.stop,
        |c| &c.done,
        limits.duration,
        progress,
        Duration::from_millis(100),
    );
    let workers: Vec<_> = (0..usize::from(concurrency))
        .map(|index| {
            let mut worker = caller.worker(index);
            let counters = counters.clone();
            tokio::spawn(async move {
                let mut breakdown = breakdown.map(Breakdown::new);
                let mut tally = Tally::default();
                loop {
                    if counters.stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let n = counters.next.fetch_add(1, Ordering::Relaxed);
                    if n >= limits.calls {
                        break;
                    }
                    let target = (n % targets as u64) as usize;
                    let began = Instant::now();
                    let done = worker.call(target).await;
                    let latency = began.elapsed();
                    if let Some(b) = &mut breakdown {
                        if done.outcome == Outcome::Ok {
                            b.record(latency, done.figures);
                        }
                    }
                    tally.record(latency, done.outcome);
                    counters.done.fetch_add(1, Ordering::Relaxed);
                }
                (tally, breakdown)
            })
        })
        .collect();
    let mut tally = Tally::default();
    let mut all: Option<Breakdown> = None;
    for worker in workers {
        match worker.await {
            Ok((t, b)) => {
                tally.merge(t);
                match (&mut all, b) {
                    (Some(all), Some(b)) => all.merge(b),
                    (None, b) => all = b,
                    (Some(_), None) => {}
                }
            }
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("bench worker: {e}"),
        }
    }
    let window = start.elapsed();
    drop(clock);
    progress.set_position(counters.done.load(Ordering::Relaxed));
    Phase {
        tally,
        breakdown: all,
        window,
    }
}

/// A progress bar on stderr for a phase of `calls` calls (a counter
/// without a bar when unbounded), or a hidden one: when `show` is false,
/// and whenever [`progress::allowed`](super::progress::allowed) says no
/// (output not to a terminal, `TERM=dumb`, `NO_COLOR`), so a piped run
/// never gets a `\r` or an escape code.
pub fn progress_bar(show: bool, calls: u64, what: &str) -> ProgressBar {
    if !show || !super::progress::allowed() {
        return ProgressBar::hidden();
    }
    let bounded = calls != u64::MAX;
    let bar = ProgressBar::with_draw_target(bounded.then_some(calls), ProgressDrawTarget::stderr());
    let template = if bounded {
        "{msg:>8} [{bar:30}] {pos}/{len} calls  {per_sec}  {elapsed}"
    } else {
        "{msg:>8} {spinner} {pos} calls  {per_sec}  {elapsed}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}
