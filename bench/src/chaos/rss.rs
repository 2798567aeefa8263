//! The gateway's resident memory through a chaos run, and whether it stayed
//! flat. RSS is sampled once a second from `/proc/PID/status` (`VmRSS`);
//! the judgement ([`judge`]) ignores the first [`WARMUP_SHARE`] of the
//! samples (the allocator's arenas and the gateway's tables growing to the
//! run's working set) and splits the rest into thirds:
//!
//! flat = the last third's peak is at most the first third's peak plus
//! [`TOLERANCE`] of it (at least [`MIN_SLACK_KIB`]).
//!
//! Why this rule: a leak keeps what each call leaves behind, so it grows
//! with the calls made and the last third sits above the first by what the
//! middle third's calls leaked; ordinary variation (how many calls happen
//! to be in flight at a sample, pages the allocator keeps) is bounded by
//! the working set, which the first third has already reached. Peaks
//! rather than means, because a sample lands anywhere in that variation.

use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Time between samples.
pub const EVERY: Duration = Duration::from_secs(1);
/// Share of the samples, from the start, treated as warm-up.
pub const WARMUP_SHARE: f64 = 0.2;
/// How far above the first third's peak the last third's may go.
pub const TOLERANCE: f64 = 0.10;
/// The least slack, in KiB: a small process moves in allocator blocks.
pub const MIN_SLACK_KIB: u64 = 1024;
/// Samples needed after the warm-up for a judgement (three per third).
pub const MIN_SAMPLES: usize = 9;

/// The judgement of a run's RSS samples (KiB).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RssVerdict {
    /// The last third stayed within the allowance.
    Flat {
        /// Peak of the first third after warm-up.
        first_kib: u64,
        /// Peak of the last third.
        last_kib: u64,
        /// The most the last third's peak could have been.
        allowed_kib: u64,
    },
    /// The last third's peak went past the allowance: a leak.
    Grew {
        /// Peak of the first third after warm-up.
        first_kib: u64,
        /// Peak of the last third.
        last_kib: u64,
        /// The most the last third's peak could have been.
        allowed_kib: u64,
    },
    /// No judgement (no gateway pid, or a run too short); says why.
    NotJudged(String),
}

impl RssVerdict {
    /// One line for the report.
    pub fn describe(&self) -> String {
        match self {
            RssVerdict::Flat { first_kib, last_kib, allowed_kib } => format!(
                "flat: last third's peak {last_kib} KiB <= {allowed_kib} KiB allowed (first third's peak {first_kib} KiB + {:.0}%)",
                TOLERANCE * 100.0
            ),
            RssVerdict::Grew { first_kib, last_kib, allowed_kib } => format!(
                "last third's peak {last_kib} KiB > {allowed_kib} KiB allowed (first third's peak {first_kib} KiB + {:.0}%)",
                TOLERANCE * 100.0
            ),
            RssVerdict::NotJudged(why) => format!("not judged: {why}"),
        }
    }
}

/// Judges `samples` (KiB, in time order) by the rule in the module docs.
pub fn judge(samples: &[u64]) -> RssVerdict {
    let skip = (samples.len() as f64 * WARMUP_SHARE).ceil() as usize;
    let rest = &samples[skip.min(samples.len())..];
    if rest.len() < MIN_SAMPLES {
        return RssVerdict::NotJudged(format!(
            "{} samples after warm-up, {MIN_SAMPLES} needed (run at least {} s)",
            rest.len(),
            ((MIN_SAMPLES as f64 / (1.0 - WARMUP_SHARE)).ceil() as u64 + 1) * EVERY.as_secs()
        ));
    }
    let third = rest.len() / 3;
    let peak = |s: &[u64]| s.iter().copied().max().unwrap_or(0);
    let first_kib = peak(&rest[..third]);
    let last_kib = peak(&rest[rest.len() - third..]);
    let slack = ((first_kib as f64 * TOLERANCE) as u64).max(MIN_SLACK_KIB);
    let allowed_kib = first_kib + slack;
    if last_kib <= allowed_kib {
        RssVerdict::Flat {
            first_kib,
            last_kib,
            allowed_kib,
        }
    } else {
        RssVerdict::Grew {
            first_kib,
            last_kib,
            allowed_kib,
        }
    }
}

/// `VmRSS` (resident set size now) in KiB from a `/proc/PID/status` text.
pub fn parse_vm_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// RSS of `pid` now, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss_kib(&text)
}

/// A task sampling one process's RSS every [`EVERY`] until stopped.
pub struct Sampler {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Vec<u64>>,
}

impl Sampler {
    /// Starts sampling `pid` (the first sample is taken at once).
    pub fn start(pid: u32) -> Sampler {
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut every = tokio::time::interval(EVERY);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = every.tick() => samples.extend(rss_kib(pid)),
                }
            }
            samples
        });
        Sampler { stop, task }
    }

    /// Stops and returns the samples, in KiB.
    pub async fn finish(self) -> Vec<u64> {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_noisy_memory_passes() {
        // Warm-up climb, then noise around 20 MiB.
        let mut s = vec![8_000, 12_000, 16_000, 19_000];
        s.extend((0..30).map(|i| 20_000 + (i * 7919 % 900)));
        assert!(
            matches!(judge(&s), RssVerdict::Flat { .. }),
            "{:?}",
            judge(&s)
        );
    }

    #[test]
    fn a_steady_climb_is_a_leak() {
        let s: Vec<u64> = (0..40).map(|i| 20_000 + i * 200).collect();
        match judge(&s) {
            RssVerdict::Grew {
                first_kib,
                last_kib,
                allowed_kib,
            } => {
                assert!(last_kib > allowed_kib && allowed_kib > first_kib);
            }
            other => panic!("{other:?}"),
        }
        assert!(judge(&s).describe().contains("> "));
    }

    #[test]
    fn small_processes_get_the_minimum_slack() {
        let mut s = vec![1_000; 20];
        s.extend([1_900; 10]);
        assert!(
            matches!(
                judge(&s),
                RssVerdict::Flat {
                    allowed_kib: 2_024,
                    ..
                }
            ),
            "{:?}",
            judge(&s)
        );
    }

    #[test]
    fn short_runs_are_not_judged() {
        assert!(matches!(judge(&[]), RssVerdict::NotJudged(_)));
        assert!(matches!(judge(&[1; 11]), RssVerdict::NotJudged(_)));
        assert!(matches!(judge(&[1; 12]), RssVerdict::Flat { .. }));
    }

    #[test]
    fn status_text_and_own_process() {
        let text = "Name:\tx\nVmHWM:\t 9 kB\nVmRSS:\t   12345 kB\n";
        assert_eq!(parse_vm_rss_kib(text), Some(12345));
        assert_eq!(parse_vm_rss_kib("Name:\tx\n"), None);
        assert!(rss_kib(std::process::id()).unwrap() > 0);
        assert_eq!(rss_kib(u32::MAX), None);
    }
}
