//! Rendering of protobuf timestamps and durations for people: RFC 3339 UTC
//! with milliseconds, and short durations such as `1.2ms`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost_types::Timestamp;

/// `2026-11-26T03:20:07.123Z`, or `-` when absent. Out-of-range values fall
/// back to prost's own formatting instead of panicking in humantime.
pub fn timestamp(ts: Option<&Timestamp>) -> String {
    let Some(ts) = ts else {
        return "-".to_owned();
    };
    // humantime panics before the epoch and fails after year 9999.
    const YEAR_10000: u64 = 253_402_300_800;
    match SystemTime::try_from(*ts) {
        Ok(t)
            if t.duration_since(UNIX_EPOCH)
                .is_ok_and(|d| d.as_secs() < YEAR_10000) =>
        {
            humantime::format_rfc3339_millis(t).to_string()
        }
        _ => ts.to_string(),
    }
}

/// A protobuf duration as a std one; `None` when absent or negative.
pub fn to_std(d: Option<&prost_types::Duration>) -> Option<Duration> {
    d.and_then(|d| Duration::try_from(*d).ok())
}

/// `850us`, `1.2ms`, `2.35s`, or `-` when absent: short enough for one
/// line per event, precise enough to compare calls.
pub fn duration(d: Option<&prost_types::Duration>) -> String {
    match to_std(d) {
        Some(d) => short(d),
        None => "-".to_owned(),
    }
}

/// See [`duration`].
pub fn short(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.2}s", d.as_secs_f64())
    } else if d >= Duration::from_millis(1) {
        format!("{:.1}ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{}us", d.as_micros())
    }
}

/// Milliseconds as a JSON-friendly float.
pub fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_has_millis_and_z() {
        let ts = Timestamp {
            seconds: 1_795_663_207,
            nanos: 123_456_789,
        };
        assert_eq!(timestamp(Some(&ts)), "2026-11-26T03:20:07.123Z");
        assert_eq!(
            timestamp(Some(&Timestamp {
                seconds: 0,
                nanos: 0
            })),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(timestamp(None), "-");
    }

    #[test]
    fn timestamp_out_of_range_does_not_panic() {
        let before = Timestamp {
            seconds: -1,
            nanos: 0,
        };
        assert_eq!(timestamp(Some(&before)), "1969-12-31T23:59:59Z");
        let far = Timestamp {
            seconds: 300_000_000_000,
            nanos: 0,
        };
        assert!(!timestamp(Some(&far)).is_empty());
    }

    #[test]
    fn durations_are_short() {
        let pd = |secs, nanos| prost_types::Duration {
            seconds: secs,
            nanos,
        };
        assert_eq!(duration(Some(&pd(0, 1_200_000))), "1.2ms");
        assert_eq!(duration(Some(&pd(0, 850_000))), "850us");
        assert_eq!(duration(Some(&pd(2, 346_000_000))), "2.35s");
        assert_eq!(duration(Some(&pd(-1, 0))), "-");
        assert_eq!(duration(None), "-");
    }
}
