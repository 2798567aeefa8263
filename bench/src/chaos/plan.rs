//! The chaos run's schedule: everything random about a run is a pure
//! function of `--seed` and the call's number, so the same seed replays the
//! same calls (target, deadline) and the same device behaviour (latency,
//! failure, reboot and its downtime) whatever the timing, the concurrency
//! or the machine.
//!
//! The caller's half ([`call_plan`]) and the device's half
//! ([`device_plan`]) are drawn from separate streams: the device learns
//! only the call number (from the nonce it echoes), never the deadline, so
//! it behaves like a device that knows nothing about its callers.

use std::time::Duration;

/// Shortest call deadline.
pub const MIN_DEADLINE: Duration = Duration::from_millis(5);
/// Longest call deadline.
pub const MAX_DEADLINE: Duration = Duration::from_secs(1);
/// A normal call's device latency is uniform in 0 ..= this.
pub const MAX_LATENCY: Duration = Duration::from_millis(300);
/// Share of calls on which the device is a straggler: its latency is
/// uniform in [`MAX_LATENCY`] ..= [`MAX_STRAGGLER`], beyond most
/// deadlines, so the gateway's timeout path and late replies are exercised.
pub const STRAGGLER_SHARE: f64 = 0.05;
/// Longest straggler latency (past the longest deadline).
pub const MAX_STRAGGLER: Duration = Duration::from_millis(1500);
/// Share of calls the device answers with status 500 (its own failure).
pub const FAIL_SHARE: f64 = 0.05;
/// Share of calls after whose reply the device reboots: it drops its
/// connection without a goodbye, so the broker publishes its Will and the
/// calls in flight to it end DEVICE_DISCONNECTED (and the next ones
/// DEVICE_OFFLINE until it is back).
pub const REBOOT_SHARE: f64 = 0.005;
/// Shortest time a rebooting device stays away.
pub const MIN_DOWNTIME: Duration = Duration::from_millis(100);
/// Longest time a rebooting device stays away.
pub const MAX_DOWNTIME: Duration = Duration::from_millis(1000);

/// What the caller does on call number `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallPlan {
    /// Index of the device to call (0-based; the device id is `chaos-{target+1}`).
    pub target: usize,
    /// The call's deadline, uniform in [`MIN_DEADLINE`] ..= [`MAX_DEADLINE`].
    pub deadline: Duration,
}

/// What the device does with call number `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevicePlan {
    /// How long the device works before it answers.
    pub latency: Duration,
    /// What it answers and does next.
    pub act: Act,
}

/// The device's answer to one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// Status 200 with the nonce.
    Echo,
    /// Status 500 with the nonce.
    Fail,
    /// Status 200 with the nonce, then drop the connection and come back
    /// after this long.
    Reboot(Duration),
}

impl DevicePlan {
    /// The status the device answers with.
    pub fn status(&self) -> i32 {
        match self.act {
            Act::Fail => 500,
            Act::Echo | Act::Reboot(_) => 200,
        }
    }
}

/// Stream numbers, so the caller's and the device's draws never overlap.
const CALLER: u64 = 1;
const DEVICE: u64 = 2;

/// splitmix64's finaliser: a well-mixed 64-bit value from any input.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The `k`th draw of `stream` for call `index`, uniform in [0, 1).
fn draw(seed: u64, stream: u64, index: u64, k: u64) -> f64 {
    let z = mix(mix(mix(seed ^ stream.rotate_left(56)) ^ index) ^ k);
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// A duration uniform in `lo ..= hi` (to the microsecond) from `u` in [0, 1).
fn between(lo: Duration, hi: Duration, u: f64) -> Duration {
    let span = (hi - lo).as_micros() as f64;
    lo + Duration::from_micros((span * u).round() as u64)
}

/// The caller's half of call `index` over `devices` devices.
pub fn call_plan(seed: u64, index: u64, devices: usize) -> CallPlan {
    let target = (draw(seed, CALLER, index, 0) * devices as f64) as usize;
    CallPlan {
        target: target.min(devices.saturating_sub(1)),
        deadline: between(MIN_DEADLINE, MAX_DEADLINE, draw(seed, CALLER, index, 1)),
    }
}

/// The device's half of call `index`.
pub fn device_plan(seed: u64, index: u64) -> DevicePlan {
    let d = |k| draw(seed, DEVICE, index, k);
    let latency = if d(0) < STRAGGLER_SHARE {
        between(MAX_LATENCY, MAX_STRAGGLER, d(1))
    } else {
        between(Duration::ZERO, MAX_LATENCY, d(1))
    };
    let u = d(2);
    let act = if u < REBOOT_SHARE {
        Act::Reboot(between(MIN_DOWNTIME, MAX_DOWNTIME, d(3)))
    } else if u < REBOOT_SHARE + FAIL_SHARE {
        Act::Fail
    } else {
        Act::Echo
    };
    DevicePlan { latency, act }
}

/// The payload of call `index`: `{index}.{tag}`, `tag` being random per
/// run, so a nonce is unique within a run and across runs (a reply left
/// over from an earlier run cannot pass for this one's).
pub fn nonce(index: u64, tag: &str) -> String {
    format!("{index}.{tag}")
}

/// The call number a nonce carries, for the device.
pub fn index_of(nonce: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(nonce).ok()?;
    text.split_once('.')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_schedule_other_seed_other_schedule() {
        let a: Vec<_> = (0..500)
            .map(|i| (call_plan(7, i, 20), device_plan(7, i)))
            .collect();
        let b: Vec<_> = (0..500)
            .map(|i| (call_plan(7, i, 20), device_plan(7, i)))
            .collect();
        assert_eq!(a, b);
        let c: Vec<_> = (0..500)
            .map(|i| (call_plan(8, i, 20), device_plan(8, i)))
            .collect();
        assert_ne!(a, c);
    }

    #[test]
    fn draws_stay_in_range_with_the_documented_shares() {
        let n = 100_000u64;
        let (mut fail, mut reboot, mut straggle) = (0u64, 0u64, 0u64);
        let mut hit = [false; 20];
        for i in 0..n {
            let c = call_plan(42, i, 20);
            assert!((MIN_DEADLINE..=MAX_DEADLINE).contains(&c.deadline));
            hit[c.target] = true;
            let d = device_plan(42, i);
            assert!(d.latency <= MAX_STRAGGLER);
            if d.latency > MAX_LATENCY {
                straggle += 1;
            }
            match d.act {
                Act::Fail => fail += 1,
                Act::Reboot(t) => {
                    assert!((MIN_DOWNTIME..=MAX_DOWNTIME).contains(&t));
                    reboot += 1;
                }
                Act::Echo => {}
            }
        }
        assert!(hit.iter().all(|&h| h), "every device is called");
        let share = |k: u64| k as f64 / n as f64;
        assert!((share(fail) - FAIL_SHARE).abs() < 0.01, "{fail}");
        assert!((share(reboot) - REBOOT_SHARE).abs() < 0.002, "{reboot}");
        assert!(
            (share(straggle) - STRAGGLER_SHARE).abs() < 0.01,
            "{straggle}"
        );
    }

    #[test]
    fn nonces_carry_their_index() {
        let n = nonce(12345, "ab12");
        assert_eq!(n, "12345.ab12");
        assert_eq!(index_of(n.as_bytes()), Some(12345));
        for bad in [&b""[..], b"12345", b"x.y", b"\xff.1"] {
            assert_eq!(index_of(bad), None, "{bad:?}");
        }
    }
}
