//! Input checks shared by every surface. Everything here runs before a call
//! touches the table or MQTT, so bad input never reaches a device.

use std::time::{Duration, Instant};

use thingcall_proto::v1::{Contract, InvokeRequest};
use thingcall_proto::wire;

use crate::error::Error;
use crate::gateway::CoreConfig;

/// User property names the gateway sets itself; callers may not forge them.
const RESERVED_METADATA: [&str; 7] = [
    wire::PROP_DEADLINE,
    wire::PROP_STATUS,
    wire::PROP_EXEC_US,
    wire::PROP_STAGE,
    wire::PROP_IDEMPOTENCY_KEY,
    wire::PROP_TRACEPARENT,
    wire::PROP_TRACESTATE,
];
const MAX_METADATA_ENTRIES: usize = 32;
const MAX_METADATA_KEY: usize = 128;
const MAX_METADATA_VALUE: usize = 4096;
const MAX_SHORT_FIELD: usize = 256;

/// The deadlines of a valid call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// When the caller stops waiting for the reply.
    pub deadline: Instant,
    /// Until when to wait for an offline device to come online, if at all.
    pub connect_deadline: Option<Instant>,
    /// The MQTT contract of the call.
    pub contract: Contract,
}

/// Checks an Invoke request and computes its deadlines: the smaller of the
/// request's timeout (default from config) and the caller's own deadline.
pub fn invoke(
    req: &InvokeRequest,
    cfg: &CoreConfig,
    now: Instant,
    caller_deadline: Option<Instant>,
) -> Result<Limits, Error> {
    wire::validate_id("target", &req.target)?;
    wire::validate_id("method", &req.method)?;
    if req.payload.len() > cfg.max_payload {
        return Err(Error::PayloadTooLarge {
            size: req.payload.len(),
            limit: cfg.max_payload,
        });
    }
    let timeout = match duration("timeout", req.timeout.as_ref())? {
        None => cfg.default_timeout,
        Some(d) if d.is_zero() => return Err(Error::invalid("timeout must be greater than zero")),
        Some(d) if d > cfg.max_timeout => {
            return Err(Error::invalid(format!(
                "timeout {} is over the gateway's maximum of {}",
                humantime::format_duration(d),
                humantime::format_duration(cfg.max_timeout)
            )))
        }
        Some(d) => d,
    };
    let connect = duration("connect_timeout", req.connect_timeout.as_ref())?.unwrap_or_default();
    short_text("content_type", &req.content_type)?;
    short_text("idempotency_key", &req.idempotency_key)?;
    metadata(req)?;
    let contract = match Contract::try_from(req.contract) {
        Ok(Contract::Unspecified) => cfg.default_contract,
        Ok(c) => c,
        Err(_) => {
            return Err(Error::invalid(format!(
                "contract {} is unknown",
                req.contract
            )))
        }
    };
    if contract == Contract::Seed && std::str::from_utf8(&req.payload).is_err() {
        return Err(Error::invalid(
            "the seed contract needs a UTF-8 payload (it becomes the request string)",
        ));
    }
    topics(req, contract, cfg)?;
    seed_body(req, contract, cfg)?;

    let mut deadline = now + timeout;
    if let Some(caller) = caller_deadline {
        deadline = deadline.min(caller);
    }
    let connect_deadline = (!connect.is_zero()).then(|| (now + connect).min(deadline));
    Ok(Limits {
        deadline,
        connect_deadline,
        contract,
    })
}

/// The topics the call would use (the request's, and the reply's the
/// device publishes to) within the broker's limits, so a request the
/// broker would refuse (AWS IoT Core drops the connection for it) fails
/// here with the limit named. Free without a topic limit.
fn topics(req: &InvokeRequest, contract: Contract, cfg: &CoreConfig) -> Result<(), Error> {
    let limits = &cfg.broker_limits;
    if limits.max_topic_bytes.is_none() && limits.max_topic_slashes.is_none() {
        return Ok(());
    }
    let (request, reply) = match contract {
        Contract::Seed => {
            let seed = wire::SeedTopics::new(cfg.seed_client_prefix.as_str());
            // The message id is a UUID's text, 36 bytes.
            let m_id = "00000000-0000-0000-0000-000000000000";
            (
                seed.request(&req.target, &req.method, m_id),
                seed.ack(m_id, &req.target, &req.method),
            )
        }
        _ => {
            let topics = wire::Topics::new(cfg.topic_root.as_str());
            (
                topics.request(&req.target, &req.method),
                topics.reply(&cfg.gateway_id, &req.target),
            )
        }
    };
    limits
        .check_topic("request topic", &request)
        .and_then(|()| limits.check_topic("reply topic", &reply))
        .map_err(Error::invalid)
}

/// A seed request's payload is its JSON body, larger than the caller's
/// payload by the wrapping and the escaping: within a broker's payload
/// limit too (AWS IoT Core refuses larger PUBLISHes). Free without one.
fn seed_body(req: &InvokeRequest, contract: Contract, cfg: &CoreConfig) -> Result<(), Error> {
    let Some(limit) = cfg.broker_limits.max_payload else {
        return Ok(());
    };
    if contract != Contract::Seed {
        return Ok(());
    }
    let body = wire::SeedRequest {
        timestamp: "0000000000000".into(),
        // Checked as UTF-8 just before.
        request: String::from_utf8_lossy(&req.payload).into_owned(),
        id: "00000000-0000-0000-0000-000000000000".into(),
    };
    let size = serde_json::to_vec(&body).map_or(usize::MAX, |b| b.len());
    if size > limit {
        return Err(Error::PayloadTooLarge { size, limit });
    }
    Ok(())
}

/// Checks a watch/list pattern: empty, an id, or a glob with `*` and `?`.
pub fn pattern(p: &str) -> Result<(), Error> {
    if p.is_empty() {
        return Ok(());
    }
    wire::validate_id("target", p).map_err(Error::from)
}

fn duration(what: &str, d: Option<&prost_types::Duration>) -> Result<Option<Duration>, Error> {
    let Some(d) = d else { return Ok(None) };
    if d.seconds < 0 || d.nanos < 0 || d.nanos >= 1_000_000_000 {
        return Err(Error::invalid(format!(
            "{what} must be a non-negative duration"
        )));
    }
    Ok(Some(Duration::new(d.seconds as u64, d.nanos as u32)))
}

fn short_text(what: &str, v: &str) -> Result<(), Error> {
    if v.len() > MAX_SHORT_FIELD {
        return Err(Error::invalid(format!(
            "{what} is over {MAX_SHORT_FIELD} bytes"
        )));
    }
    if v.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "{what} contains a control character"
        )));
    }
    Ok(())
}

fn metadata(req: &InvokeRequest) -> Result<(), Error> {
    if req.metadata.len() > MAX_METADATA_ENTRIES {
        return Err(Error::invalid(format!(
            "more than {MAX_METADATA_ENTRIES} metadata entries"
        )));
    }
    for (k, v) in &req.metadata {
        if k.is_empty() || k.len() > MAX_METADATA_KEY || k.chars().any(char::is_control) {
            return Err(Error::invalid(format!(
                "metadata key {k:?} must be 1-{MAX_METADATA_KEY} bytes without control characters"
            )));
        }
        if RESERVED_METADATA.iter().any(|r| r.eq_ignore_ascii_case(k)) {
            return Err(Error::invalid(format!(
                "metadata key {k:?} is reserved by the gateway"
            )));
        }
        if v.len() > MAX_METADATA_VALUE || v.contains('\0') {
            return Err(Error::invalid(format!(
                "metadata value of {k:?} must be at most {MAX_METADATA_VALUE} bytes without NUL"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> CoreConfig {
        crate::gateway::tests::test_config()
    }

    fn req() -> InvokeRequest {
        InvokeRequest {
            target: "d1".into(),
            method: "echo".into(),
            ..Default::default()
        }
    }

    fn secs(s: i64) -> Option<prost_types::Duration> {
        Some(prost_types::Duration {
            seconds: s,
            nanos: 0,
        })
    }

    #[test]
    fn deadline_is_min_of_timeout_and_caller() {
        let now = Instant::now();
        let l = invoke(&req(), &cfg(), now, None).unwrap();
        assert_eq!(l.deadline, now + Duration::from_secs(10));
        assert_eq!(l.connect_deadline, None);
        let caller = now + Duration::from_secs(2);
        let l = invoke(
            &InvokeRequest {
                timeout: secs(5),
                ..req()
            },
            &cfg(),
            now,
            Some(caller),
        )
        .unwrap();
        assert_eq!(l.deadline, caller);
        let l = invoke(
            &InvokeRequest {
                connect_timeout: secs(60),
                ..req()
            },
            &cfg(),
            now,
            None,
        )
        .unwrap();
        assert_eq!(
            l.connect_deadline,
            Some(now + Duration::from_secs(10)),
            "capped by the deadline"
        );
    }

    #[test]
    fn bad_inputs_have_reasons() {
        let now = Instant::now();
        let cases: Vec<(InvokeRequest, &str)> = vec![
            (
                InvokeRequest {
                    timeout: secs(0),
                    ..req()
                },
                "INVALID_ARGUMENT",
            ),
            (
                InvokeRequest {
                    timeout: secs(-1),
                    ..req()
                },
                "INVALID_ARGUMENT",
            ),
            (
                InvokeRequest {
                    timeout: secs(301),
                    ..req()
                },
                "INVALID_ARGUMENT",
            ),
            (
                InvokeRequest {
                    connect_timeout: secs(-1),
                    ..req()
                },
                "INVALID_ARGUMENT",
            ),
            (
                InvokeRequest {
                    payload: vec![0u8; 17].into(),
                    ..req()
                },
                "PAYLOAD_TOO_LARGE",
            ),
            (
                InvokeRequest {
                    content_type: "a\nb".into(),
                    ..req()
                },
                "INVALID_ARGUMENT",
            ),
            (
                InvokeRequest {
                    metadata: [("deadline".to_string(), "1".to_string())].into(),
                    ..req()
                },
                "INVALID_ARGUMENT",
            ),
            (
                InvokeRequest {
                    metadata: [(String::new(), "1".to_string())].into(),
                    ..req()
                },
                "INVALID_ARGUMENT",
            ),
        ];
        for (r, reason) in cases {
            assert_eq!(
                invoke(&r, &cfg(), now, None).unwrap_err().reason().name(),
                reason,
                "{r:?}"
            );
        }
        assert!(invoke(
            &InvokeRequest {
                payload: vec![0u8; 16].into(),
                ..req()
            },
            &cfg(),
            now,
            None
        )
        .is_ok());
    }

    #[test]
    fn topics_within_the_brokers_limits() {
        let now = Instant::now();
        let mut aws = cfg();
        aws.broker_limits = wire::BrokerLimits::AWS_IOT;
        // thingcall/devices/{t}/methods/{m}: 27 bytes around the names.
        let sized = |t: usize, m: usize| InvokeRequest {
            target: "t".repeat(t),
            method: "m".repeat(m),
            ..req()
        };
        assert!(invoke(&sized(128, 101), &aws, now, None).is_ok());
        let err = invoke(&sized(128, 102), &aws, now, None).unwrap_err();
        assert_eq!(err.reason().name(), "INVALID_ARGUMENT");
        assert!(
            err.to_string().contains("request topic would be 257 bytes")
                && err.to_string().contains("limit of 256 bytes"),
            "{err}"
        );
        assert!(
            invoke(&sized(128, 102), &cfg(), now, None).is_ok(),
            "generic"
        );
        // {prefix}/{m_id}/{t}/{m}/ack: the prefix, a 36-byte id and 7 more.
        let seed = |t, m| InvokeRequest {
            contract: Contract::Seed as i32,
            ..sized(t, m)
        };
        assert!(invoke(&seed(100, 96), &aws, now, None).is_ok());
        let err = invoke(&seed(100, 97), &aws, now, None).unwrap_err();
        assert!(err.to_string().contains("reply topic"), "{err}");
        // The seed body wraps and escapes the payload: a payload within
        // --max-payload can still make a PUBLISH over the broker's limit.
        let mut big = cfg();
        big.max_payload = 128 * 1024;
        big.broker_limits = wire::BrokerLimits::AWS_IOT;
        let quoted = InvokeRequest {
            payload: vec![b'"'; 70 * 1024].into(),
            ..seed(1, 1)
        };
        let err = invoke(&quoted, &big, now, None).unwrap_err();
        assert_eq!(err.reason().name(), "PAYLOAD_TOO_LARGE");
        big.broker_limits = wire::BrokerLimits::default();
        assert!(invoke(&quoted, &big, now, None).is_ok(), "generic");
    }

    #[test]
    fn patterns() {
        assert!(pattern("").is_ok());
        assert!(pattern("pump-*").is_ok());
        assert!(pattern("a/b").is_err());
        assert!(pattern("#").is_err());
    }
}
