//! `thingcall bench` in the gateway-less modes over TLS (`mqtts://` and
//! `--mqtt-ca`) to a Mosquitto TLS listener with a certificate made for this
//! run; the device stays on the plain listener of the same broker. Skipped
//! (with a message) where Mosquitto is not installed, unless `CI` is set.

use std::process::{Command, Output};

use thingcall_device::{spawn_device, standard_methods, DeviceOptions};

async fn bench(args: Vec<String>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_thingcall"));
    cmd.args(["bench", "--json", "--quiet", "--targets", "btls-1"])
        .args(args);
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(mosquitto),
    ignore = "mosquitto not installed (apt-get install mosquitto)"
)]
async fn mqtt_modes_over_tls() {
    let Some(broker) = thingcall_testkit::Mosquitto::start_with_tls() else {
        return;
    };
    let Some(other) = thingcall_testkit::Mosquitto::start_with_tls() else {
        return;
    };
    let device = spawn_device(
        DeviceOptions::new("btls-1", "127.0.0.1", broker.port()),
        standard_methods(),
    );
    tokio::time::timeout(std::time::Duration::from_secs(20), device.wait_online())
        .await
        .expect("device online");
    let url = format!("mqtts://{}", broker.tls_addr().unwrap());
    let ca = broker.ca_path().display().to_string();
    for mode in ["raw-mqtt", "conn-per-request"] {
        let args = ["--mode", mode, "--mqtt-url", &url, "--mqtt-ca", &ca];
        let args = args.iter().map(|s| s.to_string());
        let out = bench(args.chain(["--count".into(), "40".into()]).collect()).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{mode}: {stderr}");
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["outcomes"]["ok"], 40, "{mode}: {r}");
        assert_eq!(r["errors"], 0, "{mode}: {r}");

        // A CA that did not sign this broker's certificate: cannot connect.
        let wrong = other.ca_path().display().to_string();
        let args = ["--mode", mode, "--mqtt-url", &url, "--mqtt-ca", &wrong];
        let out = bench(args.iter().map(|s| s.to_string()).collect()).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(69), "{mode}: {stderr}");
        assert!(stderr.contains("certificate"), "{mode}: {stderr}");
    }
    device.shutdown().await;
}
