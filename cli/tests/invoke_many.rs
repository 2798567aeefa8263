//! `thingcall invoke-many` through the real binary against a real demo
//! gateway (embedded broker, demo-1 and demo-2 online): the summary table,
//! JSON lines, exit codes, and a bad fan-out refused with its reason.

mod common;

use std::process::{Command, Output};

use serde_json::Value;

async fn run(args: Vec<String>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_thingcall"));
    cmd.args(args).env_remove("THINGCALL_OUTPUT");
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn argv(server: &str, args: &[&str]) -> Vec<String> {
    ["--server", server]
        .iter()
        .chain(args)
        .map(|s| (*s).to_owned())
        .collect()
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_glob_fanout_prints_a_summary_table_and_exits_by_outcome() {
    let gw = common::gateway().await;
    let server = format!("http://{}", gw.grpc_addr);
    let out = run(argv(
        &server,
        &["invoke-many", "demo-*", "echo", "--payload", "hi"],
    ))
    .await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("OUTCOME  DEVICES\nOK       2\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("2 devices, 2 called, 2 ok, 0 failed;"),
        "{stdout}"
    );
    assert!(stdout.trim_end().ends_with("COMPLETED"), "{stdout}");
    assert!(
        out.stderr.is_empty(),
        "no progress bar when piped: {:?}",
        text(&out.stderr)
    );

    // A device status of 500 on every device: listed, counted, exit 1.
    let out = run(argv(&server, &["invoke-many", "demo-*", "fail"])).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.starts_with("DEVICE  OUTCOME"), "{stdout}");
    assert!(stdout.contains("demo-1  DEVICE_STATUS_500"), "{stdout}");
    assert!(stdout.contains("0 ok, 2 failed;"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_is_one_object_per_event() {
    let gw = common::gateway().await;
    let server = format!("http://{}", gw.grpc_addr);
    let ids = std::env::temp_dir().join(format!("thingcall-cli-ids-{}", std::process::id()));
    std::fs::write(&ids, "demo-1\ndemo-2\nnobody\n").unwrap();
    let target = format!("@{}", ids.display());
    let out = run(argv(
        &server,
        &[
            "-o",
            "json",
            "invoke-many",
            &target,
            "echo",
            "--offline",
            "skip",
            "--rate",
            "50",
        ],
    ))
    .await;
    std::fs::remove_file(&ids).unwrap();
    let lines: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(out.status.code(), Some(0), "{lines:?}");
    assert_eq!(lines.len(), 3, "{lines:?}");
    for l in &lines[..2] {
        assert_eq!(l["result"]["outcome"], "OK", "{l}");
        assert_eq!(l["result"]["response"]["status"], 200, "{l}");
    }
    let s = &lines[2]["summary"];
    assert_eq!(s["targets"], 3);
    assert_eq!(
        s["notAttempted"]["OFFLINE"], 1,
        "never seen is not online: {s}"
    );
    assert_eq!(s["notAttemptedDevices"][0]["device"], "nobody");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_fanout_is_refused_with_its_reason() {
    let gw = common::gateway().await;
    let server = format!("http://{}", gw.grpc_addr);
    let out = run(argv(
        &server,
        &["invoke-many", "demo-*", "echo", "--rate=-5"],
    ))
    .await;
    assert_eq!(out.status.code(), Some(3), "INVALID_ARGUMENT's exit code");
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("thingcall: INVALID_ARGUMENT: rate must be"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}
