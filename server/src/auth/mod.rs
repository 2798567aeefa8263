//! Who calls, and what they may do.
//!
//! Authentication happens once per request, in one layer in front of every
//! surface ([`layer`]): a JWT bearer token, an API key or a TLS client
//! certificate becomes a *subject* (`jwt:alice`, `key:ci-bot`,
//! `cert:pump-admin`). Authorization happens in the core: the request
//! carries the subject's [`Access`], which the core checks before a call
//! is admitted (so a denied call publishes nothing) and applies to every
//! device query and watch.

pub mod apikeys;
pub mod args;
pub mod jwt;
pub mod layer;
pub mod policy;

use std::path::PathBuf;
use std::sync::Arc;

use http::HeaderMap;

use crate::error::Error;
pub use args::AuthArgs;
pub use policy::{Access, Policy};

/// The header API keys may come in (the one API Gateway uses).
pub const API_KEY_HEADER: &str = "x-api-key";

/// The verified identity of a TLS client certificate (its subject's common
/// name), which the TLS listener puts on each request of the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity(pub Arc<str>);

/// Where the JWKS comes from.
#[derive(Debug, Clone)]
enum JwksSource {
    /// A file, read at start and on SIGHUP.
    File(PathBuf),
    /// A URL, fetched in the background.
    Url {
        url: String,
        ca: Option<PathBuf>,
        refresh: std::time::Duration,
    },
}

/// The configured authentication and policy.
#[derive(Debug)]
pub struct Auth {
    keys: Option<apikeys::ApiKeys>,
    jwt: Option<jwt::JwtVerifier>,
    jwks: Option<JwksSource>,
    client_certs: bool,
    policy: Option<Policy>,
    metrics_auth: bool,
}

impl Auth {
    /// Loads what `args` name; `client_certs` says the TLS listener asks
    /// for client certificates. `None` when callers are not authenticated
    /// (then no policy may be given either). Errors are one line.
    pub fn from_args(args: &AuthArgs, client_certs: bool) -> Result<Option<Auth>, String> {
        if !args.authenticates(client_certs) {
            if args.policy.is_some() {
                return Err("--policy needs a way to authenticate callers \
                            (--api-keys, --jwt-secret-file, --jwt-jwks or --tls-client-ca)"
                    .into());
            }
            if args.jwt_issuer.is_some() || args.jwt_audience.is_some() {
                return Err(
                    "--jwt-issuer and --jwt-audience need --jwt-secret-file or --jwt-jwks".into(),
                );
            }
            return Ok(None);
        }
        let keys = args
            .api_keys
            .as_deref()
            .map(apikeys::ApiKeys::load)
            .transpose()?;
        let jwt = if args.jwt_secret_file.is_some() || args.jwt_jwks.is_some() {
            let (Some(issuer), Some(audience)) = (&args.jwt_issuer, &args.jwt_audience) else {
                return Err(
                    "JWTs need --jwt-issuer and --jwt-audience (the iss and aud \
                            every token must carry)"
                        .into(),
                );
            };
            let secret = args
                .jwt_secret_file
                .as_deref()
                .map(jwt::JwtVerifier::read_secret)
                .transpose()?;
            let source = args
                .jwt_jwks
                .as_deref()
                .map(|s| jwks_source(s, args))
                .transpose()?;
            // A URL is fetched once serving (no I/O here): until then only
            // HS256 tokens verify.
            let jwks = match &source {
                Some(JwksSource::File(p)) => Some(
                    std::fs::read_to_string(p)
                        .map_err(|e| format!("--jwt-jwks {}: {e}", p.display()))?,
                ),
                _ => None,
            };
            let expect = jwt::Expect {
                issuer: issuer.clone(),
                audience: audience.clone(),
                leeway: args.jwt_leeway,
                subject_claim: args.jwt_subject_claim.clone(),
            };
            let verifier = jwt::JwtVerifier::new(secret.as_deref(), jwks.as_deref(), expect)
                .map_err(|e| match &args.jwt_jwks {
                    Some(p) if e.starts_with("JWKS") => format!("--jwt-jwks {p}: {e}"),
                    _ => e,
                })?;
            Some((verifier, source))
        } else {
            None
        };
        let (jwt, jwks) = match jwt {
            Some((v, source)) => (Some(v), source),
            None => (None, None),
        };
        let policy = args.policy.as_deref().map(Policy::load).transpose()?;
        Ok(Some(Auth {
            keys,
            jwt,
            jwks,
            client_certs,
            policy,
            metrics_auth: args.metrics_auth,
        }))
    }

    /// Paths served without credentials: the health checks, gRPC and
    /// HTTP (load balancers and Kubernetes probes carry none) and, unless
    /// `--metrics-auth`, `/metrics`.
    pub fn is_open(&self, path: &str) -> bool {
        path.starts_with("/grpc.health.v1.Health/")
            || path == "/livez"
            || path == "/readyz"
            || (path == "/metrics" && !self.metrics_auth)
    }

    /// What a request for `path` with `headers`, over a connection whose
    /// client certificate is `peer`, may do: everything on an open path,
    /// else what its authenticated subject is granted. The one decision
    /// the router's layer and the unary Invoke route both make.
    pub fn caller_access(
        &self,
        path: &str,
        headers: &HeaderMap,
        peer: Option<&PeerIdentity>,
    ) -> Result<Access, Error> {
        if self.is_open(path) {
            return Ok(Access::All);
        }
        let subject = self.authenticate(headers, peer).inspect_err(|e| {
            tracing::debug!(path, why = %e, "caller not authenticated");
        })?;
        Ok(self.access(&subject))
    }

    /// The subject of a request with `headers` from a connection whose
    /// client certificate, if any, is `peer`. A token or key that is sent
    /// must verify; a certificate is used only when neither is sent.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        peer: Option<&PeerIdentity>,
    ) -> Result<String, Error> {
        if let Some(key) = headers.get(API_KEY_HEADER) {
            let key = key.to_str().unwrap_or("");
            return self.api_key(key);
        }
        if let Some(value) = headers.get(http::header::AUTHORIZATION) {
            let value = value.to_str().unwrap_or("");
            let token = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .map(str::trim)
                .ok_or_else(|| {
                    Error::Unauthenticated("Authorization must be \"Bearer TOKEN\"".into())
                })?;
            // A JWT is three base64url parts; an API key has no dots.
            return match (&self.jwt, token.matches('.').count()) {
                (Some(jwt), 2) => jwt.verify(token).map(|s| format!("jwt:{s}")),
                _ if self.keys.is_some() => self.api_key(token),
                _ => Err(Error::Unauthenticated(
                    "bearer token: not a JWT, and no API keys are configured".into(),
                )),
            };
        }
        if let Some(PeerIdentity(cn)) = peer.filter(|_| self.client_certs) {
            return Ok(format!("cert:{cn}"));
        }
        Err(Error::Unauthenticated(format!(
            "no credentials: send {}",
            self.accepted()
        )))
    }

    fn api_key(&self, key: &str) -> Result<String, Error> {
        let keys = self
            .keys
            .as_ref()
            .ok_or_else(|| Error::Unauthenticated("API keys are not configured".into()))?;
        keys.name(key)
            .map(|name| format!("key:{name}"))
            .ok_or_else(|| Error::Unauthenticated("unknown API key".into()))
    }

    /// The credentials this gateway takes, for error messages.
    fn accepted(&self) -> String {
        let mut ways = Vec::new();
        if self.jwt.is_some() {
            ways.push("Authorization: Bearer JWT");
        }
        if self.keys.is_some() {
            ways.push("x-api-key: KEY (or Authorization: Bearer KEY)");
        }
        if self.client_certs {
            ways.push("a TLS client certificate");
        }
        ways.join(" or ")
    }

    /// What `subject` may do.
    pub fn access(&self, subject: &str) -> Access {
        match &self.policy {
            None => Access::All,
            Some(p) => Access::Granted(p.grant(subject)),
        }
    }

    /// Reads the JWKS file again (on SIGHUP); the old keys stay on error.
    pub fn reload(&self) -> Result<(), String> {
        if let (Some(jwt), Some(JwksSource::File(path))) = (&self.jwt, &self.jwks) {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--jwt-jwks {}: {e}", path.display()))?;
            let n = jwt.set_jwks(&text)?;
            tracing::info!(keys = n, "JWKS reloaded");
        }
        Ok(())
    }

    /// The number of JWKS loads so far, followed (tests wait on it).
    pub fn jwks_loads(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.jwt.as_ref().map(jwt::JwtVerifier::loads)
    }

    /// With a JWKS URL: the task that fetches it now, every refresh
    /// interval, and soon after a token names an unknown key (at most
    /// once per tenth of the interval, and never more than every 30 s).
    pub fn spawn_jwks_refresh(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let Some(JwksSource::Url { url, ca, refresh }) = self.jwks.clone() else {
            return None;
        };
        self.jwt.as_ref()?;
        let auth = Arc::clone(self);
        Some(tokio::spawn(async move {
            let Some(jwt) = auth.jwt.as_ref() else { return };
            let gap = (refresh / 10).min(std::time::Duration::from_secs(30));
            let ca = ca.map(|p| p.display().to_string());
            loop {
                let fetched = tokio::time::Instant::now();
                match thingcall_proto::aws::http::get_trusting(&url, ca.as_deref()).await {
                    Ok(body) => match std::str::from_utf8(&body)
                        .map_err(|_| "not UTF-8".to_owned())
                        .and_then(|t| jwt.set_jwks(t))
                    {
                        Ok(n) => tracing::info!(keys = n, "JWKS fetched"),
                        Err(e) => {
                            tracing::warn!(error = %e, "JWKS fetched but not usable; keeping the old keys")
                        }
                    },
                    Err(e) => tracing::warn!(error = %e, "JWKS fetch failed; keeping the old keys"),
                }
                tokio::select! {
                    _ = tokio::time::sleep_until(fetched + refresh) => {}
                    _ = jwt.unknown_key() => tokio::time::sleep_until(fetched + gap).await,
                }
            }
        }))
    }
}

/// `--jwt-jwks`: a URL (https, or http to this host only: keys fetched in
/// the clear could be swapped on the way) or a file.
fn jwks_source(s: &str, args: &AuthArgs) -> Result<JwksSource, String> {
    let url = match s.split_once("://") {
        None => return Ok(JwksSource::File(PathBuf::from(s))),
        Some(_) => s
            .parse::<http::Uri>()
            .map_err(|_| format!("--jwt-jwks {s:?} is not a valid URL"))?,
    };
    let local = matches!(url.host(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match url.scheme_str() {
        Some("https") => {}
        Some("http") if local => {}
        _ => {
            return Err(format!(
                "--jwt-jwks {s:?}: a JWKS URL must be https:// (http:// only to this host)"
            ))
        }
    }
    if args.jwt_jwks_refresh.is_zero() {
        return Err("--jwt-jwks-refresh must be above 0s".into());
    }
    Ok(JwksSource::Url {
        url: s.to_owned(),
        ca: args.jwt_jwks_ca.clone(),
        refresh: args.jwt_jwks_refresh,
    })
}
