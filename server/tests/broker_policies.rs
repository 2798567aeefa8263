//! The broker policies under `deploy/`, read as files and compared with the
//! code that builds the topics: the gateway's own subscriptions
//! (`mqtt::Router`) and the contract's topic builders. Each file must parse
//! and grant exactly what the gateway and the devices use, no more, so a
//! change to the wire contract that forgets a policy fails here. AWS IoT
//! Core and EMQX cannot run on this machine, so this is their test; the
//! Mosquitto ACL is also run for real by `broker_acl.rs`.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;
use thingcall_proto::wire::{seed_device_filter, SeedTopics, Topics};
use thingcall_server::mqtt::Router;

/// The AWS IoT policy variable naming the connected thing: a device's id,
/// or a gateway's id (and seed client prefix).
const THING: &str = "${iot:Connection.Thing.ThingName}";
/// Every resource of the AWS policies: a policy is evaluated in the account
/// and region it is attached in, so those parts are wildcards.
const ARN: &str = "arn:aws:iot:*:*:";

fn deploy_file(path: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn set<S: Into<String>>(items: impl IntoIterator<Item = S>) -> BTreeSet<String> {
    items.into_iter().map(Into::into).collect()
}

/// What the gateway `id` subscribes to (its seed client prefix is its id).
fn gateway_filters(id: &str) -> Vec<String> {
    Router::new(Topics::default(), id.to_owned(), SeedTopics::new(id)).subscriptions()
}

/// What the gateway `id` publishes, `any` standing for a free level:
/// native requests and seed requests under its prefix.
fn gateway_publishes(id: &str, any: &str) -> Vec<String> {
    vec![
        Topics::default().request(any, any),
        SeedTopics::new(id).request(any, any, any),
    ]
}

/// What device `id` subscribes to: its native requests, or its seed ones.
fn device_filters(id: &str) -> Vec<String> {
    vec![
        Topics::default().device_requests_filter(id),
        seed_device_filter(id),
    ]
}

/// The topics device `id` is delivered: its native and its seed requests.
fn device_receives(id: &str, any: &str) -> Vec<String> {
    vec![
        Topics::default().request(id, any),
        SeedTopics::new(any).request(id, any, any),
    ]
}

/// What device `id` publishes: its presence (and Will), its events, its
/// replies to any gateway, its seed acks to any prefix.
fn device_publishes(id: &str, any: &str) -> Vec<String> {
    let t = Topics::default();
    vec![
        t.presence(id),
        t.event(id, any),
        t.reply(any, id),
        SeedTopics::new(any).ack(any, id, any),
    ]
}

/// An AWS IoT policy document.
struct Policy(Value);

impl Policy {
    fn load(path: &str) -> Self {
        let text = deploy_file(path);
        let doc: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not JSON: {e}"));
        assert_eq!(
            doc["Version"], "2012-10-17",
            "{path}: policy language version"
        );
        let policy = Policy(doc);
        let mut sids = BTreeSet::new();
        for s in policy.statements() {
            let sid = s["Sid"].as_str().expect("every statement has a Sid");
            assert!(
                !sid.is_empty() && sid.chars().all(|c| c.is_ascii_alphanumeric()),
                "{path}: a Sid is alphanumeric: {sid:?}"
            );
            assert!(sids.insert(sid), "{path}: Sid {sid} twice");
            for action in strings(&s["Action"]) {
                // `+` and `#` are wildcards only in a topic filter (what
                // iot:Subscribe is about); in a topic ARN they would be the
                // literal characters, so a `+` there would match nothing.
                let kind = match action.as_str() {
                    "iot:Connect" => "client/",
                    "iot:Subscribe" => "topicfilter/",
                    "iot:Publish" | "iot:Receive" | "iot:RetainPublish" => "topic/",
                    other => panic!("{path}: unexpected action {other}"),
                };
                for r in strings(&s["Resource"]) {
                    let rest = r
                        .strip_prefix(ARN)
                        .and_then(|r| r.strip_prefix(kind))
                        .unwrap_or_else(|| panic!("{path}: {action} on {r}: not {ARN}{kind}..."));
                    if kind != "topicfilter/" {
                        assert!(
                            !rest.contains(['+', '#']),
                            "{path}: {r}: MQTT wildcards are literal here, use *"
                        );
                    }
                }
            }
        }
        policy
    }

    fn statements(&self) -> &[Value] {
        self.0["Statement"].as_array().expect("Statement list")
    }

    /// The resources, without the ARN prefix, that statements of `effect`
    /// give `action` on.
    fn resources(&self, effect: &str, action: &str) -> BTreeSet<String> {
        self.statements()
            .iter()
            .filter(|s| s["Effect"] == effect && strings(&s["Action"]).iter().any(|a| a == action))
            .flat_map(|s| strings(&s["Resource"]))
            .map(|r| r.strip_prefix(ARN).expect("checked on load").to_owned())
            .collect()
    }

    /// Every action the policy allows.
    fn allowed_actions(&self) -> BTreeSet<String> {
        self.statements()
            .iter()
            .filter(|s| s["Effect"] == "Allow")
            .flat_map(|s| strings(&s["Action"]))
            .collect()
    }

    /// The condition of the statement allowing iot:Connect.
    fn connect_condition(&self) -> &Value {
        let s = self
            .statements()
            .iter()
            .find(|s| s["Effect"] == "Allow" && strings(&s["Action"]) == ["iot:Connect"])
            .expect("a statement allowing iot:Connect");
        &s["Condition"]
    }
}

/// A string or a list of strings, as IAM-style policies write both.
fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .map(|s| s.as_str().expect("a string").to_owned())
            .collect(),
        other => panic!("expected a string or a list: {other}"),
    }
}

fn prefixed(kind: &str, topics: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    topics.into_iter().map(|t| format!("{kind}/{t}")).collect()
}

#[test]
fn aws_iot_gateway_policy_grants_what_the_gateway_uses() {
    let p = Policy::load("aws-iot/gateway-policy.json");
    assert_eq!(
        p.allowed_actions(),
        set(["iot:Connect", "iot:Publish", "iot:Receive", "iot:Subscribe"])
    );
    assert_eq!(
        p.resources("Allow", "iot:Connect"),
        set([format!("client/{THING}")])
    );
    let cond = p.connect_condition();
    assert_eq!(cond["Bool"]["iot:Connection.Thing.IsAttached"], "true");
    assert_eq!(
        cond["StringLike"]["iot:Connection.Thing.ThingName"],
        "gateway-*"
    );
    let filters = gateway_filters(THING);
    assert_eq!(
        p.resources("Allow", "iot:Subscribe"),
        prefixed("topicfilter", filters.clone())
    );
    assert_eq!(
        p.resources("Allow", "iot:Receive"),
        prefixed("topic", filters.iter().map(|f| f.replace('+', "*")))
    );
    assert_eq!(
        p.resources("Allow", "iot:Publish"),
        prefixed("topic", gateway_publishes(THING, "*"))
    );
    assert!(p.resources("Deny", "iot:Connect").is_empty());
}

#[test]
fn aws_iot_device_policy_grants_what_a_device_uses() {
    let p = Policy::load("aws-iot/device-policy.json");
    assert_eq!(
        p.allowed_actions(),
        set([
            "iot:Connect",
            "iot:Publish",
            "iot:Receive",
            "iot:RetainPublish",
            "iot:Subscribe"
        ])
    );
    assert_eq!(
        p.resources("Allow", "iot:Connect"),
        set([format!("client/{THING}")])
    );
    let cond = p.connect_condition();
    assert_eq!(cond["Bool"]["iot:Connection.Thing.IsAttached"], "true");
    // A Will, no persistent session (devices connect with clean start).
    assert_eq!(
        cond["ForAllValues:StringEquals"]["iot:ConnectAttributes"],
        serde_json::json!(["LastWill"])
    );
    let root = Topics::default().root().to_owned();
    assert_eq!(
        p.resources("Deny", "iot:Connect"),
        set([format!("client/{root}"), "client/gateway-*".to_owned()]),
        "no thing named like the topic root or a gateway connects as a device"
    );
    assert_eq!(
        p.resources("Allow", "iot:Subscribe"),
        prefixed("topicfilter", device_filters(THING))
    );
    assert_eq!(
        p.resources("Allow", "iot:Receive"),
        prefixed("topic", device_receives(THING, "*"))
    );
    assert_eq!(
        p.resources("Allow", "iot:Publish"),
        prefixed("topic", device_publishes(THING, "*"))
    );
    assert_eq!(
        p.resources("Allow", "iot:RetainPublish"),
        prefixed("topic", [Topics::default().presence(THING)]),
        "only the presence is retained"
    );
}

/// One rule of the Mosquitto ACL file: `pattern` or `topic`, its access,
/// its topic, and the `user` block it is in (none before the first).
#[derive(Debug)]
struct AclLine {
    kind: String,
    access: String,
    topic: String,
    user: Option<String>,
}

fn mosquitto_acl() -> Vec<AclLine> {
    let mut user = None;
    let mut lines = Vec::new();
    for line in deploy_file("mosquitto/acl").lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[..] {
            [] => {}
            [first, ..] if first.starts_with('#') => {}
            ["user", name] => user = Some(name.to_owned()),
            [kind @ ("pattern" | "topic"), access @ ("read" | "write" | "deny"), topic] => lines
                .push(AclLine {
                    kind: kind.into(),
                    access: access.into(),
                    topic: topic.into(),
                    user: user.clone(),
                }),
            _ => panic!("deploy/mosquitto/acl: unexpected line {line:?}"),
        }
    }
    lines
}

#[test]
fn mosquitto_acl_grants_exactly_the_contract() {
    let acl = mosquitto_acl();
    let pick = |kind: &str, access: &str, user: Option<&str>| -> BTreeSet<String> {
        acl.iter()
            .filter(|l| l.kind == kind && l.access == access && l.user.as_deref() == user)
            .map(|l| l.topic.clone())
            .collect()
    };
    // Patterns apply to every client wherever they stand; none is denied.
    let patterns = |access: &str| -> BTreeSet<String> {
        acl.iter()
            .filter(|l| l.kind == "pattern" && l.access == access)
            .map(|l| l.topic.clone())
            .collect()
    };
    assert_eq!(patterns("read"), set(device_receives("%u", "+")));
    assert_eq!(patterns("write"), set(device_publishes("%u", "+")));
    assert!(patterns("deny").is_empty());
    let gw = Some("gateway-1");
    assert_eq!(pick("topic", "read", gw), set(gateway_filters("gateway-1")));
    assert_eq!(
        pick("topic", "write", gw),
        set(gateway_publishes("gateway-1", "+"))
    );
    let topics = Topics::default();
    assert_eq!(pick("topic", "deny", Some(topics.root())), set(["#"]));
    let users: BTreeSet<_> = acl.iter().filter_map(|l| l.user.clone()).collect();
    assert_eq!(
        users,
        set(["gateway-1", "thingcall"]),
        "no other user block"
    );
    assert!(
        !acl.iter().any(|l| l.kind == "topic" && l.user.is_none()),
        "nothing for anonymous clients"
    );
}

/// An Erlang term as EMQX's acl.conf writes them.
#[derive(Debug, Clone, PartialEq)]
enum Term {
    Atom(String),
    Str(String),
    Tuple(Vec<Term>),
    List(Vec<Term>),
}

/// Reads a file of Erlang terms, each ending with `.`, `%` comments; just
/// the syntax acl.conf uses (atoms, strings, tuples, lists).
fn erlang_terms(text: &str) -> Vec<Term> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '%' => while chars.next_if(|&c| c != '\n').is_some() {},
            c if c.is_whitespace() => {}
            '{' | '}' | '[' | ']' | ',' | '.' => tokens.push(c.to_string()),
            '"' => {
                let mut s = String::from('"');
                loop {
                    match chars.next().expect("unterminated string") {
                        '"' => break,
                        '\\' => s.push(chars.next().expect("escape")),
                        c => s.push(c),
                    }
                }
                tokens.push(s);
            }
            c if c.is_ascii_lowercase() => {
                let mut atom = c.to_string();
                while let Some(c) = chars.next_if(|c| c.is_ascii_alphanumeric() || *c == '_') {
                    atom.push(c);
                }
                tokens.push(atom);
            }
            other => panic!("unexpected character {other:?}"),
        }
    }
    let mut tokens = tokens.into_iter().peekable();
    let mut terms = Vec::new();
    while tokens.peek().is_some() {
        terms.push(term(&mut tokens));
        assert_eq!(tokens.next().as_deref(), Some("."), "a term ends with '.'");
    }
    terms
}

fn term(tokens: &mut std::iter::Peekable<std::vec::IntoIter<String>>) -> Term {
    let t = tokens.next().expect("a term");
    let items = |tokens: &mut std::iter::Peekable<_>, close: &str| {
        let mut items = Vec::new();
        if tokens.peek().map(String::as_str) == Some(close) {
            tokens.next();
            return items;
        }
        loop {
            items.push(term(tokens));
            match tokens.next().as_deref() {
                Some(",") => {}
                Some(c) if c == close => return items,
                other => panic!("expected ',' or {close}, got {other:?}"),
            }
        }
    };
    match t.as_str() {
        "{" => Term::Tuple(items(tokens, "}")),
        "[" => Term::List(items(tokens, "]")),
        s if s.starts_with('"') => Term::Str(s[1..].to_owned()),
        s if s.starts_with(|c: char| c.is_ascii_lowercase()) => Term::Atom(s.to_owned()),
        other => panic!("unexpected token {other:?}"),
    }
}

#[test]
fn emqx_acl_grants_exactly_the_contract() {
    let atom = |a: &str| Term::Atom(a.into());
    let strs = |v: Vec<String>| Term::List(v.into_iter().map(Term::Str).collect());
    let username_re = |re: &str| {
        Term::Tuple(vec![
            atom("username"),
            Term::Tuple(vec![atom("re"), Term::Str(re.into())]),
        ])
    };
    let rule = |perm: &str, who: Term, action: &str, topics: Vec<String>| {
        Term::Tuple(vec![atom(perm), who, atom(action), strs(topics)])
    };
    let user = "${username}";
    let root = Topics::default().root().to_owned();
    let gateway = || username_re("^gateway-");
    let expected = vec![
        rule(
            "deny",
            username_re(&format!("^{root}$")),
            "all",
            vec!["#".into()],
        ),
        rule("allow", atom("all"), "subscribe", device_filters(user)),
        rule("allow", atom("all"), "publish", device_publishes(user, "+")),
        rule("allow", gateway(), "subscribe", gateway_filters(user)),
        rule("allow", gateway(), "publish", gateway_publishes(user, "+")),
        Term::Tuple(vec![atom("deny"), atom("all")]),
    ];
    assert_eq!(erlang_terms(&deploy_file("emqx/acl.conf")), expected);
}

#[test]
fn the_erlang_reader_reads_what_it_claims() {
    assert_eq!(
        erlang_terms("%% note\n{allow, all, [\"a/+\", \"b\"]}. {deny, {x, []}}."),
        vec![
            Term::Tuple(vec![
                Term::Atom("allow".into()),
                Term::Atom("all".into()),
                Term::List(vec![Term::Str("a/+".into()), Term::Str("b".into())]),
            ]),
            Term::Tuple(vec![
                Term::Atom("deny".into()),
                Term::Tuple(vec![Term::Atom("x".into()), Term::List(vec![])]),
            ]),
        ]
    );
}
