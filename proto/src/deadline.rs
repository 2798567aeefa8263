//! The `grpc-timeout` header: how a gRPC caller says its deadline. The
//! gateway bounds a call by it, and the Rust client's direct transport
//! enforces it on its side too, so both read it the one way here.

use std::time::Duration;

/// The deadline in a `grpc-timeout` value: 1 to 8 ASCII digits and a unit
/// (`H`, `M`, `S`, `m`, `u`, `n`), as the gRPC over HTTP/2 spec writes it.
/// `None` for anything else, so a malformed header means "no deadline
/// given" rather than a guess.
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    // `get`, not `split_at`: a value ending in a multi-byte character has
    // no boundary there, and is malformed rather than a panic.
    let digits = value.get(..value.len().checked_sub(1)?)?;
    let unit = &value[digits.len()..];
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_and_nothing_else() {
        for (v, d) in [
            ("2H", Duration::from_secs(7200)),
            ("7M", Duration::from_secs(420)),
            ("3S", Duration::from_secs(3)),
            ("250m", Duration::from_millis(250)),
            ("99999u", Duration::from_micros(99999)),
            ("9n", Duration::from_nanos(9)),
        ] {
            assert_eq!(parse_grpc_timeout(v), Some(d), "{v}");
        }
        for bad in ["", "S", "123456789S", "10x", "-1S", "+1S", "1.5S", "é"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }
}
