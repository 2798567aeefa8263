//! The HTTP/JSON invoke and invoke-many bodies and the seed `GET /invoke` query.

use std::time::Instant;

use axum::body::Body;
use axum::response::IntoResponse;
use serde_json::Value;
use thingcall_proto::v1::device_event::Kind;
use thingcall_proto::v1::Contract;
use thingcall_proto::wire::BrokerLimits;
use thingcall_proto::Reason;

use super::rig::{self, Rig, SENTINEL};
use crate::api::http::{json, ApiError};
use crate::validate;

/// The body of `POST /v1/devices/pump-7/methods/read`: it is refused as
/// `INVALID_ARGUMENT`, or it decodes to a request that the core's
/// validation passes or refuses with a `Reason` of bad input, under both
/// broker profiles; a JSON `payload` travels as that same JSON value; and
/// every refusal maps to a 4xx answer.
pub fn http_json(data: &[u8]) {
    invoke_many_body(data);
    let req = match json::invoke_request("pump-7".into(), "read".into(), data) {
        Ok(req) => req,
        Err(e) => {
            assert_eq!(e.reason(), Reason::InvalidArgument, "body refused as {e}");
            assert_client_error(ApiError(e, None));
            return;
        }
    };
    assert_eq!(
        (req.target.as_str(), req.method.as_str()),
        ("pump-7", "read")
    );
    if let Ok(body) = serde_json::from_slice::<Value>(data) {
        // `"payload": null` is no payload, as for every optional field.
        if let Some(payload) = body.get("payload").filter(|p| !p.is_null()) {
            let sent: Value =
                serde_json::from_slice(&req.payload).expect("a JSON payload stays JSON");
            assert_eq!(&sent, payload, "the payload changed on its way in");
            if body.get("contentType").is_none() {
                assert_eq!(req.content_type, "application/json");
            }
        }
    }
    for limits in [BrokerLimits::default(), BrokerLimits::AWS_IOT] {
        let now = Instant::now();
        match validate::invoke(&req, &rig::config(limits), now, None) {
            Ok(l) => {
                assert!(l.deadline > now, "a valid call has time left");
                assert!(l.connect_deadline.is_none_or(|c| c <= l.deadline));
                assert!(matches!(l.contract, Contract::Native | Contract::Seed));
            }
            Err(e) => {
                let reason = e.reason();
                assert!(
                    matches!(reason, Reason::InvalidArgument | Reason::PayloadTooLarge),
                    "a request refused as {reason:?}: {e}"
                );
                assert_client_error(ApiError(e, None));
            }
        }
    }
}

/// The same bytes as the body of `POST /v1/invoke-many`: refused as
/// `INVALID_ARGUMENT`, or a request the core plans or refuses as bad input
/// (never anything else, never a panic).
fn invoke_many_body(data: &[u8]) {
    let req = match crate::api::http::invoke_many_request(data) {
        Ok(req) => req,
        Err(e) => {
            assert_eq!(e.reason(), Reason::InvalidArgument, "body refused as {e}");
            assert_client_error(ApiError(e, None));
            return;
        }
    };
    let cfg = rig::config(BrokerLimits::default());
    if let Err(e) = crate::fanout::plan::plan(req, &cfg, Instant::now(), None) {
        let reason = e.reason();
        assert!(
            matches!(reason, Reason::InvalidArgument | Reason::PayloadTooLarge),
            "a fan-out refused as {reason:?}: {e}"
        );
        assert_client_error(ApiError(e, None));
    }
}

fn assert_client_error(e: ApiError) {
    let status = e.into_response().status();
    assert!(status.is_client_error(), "bad input answered {status}");
}

/// The query of `GET /invoke?...`, through the gateway's whole router: the
/// answer is the seed API's JSON; at most one call runs; and a call runs
/// only with a `target` and a `method` that are exactly the bytes of the
/// query's (percent-decoded) parameters, so invalid UTF-8 is refused, never
/// replaced by U+FFFD.
pub fn seed_query(data: &[u8]) {
    let mut uri = b"/invoke?".to_vec();
    uri.extend_from_slice(data);
    // What hyper would not parse never reaches the router.
    let Ok(uri) = http::Uri::try_from(uri) else {
        return;
    };
    let sentinel = format!("/invoke?request=x&method={SENTINEL}&target={SENTINEL}");
    Rig::with(|rig| {
        rig.runtime.block_on(async {
            let (parts, body, _) = rig::send(&rig.live, get(uri)).await;
            let answer: Value = serde_json::from_slice(&body).expect("the seed API answers JSON");
            assert!(answer["result"].is_string(), "no result in {answer}");
            if parts.status.is_client_error() {
                assert_eq!(answer["result"], "invalid_parameters", "{answer}");
            }
            // The calls this input made are the ones before the sentinel's.
            rig::send(&rig.live, get(sentinel.parse().expect("a valid URI"))).await;
            let mut calls = Vec::new();
            loop {
                let ev = rig.calls.recv().await.expect("the watch stream stays open");
                if let Some(Kind::Invocation(o)) = &ev.kind {
                    if ev.device == SENTINEL && o.method == SENTINEL {
                        break;
                    }
                    calls.push((ev.device.clone(), o.method.clone()));
                }
            }
            assert!(calls.len() <= 1, "one query made {} calls", calls.len());
            if let Some((target, method)) = calls.first() {
                // The query is what the URI holds: a `#` starts the fragment.
                let query = uri_query(data);
                let params = form_decode(query);
                for (name, got) in [("target", target), ("method", method)] {
                    assert!(
                        params
                            .iter()
                            .any(|(k, v)| k == name.as_bytes() && v == got.as_bytes()),
                        "a call ran with {name} {got:?}, which the query {:?} does not hold",
                        String::from_utf8_lossy(data)
                    );
                }
            }
        })
    });
}

/// The query part of `data` as a URI would hold it (before any `#`).
fn uri_query(data: &[u8]) -> &[u8] {
    data.split(|b| *b == b'#').next().unwrap_or_default()
}

fn get(uri: http::Uri) -> http::Request<Body> {
    http::Request::get(uri)
        .body(Body::empty())
        .expect("a GET with a parsed URI builds")
}

/// `application/x-www-form-urlencoded` pairs as raw bytes (the WHATWG
/// parser without its UTF-8 decoding): the bytes a caller sent.
fn form_decode(query: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let decode = |s: &[u8]| {
        let mut out = Vec::with_capacity(s.len());
        let mut i = 0;
        while i < s.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            match s[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < s.len() => match (hex(s[i + 1]), hex(s[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                },
                b => out.push(b),
            }
            i += 1;
        }
        out
    };
    query
        .split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = match pair.iter().position(|&b| b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &[][..]),
            };
            (decode(k), decode(v))
        })
        .collect()
}
