//! Where and how rumqttc reaches the broker, one way for the gateway, the
//! device SDK, the simulator and the bench: MQTT straight over TCP or TLS,
//! or MQTT over WebSockets (`ws://`, `wss://`), where rumqttc wants the
//! whole URL as its broker address and reads host and port from it.

use rumqttc::v5::MqttOptions;
use rumqttc::{TlsConfiguration, Transport};

use super::tls::TlsFiles;
use super::BrokerUrl;

/// rumqttc options for `client_id` at `url`, with TLS from `tls` when the
/// URL asks for it (`mqtts://`, `wss://`; no files means the system's
/// roots). Everything else (keep-alive, packet sizes, logins) is the
/// caller's. The TLS files are read here, so a renewed certificate is
/// picked up by the next call; the error names the file at fault.
pub fn mqtt_options(
    client_id: impl Into<String>,
    url: &BrokerUrl,
    tls: Option<&TlsFiles>,
) -> Result<MqttOptions, String> {
    let tls = match (url.tls, tls) {
        (true, Some(files)) => Some(files.load()?),
        (true, None) => Some(TlsFiles::default().load()?),
        (false, _) => None,
    };
    Ok(mqtt_options_with(client_id, url, tls))
}

/// As [`mqtt_options`] with TLS already loaded: TLS when `tls` is given,
/// whatever the URL's scheme says (the bench's `--tls`).
pub fn mqtt_options_with(
    client_id: impl Into<String>,
    url: &BrokerUrl,
    tls: Option<TlsConfiguration>,
) -> MqttOptions {
    let mut opts = match url.websocket_url() {
        Some(address) => MqttOptions::new(client_id, address, url.port),
        None => MqttOptions::new(client_id, url.host.clone(), url.port),
    };
    let transport = match (url.websocket.is_some(), tls) {
        (false, None) => Transport::Tcp,
        (false, Some(tls)) => Transport::tls_with_config(tls),
        (true, None) => Transport::Ws,
        (true, Some(tls)) => Transport::wss_with_config(tls),
    };
    opts.set_transport(transport);
    opts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_brokers_are_addressed_by_url() {
        let url = BrokerUrl::parse("ws://[::1]:9001/mqtt").unwrap();
        let opts = mqtt_options("c", &url, None).unwrap();
        assert_eq!(opts.broker_address().0, "ws://[::1]:9001/mqtt");
        assert!(matches!(opts.transport(), Transport::Ws));
        let url = BrokerUrl::parse("mqtt://b:1884").unwrap();
        let opts = mqtt_options("c", &url, None).unwrap();
        assert_eq!(opts.broker_address(), ("b".to_owned(), 1884));
        assert!(matches!(opts.transport(), Transport::Tcp));
    }
}
