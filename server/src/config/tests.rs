//! Configuration checks: defaults, refusals, logins, listen safety.

use super::*;

fn parse(args: &[&str]) -> Result<Config, String> {
    let c = Config::try_parse_from(std::iter::once("thingcall-server").chain(args.iter().copied()))
        .map_err(|e| e.to_string())?;
    c.validate()?;
    Ok(c)
}

#[test]
fn defaults() {
    let c = parse(&[]).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.max_payload, 128 * 1024);
    assert_eq!(c.max_timeout, Duration::from_secs(300));
    assert_eq!(c.qos, 0);
    assert!(c.gateway_id().starts_with("gw-"));
}

#[test]
fn bad_values_are_refused() {
    for args in [
        &["--qos", "3"][..],
        &["--max-timeout", "soon"],
        &["--max-payload", "12 parsecs"],
        &["--mqtt-url", "http://x:1"],
        &[
            "--mqtt-url",
            "mqtt://x:1883",
            "--mqtt-alpn",
            "x-amzn-mqtt-ca",
        ],
        &["--mqtt-url", "mqtts://x:8883", "--mqtt-cert", "/c.pem"],
        &["--mqtt-url", "ws://x/mqtt", "--mqtt-alpn", "h2"],
        &[
            "--mqtt-url",
            "ws://x/mqtt",
            "--embedded-broker-ws-listen",
            "127.0.0.1:0",
        ],
        &["--mqtt-ca", "/nonexistent/ca.pem"],
        &["--gateway-id", "a/b"],
        &["--topic-root", "a/#"],
        &["--default-timeout", "20m", "--max-timeout", "1m"],
        &["--listen", "nowhere"],
    ] {
        assert!(parse(args).is_err(), "{args:?} accepted");
    }
}

#[test]
fn broker_logins() {
    let file = std::env::temp_dir().join(format!("tc-config-pw-{}", std::process::id()));
    std::fs::write(&file, "s3cret\n").unwrap();
    let path = file.to_str().unwrap();
    let c = parse(&[
        "--mqtt-url",
        "mqtt://b:1883",
        "--mqtt-username",
        "gw",
        "--mqtt-password-file",
        path,
    ])
    .unwrap();
    let login = c.broker.credentials().unwrap().expect("a login");
    assert_eq!(
        (login.username.as_str(), login.password.expose()),
        ("gw", "s3cret")
    );
    assert!(
        !format!("{c:?} {login:?}").contains("s3cret"),
        "never printed"
    );
    for args in [
        &["--mqtt-username", "gw"][..],
        &["--mqtt-url", "mqtt://b:1883", "--mqtt-password-file", path],
        &[
            "--mqtt-url",
            "mqtt://b:1883",
            "--mqtt-username",
            "gw",
            "--mqtt-password-file",
            "/nonexistent",
        ],
    ] {
        let err = parse(args).expect_err("refused");
        assert!(!err.contains("s3cret"), "{err}");
    }
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn non_loopback_listen_needs_authentication() {
    let err = parse(&["--listen", "0.0.0.0:8080"]).unwrap_err();
    assert!(err.contains("refusing to serve 0.0.0.0:8080"), "{err}");
    assert!(
        err.contains("--insecure-no-auth") && !err.contains('\n'),
        "{err}"
    );
    assert!(parse(&["--listen", "0.0.0.0:8080", "--insecure-no-auth"]).is_ok());
    assert!(
        parse(&["--listen", "[::1]:8080"]).is_ok(),
        "loopback is fine"
    );
    let keys = std::env::temp_dir().join(format!("tc-config-keys-{}", std::process::id()));
    let line = crate::auth::apikeys::hash_line("k");
    std::fs::write(&keys, format!("ci {line}\n")).unwrap();
    let keys_arg = keys.to_str().unwrap();
    assert!(parse(&["--listen", "0.0.0.0:8080", "--api-keys", keys_arg]).is_ok());
    for bad in [
        &["--policy", "/nonexistent.toml"][..],
        &["--api-keys", "/nonexistent"],
        &["--jwt-secret-file", keys_arg],
        &["--jwt-issuer", "x"],
    ] {
        let err = parse(bad).expect_err("refused");
        assert!(!err.contains('\n'), "{bad:?}: {err}");
    }
    std::fs::remove_file(&keys).unwrap();
}

#[test]
fn broker_urls() {
    let plain = BrokerUrl::parse("mqtt://127.0.0.1:1883").unwrap();
    assert_eq!(
        (plain.host.as_str(), plain.port, plain.tls),
        ("127.0.0.1", 1883, false)
    );
    let tls = BrokerUrl::parse("mqtts://broker.example").unwrap();
    assert_eq!(
        (tls.host.as_str(), tls.port, tls.tls),
        ("broker.example", 8883, true)
    );
    assert!(BrokerUrl::parse("mqtts://b:notaport").is_err());
    let c = parse(&["--mqtt-url", "ws://b:9001"]).unwrap();
    assert!(c.mqtt_tls().unwrap().is_none());
    let c = parse(&["--embedded-broker-ws-listen", "127.0.0.1:0"]).unwrap();
    assert!(c.embedded_broker_ws_listen.is_some());
}

#[test]
fn broker_profiles() {
    let local = ["--mqtt-url", "mqtt://127.0.0.1:1883"];
    let c = parse(&local).unwrap();
    assert_eq!(c.broker_profile(), BrokerProfile::Generic);
    let aws = |extra: &[&str]| {
        let mut args = vec!["--broker-profile", "aws-iot"];
        args.extend_from_slice(&local);
        args.extend_from_slice(extra);
        parse(&args)
    };
    let c = aws(&[]).unwrap();
    assert_eq!(c.broker_limits(), BrokerLimits::AWS_IOT);
    for (extra, needle) in [
        (&["--qos", "2"][..], "QoS 1 at most"),
        (&["--max-payload", "129KiB"], "128 KiB at most"),
        (&["--topic-root", "a/b/c/d/e"], "'/'"),
    ] {
        let err = aws(extra).unwrap_err();
        assert!(err.contains(needle) && !err.contains('\n'), "{err}");
    }
    assert!(aws(&["--qos", "0", "--topic-root", "a/b/c/d"]).is_ok());
    let detected = parse(&[
        "--mqtt-url",
        "mqtts://a1-ats.iot.eu-west-1.amazonaws.com",
        "--qos",
        "2",
    ])
    .unwrap_err();
    assert!(detected.contains("aws-iot"), "{detected}");
}

#[test]
fn sizes() {
    assert_eq!(parse_size("100"), Ok(100));
    assert_eq!(parse_size("128KiB"), Ok(131072));
    assert_eq!(parse_size("1MiB"), Ok(1 << 20));
    assert!(parse_size("x").is_err());
}
