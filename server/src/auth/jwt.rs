//! JWT bearer tokens: HS256 with a shared secret, RS256 and ES256 with the
//! public keys of a JWKS. `exp` is required, and `iss` and `aud` must be
//! the configured ones; `nbf` is honoured; all within a small leeway.
//!
//! The algorithm a token names must be one its key is for, so a token
//! cannot pick HS256 and sign with a public key (the classic confusion).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use parking_lot::RwLock;
use serde_json::{Map, Value};

use crate::error::Error;

/// Shortest HS256 secret accepted: 256 bits, as RFC 7518 asks.
const MIN_SECRET: usize = 32;

/// What a token must say, and who it then is.
#[derive(Debug, Clone)]
pub struct Expect {
    /// The required `iss`.
    pub issuer: String,
    /// The required `aud` (one of the token's audiences).
    pub audience: String,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// The claim that names the caller (`sub` by default).
    pub subject_claim: String,
}

/// One public key of the JWKS.
struct PublicKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

/// Verifies tokens.
pub struct JwtVerifier {
    secret: Option<DecodingKey>,
    /// Swapped whole when the JWKS is read again.
    keys: RwLock<Arc<Vec<PublicKey>>>,
    expect: Expect,
    /// Woken when a token names a key the JWKS does not hold (a rotation
    /// the gateway has not fetched yet).
    unknown_key: tokio::sync::Notify,
    /// Counts JWKS loads, so a refresh can be waited on.
    loads: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("public_keys", &self.keys.read().len())
            .field("expect", &self.expect)
            .finish()
    }
}

impl JwtVerifier {
    /// A verifier for HS256 tokens signed with `secret` and for tokens
    /// signed by the keys of the JWKS `jwks` (its JSON text).
    pub fn new(secret: Option<&[u8]>, jwks: Option<&str>, expect: Expect) -> Result<Self, String> {
        if let Some(s) = secret {
            if s.len() < MIN_SECRET {
                return Err(format!(
                    "--jwt-secret-file: the secret is {} bytes; HS256 wants at least {MIN_SECRET}",
                    s.len()
                ));
            }
        }
        let keys = match jwks {
            Some(text) => parse_jwks(text)?,
            None => Vec::new(),
        };
        Ok(JwtVerifier {
            secret: secret.map(DecodingKey::from_secret),
            keys: RwLock::new(Arc::new(keys)),
            expect,
            unknown_key: tokio::sync::Notify::new(),
            loads: tokio::sync::watch::channel(0).0,
        })
    }

    /// Reads the secret file (its first line) for [`JwtVerifier::new`].
    pub fn read_secret(path: &Path) -> Result<Vec<u8>, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--jwt-secret-file {}: {e}", path.display()))?;
        Ok(text
            .lines()
            .next()
            .unwrap_or("")
            .trim_end()
            .as_bytes()
            .to_vec())
    }

    /// Replaces the JWKS keys (a refreshed file or URL).
    pub fn set_jwks(&self, text: &str) -> Result<usize, String> {
        let keys = parse_jwks(text)?;
        let n = keys.len();
        *self.keys.write() = Arc::new(keys);
        self.loads.send_modify(|n| *n += 1);
        Ok(n)
    }

    /// Resolves when a token named a key the JWKS does not hold.
    pub async fn unknown_key(&self) {
        self.unknown_key.notified().await
    }

    /// The number of JWKS loads so far, followed.
    pub fn loads(&self) -> tokio::sync::watch::Receiver<u64> {
        self.loads.subscribe()
    }

    /// The caller a valid token names (the subject claim's value).
    pub fn verify(&self, token: &str) -> Result<String, Error> {
        let unauth = |m: &str| Error::Unauthenticated(format!("bearer token: {m}"));
        let header = jsonwebtoken::decode_header(token).map_err(|_| unauth("not a JWT"))?;
        let keys = self.keys.read().clone();
        let candidates: Vec<&DecodingKey> = match header.alg {
            Algorithm::HS256 => self.secret.iter().collect(),
            Algorithm::RS256 | Algorithm::ES256 => keys
                .iter()
                .filter(|k| k.alg == header.alg)
                .filter(|k| header.kid.is_none() || k.kid == header.kid)
                .map(|k| &k.key)
                .collect(),
            other => return Err(unauth(&format!("algorithm {other:?} is not accepted"))),
        };
        if candidates.is_empty() {
            if header.alg != Algorithm::HS256 {
                self.unknown_key.notify_one();
            }
            return Err(unauth(&format!(
                "no {:?} key{} is configured",
                header.alg,
                header
                    .kid
                    .as_deref()
                    .map(|k| format!(" with kid {k:?}"))
                    .unwrap_or_default()
            )));
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.expect.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.expect.issuer]);
        validation.set_audience(&[&self.expect.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let mut last = None;
        for key in candidates {
            match jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation) {
                Ok(data) => {
                    return match data.claims.get(&self.expect.subject_claim) {
                        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                        _ => Err(unauth(&format!(
                            "no {} claim naming the caller",
                            self.expect.subject_claim
                        ))),
                    }
                }
                Err(e) => last = Some(e),
            }
        }
        let why = match last.as_ref().map(|e| e.kind()) {
            Some(ErrorKind::ExpiredSignature) => "expired".to_owned(),
            Some(ErrorKind::ImmatureSignature) => "not valid yet (nbf)".to_owned(),
            Some(ErrorKind::InvalidAudience) => {
                format!("audience is not {:?}", self.expect.audience)
            }
            Some(ErrorKind::InvalidIssuer) => format!("issuer is not {:?}", self.expect.issuer),
            Some(ErrorKind::MissingRequiredClaim(c)) => format!("no {c} claim"),
            Some(ErrorKind::InvalidSignature) => "signature does not verify".to_owned(),
            _ => "malformed".to_owned(),
        };
        Err(unauth(&why))
    }
}

/// The RS256 and ES256 keys of a JWKS; other keys (encryption keys, other
/// algorithms) are skipped, but a set with none usable is an error.
fn parse_jwks(text: &str) -> Result<Vec<PublicKey>, String> {
    let set: JwkSet = serde_json::from_str(text).map_err(|e| format!("JWKS: {e}"))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        use jsonwebtoken::jwk::AlgorithmParameters as P;
        let alg = match (&jwk.algorithm, jwk.common.key_algorithm) {
            (P::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
            (P::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
                if ec.curve == jsonwebtoken::jwk::EllipticCurve::P256 =>
            {
                Algorithm::ES256
            }
            _ => continue,
        };
        if matches!(
            jwk.common.public_key_use,
            Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
        ) {
            continue;
        }
        let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("JWKS key: {e}"))?;
        keys.push(PublicKey {
            kid: jwk.common.key_id.clone(),
            alg,
            key,
        });
    }
    if keys.is_empty() {
        return Err("JWKS: no RS256 or ES256 signing key".into());
    }
    Ok(keys)
}
