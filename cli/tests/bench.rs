//! `thingcall bench` against a real gateway with its embedded MQTT broker
//! and demo devices, in every mode: the JSON report's shape and counts,
//! and outcomes that must be seen (timeouts, device failures). No timing
//! thresholds: only that figures exist and are consistent.

mod common;

use common::gateway;
use std::process::{Command, Output};

use serde_json::Value;

/// Runs `thingcall --server URL bench --json --quiet ARGS` with the
/// gateway's broker as --mqtt-url; returns the output.
async fn bench(gw: &thingcall_server::Running, args: &[&str]) -> Output {
    let (host, port) = gw.mqtt_addr.clone();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_thingcall"));
    cmd.arg("--server")
        .arg(format!("http://{}", gw.grpc_addr))
        .args(["bench", "--json", "--quiet"])
        .arg("--mqtt-url")
        .arg(format!("mqtt://{host}:{port}"))
        .args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    out
}

/// The one JSON object on stdout of a run that exited 0.
fn report(out: &Output) -> Value {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn assert_consistent(r: &Value) {
    let l = &r["latency_us"];
    let p = |k: &str| {
        l[k].as_u64()
            .unwrap_or_else(|| panic!("latency_us.{k} in {r}"))
    };
    assert!(p("p50") <= p("p90"), "{r}");
    assert!(p("p90") <= p("p99"), "{r}");
    assert!(p("p99") <= p("p999"), "{r}");
    assert!(p("p999") <= p("max"), "{r}");
    let sum: u64 = r["outcomes"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(sum, r["count"].as_u64().unwrap(), "{r}");
    assert_eq!(
        r["errors"].as_u64().unwrap(),
        sum - r["outcomes"]["ok"].as_u64().unwrap(),
        "{r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mode_completes_its_calls() {
    let gw = gateway().await;
    // Twice over, so a run reusing the previous run's correlation ids (the
    // devices drop ids they have already run) would show.
    let modes = [
        "grpc",
        "h2",
        "grpc-channel",
        "json",
        "grpc-web",
        "raw-mqtt",
        "conn-per-request",
    ];
    for mode in modes.into_iter().chain(modes) {
        let out = bench(
            &gw,
            &[
                "--mode",
                mode,
                "--count",
                "200",
                "--concurrency",
                "8",
                "--targets",
                "demo-1,demo-2",
                "--label",
                "test",
            ],
        )
        .await;
        let r = report(&out);
        assert_eq!(r["mode"], mode, "{r}");
        assert_eq!(r["count"], 200, "{mode}: {r}");
        assert_eq!(r["outcomes"]["ok"], 200, "{mode}: {r}");
        assert_eq!(r["errors"], 0, "{mode}: {r}");
        assert_eq!(r["concurrency"], 8, "{r}");
        assert_eq!(r["targets"], 2, "{r}");
        assert_eq!(r["method"], "echo", "{r}");
        assert_eq!(r["payload_bytes"], 16, "{r}");
        assert_eq!(r["label"], "test", "{r}");
        assert!(r["throughput_per_s"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["duration_s"].as_f64().unwrap() > 0.0, "{r}");
        let mqtt = mode.ends_with("mqtt") || mode == "conn-per-request";
        assert_eq!(r["qos"].is_null(), !mqtt, "{r}");
        assert!(
            r.get("breakdown_us").is_none(),
            "only with --breakdown: {r}"
        );
        assert_consistent(&r);
        // The bench always reports its own CPU per call.
        assert!(r["cpu_us_per_call"]["bench"].is_number(), "{mode}: {r}");
    }
    gw.stop().await;
}

/// The cheap load path spreads more calls in flight than one connection's
/// 256 streams over several, on a current-thread runtime too, and counts
/// an unknown device by the gateway's reason, not as a success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_spreads_calls_over_connections_and_counts_refusals() {
    let gw = gateway().await;
    let args = [
        "--mode",
        "h2",
        "--count",
        "2000",
        "-c",
        "300",
        "--threads",
        "1",
        "--targets",
        "demo-1,demo-2",
    ];
    let r = report(&bench(&gw, &args).await);
    assert_eq!(r["outcomes"]["ok"], 2000, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert_consistent(&r);
    let args = [
        "--mode",
        "h2",
        "--count",
        "50",
        "-c",
        "4",
        "--targets",
        "demo-1,nobody",
    ];
    let r = report(&bench(&gw, &args).await);
    assert_eq!(r["outcomes"]["ok"], 25, "{r}");
    assert_eq!(r["outcomes"]["DEVICE_NOT_FOUND"], 25, "{r}");
    assert_eq!(r["errors"], 25, "{r}");
    gw.stop().await;
}

/// `--idempotency-keys`: every call has its own key, across runs too, so
/// every call runs and none is answered by another's key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_are_unique_per_call() {
    let gw = gateway().await;
    for mode in ["grpc", "grpc-web", "grpc"] {
        let args = [
            "--mode",
            mode,
            "--idempotency-keys",
            "--count",
            "200",
            "--concurrency",
            "8",
            "--targets",
            "demo-1,demo-2",
        ];
        let r = report(&bench(&gw, &args).await);
        assert_eq!(r["outcomes"]["ok"], 200, "{mode}: {r}");
        assert_consistent(&r);
    }
    let metrics = gw.gateway.metrics_text();
    assert!(
        metrics.contains("thingcall_idempotent_replays_total 0\n"),
        "{metrics}"
    );
    let json = bench(
        &gw,
        &["--mode", "json", "--idempotency-keys", "--count", "1"],
    )
    .await;
    assert_eq!(json.status.code(), Some(2), "a usage error for json mode");
    gw.stop().await;
}

/// `--breakdown` on echo calls: every ok call carries the figures (the
/// simulator reports `exec-us`), the parts that apply to the mode are there
/// as whole µs, and the device's share is within the whole. (`sleep` would
/// give a known device time, but the bench's payload is pseudo-random
/// bytes, not a number of milliseconds.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breakdown_splits_every_ok_call() {
    let gw = gateway().await;
    for mode in ["grpc", "h2", "json", "grpc-web", "raw-mqtt"] {
        let out = bench(
            &gw,
            &[
                "--mode",
                mode,
                "--breakdown",
                "--count",
                "100",
                "--concurrency",
                "4",
                "--targets",
                "demo-1,demo-2",
            ],
        )
        .await;
        let r = report(&out);
        assert_consistent(&r);
        assert_eq!(r["outcomes"]["ok"], 100, "{mode}: {r}");
        let b = &r["breakdown_us"];
        assert_eq!(b["calls"], r["outcomes"]["ok"], "{mode}: {r}");
        let part = |name: &str| -> Vec<u64> {
            ["p50", "p90", "p99", "p999"]
                .iter()
                .map(|p| {
                    b[name][p]
                        .as_u64()
                        .unwrap_or_else(|| panic!("{mode}: {name}.{p} in {b}"))
                })
                .collect()
        };
        let through_gateway = mode != "raw-mqtt";
        let mut parts = vec!["network", "device"];
        if through_gateway {
            parts.push("gateway");
        } else {
            assert!(b.get("gateway").is_none(), "{mode}: {b}");
        }
        for name in parts {
            let p = part(name);
            assert!(p.windows(2).all(|w| w[0] <= w[1]), "{mode}: {name} {b}");
        }
        let total_p50 = r["latency_us"]["p50"].as_u64().unwrap();
        assert!(part("device")[0] <= total_p50, "{mode}: {r}");
    }

    // The table: the three rows and how many calls had figures.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_thingcall"));
    cmd.arg("--server")
        .arg(format!("http://{}", gw.grpc_addr))
        .args(["bench", "--quiet", "--breakdown", "--count", "20"])
        .args(["--targets", "demo-1"]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let table = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "breakdown (µs)",
        "gateway+caller",
        "broker+network",
        "device",
        "20 of 20 ok calls",
    ] {
        assert!(table.contains(needle), "{needle} missing from\n{table}");
    }
    gw.stop().await;
}

/// `--breakdown` puts time where it was spent: a device that holds each
/// reply 20 ms after running (outside its `exec-us`) shows that delay under
/// broker+network, not under the device or the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breakdown_puts_a_slow_link_under_network() {
    const DELAY_US: u64 = 20_000;
    let gw = gateway().await;
    let (host, port) = gw.mqtt_addr.clone();
    let mut opts = thingcall_device::DeviceOptions::new("slow-link", host, port);
    opts.latency = std::time::Duration::from_micros(DELAY_US);
    let device = thingcall_device::spawn_device(opts, thingcall_device::standard_methods());
    common::within("slow-link online", device.wait_online()).await;
    for mode in ["grpc", "raw-mqtt", "conn-per-request"] {
        let args = [
            "--mode",
            mode,
            "--breakdown",
            "--count",
            "20",
            "--concurrency",
            "4",
            "--targets",
            "slow-link",
        ];
        let r = report(&bench(&gw, &args).await);
        assert_eq!(r["outcomes"]["ok"], 20, "{mode}: {r}");
        let p50 = |part: &str| r["breakdown_us"][part]["p50"].as_u64();
        let network = p50("network").unwrap_or_else(|| panic!("{mode}: {r}"));
        assert!(network >= DELAY_US, "{mode}: the delay is network: {r}");
        assert!(p50("device").unwrap() < DELAY_US, "{mode}: not device: {r}");
        if mode == "grpc" {
            assert!(
                p50("gateway").unwrap() < network,
                "{mode}: not gateway: {r}"
            );
        }
    }
    device.shutdown().await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_counted_by_reason() {
    let gw = gateway().await;

    // An unknown device: the gateway refuses it at once.
    let r = report(
        &bench(
            &gw,
            &["--targets", "nobody", "--timeout", "200ms", "--count", "5"],
        )
        .await,
    );
    assert_eq!(r["count"], 5, "{r}");
    assert_eq!(r["outcomes"]["DEVICE_NOT_FOUND"], 5, "{r}");
    assert_eq!(r["outcomes"]["ok"], 0, "{r}");
    assert_eq!(r["errors"], 5, "{r}");
    assert_consistent(&r);

    // Without the gateway, nothing refuses it: it times out.
    let r = report(
        &bench(
            &gw,
            &[
                "--mode",
                "raw-mqtt",
                "--targets",
                "nobody",
                "--timeout",
                "200ms",
                "--count",
                "3",
            ],
        )
        .await,
    );
    assert_eq!(r["outcomes"]["DEVICE_TIMEOUT"], 3, "{r}");

    // A device-reported failure, in a gateway mode and an MQTT mode; the
    // default targets (demo-*) are resolved through the gateway.
    for mode in ["grpc", "h2", "json", "conn-per-request"] {
        let r = report(
            &bench(
                &gw,
                &[
                    "--mode", mode, "--method", "fail", "--count", "10", "-c", "2",
                ],
            )
            .await,
        );
        assert_eq!(r["outcomes"]["DEVICE_STATUS_500"], 10, "{mode}: {r}");
        assert_eq!(r["targets"], 2, "{r}");
        assert_eq!(r["errors"], 10, "{r}");
        assert_consistent(&r);
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warmup_duration_and_process_figures() {
    let gw = gateway().await;
    let me = std::process::id().to_string();
    let r = report(
        &bench(
            &gw,
            &[
                "--targets",
                "demo-{1..2}",
                "--warmup",
                "20",
                "--duration",
                "300ms",
                "--gateway-pid",
                &me,
                "--broker-pid",
                &me,
            ],
        )
        .await,
    );
    assert_eq!(r["warmup"], 20, "{r}");
    assert!(r["count"].as_u64().unwrap() > 0, "{r}");
    assert!(r["cpu_s"]["gateway"].as_f64().unwrap() >= 0.0, "{r}");
    assert!(r["cpu_s"]["broker"].is_number(), "{r}");
    assert!(r["gateway_peak_rss_kib"].as_u64().unwrap() > 0, "{r}");
    assert_consistent(&r);

    // Without --json: a table, and still exit 0.
    let (host, port) = gw.mqtt_addr.clone();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_thingcall"));
    cmd.arg("--server")
        .arg(format!("http://{}", gw.grpc_addr))
        .args(["bench", "--quiet", "--count", "4", "--mode", "raw-mqtt"])
        .arg("--mqtt-url")
        .arg(format!("mqtt://{host}:{port}"));
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("throughput") && table.contains("ok 4"),
        "{table}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_and_bad_usage() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let run = |args: Vec<String>| async move {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_thingcall"));
        cmd.args(args);
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    };
    let server = format!("http://127.0.0.1:{port}");
    let mqtt = format!("mqtt://127.0.0.1:{port}");
    for mode in ["grpc", "h2", "json", "grpc-web"] {
        let args = [
            "--server",
            &server,
            "bench",
            "--quiet",
            "--targets",
            "d1",
            "--mode",
            mode,
        ];
        let out = run(args.iter().map(|s| s.to_string()).collect()).await;
        assert_eq!(out.status.code(), Some(69), "{mode}");
    }
    for mode in ["raw-mqtt", "conn-per-request"] {
        let args = [
            "bench",
            "--quiet",
            "--targets",
            "d1",
            "--mqtt-url",
            &mqtt,
            "--mode",
            mode,
        ];
        let out = run(args.iter().map(|s| s.to_string()).collect()).await;
        assert_eq!(
            out.status.code(),
            Some(69),
            "{mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A glob needs the gateway even for the MQTT modes.
    let args = [
        "--server",
        &server,
        "bench",
        "--mode",
        "raw-mqtt",
        "--targets",
        "demo-*",
    ];
    let out = run(args.iter().map(|s| s.to_string()).collect()).await;
    assert_eq!(out.status.code(), Some(69));
    for bad in [
        vec!["bench", "--mode", "nope"],
        vec!["bench", "--targets", "a/b"],
        vec!["bench", "--method", ""],
        vec!["bench", "--targets", "d", "--gateway-pid", "4294967295"],
        vec![
            "bench",
            "--targets",
            "d",
            "--mode",
            "raw-mqtt",
            "--mqtt-ca",
            "/nonexistent.pem",
        ],
    ] {
        let out = run(bad.iter().map(|s| s.to_string()).collect()).await;
        assert_eq!(
            out.status.code(),
            Some(2),
            "{bad:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
