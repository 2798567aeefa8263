//! The one broker-URL parser of thingcall: the gateway, the device library,
//! the simulator and the bench all accept the same spellings, without a
//! URL crate.

/// A broker address: `mqtt://HOST[:PORT]` (also `tcp://`, default port
/// 1883) or `mqtts://HOST[:PORT]` (also `ssl://`, TLS, default port 8883).
/// IPv6 hosts are written in brackets (`mqtt://[::1]:1883`) and kept
/// without them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// Host name or address (also the TLS server name).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// The scheme asks for TLS.
    pub tls: bool,
}

impl BrokerUrl {
    /// Parses a broker URL; the error is one line fit for a command line,
    /// starting `invalid MQTT URL`.
    pub fn parse(url: &str) -> Result<BrokerUrl, String> {
        let url = url.trim();
        let bad = |why: &str| format!("invalid MQTT URL {url:?}: {why}");
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected mqtt://host:port"))?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" => true,
            other => {
                return Err(bad(&format!(
                    "scheme {other:?} is not supported (use mqtt:// or mqtts://)"
                )))
            }
        };
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
            None if tls => 8883,
            None => 1883,
            Some(p) => match p.parse::<u16>() {
                Ok(0) | Err(_) => {
                    return Err(bad(&format!("port {p:?} is not a number in 1-65535")))
                }
                Ok(n) => n,
            },
        };
        Ok(BrokerUrl {
            host: host.to_owned(),
            port,
            tls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str) -> (String, u16, bool) {
        let u = BrokerUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        (u.host, u.port, u.tls)
    }

    #[test]
    fn accepted() {
        assert_eq!(
            ok("mqtt://127.0.0.1:1883"),
            ("127.0.0.1".into(), 1883, false)
        );
        assert_eq!(ok("tcp://broker:18830"), ("broker".into(), 18830, false));
        assert_eq!(ok("mqtt://broker"), ("broker".into(), 1883, false));
        assert_eq!(ok("MQTT://broker:1/"), ("broker".into(), 1, false));
        assert_eq!(ok(" mqtt://[::1]:1884 "), ("::1".into(), 1884, false));
        assert_eq!(ok("mqtt://[::1]"), ("::1".into(), 1883, false));
        assert_eq!(
            ok("mqtts://broker.example"),
            ("broker.example".into(), 8883, true)
        );
        assert_eq!(ok("ssl://b:8884/"), ("b".into(), 8884, true));
        assert_eq!(ok("mqtts://[::1]"), ("::1".into(), 8883, true));
    }

    #[test]
    fn refused() {
        for bad in [
            "",
            "127.0.0.1:1883",
            "ws://broker",
            "http://x:1",
            "mqtt://",
            "mqtt://:1883",
            "mqtt://broker:",
            "mqtt://broker:0",
            "mqtt://broker:70000",
            "mqtt://broker:x",
            "mqtts://b:notaport",
            "mqtt://user@broker",
            "mqtt://broker/path",
            "mqtt://::1",
            "mqtt://[::1",
            "mqtt://[::1]x",
        ] {
            let err = BrokerUrl::parse(bad).expect_err(bad);
            assert!(
                !err.contains('\n') && err.starts_with("invalid MQTT URL"),
                "{err}"
            );
        }
    }
}
