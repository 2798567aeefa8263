//! Caller authentication on every surface: gRPC, gRPC-web, HTTP/JSON, SSE
//! and the seed `/invoke` refuse every bad credential the same way.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use common::auth::*;
use common::{reason, req};
use http::Method;
use jsonwebtoken::{Algorithm, EncodingKey};
use thingcall_proto::v1::{GetDeviceRequest, ListDevicesRequest, WatchDeviceRequest};
use tonic::Code;

/// Every bad credential gives UNAUTHENTICATED (401 with WWW-Authenticate)
/// on every surface, and the refusal never repeats the credential.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_are_refused_on_every_surface() {
    let s = setup();
    let h = harness(common::Broker::Embedded, &s).await;
    let _d = device(&h, "auth-1").await;
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let other = EncodingKey::from_ec_der(&other.serialize_der());
    let mut expired = claims("alice");
    expired["exp"] = (now() - 120).into();
    let mut early = claims("alice");
    early["nbf"] = (now() + 600).into();
    let mut audience = claims("alice");
    audience["aud"] = "someone-else".into();
    let mut issuer = claims("alice");
    issuer["iss"] = "https://evil.test".into();
    // (what, the credential header, what the refusal must say)
    type Case<'a> = (&'a str, Option<(&'static str, String)>, &'a str);
    let cases: Vec<Case> = vec![
        ("no credentials", None, "no credentials"),
        ("expired", bearer(&hs256(&expired, SECRET)), "expired"),
        (
            "not yet valid",
            bearer(&hs256(&early, SECRET)),
            "not valid yet",
        ),
        (
            "wrong audience",
            bearer(&hs256(&audience, SECRET)),
            "audience",
        ),
        ("wrong issuer", bearer(&hs256(&issuer, SECRET)), "issuer"),
        (
            "bad HS256 signature",
            bearer(&hs256(
                &claims("alice"),
                b"another-secret-of-at-least-32-bytes",
            )),
            "signature",
        ),
        (
            "bad ES256 signature",
            bearer(&signed(Algorithm::ES256, "ec-1", &other, &claims("alice"))),
            "signature",
        ),
        (
            "alg none",
            bearer(&format!(
                "{}.{}.",
                B64URL.encode(r#"{"alg":"none","typ":"JWT"}"#),
                B64URL.encode(claims("alice").to_string())
            )),
            "bearer token",
        ),
        (
            "unknown API key",
            Some(("x-api-key", "tc_guess".into())),
            "unknown API key",
        ),
        ("unknown bearer key", bearer("tc_guess"), "unknown API key"),
        (
            "not bearer",
            Some(("authorization", "Basic b3BzOm9wcw==".into())),
            "Bearer",
        ),
    ];
    let mut web = common::http::grpc_web(&h.base());
    for (label, header, why) in &cases {
        let header = header.as_ref().map(|(k, v)| (*k, v.as_str()));
        let secret_part = header.map(|(_, v)| v.trim_start_matches("Bearer ").to_owned());
        let check = |surface: &str, e: tonic::Status| {
            assert_eq!(e.code(), Code::Unauthenticated, "{surface} {label}: {e:?}");
            assert_eq!(reason(&e), "UNAUTHENTICATED", "{surface} {label}");
            assert!(
                e.message().contains(why),
                "{surface} {label}: {}",
                e.message()
            );
            if let Some(sp) = &secret_part {
                assert!(
                    !e.message().contains(sp.as_str()),
                    "{surface} {label} echoes it"
                );
            }
        };
        let mut c = h.client.clone();
        check(
            "gRPC Invoke",
            c.invoke(with(header, req("auth-1", "echo", b"x")))
                .await
                .unwrap_err(),
        );
        let list = ListDevicesRequest::default();
        check(
            "gRPC List",
            c.list_devices(with(header, list)).await.unwrap_err(),
        );
        let get = GetDeviceRequest {
            target: "auth-1".into(),
        };
        check(
            "gRPC Get",
            c.get_device(with(header, get)).await.unwrap_err(),
        );
        let watch = WatchDeviceRequest::default();
        check(
            "gRPC Watch",
            c.watch_device(with(header, watch)).await.unwrap_err(),
        );
        check(
            "gRPC-web Invoke",
            web.invoke(with(header, req("auth-1", "echo", b"x")))
                .await
                .unwrap_err(),
        );

        let headers: Vec<(&str, &str)> = header.into_iter().collect();
        let base = h.base();
        let http_cases = [
            (
                Method::POST,
                format!("{base}/v1/devices/auth-1/methods/echo"),
                "error",
            ),
            (Method::GET, format!("{base}/v1/devices"), "error"),
            (Method::GET, format!("{base}/v1/devices/auth-1"), "error"),
            (Method::GET, format!("{base}/v1/events"), "error"),
            (
                Method::GET,
                format!("{base}/invoke?request=x&method=echo&target=auth-1"),
                "seed",
            ),
        ];
        for (method, url, shape) in http_cases {
            let r = common::http::request(method.clone(), &url, "", &headers).await;
            assert_eq!(r.status, 401, "{method} {url} {label}");
            assert_eq!(
                r.headers
                    .get("www-authenticate")
                    .map(|v| v.to_str().unwrap()),
                Some("Bearer realm=\"thingcall\""),
                "{url} {label}"
            );
            let v = r.json();
            let (got, message) = if shape == "seed" {
                (v["reason"].clone(), v["response"].clone())
            } else {
                (v["error"]["reason"].clone(), v["error"]["message"].clone())
            };
            assert_eq!(got, "UNAUTHENTICATED", "{url} {label}");
            assert!(
                message.as_str().unwrap().contains(why),
                "{url} {label}: {message}"
            );
        }
    }

    // Health checks and /metrics stay open.
    for path in ["/metrics", "/livez", "/readyz"] {
        let open = common::http::get(&format!("{}{path}", h.base())).await;
        assert_eq!(open.status, 200, "{path}");
    }
    let channel = tonic::transport::Channel::from_shared(h.base())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut hc = tonic_health::pb::health_client::HealthClient::new(channel);
    let ok = hc
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("health needs no credentials");
    assert_eq!(ok.into_inner().status, 1, "SERVING");
    h.stop().await;
}
