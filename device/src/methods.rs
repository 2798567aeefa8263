//! The simulator's standard methods: enough behaviours (instant, slow,
//! failing, large, rebooting) to exercise every path of a gateway.

use std::time::Duration;

use bytes::Bytes;
use rand::Rng;

use crate::handlers::{Handlers, Reply, Request};

/// Largest reply `big` produces, so a typo cannot make a device allocate
/// gigabytes.
pub const MAX_BIG_BYTES: u64 = 16 * 1024 * 1024;
/// How long `reboot` stays away when the payload names no duration.
const DEFAULT_REBOOT_MS: u64 = 1000;
/// What `fail` answers when the request carries no payload.
const FAIL_MESSAGE: &str = "failed on purpose";
/// The bytes `big` repeats; readable so a truncated payload is easy to spot.
const BIG_PATTERN: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz\n";

/// The simulator's standard methods:
/// - `echo`: the payload back, content type preserved;
/// - `sleep`: payload = milliseconds (empty = 0); waits, then `slept <n> ms`;
/// - `fail`: status 500 with `failed on purpose` (or the request payload);
/// - `random`: an integer 0..=100 as text (like the AWS sample device);
/// - `big`: payload = N; replies N bytes (at most 16 MiB);
/// - `reboot`: replies `rebooting`, then drops the connection and comes back
///   after the payload's milliseconds (default 1000).
///
/// Bad numeric payloads answer status 400 with a one-line explanation.
pub fn standard_methods() -> Handlers {
    Handlers::new()
        .method("echo", |r: Request| async move {
            let reply = Reply::ok(r.payload);
            match r.content_type {
                Some(ct) => reply.with_content_type(ct),
                None => reply,
            }
        })
        .method("sleep", |r: Request| async move {
            match parse_number(&r.payload, "milliseconds", u64::MAX) {
                Ok(ms) => {
                    let ms = ms.unwrap_or(0);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Reply::ok(format!("slept {ms} ms"))
                }
                Err(e) => bad_request(e),
            }
        })
        .method("fail", |r: Request| async move {
            if r.payload.is_empty() {
                Reply::status(500, FAIL_MESSAGE)
            } else {
                Reply::status(500, r.payload)
            }
        })
        .method("random", |_| async {
            let n: u8 = rand::rng().random_range(0..=100);
            Reply::ok(n.to_string()).with_content_type("text/plain")
        })
        .method("big", |r: Request| async move {
            match parse_number(&r.payload, "a byte count", MAX_BIG_BYTES) {
                Ok(n) => Reply::ok(big_payload(n.unwrap_or(0) as usize))
                    .with_content_type("application/octet-stream"),
                Err(e) => bad_request(e),
            }
        })
        .method("reboot", |r: Request| async move {
            match parse_number(&r.payload, "milliseconds", u64::MAX) {
                Ok(ms) => {
                    let ms = ms.unwrap_or(DEFAULT_REBOOT_MS);
                    Reply::ok("rebooting").then_reconnect(Duration::from_millis(ms))
                }
                Err(e) => bad_request(e),
            }
        })
}

/// A status 400 reply whose text says what was wrong with the payload.
fn bad_request(message: String) -> Reply {
    Reply::status(400, message).with_content_type("text/plain")
}

/// Reads a payload holding one decimal number (ASCII, surrounding whitespace
/// ignored). `Ok(None)` when empty, so each method picks its own default;
/// `what` names the unit in the error; values above `max` are refused.
pub(crate) fn parse_number(payload: &[u8], what: &str, max: u64) -> Result<Option<u64>, String> {
    let text = std::str::from_utf8(payload)
        .map_err(|_| format!("expected {what} as a decimal number, got non-UTF-8 bytes"))?
        .trim();
    if text.is_empty() {
        return Ok(None);
    }
    let shown: String = text.chars().take(40).collect();
    let n = text
        .parse::<u64>()
        .map_err(|_| format!("expected {what} as a decimal number, got {shown:?}"))?;
    if n > max {
        return Err(format!("{n} is too large, the limit is {max}"));
    }
    Ok(Some(n))
}

/// `len` bytes of [`BIG_PATTERN`] repeated.
fn big_payload(len: usize) -> Bytes {
    BIG_PATTERN
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect::<Vec<u8>>()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(parse_number(b"", "ms", 10), Ok(None));
        assert_eq!(parse_number(b"  \n", "ms", 10), Ok(None));
        assert_eq!(parse_number(b" 7\n", "ms", 10), Ok(Some(7)));
        assert_eq!(parse_number(b"10", "ms", 10), Ok(Some(10)));
        assert!(parse_number(b"11", "ms", 10)
            .unwrap_err()
            .contains("too large"));
        for bad in [&b"-1"[..], b"1.5", b"abc", b"1 2", b"0x10", b"\xff"] {
            let err = parse_number(bad, "ms", 10).unwrap_err();
            assert!(err.contains("expected ms") && !err.contains('\n'), "{err}");
        }
        let long = parse_number("x".repeat(1000).as_bytes(), "ms", 10).unwrap_err();
        assert!(long.len() < 100, "{long}");
    }

    #[test]
    fn big_is_exact_and_patterned() {
        assert!(big_payload(0).is_empty());
        let b = big_payload(100);
        assert_eq!(b.len(), 100);
        assert_eq!(&b[..10], b"0123456789");
        assert_eq!(b[BIG_PATTERN.len()], b'0');
    }

    fn req(method: &str, payload: &'static [u8]) -> Request {
        Request {
            device: "d".into(),
            method: method.into(),
            payload: Bytes::from_static(payload),
            content_type: Some("application/json".into()),
            user_properties: Vec::new(),
            deadline: None,
        }
    }

    async fn call(method: &str, payload: &'static [u8]) -> Reply {
        standard_methods()
            .call(req(method, payload))
            .expect("known method")
            .await
    }

    #[tokio::test]
    async fn standard() {
        let names = standard_methods().names();
        assert_eq!(names, ["big", "echo", "fail", "random", "reboot", "sleep"]);

        let echo = call("echo", b"{}").await;
        assert_eq!((echo.status, &echo.payload[..]), (200, &b"{}"[..]));
        assert_eq!(echo.content_type.as_deref(), Some("application/json"));

        assert_eq!(call("sleep", b"").await.payload, "slept 0 ms");
        assert_eq!(call("sleep", b" 2 ").await.payload, "slept 2 ms");
        assert_eq!(call("sleep", b"soon").await.status, 400);

        let fail = call("fail", b"").await;
        assert_eq!(
            (fail.status, &fail.payload[..]),
            (500, FAIL_MESSAGE.as_bytes())
        );
        assert_eq!(call("fail", b"why").await.payload, "why");

        for _ in 0..50 {
            let r = call("random", b"").await;
            let n: u32 = std::str::from_utf8(&r.payload).unwrap().parse().unwrap();
            assert!(n <= 100);
            assert_eq!(r.content_type.as_deref(), Some("text/plain"));
        }

        let big = call("big", b"131072").await;
        assert_eq!(big.payload.len(), 128 * 1024);
        assert_eq!(
            big.content_type.as_deref(),
            Some("application/octet-stream")
        );
        assert_eq!(call("big", b"16777217").await.status, 400);
        assert_eq!(call("big", b"lots").await.status, 400);

        let reboot = call("reboot", b"").await;
        assert_eq!(reboot.payload, "rebooting");
        assert_eq!(reboot.reconnect_after(), Some(Duration::from_millis(1000)));
        let reboot = call("reboot", b"20").await;
        assert_eq!(reboot.reconnect_after(), Some(Duration::from_millis(20)));
        assert_eq!(call("reboot", b"-5").await.status, 400);
    }
}
