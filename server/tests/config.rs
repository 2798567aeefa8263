//! Bad configuration: one clear line on stderr and exit code 64.

use std::process::Command;

#[test]
fn bad_config_is_one_line_and_exit_64() {
    for args in [
        &["--qos", "7"][..],
        &["--max-timeout", "soon"],
        &["--mqtt-url", "http://broker:1883"],
        &["--gateway-id", "a/b"],
        &["--no-such-flag"],
        &["--listen", "0.0.0.0:0"],
        &[
            "--mqtt-url",
            "mqtt://127.0.0.1:1",
            "--broker-profile",
            "aws-iot",
            "--qos",
            "2",
        ],
        &["--mqtt-url", "mqtt://a1-ats.iot.eu-west-1.amazonaws.com"],
        &[
            "--mqtt-url",
            "mqtt://127.0.0.1:1",
            "--broker-profile",
            "aws-iot",
            "--max-payload",
            "256KiB",
        ],
        &[
            "--mqtt-url",
            "mqtt://127.0.0.1:1",
            "--broker-profile",
            "hivemq",
        ],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_thingcall-server"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("thingcall-server: "), "{args:?}: {err}");
    }
    let env_bad = Command::new(env!("CARGO_BIN_EXE_thingcall-server"))
        .env("THINGCALL_MAX_PAYLOAD", "lots")
        .output()
        .unwrap();
    assert_eq!(
        env_bad.status.code(),
        Some(64),
        "env values are checked like flags"
    );
}
