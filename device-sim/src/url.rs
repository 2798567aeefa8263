//! Broker URL parsing, so the simulator, the gateway and tests accept the
//! same `mqtt://host:port` spelling without pulling in a URL crate.

/// Port used when a URL names none (the IANA MQTT port).
const DEFAULT_PORT: u16 = 1883;

/// Parses `mqtt://host:port` or `tcp://host:port` (port default 1883) into
/// host and port. IPv6 hosts are written in brackets (`mqtt://[::1]:1883`)
/// and returned without them. The error is a one-line message fit for a
/// command line.
pub fn parse_mqtt_url(url: &str) -> Result<(String, u16), String> {
    let url = url.trim();
    let bad = |why: &str| format!("invalid MQTT URL {url:?}: {why}");
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("expected mqtt://host:port"))?;
    if !scheme.eq_ignore_ascii_case("mqtt") && !scheme.eq_ignore_ascii_case("tcp") {
        return Err(bad(&format!(
            "scheme {scheme:?} is not supported (use mqtt:// or tcp://)"
        )));
    }
    // Tolerate one trailing slash; anything else after the authority is an error.
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#', '@']) {
        return Err(bad("only host and port are allowed"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
        match after {
            "" => (host, None),
            p => (
                host,
                Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ']'"))?),
            ),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => {
                return Err(bad("write IPv6 addresses in brackets, e.g. [::1]"))
            }
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(bad("missing host"));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(bad(&format!("port {p:?} is not a number in 1-65535"))),
            Ok(n) => n,
        },
    };
    Ok((host.to_owned(), port))
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
