//! The `thingcall` binary and the typed client against a real gateway with
//! its embedded MQTT broker and simulated devices: exact stdout, one stderr
//! line per error reason, and the documented exit codes.

mod common;

use common::{gateway, within};
use std::process::{Command, Output};

use thingcall_client::proto::{device_event::Kind, InvokeRequest};
use thingcall_client::Client;
use thingcall_device::{spawn_device, standard_methods, DeviceOptions};
use tokio_stream::StreamExt;

async fn thingcall(server: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_thingcall"));
    cmd.arg("--server").arg(server).args(args);
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_output_and_exit_codes() {
    let gw = gateway().await;
    let server = format!("http://{}", gw.grpc_addr);

    let out = thingcall(&server, &["invoke", "demo-1", "echo", "--payload", "hi"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(out.stdout, b"hi");
    assert!(out.stderr.is_empty(), "{}", stderr(&out));

    let out = thingcall(&server, &["invoke", "demo-1", "fail"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "thingcall: device answered status 500\n");

    let cases: [(&[&str], i32, &str); 4] = [
        (&["invoke", "a/b", "echo"], 3, "INVALID_ARGUMENT"),
        (
            &["invoke", "demo-1", "no-such-method"],
            7,
            "METHOD_NOT_SUPPORTED",
        ),
        (
            &["invoke", "never-seen", "echo", "--timeout", "20s"],
            70,
            "DEVICE_NOT_FOUND",
        ),
        (&["device", "never-seen"], 70, "DEVICE_NOT_FOUND"),
    ];
    for (args, code, reason) in cases {
        let out = thingcall(&server, args).await;
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.starts_with(&format!("thingcall: {reason}: ")),
            "{args:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }

    let out = thingcall(&server, &["devices"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("demo-1") && table.contains("demo-2"),
        "{table}"
    );

    // An offline device: exit 4 with its reason.
    let (host, port) = gw.mqtt_addr.clone();
    let mut client = Client::connect(&server).await.unwrap();
    let mut watch = client.watch("cli-off", false).await.unwrap();
    let d = spawn_device(
        DeviceOptions::new("cli-off", host, port),
        standard_methods(),
    );
    within("online", d.wait_online()).await;
    d.shutdown().await;
    within("offline seen", async {
        while let Some(ev) = watch.next().await {
            if let Some(Kind::Presence(p)) = ev.unwrap().kind {
                if p.id == "cli-off" && !p.online {
                    return;
                }
            }
        }
    })
    .await;
    let out = thingcall(&server, &["invoke", "cli-off", "echo"]).await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "thingcall: DEVICE_OFFLINE: device cli-off is offline\n"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_client_round_trips() {
    let gw = gateway().await;
    let mut client = Client::connect(&format!("http://{}", gw.grpc_addr))
        .await
        .unwrap();
    let reply = client
        .invoke(InvokeRequest {
            target: "demo-2".into(),
            method: "echo".into(),
            payload: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((reply.status, &reply.payload[..]), (200, &b"x"[..]));
    let ids: Vec<String> = client
        .list_devices("demo-*")
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(ids, ["demo-1", "demo-2"]);
    let err = client
        .invoke(InvokeRequest {
            target: "demo-2".into(),
            method: "".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.reason.as_str(), err.exit_code()),
        ("INVALID_ARGUMENT", 3)
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_gateway_is_exit_69() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = thingcall(
        &format!("http://127.0.0.1:{port}"),
        &["invoke", "d", "echo"],
    )
    .await;
    assert_eq!(out.status.code(), Some(69));
    let err = stderr(&out);
    assert!(err.starts_with("thingcall: UNREACHABLE: "), "{err}");
    assert_eq!(err.lines().count(), 1);
}

/// Against a gateway that authenticates callers: no token is exit 11 with
/// UNAUTHENTICATED; the token from `THINGCALL_TOKEN` or `--token` calls, and
/// the typed client's `with_token` does too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_reach_a_gateway_that_authenticates() {
    let key = "tc_cli_test_key_0123456789";
    let keys = std::env::temp_dir().join(format!("tc-cli-keys-{}", std::process::id()));
    let line = thingcall_server::auth::apikeys::hash_line(key);
    std::fs::write(&keys, format!("cli {line}\n")).unwrap();
    let gw = common::gateway_with(&["--api-keys", keys.to_str().unwrap()]).await;
    let server = format!("http://{}", gw.grpc_addr);

    let out = thingcall(&server, &["invoke", "demo-1", "echo", "--payload", "x"]).await;
    assert_eq!(out.status.code(), Some(11), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("thingcall: UNAUTHENTICATED: "),
        "{}",
        stderr(&out)
    );

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_thingcall"));
    cmd.args([
        "--server",
        &server,
        "invoke",
        "demo-1",
        "echo",
        "--payload",
        "env",
    ])
    .env("THINGCALL_TOKEN", key);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(out.stdout, b"env");

    let out = thingcall(&server, &["--token", key, "devices"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("demo-1"));

    let mut client = Client::connect(&server)
        .await
        .unwrap()
        .with_token(key)
        .unwrap();
    let reply = client
        .invoke(InvokeRequest {
            target: "demo-1".into(),
            method: "echo".into(),
            payload: b"typed".to_vec().into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(reply.payload, b"typed".as_slice());
    assert!(Client::connect(&server)
        .await
        .unwrap()
        .with_token("line\nbreak")
        .is_err());
    gw.stop().await;
    std::fs::remove_file(&keys).unwrap();
}
