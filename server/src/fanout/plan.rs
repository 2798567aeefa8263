//! An InvokeMany request checked and turned into a plan: which devices,
//! the call each gets, and the controls. Everything here runs before the
//! first call, so a bad fan-out is refused whole and publishes nothing.

use std::collections::HashSet;
use std::time::Instant;

use thingcall_proto::v1::{InvokeManyRequest, InvokeRequest, OfflinePolicy};
use thingcall_proto::wire;

use super::pacer::Pacer;
use super::tally::Abort;
use crate::error::Error;
use crate::gateway::CoreConfig;
use crate::validate;

/// Calls of one fan-out in flight when the request names no limit.
pub const DEFAULT_CONCURRENCY: usize = 16;
/// The most a request may ask for.
pub const MAX_CONCURRENCY: usize = 10_000;
/// The most ids a request may list.
pub const MAX_TARGETS: usize = 100_000;
/// The fastest rate a request may ask for, in calls per second.
pub const MAX_RATE: f64 = 1_000_000.0;
/// A fan-out key leaves room for `:` and the longest device id within
/// the 256 bytes a key may have.
pub const MAX_KEY: usize = 127;

/// Where the devices come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targets {
    /// Listed by the caller, in the caller's order.
    List(Vec<String>),
    /// A glob over the registry, in id order.
    Pattern(String),
}

/// A checked fan-out.
#[derive(Debug)]
pub struct Plan {
    /// The devices.
    pub targets: Targets,
    /// Each call's request but its target (and key).
    pub call: InvokeRequest,
    /// The fan-out's idempotency key; empty for none.
    pub key: String,
    /// What a device that is not online gets.
    pub offline: OfflinePolicy,
    /// This fan-out's calls in flight at most.
    pub concurrency: usize,
    /// When calls may start.
    pub pacer: Pacer,
    /// When to stop starting calls.
    pub abort: Option<Abort>,
}

/// Checks `req` as [`validate::invoke`] would check each of its calls,
/// plus the fan-out's own fields.
pub fn plan(
    req: InvokeManyRequest,
    cfg: &CoreConfig,
    now: Instant,
    caller_deadline: Option<Instant>,
) -> Result<Plan, Error> {
    let targets = targets(req.targets, req.pattern)?;
    let offline = match OfflinePolicy::try_from(req.offline) {
        Ok(OfflinePolicy::Unspecified) => OfflinePolicy::Report,
        Ok(p) => p,
        Err(_) => {
            return Err(Error::invalid(format!(
                "offline {} is unknown",
                req.offline
            )))
        }
    };
    if offline == OfflinePolicy::Wait
        && req
            .connect_timeout
            .as_ref()
            .is_none_or(|d| d.seconds == 0 && d.nanos == 0)
    {
        return Err(Error::invalid(
            "offline WAIT needs a connect_timeout greater than zero",
        ));
    }
    if offline != OfflinePolicy::Wait && req.connect_timeout.is_some() {
        return Err(Error::invalid(
            "connect_timeout applies only with offline WAIT",
        ));
    }
    let concurrency = match req.max_concurrency as usize {
        0 => DEFAULT_CONCURRENCY,
        n if n <= MAX_CONCURRENCY => n,
        n => {
            return Err(Error::invalid(format!(
                "max_concurrency {n} is over {MAX_CONCURRENCY}"
            )))
        }
    };
    let key = req.idempotency_key;
    if key.len() > MAX_KEY {
        return Err(Error::invalid(format!(
            "idempotency_key is over {MAX_KEY} bytes (each device's key is `key:device`)"
        )));
    }
    let call = InvokeRequest {
        target: String::new(),
        method: req.method,
        payload: req.payload,
        timeout: req.timeout,
        connect_timeout: req.connect_timeout,
        content_type: req.content_type,
        idempotency_key: String::new(),
        metadata: req.metadata,
        contract: req.contract,
    };
    // Every field but the target, checked once with a stand-in device (or
    // the first listed one, whose topics are then checked too).
    let probe = InvokeRequest {
        target: match &targets {
            Targets::List(ids) => ids[0].clone(),
            Targets::Pattern(_) => "device".into(),
        },
        idempotency_key: if key.is_empty() {
            String::new()
        } else {
            format!("{key}:device")
        },
        ..call.clone()
    };
    validate::invoke(&probe, cfg, now, caller_deadline)?;
    let pacer = Pacer::new(
        req.rate,
        req.ramp.map(|r| (r.start_rate, r.factor, r.step_successes)),
    )
    .map_err(Error::invalid)?;
    let abort = req
        .abort
        .map(|a| Abort::new(a.failure_ratio, a.min_results))
        .transpose()
        .map_err(Error::invalid)?;
    Ok(Plan {
        targets,
        call,
        key,
        offline,
        concurrency,
        pacer,
        abort,
    })
}

fn targets(ids: Vec<String>, pattern: String) -> Result<Targets, Error> {
    match (ids.is_empty(), pattern.is_empty()) {
        (true, true) => Err(Error::invalid(
            "name the devices: targets (a list of ids) or pattern (a glob)",
        )),
        (false, false) => Err(Error::invalid(
            "targets and pattern are exclusive: give one of them",
        )),
        (true, false) => {
            validate::pattern(&pattern)?;
            Ok(Targets::Pattern(pattern))
        }
        (false, true) => {
            if ids.len() > MAX_TARGETS {
                return Err(Error::invalid(format!(
                    "{} targets listed, over the limit of {MAX_TARGETS} (use a pattern)",
                    ids.len()
                )));
            }
            let mut seen = HashSet::with_capacity(ids.len());
            for id in &ids {
                wire::validate_id("target", id)?;
                if !seen.insert(id.as_str()) {
                    return Err(Error::invalid(format!("target {id} is listed twice")));
                }
            }
            Ok(Targets::List(ids))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::tests::test_config;

    fn request() -> InvokeManyRequest {
        InvokeManyRequest {
            targets: vec!["a".into(), "b".into()],
            method: "echo".into(),
            ..Default::default()
        }
    }

    fn refused(tweak: impl FnOnce(&mut InvokeManyRequest)) -> String {
        let mut r = request();
        tweak(&mut r);
        match plan(r, &test_config(), Instant::now(), None) {
            Err(Error::InvalidArgument(m)) => m,
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        }
    }

    #[test]
    fn a_plain_request_gets_the_defaults() {
        let p = plan(request(), &test_config(), Instant::now(), None).unwrap();
        assert_eq!(p.targets, Targets::List(vec!["a".into(), "b".into()]));
        assert_eq!(p.concurrency, DEFAULT_CONCURRENCY);
        assert_eq!(p.offline, OfflinePolicy::Report);
        assert!(p.abort.is_none());
        assert!(p.key.is_empty());
    }

    #[test]
    fn bad_requests_say_why() {
        type Tweak = Box<dyn FnOnce(&mut InvokeManyRequest)>;
        let cases: Vec<(&str, Tweak)> = vec![
            ("name the devices", Box::new(|r| r.targets.clear())),
            ("exclusive", Box::new(|r| r.pattern = "p-*".into())),
            ("listed twice", Box::new(|r| r.targets.push("a".into()))),
            ("target", Box::new(|r| r.targets.push("a/b".into()))),
            ("method", Box::new(|r| r.method = "#".into())),
            ("max_concurrency", Box::new(|r| r.max_concurrency = 10_001)),
            ("rate", Box::new(|r| r.rate = -1.0)),
            ("rate", Box::new(|r| r.rate = f64::NAN)),
            (
                "ramp",
                Box::new(|r| {
                    r.ramp = Some(thingcall_proto::v1::Ramp {
                        start_rate: 1.0,
                        factor: 2.0,
                        step_successes: 5,
                    })
                }),
            ),
            (
                "failure_ratio",
                Box::new(|r| {
                    r.abort = Some(thingcall_proto::v1::AbortPolicy {
                        failure_ratio: 1.5,
                        min_results: 1,
                    })
                }),
            ),
            (
                "idempotency_key",
                Box::new(|r| r.idempotency_key = "k".repeat(128)),
            ),
            (
                "connect_timeout",
                Box::new(|r| r.offline = OfflinePolicy::Wait as i32),
            ),
            (
                "only with offline WAIT",
                Box::new(|r| {
                    r.connect_timeout = Some(prost_types::Duration {
                        seconds: 1,
                        nanos: 0,
                    })
                }),
            ),
            ("offline", Box::new(|r| r.offline = 9)),
        ];
        for (needle, tweak) in cases {
            let m = refused(tweak);
            assert!(m.contains(needle), "{needle:?} not in {m:?}");
        }
    }

    #[test]
    fn a_glob_is_checked_as_list_patterns_are() {
        let mut r = request();
        r.targets.clear();
        r.pattern = "pump-*".into();
        let p = plan(r, &test_config(), Instant::now(), None).unwrap();
        assert_eq!(p.targets, Targets::Pattern("pump-*".into()));
        let m = refused(|r| {
            r.targets.clear();
            r.pattern = "pump/#".into();
        });
        assert!(m.contains("target"), "{m}");
    }
}
