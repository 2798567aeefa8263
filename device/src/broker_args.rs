//! The broker connection flags the gateway (`thingcall-server`) and the
//! simulator (`thingcall-sim`) share, so the two take the same spelling for
//! TLS and logins, with one set of rules.

use std::path::PathBuf;

use std::sync::Arc;

use thingcall_proto::aws;
use thingcall_proto::wire::tls::TlsFiles;
use thingcall_proto::wire::{aws_iot_region, BrokerProfile, BrokerUrl, Credentials};

/// The environment variable holding the broker password (never a flag:
/// it would show in `ps`).
pub const PASSWORD_ENV: &str = "THINGCALL_MQTT_PASSWORD";

/// The ALPN protocol AWS IoT Core wants for MQTT with a client
/// certificate on port 443.
pub const AWS_IOT_ALPN: &str = "x-amzn-mqtt-ca";

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

    /// Which broker's rules to follow: `generic`, or `aws-iot` (AWS IoT
    /// Core: ALPN x-amzn-mqtt-ca on mqtts:// port 443, SigV4 on wss://
    /// without a client certificate, and its limits: topics of 256 bytes
    /// and 7 '/', no QoS 2, 128 KiB payloads, 8 filters per SUBSCRIBE, 100
    /// unacknowledged publishes). Default: aws-iot for a
    /// *.iot.<region>.amazonaws.com host, else generic.
    #[arg(long, env = "THINGCALL_BROKER_PROFILE", value_name = "PROFILE",
          value_parser = BrokerProfile::parse)]
    pub broker_profile: Option<BrokerProfile>,
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
        let profile = self.profile(url);
        if profile == BrokerProfile::AwsIot && self.broker_profile.is_none() && !url.tls {
            return Err(format!(
                "AWS IoT Core ({}) takes only TLS: use mqtts:// or wss://",
                url.host
            ));
        }
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
        let mut alpn = self.mqtt_alpn.clone();
        // AWS IoT Core serves MQTT with client certificates on 443 only to
        // clients that ask for it by ALPN (443 is otherwise its HTTPS and
        // WebSocket port).
        let aws_mqtt_on_443 =
            profile == BrokerProfile::AwsIot && url.websocket.is_none() && url.port == 443;
        if aws_mqtt_on_443 && alpn.is_empty() {
            alpn.push(AWS_IOT_ALPN.to_owned());
        }
        let files = TlsFiles {
            ca: self.mqtt_ca.clone(),
            client: self.mqtt_cert.clone().zip(self.mqtt_key.clone()),
            alpn,
        };
        files.load()?;
        Ok(Some(files))
    }

    /// The broker profile in force for `url`: `--broker-profile`, else
    /// detected from the host name.
    pub fn profile(&self, url: &BrokerUrl) -> BrokerProfile {
        BrokerProfile::effective(self.broker_profile, url)
    }

    /// The SigV4 signer for AWS IoT Core over `wss://` without a client
    /// certificate: region from the endpoint's name or `AWS_REGION` /
    /// `AWS_DEFAULT_REGION`, credentials from the AWS chain (environment,
    /// shared files, container). `None` for any other connection. The
    /// error is one line and names no secret.
    pub fn sigv4(&self, url: &BrokerUrl) -> Result<Option<aws::iot::Signer>, String> {
        let wants = self.profile(url) == BrokerProfile::AwsIot
            && url.websocket.is_some()
            && url.tls
            && self.mqtt_cert.is_none();
        if !wants {
            return Ok(None);
        }
        let env = aws::credentials::process_env();
        let region = aws_iot_region(&url.host)
            .map(str::to_owned)
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .ok_or_else(|| format!("cannot tell the AWS region of {}: set AWS_REGION", url.host))?;
        let chain =
            aws::chain::Chain::resolve(env).map_err(|e| format!("SigV4 for wss://: {e}"))?;
        Ok(Some(aws::iot::Signer::new(region, Arc::new(chain))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_iot_profile() {
        let args = BrokerArgs::default();
        let on_443 = BrokerUrl::parse("mqtts://abc-ats.iot.eu-west-1.amazonaws.com:443").unwrap();
        assert_eq!(args.profile(&on_443), BrokerProfile::AwsIot);
        let tls = args.tls(&on_443).unwrap().unwrap();
        assert_eq!(tls.alpn, vec![AWS_IOT_ALPN.to_owned()]);
        let on_8883 = BrokerUrl::parse("mqtts://abc-ats.iot.eu-west-1.amazonaws.com").unwrap();
        assert!(args.tls(&on_8883).unwrap().unwrap().alpn.is_empty());
        let plain = BrokerUrl::parse("mqtt://abc-ats.iot.eu-west-1.amazonaws.com").unwrap();
        assert!(args.tls(&plain).unwrap_err().contains("only TLS"));
        // Explicitly on: any host, plain too (a local stand-in).
        let local = BrokerUrl::parse("mqtt://127.0.0.1:1883").unwrap();
        let explicit = BrokerArgs {
            broker_profile: Some(BrokerProfile::AwsIot),
            ..BrokerArgs::default()
        };
        assert_eq!(explicit.tls(&local), Ok(None));
        assert_eq!(explicit.sigv4(&local).unwrap().map(|_| ()), None);
        let generic = BrokerUrl::parse("mqtts://broker.example:443").unwrap();
        assert!(args.tls(&generic).unwrap().unwrap().alpn.is_empty());
    }
}
