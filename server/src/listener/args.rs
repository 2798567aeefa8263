//! The flags of the gateway's port: TLS, and the limits that keep a flood
//! of connections from exhausting it.

use std::path::PathBuf;
use std::time::Duration;

use super::tls::TlsFiles;
use super::Limits;
use crate::config::parse_size;

/// TLS and connection limits of `--listen`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ListenArgs {
    /// PEM certificate chain (leaf first): serve TLS on --listen, with
    /// --tls-key. Read again on SIGHUP; open connections keep theirs.
    #[arg(
        long,
        env = "THINGCALL_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(
        long,
        env = "THINGCALL_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// PEM CA certificates of client certificates: a caller presenting one
    /// they signed is authenticated as `cert:` and its subject's common name.
    #[arg(
        long,
        env = "THINGCALL_TLS_CLIENT_CA",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_client_ca: Option<PathBuf>,

    /// Time for a TLS handshake and for an HTTP/1.1 request's headers;
    /// slower connections are closed.
    #[arg(long, env = "THINGCALL_HTTP_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub http_header_timeout: Duration,

    /// A connection with no request in flight this long is closed (open
    /// streams count as requests).
    #[arg(long, env = "THINGCALL_HTTP_IDLE_TIMEOUT", default_value = "120s", value_parser = humantime::parse_duration)]
    pub http_idle_timeout: Duration,

    /// HTTP/2 keep-alive ping interval (0s: none).
    #[arg(long, env = "THINGCALL_HTTP2_KEEPALIVE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub http2_keepalive: Duration,

    /// How long a keep-alive ping may go unanswered before the connection closes.
    #[arg(long, env = "THINGCALL_HTTP2_KEEPALIVE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub http2_keepalive_timeout: Duration,

    /// Concurrent HTTP/2 streams (calls and watches) per connection.
    #[arg(long, env = "THINGCALL_HTTP2_MAX_STREAMS", default_value_t = 256)]
    pub http2_max_streams: u32,

    /// Largest header block of a request (bytes; KiB, MiB accepted).
    #[arg(long, env = "THINGCALL_MAX_HEADER_BYTES", default_value = "64KiB", value_parser = parse_size)]
    pub max_header_bytes: usize,

    /// Connections open at once; past it new ones are closed at once. By
    /// default the open-file limit less headroom for the MQTT session.
    #[arg(long, env = "THINGCALL_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
}

impl ListenArgs {
    /// The TLS files, when TLS is on.
    pub fn tls(&self) -> Option<TlsFiles> {
        Some(TlsFiles {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
            client_ca: self.tls_client_ca.clone(),
        })
    }

    /// Whether client certificates authenticate callers.
    pub fn client_certs(&self) -> bool {
        self.tls_client_ca.is_some()
    }

    /// Checks what clap cannot; the error is one line.
    pub fn validate(&self) -> Result<(), String> {
        if self.http_header_timeout.is_zero() || self.http_idle_timeout.is_zero() {
            return Err("--http-header-timeout and --http-idle-timeout must be above 0s".into());
        }
        if self.http2_max_streams == 0 {
            return Err("--http2-max-streams must be at least 1".into());
        }
        if !(1024..=16 << 20).contains(&self.max_header_bytes) {
            return Err("--max-header-bytes must be between 1KiB and 16MiB".into());
        }
        if self.max_connections == Some(0) {
            return Err("--max-connections must be at least 1".into());
        }
        if let Some(files) = self.tls() {
            super::tls::ServerTls::load(files)?;
        }
        Ok(())
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        Limits {
            header_timeout: self.http_header_timeout,
            idle_timeout: self.http_idle_timeout,
            h2_keepalive_interval: self.http2_keepalive,
            h2_keepalive_timeout: self.http2_keepalive_timeout,
            h2_max_streams: self.http2_max_streams,
            max_header_bytes: self.max_header_bytes as u32,
            max_connections: self
                .max_connections
                .unwrap_or_else(super::default_max_connections),
        }
    }
}
