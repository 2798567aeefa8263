//! The one broker-URL parser of thingcall: the gateway, the device library,
//! the simulator and the bench all accept the same spellings, without a
//! URL crate.

/// A broker address:
///
/// - `mqtt://HOST[:PORT]` (also `tcp://`, default port 1883);
/// - `mqtts://HOST[:PORT]` (also `ssl://`, TLS, default port 8883);
/// - `ws://HOST[:PORT][/PATH]` (MQTT over WebSockets, default port 80,
///   default path `/mqtt`);
/// - `wss://HOST[:PORT][/PATH]` (the same over TLS, default port 443).
///
/// IPv6 hosts are written in brackets (`mqtt://[::1]:1883`) and kept
/// without them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// Host name or address (also the TLS server name).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// The scheme asks for TLS (`mqtts://`, `ssl://`, `wss://`).
    pub tls: bool,
    /// The HTTP path of the WebSocket upgrade for `ws://` and `wss://`
    /// (starting with `/`); `None` for MQTT straight over TCP.
    pub websocket: Option<String>,
}

/// The WebSocket path brokers use unless told otherwise (Mosquitto's
/// examples, EMQX, HiveMQ, AWS IoT Core).
pub const DEFAULT_WEBSOCKET_PATH: &str = "/mqtt";

impl BrokerUrl {
    /// Parses a broker URL; the error is one line fit for a command line,
    /// starting `invalid MQTT URL`.
    pub fn parse(url: &str) -> Result<BrokerUrl, String> {
        let url = url.trim();
        let bad = |why: &str| format!("invalid MQTT URL {url:?}: {why}");
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected mqtt://host:port"))?;
        let (tls, ws, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "mqtt" | "tcp" => (false, false, 1883),
            "mqtts" | "ssl" => (true, false, 8883),
            "ws" => (false, true, 80),
            "wss" => (true, true, 443),
            other => {
                return Err(bad(&format!(
                    "scheme {other:?} is not supported (use mqtt://, mqtts://, ws:// or wss://)"
                )))
            }
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let websocket = if ws {
            if path.contains(['?', '#']) || path.chars().any(|c| c.is_control() || c == ' ') {
                return Err(bad(
                    "the WebSocket path may not hold a query, '#' or spaces",
                ));
            }
            Some(match path {
                "" => DEFAULT_WEBSOCKET_PATH.to_owned(),
                p => p.to_owned(),
            })
        } else {
            // Tolerate one trailing slash; anything else after the authority is an error.
            if !path.is_empty() && path != "/" {
                return Err(bad("only host and port are allowed"));
            }
            None
        };
        if authority.contains(['?', '#', '@']) {
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
            None => default_port,
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
            websocket,
        })
    }

    /// The host as it goes into a URL: IPv6 addresses in brackets.
    pub fn host_in_url(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }

    /// `ws://host[:port]/path` or `wss://...` for a WebSocket broker, the
    /// form rumqttc takes as its broker address; `None` over plain TCP.
    /// The port is left out when it is the scheme's default, because the
    /// URL's authority becomes the upgrade request's `Host` header, which
    /// a SigV4 signature covers as `host:<endpoint>`.
    pub fn websocket_url(&self) -> Option<String> {
        let path = self.websocket.as_deref()?;
        let (scheme, default_port) = if self.tls { ("wss", 443) } else { ("ws", 80) };
        let host = self.host_in_url();
        Some(if self.port == default_port {
            format!("{scheme}://{host}{path}")
        } else {
            format!("{scheme}://{host}:{}{path}", self.port)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str) -> (String, u16, bool) {
        let u = BrokerUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(u.websocket, None, "{url}");
        (u.host, u.port, u.tls)
    }

    fn ws(url: &str) -> (String, u16, bool, String) {
        let u = BrokerUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        (u.host, u.port, u.tls, u.websocket.expect("a WebSocket URL"))
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
    fn websockets() {
        assert_eq!(
            ws("ws://broker"),
            ("broker".into(), 80, false, "/mqtt".into())
        );
        assert_eq!(
            ws("ws://broker:8080/"),
            ("broker".into(), 8080, false, "/".into())
        );
        assert_eq!(
            ws("WS://[::1]:9001/ws/mqtt"),
            ("::1".into(), 9001, false, "/ws/mqtt".into())
        );
        assert_eq!(
            ws("wss://abc-ats.iot.eu-west-1.amazonaws.com/mqtt"),
            (
                "abc-ats.iot.eu-west-1.amazonaws.com".into(),
                443,
                true,
                "/mqtt".into()
            )
        );
        let u = BrokerUrl::parse("wss://[::1]/m").unwrap();
        assert_eq!(u.websocket_url().as_deref(), Some("wss://[::1]/m"));
        let u = BrokerUrl::parse("ws://b:81").unwrap();
        assert_eq!(u.websocket_url().as_deref(), Some("ws://b:81/mqtt"));
        let u = BrokerUrl::parse("wss://b:8443/").unwrap();
        assert_eq!(u.websocket_url().as_deref(), Some("wss://b:8443/"));
        assert_eq!(BrokerUrl::parse("mqtt://b").unwrap().websocket_url(), None);
    }

    #[test]
    fn refused() {
        for bad in [
            "",
            "127.0.0.1:1883",
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
            "ws://",
            "ws:///mqtt",
            "ws://b:0/mqtt",
            "ws://user@b/mqtt",
            "ws://b/mqtt?x=1",
            "wss://b/mq tt",
            "wss://b/mqtt#frag",
        ] {
            let err = BrokerUrl::parse(bad).expect_err(bad);
            assert!(
                !err.contains('\n') && err.starts_with("invalid MQTT URL"),
                "{err}"
            );
        }
    }
}
