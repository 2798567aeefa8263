//! Logs at the most verbose level of thingcall's own crates carry each
//! call's request id, and never a payload, a metadata value or an
//! `authorization` header.

mod common;

use common::capture::Capture;
use common::http::request;
use common::{req, Broker, Harness};
use http::Method;

const SECRETS: &[&str] = &[
    "PAYLOAD-SECRET-1",
    "META-SECRET-2",
    "TOKEN-SECRET-3",
    "tc_APIKEY-SECRET-4",
    "BROKER-PASSWORD-SECRET-5",
    "JWT-HS256-SECRET-6-at-least-32-bytes-long",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_carry_request_ids_and_no_secrets() {
    let capture = Capture::default();
    tracing_subscriber::fmt()
        .with_env_filter(
            "debug,thingcall_server=trace,thingcall_device=trace,thingcall_proto=trace",
        )
        .json()
        .with_current_span(true)
        .with_span_list(true)
        .with_writer(capture.clone())
        .init();

    let h = Harness::start(Broker::Embedded).await.expect("embedded");
    let _d = h.device("log-1").await;
    let mut c = h.client.clone();
    let mut r = req("log-1", "echo", SECRETS[0].as_bytes());
    r.metadata.insert("authorization".into(), SECRETS[1].into());
    let answer = c.invoke(r).await.expect("echo").into_inner();
    let reply = request(
        Method::POST,
        &format!("{}/v1/devices/log-1/methods/echo", h.base()),
        &format!(r#"{{"payload":"{}"}}"#, SECRETS[0]),
        &[("authorization", &format!("Bearer {}", SECRETS[2]))],
    )
    .await;
    assert_eq!(reply.status, 200);
    h.stop().await;
    authenticated_calls().await;

    let logs = capture.text();
    let finished: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("call finished"))
        .collect();
    assert!(finished.len() >= 2, "one line per call:\n{logs}");
    assert!(
        finished[0].contains(&answer.request_id),
        "the gRPC call's line names its request id: {}",
        finished[0]
    );
    let http_id = reply.json()["requestId"].as_str().unwrap().to_owned();
    assert!(
        finished[1].contains(&http_id),
        "the HTTP call's line names its request id: {}",
        finished[1]
    );
    let jwt = JWT.get().cloned();
    if jwt.is_some() {
        let refused = logs.matches("caller not authenticated").count();
        assert_eq!(
            refused, 2,
            "the two bad credentials are logged, without them"
        );
    }
    // The JWT's signature part: the header and claims are not secret.
    let signature = jwt.as_deref().and_then(|t| t.rsplit('.').next());
    for line in logs.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("each line is JSON");
        for secret in SECRETS.iter().copied().chain(signature) {
            assert!(!line.contains(secret), "{secret} logged: {line}");
        }
    }
}

/// A gateway that authenticates callers and logs in to a password-protected
/// Mosquitto: good and bad API keys and JWTs, a denied call. Skipped (with
/// a message) without Mosquitto outside CI.
async fn authenticated_calls() {
    let Some(broker) = thingcall_testkit::Mosquitto::start_with_password("gw", SECRETS[4]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let line = thingcall_server::auth::apikeys::hash_line(SECRETS[3]);
    std::fs::write(&keys, format!("logger {line}\n")).unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRETS[5]).unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, SECRETS[4]).unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[[allow]]\nsubjects = [\"key:logger\", \"jwt:log\"]\ntargets = [\"log-*\"]\nmethods = [\"echo\"]\n",
    )
    .unwrap();
    let mut cfg = common::gateway_config(broker.addr());
    cfg.broker.mqtt_username = Some("gw".into());
    cfg.broker.mqtt_password_file = Some(password);
    cfg.auth.api_keys = Some(keys);
    cfg.auth.jwt_secret_file = Some(secret);
    cfg.auth.jwt_issuer = Some("iss".into());
    cfg.auth.jwt_audience = Some("aud".into());
    cfg.auth.policy = Some(policy);
    cfg.validate().unwrap();
    let gw = thingcall_server::start(cfg).await.unwrap();
    common::soon("MQTT session", gw.wait_connected()).await;
    let mut opts = thingcall_device::DeviceOptions::new("log-2", "127.0.0.1", broker.port());
    opts.credentials =
        thingcall_proto::wire::Credentials::from_sources(Some("gw"), None, Some(SECRETS[4]))
            .unwrap();
    let _d = common::device_seen(&gw, opts).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let jwt = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({"sub": "log", "iss": "iss", "aud": "aud", "exp": now + 60}),
        &jsonwebtoken::EncodingKey::from_secret(SECRETS[5].as_bytes()),
    )
    .unwrap();
    let url = format!("http://{}/v1/devices/log-2/methods/echo", gw.grpc_addr);
    let body = format!(r#"{{"payload":"{}"}}"#, SECRETS[0]);
    let bearer = format!("Bearer {jwt}");
    let wrong_key = format!("{}x", SECRETS[3]);
    let bad_jwt = format!("Bearer {jwt}x");
    for (header, value, status) in [
        ("x-api-key", SECRETS[3], 200),
        ("authorization", bearer.as_str(), 200),
        ("x-api-key", wrong_key.as_str(), 401),
        ("authorization", bad_jwt.as_str(), 401),
    ] {
        let r = request(Method::POST, &url, &body, &[(header, value)]).await;
        assert_eq!(r.status, status, "{header}");
    }
    let denied = format!("http://{}/v1/devices/log-2/methods/reboot", gw.grpc_addr);
    let r = request(Method::POST, &denied, &body, &[("x-api-key", SECRETS[3])]).await;
    assert_eq!(r.status, 403);
    // The token must not show either (it is a secret too).
    assert!(!jwt.is_empty());
    JWT.set(jwt).unwrap();
    gw.stop().await;
}

/// The JWT made above, checked against the logs like the other secrets.
static JWT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
