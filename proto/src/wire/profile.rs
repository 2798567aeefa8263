//! Broker profiles: what a kind of broker allows, as one value the
//! gateway consults wherever a limit applies (validation, start-up checks,
//! the MQTT session), instead of checks scattered on a broker's name.

use std::fmt;

use super::BrokerUrl;

/// Which broker's rules the connection follows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BrokerProfile {
    /// Any MQTT 5 broker (Mosquitto, EMQX, HiveMQ, the embedded one): no
    /// limits beyond the gateway's own flags.
    #[default]
    Generic,
    /// AWS IoT Core: its message broker quotas, mutual TLS or SigV4 over
    /// WebSockets, ALPN `x-amzn-mqtt-ca` for MQTT on port 443.
    AwsIot,
}

impl BrokerProfile {
    /// Parses `generic` or `aws-iot`; the error is one line.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "generic" => Ok(Self::Generic),
            "aws-iot" => Ok(Self::AwsIot),
            other => Err(format!(
                "broker profile {other:?} is unknown (use generic or aws-iot)"
            )),
        }
    }

    /// The profile in force: the one given, else `aws-iot` for an AWS IoT
    /// Core endpoint (`*.iot.<region>.amazonaws.com`), else `generic`.
    pub fn effective(given: Option<Self>, url: &BrokerUrl) -> Self {
        given.unwrap_or(if is_aws_iot_host(&url.host) {
            Self::AwsIot
        } else {
            Self::Generic
        })
    }

    /// What this profile's broker allows.
    pub fn limits(self) -> BrokerLimits {
        match self {
            Self::Generic => BrokerLimits::default(),
            Self::AwsIot => BrokerLimits::AWS_IOT,
        }
    }
}

impl fmt::Display for BrokerProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Generic => "generic",
            Self::AwsIot => "aws-iot",
        })
    }
}

/// Whether `host` names an AWS IoT Core endpoint:
/// `<prefix>.iot.<region>.amazonaws.com` (or `.amazonaws.com.cn`).
pub fn is_aws_iot_host(host: &str) -> bool {
    aws_iot_region(host).is_some()
}

/// The region of an AWS IoT Core endpoint name.
pub fn aws_iot_region(host: &str) -> Option<&str> {
    let labels: Vec<&str> = host.split('.').collect();
    let i = labels.iter().position(|l| *l == "iot")?;
    match labels.get(i + 1..i + 3) {
        Some([region, "amazonaws"]) if i > 0 && !region.is_empty() => Some(region),
        _ => None,
    }
}

/// A broker's limits; `None` is "no limit of the broker's own".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerLimits {
    /// Longest topic name, in UTF-8 bytes.
    pub max_topic_bytes: Option<usize>,
    /// Most `/` in a topic name or filter.
    pub max_topic_slashes: Option<usize>,
    /// Highest QoS the broker takes.
    pub max_qos: u8,
    /// Largest PUBLISH payload, in bytes.
    pub max_payload: Option<usize>,
    /// Most filters in one SUBSCRIBE.
    pub max_filters_per_subscribe: Option<usize>,
    /// Most QoS 1 publishes the client may have unacknowledged.
    pub max_inflight: Option<u16>,
}

impl Default for BrokerLimits {
    fn default() -> Self {
        BrokerLimits {
            max_topic_bytes: None,
            max_topic_slashes: None,
            max_qos: 2,
            max_payload: None,
            max_filters_per_subscribe: None,
            max_inflight: None,
        }
    }
}

impl BrokerLimits {
    /// AWS IoT Core's message broker quotas (hard limits, the same in
    /// every region): topics of at most 256 bytes and 7 slashes, no QoS 2,
    /// 128 KB payloads, 8 subscriptions per SUBSCRIBE, 100 unacknowledged
    /// outbound publishes per client.
    pub const AWS_IOT: BrokerLimits = BrokerLimits {
        max_topic_bytes: Some(256),
        max_topic_slashes: Some(7),
        max_qos: 1,
        max_payload: Some(128 * 1024),
        max_filters_per_subscribe: Some(8),
        max_inflight: Some(100),
    };

    /// Checks one topic name or filter; the error says which limit, and is
    /// worded to follow `what` (e.g. `request topic`).
    pub fn check_topic(&self, what: &str, topic: &str) -> Result<(), String> {
        if let Some(max) = self.max_topic_bytes {
            if topic.len() > max {
                return Err(format!(
                    "the {what} would be {} bytes, over the broker's limit of {max} bytes",
                    topic.len()
                ));
            }
        }
        if let Some(max) = self.max_topic_slashes {
            let slashes = topic.bytes().filter(|b| *b == b'/').count();
            if slashes > max {
                return Err(format!(
                    "the {what} would have {slashes} '/', over the broker's limit of {max}"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles() {
        assert_eq!(BrokerProfile::parse("AWS-IOT"), Ok(BrokerProfile::AwsIot));
        assert_eq!(BrokerProfile::parse("generic"), Ok(BrokerProfile::Generic));
        assert!(BrokerProfile::parse("emqx")
            .unwrap_err()
            .contains("aws-iot"));
        let aws = BrokerUrl::parse("mqtts://a1b2-ats.iot.eu-west-1.amazonaws.com").unwrap();
        let local = BrokerUrl::parse("mqtt://127.0.0.1").unwrap();
        assert_eq!(BrokerProfile::effective(None, &aws), BrokerProfile::AwsIot);
        assert_eq!(
            BrokerProfile::effective(None, &local),
            BrokerProfile::Generic
        );
        assert_eq!(
            BrokerProfile::effective(Some(BrokerProfile::AwsIot), &local),
            BrokerProfile::AwsIot
        );
        assert_eq!(
            BrokerProfile::effective(Some(BrokerProfile::Generic), &aws),
            BrokerProfile::Generic
        );
    }

    #[test]
    fn hosts() {
        assert_eq!(
            aws_iot_region("a1b2c3-ats.iot.eu-west-1.amazonaws.com"),
            Some("eu-west-1")
        );
        assert_eq!(
            aws_iot_region("x.iot.cn-north-1.amazonaws.com.cn"),
            Some("cn-north-1")
        );
        assert_eq!(aws_iot_region("iot.eu-west-1.amazonaws.com"), None);
        assert_eq!(aws_iot_region("broker.example.com"), None);
        assert_eq!(aws_iot_region("127.0.0.1"), None);
    }

    #[test]
    fn topic_limits() {
        let aws = BrokerLimits::AWS_IOT;
        assert!(aws.check_topic("t", &"a".repeat(256)).is_ok());
        let err = aws
            .check_topic("request topic", &"a".repeat(257))
            .unwrap_err();
        assert!(err.contains("257 bytes") && err.contains("256"), "{err}");
        assert!(aws.check_topic("t", "a/b/c/d/e/f/g/h").is_ok());
        let err = aws.check_topic("t", "a/b/c/d/e/f/g/h/i").unwrap_err();
        assert!(err.contains("8 '/'"), "{err}");
        assert!(BrokerLimits::default()
            .check_topic("t", &"a/".repeat(400))
            .is_ok());
    }
}
