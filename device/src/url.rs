//! Broker URLs as the device library takes them: the spelling every
//! thingcall component shares (`thingcall_proto::wire::BrokerUrl`), plain
//! connections only.

use thingcall_proto::wire::BrokerUrl;

/// Parses `mqtt://host:port` or `tcp://host:port` (port default 1883) into
/// host and port. IPv6 hosts are written in brackets (`mqtt://[::1]:1883`)
/// and returned without them. `mqtts://` is refused: devices here connect
/// without TLS. The error is a one-line message fit for a command line.
pub fn parse_mqtt_url(url: &str) -> Result<(String, u16), String> {
    let broker = BrokerUrl::parse(url)?;
    if broker.tls {
        return Err(format!(
            "invalid MQTT URL {:?}: TLS is not supported here (use mqtt://)",
            url.trim()
        ));
    }
    Ok((broker.host, broker.port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str) -> (String, u16) {
        parse_mqtt_url(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    #[test]
    fn accepted() {
        assert_eq!(ok("mqtt://127.0.0.1:1883"), ("127.0.0.1".into(), 1883));
        assert_eq!(ok("tcp://broker:18830"), ("broker".into(), 18830));
        assert_eq!(ok("mqtt://broker"), ("broker".into(), 1883));
        assert_eq!(ok("MQTT://broker:1/"), ("broker".into(), 1));
        assert_eq!(ok(" mqtt://[::1]:1884 "), ("::1".into(), 1884));
        assert_eq!(ok("mqtt://[::1]"), ("::1".into(), 1883));
    }

    #[test]
    fn refused() {
        for bad in [
            "",
            "127.0.0.1:1883",
            "mqtts://broker:8883",
            "ws://broker",
            "mqtt://",
            "mqtt://:1883",
            "mqtt://broker:",
            "mqtt://broker:0",
            "mqtt://broker:70000",
            "mqtt://broker:x",
            "mqtt://user@broker",
            "mqtt://broker/path",
            "mqtt://::1",
            "mqtt://[::1",
            "mqtt://[::1]x",
        ] {
            let err = parse_mqtt_url(bad).expect_err(bad);
            assert!(
                !err.contains('\n') && err.starts_with("invalid MQTT URL"),
                "{err}"
            );
        }
    }
}
