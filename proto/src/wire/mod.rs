//! The MQTT 5 wire contract between a gateway and its devices.
//!
//! Everything a device must know lives here so the gateway, the simulator and
//! any Rust device agree byte for byte: topic layout, user property names,
//! the presence document and the rules for ids.

use serde::{Deserialize, Serialize};

/// Default topic root; every topic below starts with it.
pub const DEFAULT_TOPIC_ROOT: &str = "thingcall";
/// Longest device id or method name, in bytes.
pub const MAX_ID_BYTES: usize = 128;
/// Length of the CorrelationData the gateway sends (a UUID's bytes).
pub const CORRELATION_LEN: usize = 16;

/// User property on a request: the caller's deadline in unix milliseconds.
/// A device must not run a request whose deadline has passed.
pub const PROP_DEADLINE: &str = "deadline";
/// User property on a reply: HTTP-like status, 200 when absent.
pub const PROP_STATUS: &str = "status";
/// User property on a reply: device execution time in microseconds.
pub const PROP_EXEC_US: &str = "exec-us";
/// User property on an interim reply: the call's stage.
pub const PROP_STAGE: &str = "stage";
/// Value of [`PROP_STAGE`] meaning "received, working on it".
pub const STAGE_ACCEPTED: &str = "accepted";
/// User property on a request carrying the caller's idempotency key.
pub const PROP_IDEMPOTENCY_KEY: &str = "idempotency-key";
/// W3C trace context user properties (forwarded when present).
pub const PROP_TRACEPARENT: &str = "traceparent";
/// W3C trace state user property.
pub const PROP_TRACESTATE: &str = "tracestate";

/// The topic layout under one root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topics {
    root: String,
}

/// What a topic under `{root}/devices/{device}/...` is about.
#[derive(Debug, PartialEq, Eq)]
pub enum DeviceTopic<'a> {
    /// `{root}/devices/{device}/methods/{method}`: a request.
    Method(&'a str),
    /// `{root}/devices/{device}/presence`: the retained presence document.
    Presence,
    /// `{root}/devices/{device}/events/{name}`: a device event.
    Event(&'a str),
}

impl Topics {
    /// Topics under `root` (for example `thingcall`).
    pub fn new(root: impl Into<String>) -> Self {
        Self { root: root.into() }
    }

    /// The topic root.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// Where a request for `method` on `device` is published.
    pub fn request(&self, device: &str, method: &str) -> String {
        format!("{}/devices/{device}/methods/{method}", self.root)
    }

    /// What a device subscribes to for its requests.
    pub fn device_requests_filter(&self, device: &str) -> String {
        format!("{}/devices/{device}/methods/+", self.root)
    }

    /// A device's retained presence topic (also its Will topic).
    pub fn presence(&self, device: &str) -> String {
        format!("{}/devices/{device}/presence", self.root)
    }

    /// Where a device publishes its event `name`.
    pub fn event(&self, device: &str, name: &str) -> String {
        format!("{}/devices/{device}/events/{name}", self.root)
    }

    /// The ResponseTopic a gateway puts on requests to `device`. The device
    /// id is part of it so a broker ACL can stop one device answering for
    /// another (`pattern write thingcall/gateways/+/replies/%c`).
    pub fn reply(&self, gateway_id: &str, device: &str) -> String {
        format!("{}/gateways/{gateway_id}/replies/{device}", self.root)
    }

    /// What a gateway subscribes to for its replies.
    pub fn replies_filter(&self, gateway_id: &str) -> String {
        format!("{}/gateways/{gateway_id}/replies/+", self.root)
    }

    /// What a gateway subscribes to for every device's presence.
    pub fn presence_filter(&self) -> String {
        format!("{}/devices/+/presence", self.root)
    }

    /// What a gateway subscribes to for every device's events.
    pub fn events_filter(&self) -> String {
        format!("{}/devices/+/events/+", self.root)
    }

    /// The device id in a reply topic of `gateway_id`, if `topic` is one.
    pub fn parse_reply<'a>(&self, gateway_id: &str, topic: &'a str) -> Option<&'a str> {
        let rest = topic
            .strip_prefix(self.root.as_str())?
            .strip_prefix("/gateways/")?;
        let rest = rest.strip_prefix(gateway_id)?.strip_prefix("/replies/")?;
        (!rest.is_empty() && !rest.contains('/')).then_some(rest)
    }

    /// Splits `{root}/devices/{device}/...` into the device id and its kind.
    pub fn parse_device<'a>(&self, topic: &'a str) -> Option<(&'a str, DeviceTopic<'a>)> {
        let rest = topic
            .strip_prefix(self.root.as_str())?
            .strip_prefix("/devices/")?;
        let (device, rest) = rest.split_once('/')?;
        if device.is_empty() {
            return None;
        }
        let kind = match rest.split_once('/') {
            None if rest == "presence" => DeviceTopic::Presence,
            Some(("methods", m)) if !m.is_empty() && !m.contains('/') => DeviceTopic::Method(m),
            Some(("events", e)) if !e.is_empty() && !e.contains('/') => DeviceTopic::Event(e),
            _ => return None,
        };
        Some((device, kind))
    }
}

impl Default for Topics {
    fn default() -> Self {
        Self::new(DEFAULT_TOPIC_ROOT)
    }
}

/// The retained presence document on `{root}/devices/{device}/presence`.
///
/// A device publishes `{"online":true,"session":S,"methods":[...]}` retained
/// when it connects and sets its Will to `{"online":false,"session":S}`
/// retained. An offline document whose session is not the current one is a
/// stale Will and is ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    /// Whether the device is connected.
    pub online: bool,
    /// Identifies one connection of the device (a UUID, fresh per connect).
    #[serde(default)]
    pub session: String,
    /// Methods the device serves; empty means "not announced".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
}

impl Presence {
    /// Encodes the document as JSON.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("presence serializes")
    }

    /// Decodes a presence document; `None` for anything malformed.
    pub fn from_json(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

/// Why a device id or method name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Zero bytes.
    #[error("{0} is empty")]
    Empty(&'static str),
    /// Over [`MAX_ID_BYTES`].
    #[error("{0} is {1} bytes, the limit is {MAX_ID_BYTES}")]
    TooLong(&'static str, usize),
    /// Contains a character with meaning in MQTT topics.
    #[error("{0} contains {1:?}, which is not allowed in MQTT topic levels")]
    Reserved(&'static str, char),
    /// Starts with `$` (reserved for broker topics).
    #[error("{0} starts with '$', which MQTT reserves for broker topics")]
    LeadingDollar(&'static str),
    /// Contains NUL or another control character.
    #[error("{0} contains a control character")]
    Control(&'static str),
}

/// Checks a device id or method name against the contract: 1-128 bytes,
/// no `/ + #`, no leading `$`, no NUL or control characters. `what` names
/// the field in the error ("target", "method").
pub fn validate_id(what: &'static str, id: &str) -> Result<(), IdError> {
    if id.is_empty() {
        return Err(IdError::Empty(what));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(IdError::TooLong(what, id.len()));
    }
    if id.starts_with('$') {
        return Err(IdError::LeadingDollar(what));
    }
    for c in id.chars() {
        match c {
            '/' | '+' | '#' => return Err(IdError::Reserved(what, c)),
            c if c.is_control() => return Err(IdError::Control(what)),
            _ => {}
        }
    }
    Ok(())
}

/// Reads a user property by name (first occurrence).
pub fn user_property<'a>(props: &'a [(String, String)], name: &str) -> Option<&'a str> {
    props
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Matches `id` against a watch/list pattern: exact, or a glob where `*`
/// matches any run of characters and `?` one character. Empty matches all.
/// Allocates nothing: listing a glob over a million ids runs it a million
/// times.
pub fn glob_match(pattern: &str, id: &str) -> bool {
    if pattern.is_empty() {
        return true;
    }
    // Bytes, with `?` taking a whole UTF-8 character: literal runs start on
    // character boundaries in both, and UTF-8 is self-synchronising, so
    // comparing them byte by byte is comparing them character by character.
    let (p, s) = (pattern.as_bytes(), id.as_bytes());
    let (mut pi, mut si) = (0, 0);
    // After the last `*`: where the pattern resumes, and how much of `id`
    // that `*` has taken so far.
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(b'*') => {
                pi += 1;
                star = Some((pi, si));
            }
            Some(b'?') => {
                pi += 1;
                si += utf8_len(s[si]);
            }
            Some(&c) if c == s[si] => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((resume, taken)) => {
                    let taken = taken + utf8_len(s[taken]);
                    star = Some((resume, taken));
                    pi = resume;
                    si = taken;
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// The length of the UTF-8 character that starts with byte `b`.
fn utf8_len(b: u8) -> usize {
    match b {
        0..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

/// The literal start of a pattern, before its first `*` or `?`: every id
/// it matches begins with it, so a sorted listing can seek there.
pub fn glob_prefix(pattern: &str) -> &str {
    pattern.find(['*', '?']).map_or(pattern, |i| &pattern[..i])
}

mod credentials;
#[cfg(feature = "mqtt")]
pub mod endpoint;
mod message;
#[cfg(feature = "mqtt")]
pub mod mqtt;
mod profile;
mod seed;
#[cfg(feature = "mqtt")]
pub mod tls;
mod url;
pub use credentials::{Credentials, Secret};
pub use message::*;
pub use profile::{aws_iot_region, is_aws_iot_host, BrokerLimits, BrokerProfile};
pub use seed::*;
pub use url::{BrokerUrl, DEFAULT_WEBSOCKET_PATH};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip() {
        let t = Topics::default();
        assert_eq!(t.request("d1", "echo"), "thingcall/devices/d1/methods/echo");
        assert_eq!(t.reply("gw", "d1"), "thingcall/gateways/gw/replies/d1");
        assert_eq!(
            t.parse_reply("gw", "thingcall/gateways/gw/replies/d1"),
            Some("d1")
        );
        assert_eq!(
            t.parse_reply("gw", "thingcall/gateways/gw2/replies/d1"),
            None
        );
        assert_eq!(t.parse_reply("gw", "thingcall/gateways/gw/replies/"), None);
        assert_eq!(
            t.parse_device("thingcall/devices/d1/presence"),
            Some(("d1", DeviceTopic::Presence))
        );
        assert_eq!(
            t.parse_device("thingcall/devices/d1/methods/echo"),
            Some(("d1", DeviceTopic::Method("echo")))
        );
        assert_eq!(
            t.parse_device("thingcall/devices/d1/events/door"),
            Some(("d1", DeviceTopic::Event("door")))
        );
        assert_eq!(t.parse_device("thingcall/devices/d1/other"), None);
        assert_eq!(t.parse_device("other/devices/d1/presence"), None);
        assert_eq!(t.parse_device("thingcall/devices//presence"), None);
    }

    #[test]
    fn presence_json() {
        let p = Presence {
            online: true,
            session: "s1".into(),
            methods: vec!["echo".into()],
        };
        assert_eq!(
            String::from_utf8(p.to_json()).unwrap(),
            r#"{"online":true,"session":"s1","methods":["echo"]}"#
        );
        assert_eq!(Presence::from_json(&p.to_json()), Some(p));
        let will = Presence::from_json(br#"{"online":false,"session":"s1"}"#).unwrap();
        assert!(!will.online && will.methods.is_empty());
        assert_eq!(Presence::from_json(b"not json"), None);
    }

    #[test]
    fn ids() {
        assert!(validate_id("target", "pump-7").is_ok());
        assert!(validate_id("target", "ünïcode").is_ok());
        assert!(validate_id("target", &"x".repeat(128)).is_ok());
        assert_eq!(validate_id("target", ""), Err(IdError::Empty("target")));
        assert_eq!(
            validate_id("t", &"x".repeat(129)),
            Err(IdError::TooLong("t", 129))
        );
        for bad in ["a/b", "a+", "#", "x\0y", "tab\t", "$SYS"] {
            assert!(validate_id("target", bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_id("method", "a$b").is_ok());
    }

    #[test]
    fn globs() {
        assert!(glob_match("", "anything"));
        assert!(glob_match("pump-*", "pump-1"));
        assert!(glob_match("pump-*", "pump-"));
        assert!(!glob_match("pump-*", "valve-1"));
        assert!(glob_match("*-1", "pump-1"));
        assert!(glob_match("p?mp*", "pump-12"));
        assert!(glob_match("demo-1", "demo-1"));
        assert!(!glob_match("demo-1", "demo-10"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
        // `?` is one character, however many bytes.
        assert!(glob_match("p?mp", "pümp"));
        assert!(!glob_match("p??mp", "pümp"));
        assert!(glob_match("*é", "caféé"));
        // A `*` in an id is a character like any other.
        assert!(glob_match("*a", "*ba"));
    }

    /// The matcher agrees with the obvious recursive definition on every
    /// pair from a small alphabet that includes a multi-byte character.
    #[test]
    fn globs_match_the_definition() {
        fn reference(p: &[char], s: &[char]) -> bool {
            match (p.first(), s.first()) {
                (None, _) => s.is_empty(),
                (Some('*'), _) => reference(&p[1..], s) || (!s.is_empty() && reference(p, &s[1..])),
                (Some(_), None) => false,
                (Some('?'), Some(_)) => reference(&p[1..], &s[1..]),
                (Some(a), Some(b)) => a == b && reference(&p[1..], &s[1..]),
            }
        }
        fn words(alphabet: &[char], max: usize) -> Vec<String> {
            let mut all = vec![String::new()];
            let mut last = vec![String::new()];
            for _ in 0..max {
                last = last
                    .iter()
                    .flat_map(|w| alphabet.iter().map(move |c| format!("{w}{c}")))
                    .collect();
                all.extend(last.iter().cloned());
            }
            all
        }
        let ids = words(&['a', 'b', 'é'], 4);
        for pattern in words(&['a', 'é', '*', '?'], 4).iter().skip(1) {
            let p: Vec<char> = pattern.chars().collect();
            for id in &ids {
                let s: Vec<char> = id.chars().collect();
                assert_eq!(
                    glob_match(pattern, id),
                    reference(&p, &s),
                    "{pattern:?} against {id:?}"
                );
            }
        }
    }

    #[test]
    fn glob_prefixes() {
        assert_eq!(glob_prefix("pump-*"), "pump-");
        assert_eq!(glob_prefix("p?mp*"), "p");
        assert_eq!(glob_prefix("*-1"), "");
        assert_eq!(glob_prefix("demo-1"), "demo-1");
        assert_eq!(glob_prefix(""), "");
    }
}
