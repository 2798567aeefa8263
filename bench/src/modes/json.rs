//! `--mode json`: `POST {server}/v1/devices/{target}/methods/{method}` over
//! HTTP/1.1 keep-alive, one pooled connection per worker.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

use super::{guarded, probe_gateway, CallSpec, Done};
use crate::breakdown::Figures;
use crate::tally::Outcome;
use crate::Setup;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// The pooled client and what every request reuses.
pub struct Json {
    shared: Arc<Shared>,
}

struct Shared {
    client: HttpClient,
    /// The Invoke URL of each target.
    uris: Vec<Uri>,
    /// `{"payloadBase64":"...","timeout":"..."}`, the same for every call.
    body: Bytes,
    spec: Arc<CallSpec>,
}

/// A worker's handle (the pool is shared).
pub struct Worker {
    shared: Arc<Shared>,
}

/// The parts of a 200 answer the bench reads.
#[derive(Deserialize)]
struct Answer {
    status: i32,
}

/// The parts of a 200 answer the bench reads with `--breakdown`: also the
/// timing figures, as proto3 JSON durations (`"0.000123s"`). Borrowed:
/// the gateway never escapes anything in them.
#[derive(Deserialize)]
struct TimedAnswer<'a> {
    status: i32,
    elapsed: Option<&'a str>,
    #[serde(rename = "deviceTime")]
    device_time: Option<&'a str>,
}

/// The parts of an error answer the bench reads.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorInfo,
}

#[derive(Deserialize)]
struct ErrorInfo {
    reason: String,
}

impl Json {
    /// Checks that the gateway answers and pre-builds every URL and the body.
    pub async fn connect(
        server: &str,
        spec: Arc<CallSpec>,
        concurrency: u16,
    ) -> Result<Json, Setup> {
        let base = server.trim_end_matches('/');
        if !base.starts_with("http://") {
            return Err(Setup::Usage(format!(
                "--mode json needs an http:// server, got {server}"
            )));
        }
        probe_gateway(server).await?;
        let uris = spec
            .targets
            .iter()
            .map(|t| {
                let url = format!(
                    "{base}/v1/devices/{}/methods/{}",
                    path_segment(t),
                    path_segment(&spec.method)
                );
                url.parse::<Uri>()
                    .map_err(|e| Setup::Usage(format!("{url}: {e}")))
            })
            .collect::<Result<_, _>>()?;
        let body = serde_json::json!({
            "payloadBase64": B64.encode(&spec.payload),
            "timeout": proto_duration(spec.timeout),
        });
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(usize::from(concurrency))
            .build(connector);
        Ok(Json {
            shared: Arc::new(Shared {
                client,
                uris,
                body: Bytes::from(body.to_string()),
                spec,
            }),
        })
    }

    /// A handle for one worker.
    pub fn worker(&self) -> Worker {
        Worker {
            shared: self.shared.clone(),
        }
    }
}

impl Worker {
    /// One POST.
    pub async fn call(&mut self, target: usize) -> Done {
        let s = &self.shared;
        let mut req = Request::new(Full::new(s.body.clone()));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = s.uris[target].clone();
        req.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        guarded(s.spec.timeout, async {
            let Ok(resp) = s.client.request(req).await else {
                return Outcome::TRANSPORT.into();
            };
            let code = resp.status();
            let Ok(body) = resp.into_body().collect().await else {
                return Outcome::TRANSPORT.into();
            };
            let body = body.to_bytes();
            if s.spec.breakdown {
                timed(code, &body)
            } else {
                outcome(code, &body).into()
            }
        })
        .await
    }
}

/// The outcome of an HTTP answer: the device's `status` on a 200, the
/// error's `reason` otherwise (`HTTP_<code>` for a body without one).
fn outcome(code: StatusCode, body: &[u8]) -> Outcome {
    if code == StatusCode::OK {
        return match serde_json::from_slice::<Answer>(body) {
            Ok(a) => Outcome::from_device_status(a.status),
            Err(_) => Outcome::MALFORMED_REPLY,
        };
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) if !e.error.reason.is_empty() => Outcome::named(e.error.reason),
        _ => Outcome::Failed(format!("HTTP_{}", code.as_u16()).into()),
    }
}

/// [`outcome`] with the answer's `elapsed` and `deviceTime` (`--breakdown`).
/// An answer whose figures cannot be read still gets its outcome.
fn timed(code: StatusCode, body: &[u8]) -> Done {
    if code == StatusCode::OK {
        if let Ok(a) = serde_json::from_slice::<TimedAnswer>(body) {
            return Done {
                outcome: Outcome::from_device_status(a.status),
                figures: Figures {
                    gateway: a.elapsed.and_then(parse_duration),
                    device: a.device_time.and_then(parse_duration),
                },
            };
        }
    }
    outcome(code, body).into()
}

/// A proto3 JSON duration that is not negative: whole seconds, optionally
/// a fraction of up to 9 digits, then `s` (`"2s"`, `"0.000123s"`).
fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let number = text.strip_suffix('s')?;
    let (secs, frac) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(secs) || (number.contains('.') && !digits(frac)) || frac.len() > 9 {
        return None;
    }
    let nanos = if frac.is_empty() {
        0
    } else {
        frac.parse::<u32>().ok()? * 10u32.pow(9 - frac.len() as u32)
    };
    Some(std::time::Duration::new(secs.parse().ok()?, nanos))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A duration the proto3 JSON way: `"10s"`, `"0.250000000s"`.
fn proto_duration(d: std::time::Duration) -> String {
    match d.subsec_nanos() {
        0 => format!("{}s", d.as_secs()),
        n => format!("{}.{n:09}s", d.as_secs()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_from_answers() {
        let ok = br#"{"status":200,"payloadBase64":"aGk=","requestId":"x"}"#;
        assert_eq!(outcome(StatusCode::OK, ok), Outcome::Ok);
        let failed = br#"{"status":500,"payload":"boom"}"#;
        assert_eq!(outcome(StatusCode::OK, failed).name(), "DEVICE_STATUS_500");
        let err = br#"{"error":{"code":504,"reason":"DEVICE_TIMEOUT","message":"m"}}"#;
        assert_eq!(
            outcome(StatusCode::GATEWAY_TIMEOUT, err),
            Outcome::DEVICE_TIMEOUT
        );
        assert_eq!(
            outcome(StatusCode::BAD_GATEWAY, b"<html>").name(),
            "HTTP_502"
        );
        assert_eq!(outcome(StatusCode::OK, b"nope"), Outcome::MALFORMED_REPLY);
    }

    #[test]
    fn figures_from_answers() {
        let ok =
            br#"{"status":200,"payloadBase64":"","elapsed":"0.000850s","deviceTime":"0.000123s"}"#;
        let done = timed(StatusCode::OK, ok);
        assert_eq!(done.outcome, Outcome::Ok);
        assert_eq!(
            done.figures,
            Figures {
                gateway: Some(std::time::Duration::from_micros(850)),
                device: Some(std::time::Duration::from_micros(123)),
            }
        );
        // No deviceTime: the device reported none.
        let done = timed(StatusCode::OK, br#"{"status":500,"elapsed":"1.5s"}"#);
        assert_eq!(done.outcome.name(), "DEVICE_STATUS_500");
        assert_eq!(
            done.figures.gateway,
            Some(std::time::Duration::from_millis(1500))
        );
        assert_eq!(done.figures.device, None);
        // Unreadable figures still give the outcome.
        let done = timed(StatusCode::OK, br#"{"status":200,"elapsed":7}"#);
        assert_eq!(
            (done.outcome, done.figures),
            (Outcome::Ok, Figures::default())
        );
        let err = br#"{"error":{"code":504,"reason":"DEVICE_TIMEOUT","message":"m"}}"#;
        let done = timed(StatusCode::GATEWAY_TIMEOUT, err);
        assert_eq!(done.outcome, Outcome::DEVICE_TIMEOUT);
        assert_eq!(
            timed(StatusCode::OK, b"nope").outcome,
            Outcome::MALFORMED_REPLY
        );
    }

    #[test]
    fn proto_json_durations() {
        let d = std::time::Duration::from_nanos;
        assert_eq!(parse_duration("0s"), Some(d(0)));
        assert_eq!(parse_duration("2s"), Some(d(2_000_000_000)));
        assert_eq!(parse_duration("0.000123s"), Some(d(123_000)));
        assert_eq!(parse_duration("1.5s"), Some(d(1_500_000_000)));
        assert_eq!(parse_duration("0.000000001s"), Some(d(1)));
        for bad in [
            "",
            "s",
            "1",
            "-1s",
            "1.s",
            ".5s",
            "1.0000000001s",
            "1.5ms",
            "x s",
            "+1s",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        // What the request sends reads back.
        let t = std::time::Duration::from_millis(200);
        assert_eq!(parse_duration(&proto_duration(t)), Some(t));
    }

    #[test]
    fn urls_and_durations() {
        assert_eq!(path_segment("demo-1"), "demo-1");
        assert_eq!(path_segment("a b/ü"), "a%20b%2F%C3%BC");
        assert_eq!(proto_duration(std::time::Duration::from_secs(10)), "10s");
        assert_eq!(
            proto_duration(std::time::Duration::from_millis(200)),
            "0.200000000s"
        );
    }
}
