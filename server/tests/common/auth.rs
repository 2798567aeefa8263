//! What the authentication tests share: key files, a JWKS, a policy, and
//! tokens signed every way the gateway accepts.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use thingcall_device::DeviceHandle;
use thingcall_server::auth::apikeys::hash_line;
use thingcall_server::Config;
use tonic::Request;

use super::Harness;

pub const ISSUER: &str = "https://issuer.test";
pub const AUDIENCE: &str = "thingcall-test";
pub const SECRET: &[u8] = b"an-hs256-secret-of-at-least-32-bytes!";
pub const OPS_KEY: &str = "tc_ops_0123456789abcdef";
pub const VIEWER_KEY: &str = "tc_viewer_0123456789abcdef";
pub const NOBODY_KEY: &str = "tc_nobody_0123456789abcdef";
pub const BURST_KEY: &str = "tc_burst_0123456789abcdef";

pub const POLICY: &str = r#"
[[allow]]
subjects = ["key:ops", "jwt:alice", "jwt:rsa-user", "jwt:ec-user"]
targets = ["auth-*"]
methods = ["echo"]
watch = true
list = true

[[allow]]
subjects = ["key:viewer"]
targets = ["auth-1"]
watch = true
list = true

[[allow]]
subjects = ["key:burst"]
targets = ["auth-*"]
methods = ["*"]

[[limit]]
subjects = ["key:burst"]
rate = 0.001
burst = 1
"#;

/// The files a gateway with authentication reads, and the keys that sign
/// its tokens.
pub struct Setup {
    _dir: tempfile::TempDir,
    keys: PathBuf,
    secret: PathBuf,
    jwks: PathBuf,
    policy: PathBuf,
    /// Signs ES256 tokens the gateway's JWKS verifies (kid `ec-1`).
    pub ec: EncodingKey,
    /// Signs RS256 tokens (kid `rsa-1`); `None` without openssl.
    pub rsa: Option<EncodingKey>,
}

pub fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    let keys = [
        ("ops", OPS_KEY),
        ("viewer", VIEWER_KEY),
        ("nobody", NOBODY_KEY),
        ("burst", BURST_KEY),
    ]
    .iter()
    .map(|(n, k)| format!("{n} {}\n", hash_line(k)))
    .collect::<String>();
    std::fs::write(p("keys"), keys).unwrap();
    std::fs::write(p("secret"), [SECRET, b"\n"].concat()).unwrap();
    std::fs::write(p("policy.toml"), POLICY).unwrap();

    let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let point = ec.public_key_raw();
    let mut jwks = vec![json!({
        "kty": "EC", "crv": "P-256", "kid": "ec-1", "alg": "ES256", "use": "sig",
        "x": B64URL.encode(&point[1..33]), "y": B64URL.encode(&point[33..65]),
    })];
    let rsa = rsa_key(dir.path()).map(|(key, n)| {
        jwks.push(json!({
            "kty": "RSA", "kid": "rsa-1", "alg": "RS256", "use": "sig",
            "n": B64URL.encode(n), "e": "AQAB",
        }));
        key
    });
    std::fs::write(p("jwks.json"), json!({ "keys": jwks }).to_string()).unwrap();
    Setup {
        keys: p("keys"),
        secret: p("secret"),
        jwks: p("jwks.json"),
        policy: p("policy.toml"),
        ec: EncodingKey::from_ec_der(&ec.serialize_der()),
        rsa,
        _dir: dir,
    }
}

/// An RSA key made with openssl (ring cannot generate one): the signing key
/// and the modulus. `None` without openssl, outside CI.
pub fn rsa_key(dir: &std::path::Path) -> Option<(EncodingKey, Vec<u8>)> {
    let pem = dir.join("rsa.pem");
    let run = |args: &[&str]| {
        std::process::Command::new("openssl")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
    };
    let pem_s = pem.to_str().unwrap();
    if run(&["genrsa", "-traditional", "-out", pem_s, "2048"]).is_none() {
        assert!(std::env::var_os("CI").is_none(), "CI has openssl");
        eprintln!("SKIPPED: no openssl, RS256 not tested");
        return None;
    }
    let der = run(&["rsa", "-in", pem_s, "-outform", "DER", "-traditional"])?.stdout;
    let modulus = run(&["rsa", "-in", pem_s, "-noout", "-modulus"])?.stdout;
    let hex = String::from_utf8(modulus).ok()?;
    let hex = hex.trim().strip_prefix("Modulus=")?;
    let n = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    Some((EncodingKey::from_rsa_der(&der), n))
}

impl Setup {
    pub fn configure(&self, c: &mut Config) {
        c.auth.api_keys = Some(self.keys.clone());
        c.auth.jwt_secret_file = Some(self.secret.clone());
        c.auth.jwt_jwks = Some(self.jwks.display().to_string());
        c.auth.jwt_issuer = Some(ISSUER.into());
        c.auth.jwt_audience = Some(AUDIENCE.into());
        c.auth.policy = Some(self.policy.clone());
    }
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn claims(sub: &str) -> Value {
    json!({"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600, "iat": now()})
}

pub fn hs256(claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

pub fn signed(alg: Algorithm, kid: &str, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// A gateway with the test's authentication and policy.
pub async fn harness(kind: super::Broker, s: &Setup) -> Harness {
    Harness::start_with(kind, |c| s.configure(c))
        .await
        .expect("broker")
}

/// A device with the standard methods, online as the gateway sees it.
pub async fn device(h: &Harness, id: &str) -> DeviceHandle {
    super::device_seen(h.gw(), h.device_options(id)).await
}

pub fn with<T>(header: Option<(&'static str, &str)>, message: T) -> Request<T> {
    let mut r = Request::new(message);
    if let Some((k, v)) = header {
        r.metadata_mut().insert(k, v.parse().unwrap());
    }
    r
}

pub fn bearer(token: &str) -> Option<(&'static str, String)> {
    Some(("authorization", format!("Bearer {token}")))
}
