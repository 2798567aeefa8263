//! Configuration: flags with `THINGCALL_*` environment fallbacks, checked
//! once at start-up. Bad configuration is one clear line and exit code 64.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use thingcall_device::broker_args::BrokerArgs;
use thingcall_proto::wire::tls::TlsFiles;

use crate::auth::{Auth, AuthArgs};
use crate::listener::args::ListenArgs;

/// Exit code for bad configuration (`EX_USAGE` from sysexits.h).
pub const EX_USAGE: i32 = 64;

/// thingcall gateway: call methods on MQTT 5 devices synchronously over gRPC.
#[derive(Debug, Clone, Parser)]
#[command(name = "thingcall-server", version, about)]
pub struct Config {
    /// The one port of every API: gRPC, gRPC-web, HTTP/JSON (cleartext,
    /// or TLS with --tls-cert).
    #[arg(long, env = "THINGCALL_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// TLS and connection limits of --listen.
    #[command(flatten)]
    pub port: ListenArgs,

    /// External MQTT 5 broker: `mqtt://host:port`, `mqtts://host:port`
    /// (TLS), or MQTT over WebSockets `ws://host:port/path`,
    /// `wss://host:port/path` (path default `/mqtt`). Without it the gateway starts its embedded broker.
    #[arg(long, env = "THINGCALL_MQTT_URL")]
    pub mqtt_url: Option<String>,

    /// TLS and login for the external broker (shared with thingcall-sim).
    #[command(flatten)]
    pub broker: BrokerArgs,

    /// The broker link's keep-alive: after this long with nothing received
    /// the gateway probes the link, and after 1.5 times it declares it dead
    /// (calls in flight fail with BROKER_UNAVAILABLE) and reconnects.
    #[arg(long, env = "THINGCALL_MQTT_KEEP_ALIVE", default_value = "5s", value_parser = humantime::parse_duration)]
    pub mqtt_keep_alive: Duration,

    /// Longest wait between reconnect attempts (the first is at once, then
    /// 50 ms doubling up to this, with jitter).
    #[arg(long, env = "THINGCALL_MQTT_RECONNECT_MAX", default_value = "1s", value_parser = humantime::parse_duration)]
    pub mqtt_reconnect_max: Duration,

    /// Where the embedded broker listens (when no --mqtt-url).
    #[arg(
        long,
        env = "THINGCALL_EMBEDDED_BROKER_LISTEN",
        default_value = "127.0.0.1:1883"
    )]
    pub embedded_broker_listen: SocketAddr,

    /// Also serve MQTT over WebSockets (path `/mqtt`) from the embedded
    /// broker on this address, for devices or browsers that can only open
    /// WebSockets (when no --mqtt-url). Off by default.
    #[arg(long, env = "THINGCALL_EMBEDDED_BROKER_WS_LISTEN", value_name = "ADDR")]
    pub embedded_broker_ws_listen: Option<SocketAddr>,

    /// Unique id of this gateway (MQTT client id, part of its reply topic);
    /// default `gw-` and 8 random hex digits. Set it to the pod name when
    /// running replicas.
    #[arg(long, env = "THINGCALL_GATEWAY_ID")]
    pub gateway_id: Option<String>,

    /// Root of every MQTT topic.
    #[arg(long, env = "THINGCALL_TOPIC_ROOT", default_value = "thingcall")]
    pub topic_root: String,

    /// QoS of requests to devices (0, 1 or 2). 0 by default: the session
    /// starts clean and resends nothing, a call completes on the reply and
    /// not on a PUBACK, and expiry plus deadline bound staleness, so QoS 1
    /// buys only broker-side queueing for devices with persistent sessions
    /// that come back within the deadline. It costs a PUBACK per request,
    /// and on devices that set no TCP_NODELAY (AWS's own SDK) Nagle holds
    /// the reply behind that PUBACK: about 40 ms per call (docs/qos.md).
    #[arg(long, env = "THINGCALL_QOS", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: u8,

    /// Reply deadline of calls that give none.
    #[arg(long, env = "THINGCALL_DEFAULT_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub default_timeout: Duration,

    /// Longest reply deadline a call may ask for.
    #[arg(long, env = "THINGCALL_MAX_TIMEOUT", default_value = "300s", value_parser = humantime::parse_duration)]
    pub max_timeout: Duration,

    /// Largest request payload (bytes; suffixes KiB, MiB accepted).
    #[arg(long, env = "THINGCALL_MAX_PAYLOAD", default_value = "128KiB", value_parser = parse_size)]
    pub max_payload: usize,

    /// Method names that get their own label on `/metrics`; calls to methods
    /// seen after that many count under `other`, so label cardinality stays
    /// bounded whatever callers send.
    #[arg(long, env = "THINGCALL_METRICS_MAX_METHODS", default_value_t = 64)]
    pub metrics_max_methods: usize,

    /// How long the outcome of a call with an idempotency key is replayed to
    /// retries with that key after it ends; 0s keeps nothing (calls still
    /// join a running call with their key).
    #[arg(long, env = "THINGCALL_IDEMPOTENCY_WINDOW", default_value = "5m", value_parser = humantime::parse_duration)]
    pub idempotency_window: Duration,

    /// Memory for kept idempotent outcomes, payloads included (bytes;
    /// suffixes KiB, MiB accepted); the oldest go first when it is full.
    #[arg(long, env = "THINGCALL_IDEMPOTENCY_MAX_BYTES", default_value = "64MiB", value_parser = parse_size)]
    pub idempotency_max_bytes: usize,

    /// Calls in flight before new ones are refused with OVERLOADED.
    #[arg(long, env = "THINGCALL_MAX_IN_FLIGHT", default_value_t = 100_000)]
    pub max_in_flight: usize,

    /// Calls in flight to one device before more are refused with
    /// OVERLOADED (and Retry-After), so one hot device cannot take the
    /// whole --max-in-flight.
    #[arg(
        long,
        env = "THINGCALL_MAX_IN_FLIGHT_PER_DEVICE",
        default_value_t = 1024
    )]
    pub max_in_flight_per_device: usize,

    /// After the gateway (re)connects to its broker, how long presence
    /// from before stays provisional. Calls to a device not yet confirmed
    /// (by its retained presence, re-delivered on subscribe, or by the
    /// device announcing again) wait up to their connect timeout, and while
    /// the retained presence is still arriving, up to this; then they fail
    /// with DEVICE_OFFLINE. When it ends, devices still unconfirmed are
    /// shown offline.
    #[arg(long, env = "THINGCALL_PRESENCE_GRACE", default_value = "5s", value_parser = humantime::parse_duration)]
    pub presence_grace: Duration,

    /// Call devices that never announced presence and wait for their
    /// reply, as gateways before presence did. Without it, once the
    /// retained presence has arrived, a native call to a device the gateway
    /// has never seen fails at once with DEVICE_NOT_FOUND (unless its
    /// connect timeout asks to wait). For fleets whose devices announce no
    /// presence; seed-contract calls are always sent.
    #[arg(long, env = "THINGCALL_CALL_UNANNOUNCED")]
    pub call_unannounced: bool,

    /// On SIGTERM or SIGINT, how long calls in flight may take to finish
    /// before they fail with SHUTTING_DOWN (new calls get it at once).
    #[arg(long, env = "THINGCALL_DRAIN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,

    /// Events buffered per watcher before it is told it lagged.
    #[arg(long, env = "THINGCALL_WATCH_BUFFER", default_value_t = 1024)]
    pub watch_buffer: usize,

    /// Log lines as `text` (for people) or `json` (one object per line, for
    /// log pipelines). Levels come from RUST_LOG; per-call lines (request
    /// id, target, method, outcome) are at debug level.
    #[arg(long, env = "THINGCALL_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,

    /// MQTT contract of calls that name none: `native` (thingcall's MQTT 5
    /// request/response) or `seed` (the AWS sample's topics).
    #[arg(long, env = "THINGCALL_DEFAULT_CONTRACT", default_value = "native", value_parser = ["native", "seed"])]
    pub default_contract: String,

    /// This gateway's client_prefix in the seed contract (acks arrive under
    /// `{prefix}/+/+/+/ack`); give each replica its own.
    #[arg(
        long,
        env = "THINGCALL_SEED_CLIENT_PREFIX",
        default_value = "invocation_client"
    )]
    pub seed_client_prefix: String,

    /// Origins allowed to call from a browser (CORS), e.g.
    /// `https://console.example.com`; `*` allows any. Repeatable; none by default.
    #[arg(
        long = "cors-origin",
        env = "THINGCALL_CORS_ORIGIN",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,

    /// Who may call, and what (README, "Security").
    #[command(flatten)]
    pub auth: AuthArgs,

    /// Also start N simulated devices in-process (`demo-1` .. `demo-N`).
    #[arg(long, env = "THINGCALL_DEMO", default_value_t = 0)]
    pub demo: u32,
}

impl Config {
    /// Checks what clap cannot; the error is the one line to print.
    pub fn validate(&self) -> Result<(), String> {
        // Reads the password and the TLS files once, so a bad one is
        // reported now, in one line, not at the first connect.
        let login = self.broker.credentials()?;
        match &self.mqtt_url {
            Some(url) => {
                let broker = BrokerUrl::parse(url).map_err(|e| format!("--mqtt-url: {e}"))?;
                self.broker.tls(&broker)?;
                self.broker.sigv4(&broker)?;
            }
            None if login.is_some() || self.broker != BrokerArgs::default() => {
                return Err("the --mqtt-* TLS and login flags need --mqtt-url \
                            (the embedded broker takes neither)"
                    .into());
            }
            None => {}
        }
        self.check_broker_limits()?;
        if self.mqtt_url.is_some() && self.embedded_broker_ws_listen.is_some() {
            return Err(
                "--embedded-broker-ws-listen needs the embedded broker (no --mqtt-url)".into(),
            );
        }
        if let Some(id) = &self.gateway_id {
            thingcall_proto::wire::validate_id("--gateway-id", id).map_err(|e| e.to_string())?;
        }
        let root = &self.topic_root;
        if root.is_empty()
            || root.starts_with('/')
            || root.ends_with('/')
            || root.contains(['+', '#', '\0'])
        {
            return Err(format!("--topic-root {root:?} must be a topic prefix without wildcards or leading/trailing '/'"));
        }
        if self.default_timeout.is_zero() || self.max_timeout.is_zero() {
            return Err("--default-timeout and --max-timeout must be greater than zero".into());
        }
        if self.default_timeout > self.max_timeout {
            return Err("--default-timeout is longer than --max-timeout".into());
        }
        if self.max_payload == 0 || self.max_payload > 256 * 1024 * 1024 {
            return Err("--max-payload must be between 1 byte and 256MiB".into());
        }
        thingcall_proto::wire::validate_id("--seed-client-prefix", &self.seed_client_prefix)
            .map_err(|e| e.to_string())?;
        for origin in &self.cors_origins {
            if origin != "*" && http::HeaderValue::from_str(origin).is_err() {
                return Err(format!("--cors-origin {origin:?} is not a valid origin"));
            }
        }
        if self.mqtt_keep_alive < Duration::from_secs(1)
            || self.mqtt_keep_alive > Duration::from_secs(3600)
        {
            return Err("--mqtt-keep-alive must be between 1s and 1h".into());
        }
        if self.presence_grace > Duration::from_secs(3600) {
            return Err("--presence-grace must be at most 1h".into());
        }
        if self.mqtt_reconnect_max < Duration::from_millis(50) {
            return Err("--mqtt-reconnect-max must be at least 50ms".into());
        }
        if self.max_in_flight == 0 || self.max_in_flight_per_device == 0 {
            return Err("--max-in-flight and --max-in-flight-per-device must be at least 1".into());
        }
        // Reads the key, secret, JWKS and policy files once, so a bad one is
        // one line now.
        self.port.validate()?;
        let client_certs = self.port.client_certs();
        Auth::from_args(&self.auth, client_certs)?;
        if !self.listen.ip().is_loopback()
            && !self.auth.authenticates(client_certs)
            && !self.auth.insecure_no_auth
        {
            return Err(format!(
                "refusing to serve {} with no authentication (anyone who reaches it could call \
                 any device): give --api-keys, --jwt-secret-file, --jwt-jwks or --tls-client-ca, or \
                 --insecure-no-auth to serve it open anyway",
                self.listen
            ));
        }
        Ok(())
    }

    /// The broker profile in force: `--broker-profile`, else detected from
    /// `--mqtt-url`'s host; `generic` for the embedded broker.
    pub fn broker_profile(&self) -> BrokerProfile {
        match self.mqtt_url.as_deref().map(BrokerUrl::parse) {
            Some(Ok(url)) => self.broker.profile(&url),
            _ => BrokerProfile::Generic,
        }
    }

    /// The limits of the broker in force.
    pub fn broker_limits(&self) -> BrokerLimits {
        self.broker_profile().limits()
    }

    /// What the broker cannot take at all is refused at start-up: QoS 2,
    /// payloads over its limit, a topic root whose topics have too many
    /// levels.
    fn check_broker_limits(&self) -> Result<(), String> {
        let profile = self.broker_profile();
        let limits = profile.limits();
        if self.qos > limits.max_qos {
            return Err(format!(
                "--qos {}: the {profile} broker profile allows QoS {} at most",
                self.qos, limits.max_qos
            ));
        }
        if let Some(max) = limits.max_payload {
            if self.max_payload > max {
                return Err(format!(
                    "--max-payload {}: the {profile} broker profile allows {} KiB at most",
                    self.max_payload,
                    max / 1024
                ));
            }
        }
        // Ids hold no '/', so the root decides how many levels every topic
        // has; the longest are the seed acks and the replies.
        let topics = Topics::new(self.topic_root.clone());
        let seed = SeedTopics::new(self.seed_client_prefix.clone());
        for (what, topic) in [
            ("request topic", topics.request("d", "m")),
            ("reply topic", topics.reply("g", "d")),
            ("seed ack topic", seed.ack("i", "d", "m")),
        ] {
            if let Some(max) = limits.max_topic_slashes {
                let n = topic.matches('/').count();
                if n > max {
                    return Err(format!(
                        "--topic-root {:?}: a {what} would have {n} '/', over the {profile} broker profile's limit of {max}",
                        self.topic_root
                    ));
                }
            }
        }
        Ok(())
    }

    /// TLS to the external broker, when `--mqtt-url` is `mqtts://` or `wss://`.
    pub fn mqtt_tls(&self) -> Result<Option<TlsFiles>, String> {
        match &self.mqtt_url {
            Some(url) => self.broker.tls(&BrokerUrl::parse(url)?),
            None => Ok(None),
        }
    }

    /// The default contract as the API's enum.
    pub fn default_contract(&self) -> thingcall_proto::v1::Contract {
        match self.default_contract.as_str() {
            "seed" => thingcall_proto::v1::Contract::Seed,
            _ => thingcall_proto::v1::Contract::Native,
        }
    }

    /// The gateway id in force.
    pub fn gateway_id(&self) -> String {
        self.gateway_id
            .clone()
            .unwrap_or_else(|| format!("gw-{:08x}", rand::random::<u32>()))
    }
}

/// Where the external broker is: the one URL spelling every thingcall
/// component shares.
pub use thingcall_proto::wire::BrokerUrl;
use thingcall_proto::wire::{BrokerLimits, BrokerProfile, SeedTopics, Topics};

pub use thingcall_proto::size::parse_size;

#[cfg(test)]
mod tests;
