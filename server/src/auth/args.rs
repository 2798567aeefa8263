//! The caller authentication and authorization flags.

use std::path::PathBuf;
use std::time::Duration;

/// How callers prove who they are, and what each may do.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct AuthArgs {
    /// File of API keys callers may send (`x-api-key: KEY` or
    /// `Authorization: Bearer KEY`): one `NAME sha256:HEX` line per key,
    /// the SHA-256 of the key; the name is the caller's subject `key:NAME`.
    #[arg(long, env = "THINGCALL_API_KEYS", value_name = "FILE")]
    pub api_keys: Option<PathBuf>,

    /// File whose first line is the HS256 secret of JWT bearer tokens
    /// (at least 32 bytes).
    #[arg(long, env = "THINGCALL_JWT_SECRET_FILE", value_name = "FILE")]
    pub jwt_secret_file: Option<PathBuf>,

    /// JWKS with the RS256 and ES256 public keys of JWT bearer tokens: a
    /// file (read again on SIGHUP) or an `https://` URL (fetched in the
    /// background, every --jwt-jwks-refresh and when a token names an
    /// unknown key).
    #[arg(long, env = "THINGCALL_JWT_JWKS", value_name = "FILE|URL")]
    pub jwt_jwks: Option<String>,

    /// How often a JWKS URL is fetched again.
    #[arg(long, env = "THINGCALL_JWT_JWKS_REFRESH", default_value = "5m", value_parser = humantime::parse_duration)]
    pub jwt_jwks_refresh: Duration,

    /// PEM CA bundle trusted (besides the system's roots) for a JWKS URL.
    #[arg(long, env = "THINGCALL_JWT_JWKS_CA", value_name = "FILE")]
    pub jwt_jwks_ca: Option<PathBuf>,

    /// The `iss` every JWT must carry (required with JWTs).
    #[arg(long, env = "THINGCALL_JWT_ISSUER", value_name = "ISSUER")]
    pub jwt_issuer: Option<String>,

    /// The `aud` every JWT must carry (required with JWTs).
    #[arg(long, env = "THINGCALL_JWT_AUDIENCE", value_name = "AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// The JWT claim that names the caller; its value is the subject `jwt:VALUE`.
    #[arg(
        long,
        env = "THINGCALL_JWT_SUBJECT_CLAIM",
        default_value = "sub",
        value_name = "CLAIM"
    )]
    pub jwt_subject_claim: String,

    /// Clock skew allowed on a JWT's `exp` and `nbf`.
    #[arg(long, env = "THINGCALL_JWT_LEEWAY", default_value = "30s", value_parser = humantime::parse_duration)]
    pub jwt_leeway: Duration,

    /// Policy file (TOML): which subjects may call which targets and
    /// methods, watch and list; with one, what it does not allow is denied.
    #[arg(long, env = "THINGCALL_POLICY", value_name = "FILE")]
    pub policy: Option<PathBuf>,

    /// `/metrics` asks for credentials too (by default it is open, as are
    /// the gRPC health checks).
    #[arg(long, env = "THINGCALL_METRICS_AUTH")]
    pub metrics_auth: bool,

    /// Serve callers with no authentication on a non-loopback --listen
    /// (refused by default: anyone who reaches the port could call any
    /// device).
    #[arg(long, env = "THINGCALL_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,
}

impl AuthArgs {
    /// Whether any way of authenticating callers is configured (client
    /// certificates count too: `client_certs`).
    pub fn authenticates(&self, client_certs: bool) -> bool {
        self.api_keys.is_some()
            || self.jwt_secret_file.is_some()
            || self.jwt_jwks.is_some()
            || client_certs
    }
}
