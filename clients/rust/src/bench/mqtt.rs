//! What the two gateway-less modes share: the broker URL, the TLS setup,
//! the connection options, and the request and reply of the wire contract
//! (README, "MQTT wire contract").

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{Publish, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::MqttOptions;
use rumqttc::{NetworkOptions, TlsConfiguration, Transport};

use super::modes::CallSpec;
use thingcall_proto::wire::{
    user_property, Topics, PROP_DEADLINE, PROP_EXEC_US, PROP_STAGE, PROP_STATUS, STAGE_ACCEPTED,
};

/// The MQTT packet limit both ways, as the gateway raises its own.
pub const MAX_PACKET_BYTES: u32 = 1 << 20;
/// How long an MQTT connection may take, in whole seconds (rumqttc's unit).
pub const CONNECT_TIMEOUT_SECS: u64 = 5;

/// A broker address from `--mqtt-url`: `mqtt://HOST[:PORT]` (also
/// `tcp://`, default port 1883) or `mqtts://HOST[:PORT]` (also `ssl://`,
/// TLS, default port 8883). IPv6 hosts go in brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttUrl {
    /// Host name or IP address (also the TLS server name).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// The scheme asks for TLS.
    pub tls: bool,
}

impl MqttUrl {
    /// Parses a broker URL; the error says what is wrong.
    pub fn parse(url: &str) -> Result<MqttUrl, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("expected mqtt://HOST:PORT, got {url:?}"))?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" => true,
            other => {
                return Err(format!(
                    "unsupported scheme {other:?}: use mqtt:// or mqtts://"
                ))
            }
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#', '@']) {
            return Err(format!(
                "expected only HOST:PORT after the scheme in {url:?}"
            ));
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (host, after) = v6
                    .split_once(']')
                    .ok_or_else(|| format!("unclosed '[' in {url:?}"))?;
                match after {
                    "" => (host, None),
                    p => (
                        host,
                        Some(p.strip_prefix(':').ok_or("expected ':' after ']'")?),
                    ),
                }
            }
            None => match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            },
        };
        if host.is_empty() {
            return Err(format!("no host in {url:?}"));
        }
        let port = match port {
            None => {
                if tls {
                    8883
                } else {
                    1883
                }
            }
            Some(p) => p
                .parse()
                .map_err(|_| format!("bad port {p:?} in {url:?}"))?,
        };
        Ok(MqttUrl {
            host: host.to_owned(),
            port,
            tls,
        })
    }
}

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
        let mut opts = MqttOptions::new(client_id, self.url.host.clone(), self.url.port);
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
        if let Some(tls) = &self.tls {
            opts.set_transport(Transport::tls_with_config(tls.clone()));
        }
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
    /// MessageExpiryInterval: the timeout in seconds, rounded up.
    pub expiry_secs: u32,
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
            expiry_secs: expiry_secs(spec.timeout),
        }
    }

    /// The properties of one request: reply address, correlation id,
    /// expiry and the `deadline` user property.
    pub fn properties(&self, response_topic: String, correlation: u128) -> PublishProperties {
        let deadline = SystemTime::now() + self.timeout;
        let deadline_ms = deadline
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        PublishProperties {
            response_topic: Some(response_topic),
            correlation_data: Some(Bytes::copy_from_slice(&correlation.to_be_bytes())),
            message_expiry_interval: Some(self.expiry_secs),
            user_properties: vec![(PROP_DEADLINE.to_owned(), deadline_ms.to_string())],
            ..Default::default()
        }
    }
}

/// Seconds until a deadline `timeout` away, rounded up, at least 1.
pub fn expiry_secs(timeout: Duration) -> u32 {
    let secs = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
    u32::try_from(secs.max(1)).unwrap_or(u32::MAX)
}

/// `0` or `1` as the MQTT QoS.
pub fn qos(level: u8) -> QoS {
    if level == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    }
}

/// What a message on a reply topic says.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// The final reply to `correlation` with the device's status (`None`
    /// when the status property is not a number).
    Final {
        correlation: u128,
        status: Option<i32>,
    },
    /// An interim `stage=accepted` reply: the call goes on.
    Interim,
    /// No 16-byte CorrelationData: not an answer to anything.
    Malformed,
}

/// Reads a reply: CorrelationData, `stage` and `status` (200 when absent).
pub fn parse_reply(publish: &Publish) -> Reply {
    let Some(props) = &publish.properties else {
        return Reply::Malformed;
    };
    let Some(correlation) = props
        .correlation_data
        .as_deref()
        .and_then(|c| <[u8; 16]>::try_from(c).ok())
        .map(u128::from_be_bytes)
    else {
        return Reply::Malformed;
    };
    if user_property(&props.user_properties, PROP_STAGE) == Some(STAGE_ACCEPTED) {
        return Reply::Interim;
    }
    let status = match user_property(&props.user_properties, PROP_STATUS) {
        None => Some(200),
        Some(text) => text.trim().parse().ok(),
    };
    Reply::Final {
        correlation,
        status,
    }
}

/// The device's execution time from a final reply's `exec-us` user
/// property (`None` when absent or not a number). Apart from
/// [`parse_reply`] so only `--breakdown` pays for it.
pub fn exec_time(publish: &Publish) -> Option<Duration> {
    let props = publish.properties.as_ref()?;
    let us = user_property(&props.user_properties, PROP_EXEC_US)?;
    us.trim().parse().ok().map(Duration::from_micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = MqttUrl::parse("mqtt://127.0.0.1:1883").unwrap();
        assert_eq!(
            u,
            MqttUrl {
                host: "127.0.0.1".into(),
                port: 1883,
                tls: false
            }
        );
        let u = MqttUrl::parse("mqtts://broker.example:8884/").unwrap();
        assert_eq!(
            u,
            MqttUrl {
                host: "broker.example".into(),
                port: 8884,
                tls: true
            }
        );
        assert_eq!(MqttUrl::parse("mqtts://b").unwrap().port, 8883);
        assert_eq!(MqttUrl::parse("ssl://b").unwrap().port, 8883);
        assert_eq!(MqttUrl::parse("tcp://b").unwrap().port, 1883);
        let u = MqttUrl::parse("mqtt://[::1]:1999").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 1999));
        assert_eq!(MqttUrl::parse("mqtts://[::1]").unwrap().port, 8883);
        for bad in [
            "b:1883",
            "http://b",
            "mqtt://",
            "mqtt://b:x",
            "mqtt://b/path",
            "mqtt://[::1",
            "mqtt://u@b",
        ] {
            assert!(MqttUrl::parse(bad).is_err(), "{bad}");
        }
    }

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
    fn request_properties() {
        let r = Requests {
            topics: vec!["t/devices/d/methods/echo".into()],
            payload: Bytes::from_static(b"x"),
            qos: qos(1),
            timeout: Duration::from_millis(1500),
            expiry_secs: expiry_secs(Duration::from_millis(1500)),
        };
        let p = r.properties("t/gateways/g/replies/d".into(), 7);
        assert_eq!(p.response_topic.as_deref(), Some("t/gateways/g/replies/d"));
        assert_eq!(p.correlation_data.as_deref().map(<[u8]>::len), Some(16));
        assert_eq!(p.message_expiry_interval, Some(2));
        let deadline: u128 = user_property(&p.user_properties, "deadline")
            .unwrap()
            .parse()
            .unwrap();
        assert!(deadline > 1_600_000_000_000);
        assert_eq!(expiry_secs(Duration::from_millis(1)), 1);
        assert_eq!(expiry_secs(Duration::from_secs(10)), 10);
    }

    fn reply(props: Option<PublishProperties>) -> Publish {
        let mut p = Publish::new("t", QoS::AtMostOnce, "", None);
        p.properties = props;
        p
    }

    /// Reply properties carrying `user` user properties.
    fn with_user(user: &[(&str, &str)]) -> PublishProperties {
        PublishProperties {
            user_properties: user
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn replies() {
        let corr = |n: u128, props: &[(&str, &str)]| PublishProperties {
            correlation_data: Some(Bytes::copy_from_slice(&n.to_be_bytes())),
            ..with_user(props)
        };
        assert_eq!(
            parse_reply(&reply(Some(corr(5, &[])))),
            Reply::Final {
                correlation: 5,
                status: Some(200)
            }
        );
        assert_eq!(
            parse_reply(&reply(Some(corr(5, &[("status", "500")])))),
            Reply::Final {
                correlation: 5,
                status: Some(500)
            }
        );
        assert_eq!(
            parse_reply(&reply(Some(corr(5, &[("status", "x")])))),
            Reply::Final {
                correlation: 5,
                status: None
            }
        );
        assert_eq!(
            parse_reply(&reply(Some(corr(5, &[("stage", "accepted")])))),
            Reply::Interim
        );
        assert_eq!(parse_reply(&reply(None)), Reply::Malformed);
        let short = PublishProperties {
            correlation_data: Some(Bytes::from_static(b"abc")),
            ..Default::default()
        };
        assert_eq!(parse_reply(&reply(Some(short))), Reply::Malformed);
    }

    #[test]
    fn exec_times() {
        let with = |props: &[(&str, &str)]| reply(Some(with_user(props)));
        assert_eq!(
            exec_time(&with(&[("status", "200"), ("exec-us", "1234")])),
            Some(Duration::from_micros(1234))
        );
        assert_eq!(exec_time(&with(&[("status", "200")])), None);
        assert_eq!(exec_time(&with(&[("exec-us", "-3")])), None);
        assert_eq!(exec_time(&reply(None)), None);
    }
}
