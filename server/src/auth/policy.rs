//! Authorization: the policy file, and what one caller may do ([`Access`]).
//!
//! A policy is a list of `[[allow]]` rules, each naming subjects (globs
//! over `key:NAME`, `jwt:SUBJECT` and `cert:COMMON-NAME`), the targets and
//! methods they may call (globs), and whether they may watch and list the
//! targets. What no rule allows is denied. Optional `[[limit]]` rules give
//! subjects a call rate. The file is read once, at start-up.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use serde::Deserialize;
use thingcall_proto::wire::glob_match;

use crate::error::Error;

/// Grants resolved per subject are kept up to this many subjects; past it
/// the cache starts over (subjects come from verified credentials, so the
/// set is the real callers, not attacker-chosen strings).
const GRANT_CACHE: usize = 16_384;

/// The policy file's shape.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    allow: Vec<Rule>,
    #[serde(default)]
    limit: Vec<Limit>,
}

/// One `[[allow]]` rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Who the rule is for: globs over subjects.
    subjects: Vec<String>,
    /// Devices the rule covers (globs); empty covers none.
    #[serde(default)]
    targets: Vec<String>,
    /// Methods the subjects may call on those devices (globs).
    #[serde(default)]
    methods: Vec<String>,
    /// May stream the devices' presence and events (`WatchDevice`, SSE).
    #[serde(default)]
    watch: bool,
    /// May list and get the devices (`ListDevices`, `GetDevice`).
    #[serde(default)]
    list: bool,
}

/// One `[[limit]]` rule: a call rate per matching subject.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Limit {
    subjects: Vec<String>,
    /// Calls per second, each subject on its own.
    rate: f64,
    /// Calls that may come at once; default `rate` (at least 1).
    burst: Option<f64>,
}

/// A loaded policy.
#[derive(Debug)]
pub struct Policy {
    rules: Vec<Arc<Rule>>,
    limits: Vec<Limit>,
    grants: Mutex<HashMap<Arc<str>, Arc<Grant>>>,
}

impl Policy {
    /// Reads a policy file; the error is one line naming the file.
    pub fn load(path: &Path) -> Result<Policy, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--policy {}: {e}", path.display()))?;
        Policy::parse(&text).map_err(|e| format!("--policy {}: {e}", path.display()))
    }

    /// Parses a policy (TOML).
    pub fn parse(text: &str) -> Result<Policy, String> {
        let file: File = toml::from_str(text).map_err(|e| first_line(&e.to_string()))?;
        for (i, r) in file.allow.iter().enumerate() {
            if r.subjects.is_empty() {
                return Err(format!("allow rule {} names no subjects", i + 1));
            }
        }
        for (i, l) in file.limit.iter().enumerate() {
            if !(l.rate.is_finite() && l.rate > 0.0) {
                return Err(format!("limit rule {}: rate must be above 0", i + 1));
            }
            if l.burst.is_some_and(|b| !(b.is_finite() && b >= 1.0)) {
                return Err(format!("limit rule {}: burst must be at least 1", i + 1));
            }
        }
        Ok(Policy {
            rules: file.allow.into_iter().map(Arc::new).collect(),
            limits: file.limit,
            grants: Mutex::default(),
        })
    }

    /// What `subject` may do: the rules naming it, and its rate limit.
    pub fn grant(&self, subject: &str) -> Arc<Grant> {
        let mut cache = self.grants.lock();
        if let Some(g) = cache.get(subject) {
            return g.clone();
        }
        let names = |globs: &[String]| globs.iter().any(|g| glob_match(g, subject));
        let rules = self
            .rules
            .iter()
            .filter(|r| names(&r.subjects))
            .cloned()
            .collect();
        let bucket = self.limits.iter().find(|l| names(&l.subjects)).map(|l| {
            let burst = l.burst.unwrap_or(l.rate).max(1.0);
            Mutex::new(Bucket {
                rate: l.rate,
                burst,
                tokens: burst,
                at: Instant::now(),
            })
        });
        let subject: Arc<str> = subject.into();
        let grant = Arc::new(Grant {
            subject: subject.clone(),
            rules,
            bucket,
        });
        if cache.len() >= GRANT_CACHE {
            cache.clear();
        }
        cache.insert(subject, grant.clone());
        grant
    }
}

fn first_line(s: &str) -> String {
    s.lines()
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// What one subject may do under a policy.
#[derive(Debug)]
pub struct Grant {
    subject: Arc<str>,
    rules: Vec<Arc<Rule>>,
    bucket: Option<Mutex<Bucket>>,
}

/// A token bucket: `rate` tokens a second, up to `burst`.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn take(&mut self, now: Instant) -> bool {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn covers(globs: &[String], name: &str) -> bool {
    globs.iter().any(|g| !g.is_empty() && glob_match(g, name))
}

/// What a caller may do. The core asks it before every call and query;
/// adapters take it from the request (see [`crate::auth::layer`]).
#[derive(Debug, Clone, Default)]
pub enum Access {
    /// No policy: every caller may do everything (authentication, when
    /// configured, has already let this caller in).
    #[default]
    All,
    /// The policy's grant for this caller.
    Granted(Arc<Grant>),
}

impl Access {
    /// Whether the caller may call `method` on `target`, and its rate
    /// limit allows a call now (a call it may make takes a token).
    pub fn check_invoke(&self, target: &str, method: &str) -> Result<(), Error> {
        let Access::Granted(g) = self else {
            return Ok(());
        };
        if !self.may_invoke(target, method) {
            return Err(Error::PermissionDenied(format!(
                "{} may not call {method} on {target}",
                g.subject
            )));
        }
        if let Some(bucket) = &g.bucket {
            if !bucket.lock().take(Instant::now()) {
                return Err(Error::RateLimited(g.subject.to_string()));
            }
        }
        Ok(())
    }

    /// Whether the rules let the caller call `method` on `target` (the rate
    /// limit aside).
    pub fn may_invoke(&self, target: &str, method: &str) -> bool {
        match self {
            Access::All => true,
            Access::Granted(g) => g
                .rules
                .iter()
                .any(|r| covers(&r.targets, target) && covers(&r.methods, method)),
        }
    }

    /// Whether the caller may watch at all.
    pub fn check_watch(&self) -> Result<(), Error> {
        self.check_right("watch devices", |r| r.watch)
    }

    /// Whether the caller may list devices at all.
    pub fn check_list(&self) -> Result<(), Error> {
        self.check_right("list devices", |r| r.list)
    }

    /// Whether a watcher sees `device`.
    pub fn may_watch(&self, device: &str) -> bool {
        self.sees(device, |r| r.watch)
    }

    /// Whether `device` shows in the caller's lists and gets.
    pub fn may_list(&self, device: &str) -> bool {
        self.sees(device, |r| r.list)
    }

    fn check_right(&self, what: &str, right: impl Fn(&Rule) -> bool) -> Result<(), Error> {
        match self {
            Access::All => Ok(()),
            Access::Granted(g) if g.rules.iter().any(|r| right(r)) => Ok(()),
            Access::Granted(g) => Err(Error::PermissionDenied(format!(
                "{} may not {what}",
                g.subject
            ))),
        }
    }

    fn sees(&self, device: &str, right: impl Fn(&Rule) -> bool) -> bool {
        match self {
            Access::All => true,
            Access::Granted(g) => g
                .rules
                .iter()
                .any(|r| right(r) && covers(&r.targets, device)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
        [[allow]]
        subjects = ["key:ops", "jwt:*@example.com"]
        targets = ["pump-*"]
        methods = ["read*", "reboot"]
        watch = true

        [[allow]]
        subjects = ["key:ops"]
        targets = ["valve-1"]
        list = true

        [[limit]]
        subjects = ["key:slow"]
        rate = 1
        burst = 2

        [[allow]]
        subjects = ["key:slow"]
        targets = ["*"]
        methods = ["*"]
    "#;

    fn access(subject: &str) -> Access {
        Access::Granted(Policy::parse(POLICY).unwrap().grant(subject))
    }

    #[test]
    fn rules_allow_targets_times_methods_and_deny_the_rest() {
        let ops = access("key:ops");
        assert!(ops.check_invoke("pump-1", "readMeter").is_ok());
        assert!(ops.check_invoke("pump-1", "reboot").is_ok());
        let denied = ops.check_invoke("pump-1", "format").unwrap_err();
        assert_eq!(denied.reason(), thingcall_proto::Reason::PermissionDenied);
        assert!(denied
            .to_string()
            .contains("key:ops may not call format on pump-1"));
        assert!(ops.check_invoke("valve-1", "reboot").is_err());
        let alice = access("jwt:alice@example.com");
        assert!(alice.check_invoke("pump-9", "reboot").is_ok());
        let nobody = access("jwt:mallory@evil.example");
        assert!(nobody.check_invoke("pump-1", "readMeter").is_err());
        assert!(nobody.check_watch().is_err());
        assert!(nobody.check_list().is_err());
    }

    #[test]
    fn watch_and_list_rights_are_per_rule() {
        let ops = access("key:ops");
        assert!(ops.check_watch().is_ok() && ops.check_list().is_ok());
        assert!(ops.may_watch("pump-3") && !ops.may_watch("valve-1"));
        assert!(ops.may_list("valve-1") && !ops.may_list("pump-3"));
        assert!(Access::All.may_list("anything"));
    }

    #[test]
    fn limits_refuse_past_the_burst() {
        let slow = access("key:slow");
        assert!(slow.check_invoke("d", "m").is_ok());
        assert!(slow.check_invoke("d", "m").is_ok());
        let e = slow.check_invoke("d", "m").unwrap_err();
        assert_eq!(e.reason(), thingcall_proto::Reason::Overloaded);
    }

    #[test]
    fn bad_files_are_one_line() {
        for bad in [
            "[[allow]]\nsubjects = []",
            "[[allow]]\nsubjects = [\"*\"]\nbogus = 1",
            "[[limit]]\nsubjects = [\"*\"]\nrate = 0",
            "not toml",
        ] {
            let e = Policy::parse(bad).unwrap_err();
            assert!(!e.contains('\n'), "{e}");
        }
    }
}
