//! The simulator binary and its open-file limit: it raises its soft limit
//! to the hard one at start (so a low soft limit, the usual 1024 of a
//! login shell, does not cap it), and refuses at once, with a message
//! saying how many fit, a device count its hard limit cannot hold.

#[allow(dead_code)] // shared with device.rs, which uses all of it
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::Broker;

/// Longest wait for the simulator to start all its devices (a debug build
/// on a loaded 2-core machine).
const START: Duration = Duration::from_secs(60);

/// `thingcall-sim ARGS` run by `sh` after `limits` (`ulimit` options), so
/// the limits apply to the simulator and nothing else.
fn sim_under(limits: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("ulimit {limits} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_thingcall-sim"))
        .args(args)
        .env("RUST_LOG", "info,thingcall_device=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

/// A child process killed on every exit path of the test.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn more_devices_than_the_hard_limit_allows_are_refused_up_front() {
    // Nothing listens on port 1: the refusal comes before any connection.
    let out = sim_under(
        "-n 200",
        &["--devices", "500", "--mqtt-url", "mqtt://127.0.0.1:1"],
    )
    .stderr(Stdio::piped())
    .output()
    .expect("run thingcall-sim");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("500 devices need 564 open files, but this process may open 200"),
        "{stderr}"
    );
    assert!(stderr.contains("at most 136 devices fit"), "{stderr}");
    assert!(stderr.contains("docs/scale.md"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_low_soft_limit_is_raised_to_the_hard_one() {
    let broker = Broker::start().await;
    let url = format!("mqtt://127.0.0.1:{}", broker.port());
    // 300 sockets under a soft limit of 128: only a raised limit holds them.
    let mut child = sim_under("-Sn 128", &["--devices", "300", "--mqtt-url", &url])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn thingcall-sim");
    let stderr = child.stderr.take().expect("piped stderr");
    let _child = Killed(child);
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    let online = tokio::task::spawn_blocking(move || loop {
        match lines.recv_timeout(START) {
            Ok(line) if line.contains("300 devices online") => return Ok(seen),
            Ok(line) => seen.push(line),
            Err(e) => return Err(format!("{e:?} before all devices were online: {seen:#?}")),
        }
    })
    .await
    .unwrap();
    let seen = online.unwrap_or_else(|e| panic!("{e}"));
    let start = seen
        .iter()
        .find(|l| l.contains("starting devices"))
        .expect("a starting line");
    let hard = rlimit::Resource::NOFILE.get_hard().expect("getrlimit");
    assert!(
        start.contains(&format!("open_files={hard}")),
        "the soft limit was not raised to {hard}: {start}"
    );
}
