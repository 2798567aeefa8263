//! When a fan-out's next call may start: a fixed rate, or an exponential
//! ramp towards it (AWS IoT Jobs' rollout: start slow, multiply the rate
//! after every N successes). Plain arithmetic on instants, so its steps
//! are tested without a clock.

use std::time::{Duration, Instant};

use super::plan::MAX_RATE;

/// The pacing of one fan-out.
#[derive(Debug, Clone)]
pub struct Pacer {
    /// The target rate in calls/s; 0 for none (unpaced).
    rate: f64,
    /// The rate now: the ramp's, or `rate`.
    current: f64,
    /// Ramp factor and step; `None` without a ramp.
    ramp: Option<(f64, u32)>,
    /// Successes since the last step.
    successes: u32,
    /// When the next call may start; `None` before the first.
    next: Option<Instant>,
}

impl Pacer {
    /// A pacer for `rate` calls/s (0: unpaced) and an optional ramp of
    /// `(start_rate, factor, step_successes)`; the error says what is wrong.
    pub fn new(rate: f64, ramp: Option<(f64, f64, u32)>) -> Result<Self, String> {
        if !rate.is_finite() || !(0.0..=MAX_RATE).contains(&rate) {
            return Err(format!("rate must be 0 (unpaced) to {MAX_RATE} calls/s"));
        }
        let (current, ramp) = match ramp {
            None => (rate, None),
            Some(_) if rate == 0.0 => {
                return Err("a ramp needs a rate to ramp up to".into());
            }
            Some((start, factor, step)) => {
                if !start.is_finite() || start <= 0.0 || start > rate {
                    return Err(format!(
                        "ramp start_rate must be above 0 and at most the rate ({rate})"
                    ));
                }
                if !factor.is_finite() || factor <= 1.0 || factor > 100.0 {
                    return Err("ramp factor must be above 1 and at most 100".into());
                }
                if step == 0 {
                    return Err("ramp step_successes must be at least 1".into());
                }
                (start, Some((factor, step)))
            }
        };
        Ok(Pacer {
            rate,
            current,
            ramp,
            successes: 0,
            next: None,
        })
    }

    /// The rate calls start at now, in calls/s (0: unpaced).
    pub fn current(&self) -> f64 {
        self.current
    }

    /// When the next call may start; `None` means at once.
    pub fn next_start(&self) -> Option<Instant> {
        self.next
    }

    /// A call started at `now`: the next one is due one interval after the
    /// later of its own slot and `now` less one interval, so a fan-out held
    /// up (by its concurrency) catches up by at most one call, never in a
    /// burst.
    pub fn started(&mut self, now: Instant) {
        if self.current == 0.0 {
            return;
        }
        let interval = Duration::from_secs_f64(1.0 / self.current);
        let slot = match self.next {
            Some(slot) => slot.max(now.checked_sub(interval).unwrap_or(now)),
            None => now,
        };
        self.next = Some(slot + interval);
    }

    /// A call succeeded: with a ramp, every `step` of these multiplies the
    /// rate by its factor, up to the fan-out's rate. The call already
    /// scheduled keeps its slot; the ones after it get the new interval.
    pub fn succeeded(&mut self) {
        let Some((factor, step)) = self.ramp else {
            return;
        };
        if self.current >= self.rate {
            return;
        }
        self.successes += 1;
        if self.successes >= step {
            self.successes = 0;
            self.current = (self.current * factor).min(self.rate);
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
    fn unpaced_never_waits() {
        let mut p = Pacer::new(0.0, None).unwrap();
        let t = Instant::now();
        for _ in 0..5 {
            p.started(t);
            assert_eq!(p.next_start(), None);
        }
    }

    #[test]
    fn a_rate_spaces_calls_evenly() {
        let mut p = Pacer::new(20.0, None).unwrap();
        let t0 = Instant::now();
        assert_eq!(p.next_start(), None, "the first call starts at once");
        let mut at = t0;
        for k in 1..=200u64 {
            p.started(at);
            at = p.next_start().unwrap();
            assert_eq!(at.duration_since(t0), ms(50 * k));
        }
    }

    #[test]
    fn a_late_start_catches_up_by_one_call_at_most() {
        let mut p = Pacer::new(10.0, None).unwrap();
        let t0 = Instant::now();
        p.started(t0);
        // Held up for a second (the concurrency was full): the next slot is
        // one interval after "now less one interval", i.e. now.
        p.started(t0 + ms(1000));
        assert_eq!(p.next_start().unwrap(), t0 + ms(1000));
        p.started(t0 + ms(1000));
        assert_eq!(p.next_start().unwrap(), t0 + ms(1100));
    }

    #[test]
    fn a_ramp_multiplies_the_rate_every_step_up_to_the_rate() {
        let mut p = Pacer::new(40.0, Some((5.0, 2.0, 10))).unwrap();
        let mut rates = vec![p.current()];
        for _ in 0..40 {
            p.succeeded();
            rates.push(p.current());
        }
        let steps: Vec<f64> = rates.iter().step_by(10).copied().collect();
        assert_eq!(steps, [5.0, 10.0, 20.0, 40.0, 40.0]);
        assert_eq!(rates[9], 5.0, "no step before the 10th success");
    }

    #[test]
    fn the_ramped_interval_follows_the_current_rate() {
        let mut p = Pacer::new(100.0, Some((10.0, 10.0, 1))).unwrap();
        let t0 = Instant::now();
        p.started(t0);
        assert_eq!(p.next_start().unwrap(), t0 + ms(100));
        p.succeeded();
        p.started(t0 + ms(100));
        assert_eq!(p.next_start().unwrap(), t0 + ms(110));
    }

    #[test]
    fn bad_controls_are_refused() {
        for (rate, ramp, needle) in [
            (-1.0, None, "rate"),
            (f64::INFINITY, None, "rate"),
            (2e6, None, "rate"),
            (0.0, Some((1.0, 2.0, 1)), "ramp needs a rate"),
            (10.0, Some((0.0, 2.0, 1)), "start_rate"),
            (10.0, Some((20.0, 2.0, 1)), "start_rate"),
            (10.0, Some((1.0, 1.0, 1)), "factor"),
            (10.0, Some((1.0, f64::NAN, 1)), "factor"),
            (10.0, Some((1.0, 2.0, 0)), "step_successes"),
        ] {
            let e = Pacer::new(rate, ramp).unwrap_err();
            assert!(e.contains(needle), "{e:?} lacks {needle:?}");
        }
    }
}
