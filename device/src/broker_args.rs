//! The broker connection flags the gateway (`thingcall-server`) and the
//! simulator (`thingcall-sim`) share, so the two take the same spelling for
//! TLS and logins, with one set of rules.

use std::path::PathBuf;

use thingcall_proto::wire::tls::TlsFiles;
use thingcall_proto::wire::{BrokerUrl, Credentials};

/// The environment variable holding the broker password (never a flag:
/// it would show in `ps`).
pub const PASSWORD_ENV: &str = "THINGCALL_MQTT_PASSWORD";

/// TLS and login flags for the broker connection.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct BrokerArgs {
    /// PEM file of the CA that signed the broker's certificate (with
    /// mqtts:// or wss://); without it the system's root certificates are trusted.
    #[arg(long, env = "THINGCALL_MQTT_CA", value_name = "FILE")]
    pub mqtt_ca: Option<PathBuf>,

    /// PEM file of a client certificate for mutual TLS (with mqtts:// and
    /// --mqtt-key), e.g. an AWS IoT Core thing's certificate.
    #[arg(
        long,
        env = "THINGCALL_MQTT_CERT",
        value_name = "FILE",
        requires = "mqtt_key"
    )]
    pub mqtt_cert: Option<PathBuf>,

    /// PEM file of the client certificate's private key.
    #[arg(
        long,
        env = "THINGCALL_MQTT_KEY",
        value_name = "FILE",
        requires = "mqtt_cert"
    )]
    pub mqtt_key: Option<PathBuf>,

    /// ALPN protocols to offer the broker (comma-separated), e.g.
    /// `x-amzn-mqtt-ca` for AWS IoT Core's mutual TLS on port 443.
    #[arg(
        long,
        env = "THINGCALL_MQTT_ALPN",
        value_delimiter = ',',
        value_name = "PROTOCOL"
    )]
    pub mqtt_alpn: Vec<String>,

    /// Username to log in to the broker with; the password comes from
    /// --mqtt-password-file or the environment variable THINGCALL_MQTT_PASSWORD.
    #[arg(long, env = "THINGCALL_MQTT_USERNAME", value_name = "NAME")]
    pub mqtt_username: Option<String>,

    /// File whose first line is the broker password (with --mqtt-username).
    #[arg(long, env = "THINGCALL_MQTT_PASSWORD_FILE", value_name = "FILE")]
    pub mqtt_password_file: Option<PathBuf>,
}

impl BrokerArgs {
    /// The broker login: `--mqtt-username` with the password from
    /// `--mqtt-password-file` or `THINGCALL_MQTT_PASSWORD`. The error is one
    /// line and never names the password.
    pub fn credentials(&self) -> Result<Option<Credentials>, String> {
        let env = std::env::var(PASSWORD_ENV).ok();
        Credentials::from_sources(
            self.mqtt_username.as_deref(),
            self.mqtt_password_file.as_deref(),
            env.as_deref(),
        )
        .map_err(|e| format!("{e} (--mqtt-username, --mqtt-password-file, {PASSWORD_ENV})"))
    }

    /// TLS to the broker at `url`: `None` for `mqtt://` and `ws://`, where the TLS
    /// flags are refused. The files are loaded once here, so a bad one is
    /// reported at start-up.
    pub fn tls(&self, url: &BrokerUrl) -> Result<Option<TlsFiles>, String> {
        if !url.tls {
            let tls_flags =
                self.mqtt_ca.is_some() || self.mqtt_cert.is_some() || !self.mqtt_alpn.is_empty();
            if tls_flags {
                return Err(
                    "--mqtt-ca, --mqtt-cert, --mqtt-key and --mqtt-alpn need an mqtts:// or wss:// --mqtt-url"
                        .into(),
                );
            }
            return Ok(None);
        }
        let files = TlsFiles {
            ca: self.mqtt_ca.clone(),
            client: self.mqtt_cert.clone().zip(self.mqtt_key.clone()),
            alpn: self.mqtt_alpn.clone(),
        };
        files.load()?;
        Ok(Some(files))
    }
}
