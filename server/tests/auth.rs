//! Caller authentication and authorization on every surface: gRPC,
//! gRPC-web, HTTP/JSON, SSE and the seed `/invoke`, against a real broker.

mod common;

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use common::{reason, req, soon, Harness};
use http::Method;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::{json, Value};
use thingcall_device::{spawn_device, standard_methods, DeviceHandle};
use thingcall_proto::v1::{
    device_event::Kind, GetDeviceRequest, ListDevicesRequest, WatchDeviceRequest,
};
use thingcall_server::auth::apikeys::hash_line;
use thingcall_server::auth::Access;
use thingcall_server::Config;
use tokio_stream::StreamExt;
use tonic::{Code, Request};

const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "thingcall-test";
const SECRET: &[u8] = b"an-hs256-secret-of-at-least-32-bytes!";
const OPS_KEY: &str = "tc_ops_0123456789abcdef";
const VIEWER_KEY: &str = "tc_viewer_0123456789abcdef";
const NOBODY_KEY: &str = "tc_nobody_0123456789abcdef";
const BURST_KEY: &str = "tc_burst_0123456789abcdef";

const POLICY: &str = r#"
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
struct Setup {
    _dir: tempfile::TempDir,
    keys: PathBuf,
    secret: PathBuf,
    jwks: PathBuf,
    policy: PathBuf,
    ec: EncodingKey,
    rsa: Option<EncodingKey>,
}

fn setup() -> Setup {
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
fn rsa_key(dir: &std::path::Path) -> Option<(EncodingKey, Vec<u8>)> {
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
    fn configure(&self, c: &mut Config) {
        c.auth.api_keys = Some(self.keys.clone());
        c.auth.jwt_secret_file = Some(self.secret.clone());
        c.auth.jwt_jwks = Some(self.jwks.clone());
        c.auth.jwt_issuer = Some(ISSUER.into());
        c.auth.jwt_audience = Some(AUDIENCE.into());
        c.auth.policy = Some(self.policy.clone());
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims(sub: &str) -> Value {
    json!({"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600, "iat": now()})
}

fn hs256(claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn signed(alg: Algorithm, kid: &str, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// A gateway with the test's authentication and policy.
async fn harness(kind: common::Broker, s: &Setup) -> Harness {
    Harness::start_with(kind, |c| s.configure(c))
        .await
        .expect("broker")
}

/// A device with the standard methods, online as the gateway sees it.
async fn device(h: &Harness, id: &str) -> DeviceHandle {
    let mut seen = h
        .gw()
        .gateway
        .watch(&Access::All, id, false)
        .expect("in-process watch");
    let d = spawn_device(h.device_options(id), standard_methods());
    soon("device online", async {
        while let Some(ev) = seen.next().await {
            if matches!(&ev.kind, Some(Kind::Presence(p)) if p.id == id && p.online) {
                return;
            }
        }
    })
    .await;
    d
}

fn with<T>(header: Option<(&'static str, &str)>, message: T) -> Request<T> {
    let mut r = Request::new(message);
    if let Some((k, v)) = header {
        r.metadata_mut().insert(k, v.parse().unwrap());
    }
    r
}

fn bearer(token: &str) -> Option<(&'static str, String)> {
    Some(("authorization", format!("Bearer {token}")))
}

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
    let health = common::http::get(&format!("{}/metrics", h.base())).await;
    assert_eq!(health.status, 200);
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

/// A spy subscribed to every topic of the broker: its client (which must
/// stay alive) and its event loop.
async fn spy(h: &Harness) -> (AsyncClient, rumqttc::v5::EventLoop) {
    let mut opts = MqttOptions::new("auth-spy", h.mqtt.ip().to_string(), h.mqtt.port());
    opts.set_max_packet_size(Some(1 << 20));
    let (spy, mut events) = AsyncClient::new(opts, 16);
    spy.subscribe("#", QoS::AtLeastOnce).await.unwrap();
    soon("spy subscribed", async {
        loop {
            if let Event::Incoming(Packet::SubAck(_)) = events.poll().await.expect("spy") {
                return;
            }
        }
    })
    .await;
    (spy, events)
}

/// Reads the spy until a request with `payload`, and returns every
/// request (`device/methods/method`) it saw on the way.
async fn requests_until(spy: &mut rumqttc::v5::EventLoop, payload: &[u8]) -> Vec<String> {
    soon("the sentinel request", async {
        let mut seen = Vec::new();
        loop {
            if let Event::Incoming(Packet::Publish(p)) = spy.poll().await.expect("spy") {
                let topic = String::from_utf8_lossy(&p.topic).into_owned();
                if let Some(call) = topic.strip_prefix("thingcall/devices/") {
                    if call.contains("/methods/") {
                        seen.push(call.to_owned());
                        if p.payload == payload {
                            return seen;
                        }
                    }
                }
            }
        }
    })
    .await
}

async fn policy_allows_and_denies_and_denied_calls_publish_nothing(h: Harness, s: &Setup) {
    let _d = device(&h, "auth-1").await;
    let (_spy, mut spy) = spy(&h).await;
    let mut c = h.client.clone();
    let ops = Some(("x-api-key", OPS_KEY));

    // Allowed: the device's answer, with every kind of credential.
    let ok = c
        .invoke(with(ops, req("auth-1", "echo", b"k")))
        .await
        .expect("ops may echo");
    assert_eq!(ok.into_inner().payload, b"k".as_slice());
    let alice = format!("Bearer {}", hs256(&claims("alice"), SECRET));
    let r = c
        .invoke(with(
            Some(("authorization", &alice)),
            req("auth-1", "echo", b"a"),
        ))
        .await;
    assert_eq!(
        r.expect("HS256 token").into_inner().payload,
        b"a".as_slice()
    );
    let ec = format!(
        "Bearer {}",
        signed(Algorithm::ES256, "ec-1", &s.ec, &claims("ec-user"))
    );
    let r = c
        .invoke(with(
            Some(("authorization", &ec)),
            req("auth-1", "echo", b"e"),
        ))
        .await;
    assert_eq!(
        r.expect("ES256 token").into_inner().payload,
        b"e".as_slice()
    );
    if let Some(rsa) = &s.rsa {
        let t = format!(
            "Bearer {}",
            signed(Algorithm::RS256, "rsa-1", rsa, &claims("rsa-user"))
        );
        let r = c
            .invoke(with(
                Some(("authorization", &t)),
                req("auth-1", "echo", b"r"),
            ))
            .await;
        assert_eq!(
            r.expect("RS256 token").into_inner().payload,
            b"r".as_slice()
        );
    }
    let allowed = if s.rsa.is_some() { 4 } else { 3 };

    // Denied: a method, a target, a caller the policy does not cover.
    let bob = format!("Bearer {}", hs256(&claims("bob"), SECRET));
    let denied: [(&str, &str, &str, &str); 4] = [
        ("x-api-key", OPS_KEY, "auth-1", "reboot"),
        ("x-api-key", OPS_KEY, "other-1", "echo"),
        ("x-api-key", VIEWER_KEY, "auth-1", "reboot"),
        ("authorization", &bob, "auth-1", "reboot"),
    ];
    for (k, v, target, method) in denied {
        let e = c
            .invoke(with(Some((k, v)), req(target, method, b"")))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{target} {method}");
        assert_eq!(reason(&e), "PERMISSION_DENIED");
        let url = format!("{}/v1/devices/{target}/methods/{method}", h.base());
        let r = common::http::request(Method::POST, &url, "", &[(k, v)]).await;
        assert_eq!(r.status, 403, "{url}");
        assert_eq!(r.json()["error"]["reason"], "PERMISSION_DENIED");
        let url = format!(
            "{}/invoke?request=x&method={method}&target={target}",
            h.base()
        );
        let r = common::http::request(Method::GET, &url, "", &[(k, v)]).await;
        assert_eq!(r.status, 403, "{url}");
        assert_eq!(r.json()["reason"], "PERMISSION_DENIED");
    }
    // The rate limit: one call, then OVERLOADED with Retry-After.
    let burst = Some(("x-api-key", BURST_KEY));
    c.invoke(with(burst, req("auth-1", "echo", b"")))
        .await
        .expect("first call");
    let url = format!("{}/v1/devices/auth-1/methods/reboot", h.base());
    let r = common::http::request(Method::POST, &url, "", &[("x-api-key", BURST_KEY)]).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["reason"], "OVERLOADED");
    assert!(r.headers.contains_key("retry-after"));

    // Then a last allowed call: the broker carried the allowed calls, the
    // rate-limited caller's one, and nothing denied.
    c.invoke(with(ops, req("auth-1", "echo", b"sentinel")))
        .await
        .expect("ops");
    let seen = requests_until(&mut spy, b"sentinel").await;
    assert_eq!(
        seen,
        vec!["auth-1/methods/echo"; allowed + 2],
        "denied calls were published"
    );
    h.stop().await;
}

async fn watch_and_list_show_only_what_the_caller_may_see(h: Harness) {
    let d1 = device(&h, "auth-1").await;
    let _d2 = device(&h, "auth-2").await;
    let viewer = Some(("x-api-key", VIEWER_KEY));
    let ops = Some(("x-api-key", OPS_KEY));
    let nobody = Some(("x-api-key", NOBODY_KEY));
    let mut c = h.client.clone();

    let ids = |r: thingcall_proto::v1::ListDevicesResponse| {
        r.devices.into_iter().map(|d| d.id).collect::<Vec<_>>()
    };
    let all = c
        .list_devices(with(ops, ListDevicesRequest::default()))
        .await
        .unwrap();
    assert_eq!(ids(all.into_inner()), ["auth-1", "auth-2"]);
    let mine = c
        .list_devices(with(viewer, ListDevicesRequest::default()))
        .await
        .unwrap();
    assert_eq!(ids(mine.into_inner()), ["auth-1"]);
    let get = |id: &str| GetDeviceRequest { target: id.into() };
    c.get_device(with(viewer, get("auth-1")))
        .await
        .expect("visible");
    let e = c.get_device(with(viewer, get("auth-2"))).await.unwrap_err();
    assert_eq!(reason(&e), "PERMISSION_DENIED");
    let e = c
        .list_devices(with(nobody, ListDevicesRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(reason(&e), "PERMISSION_DENIED");
    let e = c
        .watch_device(with(nobody, WatchDeviceRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(reason(&e), "PERMISSION_DENIED");
    let r = common::http::request(
        Method::GET,
        &format!("{}/v1/devices", h.base()),
        "",
        &[("x-api-key", VIEWER_KEY)],
    )
    .await;
    assert_eq!(r.json()["devices"].as_array().unwrap().len(), 1);

    // The watch: only auth-1 in the snapshot, and live changes of the
    // hidden auth-3 never arrive before auth-1's own.
    let mut w = c
        .watch_device(with(viewer, WatchDeviceRequest::default()))
        .await
        .expect("viewer may watch")
        .into_inner();
    let first = w.next().await.unwrap().unwrap();
    assert_eq!(first.device, "auth-1");
    let synced = w.next().await.unwrap().unwrap();
    assert!(
        matches!(synced.kind, Some(Kind::Synced(s)) if s.devices == 1),
        "{synced:?}"
    );
    let _d3 = device(&h, "auth-3").await;
    d1.shutdown().await;
    let next = soon("auth-1 offline", w.next()).await.unwrap().unwrap();
    assert_eq!(next.device, "auth-1", "{next:?}");
    assert!(matches!(next.kind, Some(Kind::Presence(p)) if !p.online));
    h.stop().await;
}

macro_rules! auth_broker_tests {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let s = super::setup();
                    let h = super::harness(super::common::Broker::Embedded, &s).await;
                    super::$name(h, &s).await;
                }
            )*
        }
        mod mosquitto {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(not(mosquitto), ignore = "mosquitto not installed (apt-get install mosquitto)")]
                async fn $name() {
                    let s = super::setup();
                    let Some(h) = super::Harness::start_with(super::common::Broker::Mosquitto, |c| s.configure(c)).await else { return };
                    super::$name(h, &s).await;
                }
            )*
        }
    };
}

async fn watch_and_list(h: Harness, _: &Setup) {
    watch_and_list_show_only_what_the_caller_may_see(h).await
}

auth_broker_tests!(
    policy_allows_and_denies_and_denied_calls_publish_nothing,
    watch_and_list
);
