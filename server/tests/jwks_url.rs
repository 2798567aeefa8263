//! A JWKS fetched from a URL: keys are loaded in the background, and a
//! token naming a key the gateway has not seen makes it fetch again, so a
//! rotation at the identity provider takes effect without a restart.

mod common;

use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use common::{soon, Broker, Harness};
use http::Method;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// An ES256 key: its signer and its JWK with `kid`.
fn key(kid: &str) -> (EncodingKey, serde_json::Value) {
    let k = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let p = k.public_key_raw();
    let jwk = json!({"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256",
        "x": B64URL.encode(&p[1..33]), "y": B64URL.encode(&p[33..65])});
    (EncodingKey::from_ec_der(&k.serialize_der()), jwk)
}

fn token(kid: &str, key: &EncodingKey) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some(kid.into());
    let claims = json!({"sub": "idp-user", "iss": "idp", "aud": "gw", "exp": now + 300});
    jsonwebtoken::encode(&h, &claims, key).unwrap()
}

/// Serves `jwks` (whatever it holds at the time) to every GET.
async fn identity_provider(jwks: Arc<Mutex<String>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let body = jwks.lock().unwrap().clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = s.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(body.as_bytes()).await;
            });
        }
    });
    url
}

async fn status(h: &Harness, token: &str) -> u16 {
    let url = format!("{}/v1/devices", h.base());
    let auth = format!("Bearer {token}");
    let r = common::http::request(Method::GET, &url, "", &[("authorization", &auth)]).await;
    r.status.as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_come_from_the_url_and_a_rotation_is_fetched() {
    let (a, jwk_a) = key("a");
    let (b, jwk_b) = key("b");
    let jwks = Arc::new(Mutex::new(json!({"keys": [jwk_a]}).to_string()));
    let url = identity_provider(jwks.clone()).await;
    let h = Harness::start_with(Broker::Embedded, |c| {
        c.auth.jwt_jwks = Some(url.clone());
        c.auth.jwt_issuer = Some("idp".into());
        c.auth.jwt_audience = Some("gw".into());
        // An unknown key triggers a fetch at most every tenth of this.
        c.auth.jwt_jwks_refresh = std::time::Duration::from_secs(10);
    })
    .await
    .unwrap();
    let mut loads = h.gw().jwks_loads().expect("JWTs configured");
    soon("the first fetch", loads.wait_for(|n| *n >= 1))
        .await
        .unwrap();
    assert_eq!(status(&h, &token("a", &a)).await, 200);

    // The provider rotates to key b: a token signed with it is refused at
    // first, and makes the gateway fetch again.
    *jwks.lock().unwrap() = json!({"keys": [jwk_b]}).to_string();
    assert_eq!(status(&h, &token("b", &b)).await, 401);
    soon("the refetch", loads.wait_for(|n| *n >= 2))
        .await
        .unwrap();
    assert_eq!(status(&h, &token("b", &b)).await, 200);
    assert_eq!(status(&h, &token("a", &a)).await, 401, "a is gone");
    h.stop().await;
}

#[test]
fn plain_http_jwks_only_to_this_host() {
    use clap::Parser;
    let parse = |url: &str| {
        let c = thingcall_server::Config::try_parse_from([
            "thingcall-server",
            "--jwt-jwks",
            url,
            "--jwt-issuer",
            "i",
            "--jwt-audience",
            "a",
        ])
        .unwrap();
        c.validate()
    };
    let err = parse("http://idp.example.com/jwks.json").unwrap_err();
    assert!(err.contains("must be https://"), "{err}");
    assert!(parse("https://idp.example.com/jwks.json").is_ok());
    assert!(parse("http://127.0.0.1:9/jwks.json").is_ok());
}
