//! What the two gateway-less modes share: the broker URL, the TLS setup,
//! the connection options, and the request and reply of the wire contract
//! (README, "MQTT wire contract").

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::Publish;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::MqttOptions;
use rumqttc::{NetworkOptions, TlsConfiguration};

use super::modes::CallSpec;
use thingcall_proto::wire::mqtt::{decode_reply, Encoded};
use thingcall_proto::wire::{Malformed, NativeRequest, ReplyMessage, Topics};

/// The MQTT packet limit both ways, as the gateway raises its own.
pub const MAX_PACKET_BYTES: u32 = 1 << 20;
/// How long an MQTT connection may take, in whole seconds (rumqttc's unit).
pub const CONNECT_TIMEOUT_SECS: u64 = 5;

/// A broker address from `--mqtt-url`: the URL spelling every thingcall
/// component shares.
pub use thingcall_proto::wire::BrokerUrl as MqttUrl;

/// Where and how the MQTT modes connect.
#[derive(Clone)]
pub struct Broker {
    /// Host and port.
    pub url: MqttUrl,
    /// TLS settings when the connection is encrypted.
    pub tls: Option<TlsConfiguration>,
}

impl Broker {
    /// Options for one connection as `client_id`: clean start, TCP_NODELAY,
    /// a 1 MiB packet limit, `capacity` queued requests and `inflight`
    /// unacknowledged QoS 1 publishes.
    pub fn options(&self, client_id: String, capacity: usize, inflight: u16) -> MqttOptions {
        let mut opts = thingcall_proto::wire::endpoint::mqtt_options_with(
            client_id,
            &self.url,
            self.tls.clone(),
        );
        let mut net = NetworkOptions::new();
        net.set_tcp_nodelay(true);
        net.set_connection_timeout(CONNECT_TIMEOUT_SECS);
        opts.set_keep_alive(Duration::from_secs(30))
            .set_clean_start(true)
            .set_connection_timeout(CONNECT_TIMEOUT_SECS)
            .set_max_packet_size(Some(MAX_PACKET_BYTES))
            .set_request_channel_capacity(capacity)
            .set_outgoing_inflight_upper_limit(inflight.max(1))
            .set_network_options(net);
        opts
    }
}

/// Everything a request needs that does not change between calls, built
/// once: the topic per target, the payload, the QoS and the deadline.
#[derive(Debug)]
pub struct Requests {
    /// `{root}/devices/{target}/methods/{method}`, by target index.
    pub topics: Vec<String>,
    /// The call payload (a cheap clone per call).
    pub payload: Bytes,
    /// QoS of the requests.
    pub qos: QoS,
    /// How long a call waits for its reply.
    pub timeout: Duration,
}

impl Requests {
    /// What every call of `spec` sends, under `topics`, at `qos` (0 or 1).
    pub fn new(topics: &Topics, spec: &CallSpec, qos: u8) -> Self {
        Self {
            topics: spec
                .targets
                .iter()
                .map(|t| topics.request(t, &spec.method))
                .collect(),
            payload: spec.payload.clone(),
            qos: self::qos(qos),
            timeout: spec.timeout,
        }
    }

    /// One request to target `target`, replying to `response_topic` with
    /// `correlation`, encoded by the contract's codec (the gateway's own).
    pub fn request(&self, target: usize, response_topic: String, correlation: u128) -> Encoded {
        let now = SystemTime::now();
        NativeRequest {
            topic: self.topics[target].clone(),
            response_topic,
            correlation: correlation.to_be_bytes(),
            payload: self.payload.clone(),
            deadline: now + self.timeout,
            content_type: None,
            user_properties: Vec::new(),
        }
        .encode(now)
    }
}

/// `0` or `1` as the MQTT QoS.
pub fn qos(level: u8) -> QoS {
    if level == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    }
}

/// A reply to `correlation` as the bench counts it: the device's status
/// (`None` when its status property is not a number) and execution time.
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    /// The call it answers.
    pub correlation: u128,
    /// The device's status.
    pub status: Option<i32>,
    /// The device's `exec-us`.
    pub exec: Option<Duration>,
}

/// Reads a final reply with the contract's codec; `None` for interim
/// replies and for messages that answer nothing.
pub fn parse_reply(publish: Publish) -> Option<Reply> {
    match decode_reply(publish.properties, publish.payload) {
        Ok(ReplyMessage::Final(r)) => Some(Reply {
            correlation: u128::from_be_bytes(r.correlation),
            status: Some(r.status),
            exec: r.exec_us.map(Duration::from_micros),
        }),
        Err(Malformed::Status { correlation }) => Some(Reply {
            correlation: u128::from_be_bytes(correlation),
            status: None,
            exec: None,
        }),
        Ok(ReplyMessage::Accepted { .. }) | Err(Malformed::Correlation) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::Transport;

    #[test]
    fn tls_transport_is_set() {
        let broker = Broker {
            url: MqttUrl::parse("mqtts://b").unwrap(),
            tls: Some(TlsConfiguration::Simple {
                ca: vec![],
                alpn: None,
                client_auth: None,
            }),
        };
        let opts = broker.options("c".into(), 10, 10);
        assert!(matches!(opts.transport(), Transport::Tls(_)));
        assert_eq!(opts.max_packet_size(), Some(MAX_PACKET_BYTES));
        assert_eq!(opts.broker_address(), ("b".to_owned(), 8883));
        let plain = Broker {
            url: MqttUrl::parse("mqtt://b").unwrap(),
            tls: None,
        };
        assert!(matches!(
            plain.options("c".into(), 10, 10).transport(),
            Transport::Tcp
        ));
    }

    #[test]
    fn requests_carry_the_contract() {
        let r = Requests {
            topics: vec!["t/devices/d/methods/echo".into()],
            payload: Bytes::from_static(b"x"),
            qos: qos(1),
            timeout: Duration::from_millis(1500),
        };
        let m = r.request(0, "t/gateways/g/replies/d".into(), 7);
        assert_eq!(m.topic, "t/devices/d/methods/echo");
        let p = m.properties;
        assert_eq!(p.response_topic.as_deref(), Some("t/gateways/g/replies/d"));
        assert_eq!(p.correlation_data.as_deref().map(<[u8]>::len), Some(16));
        assert_eq!(p.message_expiry_interval, Some(2));
        assert_eq!(p.user_properties[0].0, "deadline");
    }

    #[test]
    fn replies() {
        use thingcall_proto::wire::mqtt::{accepted_properties, reply_properties};
        let corr = || Some(Bytes::copy_from_slice(&5u128.to_be_bytes()));
        let publish = |props| {
            let mut p = Publish::new("t", QoS::AtMostOnce, "", None);
            p.properties = Some(props);
            p
        };
        assert_eq!(
            parse_reply(publish(reply_properties(corr(), 500, 1234, None))),
            Some(Reply {
                correlation: 5,
                status: Some(500),
                exec: Some(Duration::from_micros(1234)),
            })
        );
        assert_eq!(parse_reply(publish(accepted_properties(corr()))), None);
        let mut bad = reply_properties(corr(), 200, 1, None);
        bad.user_properties[0].1 = "x".into();
        assert_eq!(
            parse_reply(publish(bad)),
            Some(Reply {
                correlation: 5,
                status: None,
                exec: None,
            })
        );
    }
}
