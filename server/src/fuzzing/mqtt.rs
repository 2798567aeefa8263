//! What arrives from the broker (`Router::decode`: replies with their
//! properties, presence, seed acks, events) and the topic layouts.

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::PublishProperties;
use thingcall_proto::wire::{
    self, parse_seed_request, validate_id, DeviceTopic, Presence, SeedTopics, Topics, PROP_EXEC_US,
    PROP_STAGE, PROP_STATUS, STAGE_ACCEPTED,
};

use crate::message::Inbound;
use crate::mqtt::contract::Router;
use crate::outcome::CallId;

const GATEWAY: &str = "gw";
const SEED_PREFIX: &str = "invocation_client";

/// One publish, written as lines so corpus files read as what they are:
///
/// ```text
/// <topic>
/// <CorrelationData: hex, or raw bytes when not hex; "-" for none>
/// <ContentType; "-" for none>
/// <user property name>=<value>    (any number of these)
///
/// <payload: the rest, newlines included>
/// ```
///
/// With no correlation, no content type and no user property, the publish
/// has no properties at all. Short inputs fill what is missing with "-".
struct Publish {
    topic: Vec<u8>,
    properties: Option<PublishProperties>,
    payload: Bytes,
}

impl Publish {
    fn parse(data: &[u8]) -> Self {
        let mut rest = data;
        let mut line = || {
            let (l, r) = match rest.iter().position(|&b| b == b'\n') {
                Some(at) => (&rest[..at], &rest[at + 1..]),
                None => (rest, &[][..]),
            };
            rest = r;
            l
        };
        let topic = line().to_vec();
        let correlation = match line() {
            b"-" | b"" => None,
            c => Some(Bytes::from(hex(c).unwrap_or_else(|| c.to_vec()))),
        };
        let content_type = match line() {
            b"-" | b"" => None,
            c => Some(String::from_utf8_lossy(c).into_owned()),
        };
        let mut user_properties = Vec::new();
        loop {
            let l = line();
            if l.is_empty() {
                break;
            }
            let text = String::from_utf8_lossy(l);
            let (k, v) = text.split_once('=').unwrap_or((&text, ""));
            user_properties.push((k.to_owned(), v.to_owned()));
        }
        let payload = Bytes::copy_from_slice(rest);
        let properties = (correlation.is_some()
            || content_type.is_some()
            || !user_properties.is_empty())
        .then(|| PublishProperties {
            correlation_data: correlation,
            content_type,
            user_properties,
            ..Default::default()
        });
        Publish {
            topic,
            properties,
            payload,
        }
    }
}

fn hex(s: &[u8]) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.chunks(2)
        .map(|p| {
            let d = |b: u8| (b as char).to_digit(16);
            Some((d(p[0])? * 16 + d(p[1])?) as u8)
        })
        .collect()
}

/// A publish on any topic through the gateway's `Router::decode`. What it
/// decodes to must agree with the topic and the properties: a reply's call
/// id is its CorrelationData (16 bytes, round-tripped), its device is the
/// topic's, formatting the parts again gives the topic back, the payload is
/// carried unchanged, the status is the `status` property (200 when
/// absent); a seed ack answers only the id its topic names, with its
/// `response` as JSON; a presence document re-encodes to itself.
pub fn mqtt_inbound(data: &[u8]) {
    let p = Publish::parse(data);
    let topics = Topics::default();
    let seed = SeedTopics::new(SEED_PREFIX);
    let router = Router::new(topics.clone(), GATEWAY.into(), seed.clone());
    let props = p.properties.clone();
    let user = props
        .as_ref()
        .map(|p| p.user_properties.clone())
        .unwrap_or_default();
    let correlation = props.as_ref().and_then(|p| p.correlation_data.clone());
    let topic_text = std::str::from_utf8(&p.topic).ok();
    match router.decode(&p.topic, p.payload.clone(), p.properties) {
        Inbound::Reply { device, id, reply } => {
            let topic = topic_text.expect("decoded from a UTF-8 topic");
            if topics.parse_reply(GATEWAY, topic).is_some() {
                assert_eq!(topics.reply(GATEWAY, device), topic);
                let corr = correlation.expect("a reply without CorrelationData");
                assert_eq!(&id.to_bytes()[..], &corr[..], "the call id changed");
                assert_eq!(reply.payload, p.payload, "the payload changed");
                let status = wire::user_property(&user, PROP_STATUS);
                let want = status.map_or(Some(200), |s| s.trim().parse().ok());
                assert_eq!(Some(reply.status), want, "status {status:?}");
                assert_ne!(wire::user_property(&user, PROP_STAGE), Some(STAGE_ACCEPTED));
                let exec = wire::user_property(&user, PROP_EXEC_US);
                assert_eq!(reply.exec_us, exec.and_then(|v| v.trim().parse().ok()));
                assert_eq!(reply.content_type, props.and_then(|p| p.content_type));
            } else {
                let (m_id, target, method) = seed.parse_ack(topic).expect("a reply or an ack");
                assert_eq!(device, target);
                assert_eq!(seed.ack(m_id, target, method), topic);
                assert_eq!(Some(id), CallId::parse(m_id), "the ack's id changed");
                let ack = RawAck::parse(&p.payload).expect("an ack parsed");
                assert_eq!(ack.id, m_id, "an ack for another call was taken");
                let response = ack.response.map_or("null", |r| r.get());
                assert_eq!(reply.payload, response.as_bytes(), "the response changed");
                assert_eq!(reply.status, 200);
            }
        }
        Inbound::Accepted { device, id } => {
            let topic = topic_text.expect("decoded from a UTF-8 topic");
            assert_eq!(topics.reply(GATEWAY, device), topic);
            let corr = correlation.expect("accepted without CorrelationData");
            assert_eq!(&id.to_bytes()[..], &corr[..], "the call id changed");
            assert_eq!(wire::user_property(&user, PROP_STAGE), Some(STAGE_ACCEPTED));
        }
        Inbound::Presence { device, presence } => {
            let topic = topic_text.expect("decoded from a UTF-8 topic");
            assert_eq!(topics.presence(device), topic);
            match presence {
                None => assert!(p.payload.is_empty(), "a presence document was lost"),
                Some(doc) => {
                    let again = Presence::from_json(&doc.to_json());
                    assert_eq!(again.as_ref(), Some(&doc), "presence does not re-encode");
                }
            }
        }
        Inbound::Event {
            device,
            name,
            payload,
            ..
        } => {
            let topic = topic_text.expect("decoded from a UTF-8 topic");
            assert_eq!(topics.event(device, name), topic);
            assert_eq!(payload, p.payload);
        }
        Inbound::Mismatched => {
            let topic = topic_text.expect("decoded from a UTF-8 topic");
            let (m_id, ..) = seed.parse_ack(topic).expect("only acks mismatch");
            let ack = RawAck::parse(&p.payload).expect("a mismatch parsed");
            assert_ne!(ack.id, m_id);
        }
        Inbound::Malformed | Inbound::Unrelated => {}
    }
}

/// A seed ack as JSON syntax only, its `response` unparsed: the gateway
/// passes a response through as the device wrote it, so a number JSON
/// allows but f64 cannot hold (`1e999999`) is still an answer.
#[derive(serde::Deserialize)]
struct RawAck<'a> {
    #[serde(borrow)]
    id: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    response: Option<&'a serde_json::value::RawValue>,
}

impl<'a> RawAck<'a> {
    fn parse(payload: &'a [u8]) -> serde_json::Result<Self> {
        serde_json::from_slice(payload)
    }
}

/// Topic layouts under any root, gateway id and seed prefix the server's
/// configuration accepts, written as lines:
///
/// ```text
/// <topic root>
/// <gateway id>
/// <seed client prefix>
/// <topic>
/// <device id>    (optional)
/// <method name>  (optional)
/// ```
///
/// (a single line is a topic under the defaults). A topic that parses
/// formats back to itself; a request, reply, presence, event or ack topic
/// made from valid ids parses back to those ids.
pub fn topics(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let lines: Vec<&str> = text.split('\n').collect();
    let (root, gateway, prefix, topic) = match lines[..] {
        [root, gw, prefix, topic, ..] => (root, gw, prefix, topic),
        _ => ("thingcall", GATEWAY, SEED_PREFIX, text.as_ref()),
    };
    let root = if root_allowed(root) {
        root
    } else {
        "thingcall"
    };
    let gateway = if validate_id("gw", gateway).is_ok() {
        gateway
    } else {
        GATEWAY
    };
    let prefix = if validate_id("p", prefix).is_ok() {
        prefix
    } else {
        SEED_PREFIX
    };
    let t = Topics::new(root);
    let seed = SeedTopics::new(prefix);

    if let Some(device) = t.parse_reply(gateway, topic) {
        assert_eq!(t.reply(gateway, device), topic);
    }
    match t.parse_device(topic) {
        Some((d, DeviceTopic::Method(m))) => assert_eq!(t.request(d, m), topic),
        Some((d, DeviceTopic::Presence)) => assert_eq!(t.presence(d), topic),
        Some((d, DeviceTopic::Event(e))) => assert_eq!(t.event(d, e), topic),
        None => {}
    }
    if let Some((m_id, target, method)) = seed.parse_ack(topic) {
        assert_eq!(seed.ack(m_id, target, method), topic);
    }
    if let Some(r) = parse_seed_request(topic) {
        assert_eq!(
            SeedTopics::new(r.client_prefix).request(r.target, r.method, r.m_id),
            topic
        );
    }

    let (device, method) = match lines[..] {
        [_, _, _, _, d, m, ..] => (d, m),
        [_, _, _, _, d] => (d, "m"),
        _ => return,
    };
    if validate_id("target", device).is_err() || validate_id("method", method).is_err() {
        return;
    }
    let request = t.request(device, method);
    assert_eq!(
        t.parse_device(&request),
        Some((device, DeviceTopic::Method(method)))
    );
    let presence = t.presence(device);
    assert_eq!(
        t.parse_device(&presence),
        Some((device, DeviceTopic::Presence))
    );
    let event = t.event(device, method);
    assert_eq!(
        t.parse_device(&event),
        Some((device, DeviceTopic::Event(method)))
    );
    let reply = t.reply(gateway, device);
    assert_eq!(t.parse_reply(gateway, &reply), Some(device));
    // The gateway's own request topics are never taken for its replies.
    assert_eq!(t.parse_reply(gateway, &request), None);
    let m_id = CallId::from(0x7d81_ab26_b6d9_4b10_9064_3f28_1a9c_11a9).to_string();
    let ack = seed.ack(&m_id, device, method);
    assert_eq!(seed.parse_ack(&ack), Some((m_id.as_str(), device, method)));
    let seed_request = seed.request(device, method, &m_id);
    let parsed = parse_seed_request(&seed_request).expect("a seed request parses");
    assert_eq!(
        (
            parsed.target,
            parsed.method,
            parsed.client_prefix,
            parsed.m_id
        ),
        (device, method, prefix, m_id.as_str())
    );
}

/// The server's rule for `--topic-root` (see `Config::validate`).
fn root_allowed(root: &str) -> bool {
    !(root.is_empty()
        || root.starts_with('/')
        || root.ends_with('/')
        || root.contains(['+', '#', '\0']))
}
