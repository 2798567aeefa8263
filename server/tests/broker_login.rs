//! The gateway and a device log in to a Mosquitto that refuses anonymous
//! clients (`password_file`): the right login serves calls, a wrong one
//! never connects, and its calls fail with BROKER_UNAVAILABLE at once.

mod common;

use std::path::PathBuf;

use common::{gateway_config, reason, req, soon, wait_presence};
use thingcall_device::{spawn_device, standard_methods, DeviceOptions};
use thingcall_proto::v1::device_gateway_client::DeviceGatewayClient;
use thingcall_proto::v1::WatchDeviceRequest;
use thingcall_proto::wire::{Credentials, Secret};

const USER: &str = "thingcall";
const PASSWORD: &str = "correct horse battery staple";

/// A file holding a password and a line break, as a mounted secret would;
/// removed when dropped.
struct PasswordFile(PathBuf);

impl Drop for PasswordFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A gateway configuration logging in to `broker` as [`USER`] with
/// `password`, and the file that holds it (keep it until the gateway runs).
fn login_config(
    broker: &thingcall_testkit::Mosquitto,
    name: &str,
    password: &str,
) -> (thingcall_server::Config, PasswordFile) {
    let path = std::env::temp_dir().join(format!("tc-login-{}-{name}", std::process::id()));
    std::fs::write(&path, format!("{password}\n")).expect("write password file");
    let mut cfg = gateway_config(broker.addr());
    cfg.broker.mqtt_username = Some(USER.into());
    cfg.broker.mqtt_password_file = Some(path.clone());
    (cfg, PasswordFile(path))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(mosquitto),
    ignore = "mosquitto not installed (apt-get install mosquitto)"
)]
async fn gateway_and_device_log_in_with_a_password() {
    let Some(broker) = thingcall_testkit::Mosquitto::start_with_password(USER, PASSWORD) else {
        return;
    };
    let (cfg, _file) = login_config(&broker, "ok", PASSWORD);
    cfg.validate().expect("valid configuration");
    let gw = thingcall_server::start(cfg).await.expect("gateway starts");
    soon("gateway logged in", gw.wait_connected()).await;

    let mut client = DeviceGatewayClient::connect(format!("http://{}", gw.grpc_addr))
        .await
        .expect("grpc connect");
    let mut watch = client
        .watch_device(WatchDeviceRequest {
            target: "login-1".into(),
            include_events: false,
        })
        .await
        .expect("watch")
        .into_inner();
    let mut opts = DeviceOptions::new("login-1", "127.0.0.1", broker.port());
    opts.credentials = Some(Credentials {
        username: USER.into(),
        password: Secret::new(PASSWORD),
    });
    let device = spawn_device(opts, standard_methods());
    wait_presence(&mut watch, "login-1", true).await;
    let r = client
        .invoke(req("login-1", "echo", b"logged in"))
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(&r.payload[..], b"logged in");
    device.shutdown().await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(mosquitto),
    ignore = "mosquitto not installed (apt-get install mosquitto)"
)]
async fn a_wrong_password_never_connects() {
    let Some(broker) = thingcall_testkit::Mosquitto::start_with_password(USER, PASSWORD) else {
        return;
    };
    let (cfg, _file) = login_config(&broker, "wrong", "not the password");
    let gw = thingcall_server::start(cfg)
        .await
        .expect("gateway starts and keeps trying");
    let mut tallies = gw.gateway.tallies();
    soon(
        "a refused login",
        tallies.wait_for(|t| t.connection_failures > 0),
    )
    .await
    .expect("gateway alive");
    assert_eq!(tallies.borrow().sessions_up, 0, "never logged in");
    let mut client = DeviceGatewayClient::connect(format!("http://{}", gw.grpc_addr))
        .await
        .expect("grpc connect");
    let err = client
        .invoke(req("login-2", "echo", b"x"))
        .await
        .expect_err("no session");
    assert_eq!(reason(&err), "BROKER_UNAVAILABLE");
    gw.stop().await;
}
