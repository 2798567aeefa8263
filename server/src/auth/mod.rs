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

/// The configured authentication and policy.
#[derive(Debug)]
pub struct Auth {
    keys: Option<apikeys::ApiKeys>,
    jwt: Option<jwt::JwtVerifier>,
    jwks: Option<PathBuf>,
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
            let jwks = args
                .jwt_jwks
                .as_deref()
                .map(|p| {
                    std::fs::read_to_string(p)
                        .map_err(|e| format!("--jwt-jwks {}: {e}", p.display()))
                })
                .transpose()?;
            let expect = jwt::Expect {
                issuer: issuer.clone(),
                audience: audience.clone(),
                leeway: args.jwt_leeway,
                subject_claim: args.jwt_subject_claim.clone(),
            };
            Some(
                jwt::JwtVerifier::new(secret.as_deref(), jwks.as_deref(), expect).map_err(|e| {
                    match &args.jwt_jwks {
                        Some(p) if e.starts_with("JWKS") => {
                            format!("--jwt-jwks {}: {e}", p.display())
                        }
                        _ => e,
                    }
                })?,
            )
        } else {
            None
        };
        let policy = args.policy.as_deref().map(Policy::load).transpose()?;
        Ok(Some(Auth {
            keys,
            jwt,
            jwks: args.jwt_jwks.clone(),
            client_certs,
            policy,
            metrics_auth: args.metrics_auth,
        }))
    }

    /// Paths served without credentials: the gRPC health checks (load
    /// balancers and Kubernetes probes carry none) and, unless
    /// `--metrics-auth`, `/metrics`.
    pub fn is_open(&self, path: &str) -> bool {
        path.starts_with("/grpc.health.v1.Health/") || (path == "/metrics" && !self.metrics_auth)
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
        if let (Some(jwt), Some(path)) = (&self.jwt, &self.jwks) {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--jwt-jwks {}: {e}", path.display()))?;
            let n = jwt.set_jwks(&text)?;
            tracing::info!(keys = n, "JWKS reloaded");
        }
        Ok(())
    }
}
