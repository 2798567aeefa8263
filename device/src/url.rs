//! Broker URLs as the device library takes them: the spelling every
//! thingcall component shares (`thingcall_proto::wire::BrokerUrl`), plain
//! MQTT over TCP only (for TLS or WebSockets parse a `BrokerUrl` and use
//! `DeviceOptions::at`).

use thingcall_proto::wire::BrokerUrl;

/// Parses `mqtt://host:port` or `tcp://host:port` (port default 1883) into
/// host and port. IPv6 hosts are written in brackets (`mqtt://[::1]:1883`)
/// and returned without them. `mqtts://`, `ws://` and `wss://` are refused:
/// a host and a port cannot say how to connect to them. The error is a one-line message fit for a command line.
pub fn parse_mqtt_url(url: &str) -> Result<(String, u16), String> {
    let broker = BrokerUrl::parse(url)?;
    if broker.tls || broker.websocket.is_some() {
        return Err(format!(
            "invalid MQTT URL {:?}: only mqtt:// is supported here",
            url.trim()
        ));
    }
    Ok((broker.host, broker.port))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spellings themselves are `BrokerUrl`'s tests; here, what a device adds.
    #[test]
    fn plain_urls_only() {
        assert_eq!(
            parse_mqtt_url("mqtt://127.0.0.1:1883"),
            Ok(("127.0.0.1".into(), 1883))
        );
        for bad in [
            "mqtts://broker:8883",
            "ssl://broker",
            "ws://broker/mqtt",
            "127.0.0.1:1883",
        ] {
            let err = parse_mqtt_url(bad).expect_err(bad);
            assert!(err.starts_with("invalid MQTT URL"), "{err}");
        }
    }
}
