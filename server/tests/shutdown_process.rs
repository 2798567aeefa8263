//! The shutdown as an operator meets it: `thingcall-server` in its own
//! process gets SIGTERM with a call in flight, lets the call finish and
//! exits 0; a second signal during the drain exits at once. On both brokers.

mod common;

use std::sync::Arc;

use common::process::GatewayProcess;
use common::{holding_methods, req, secs_f, soon, wait_presence};
use thingcall_device::{spawn_device, DeviceHandle, DeviceOptions};
use thingcall_proto::v1::device_gateway_client::DeviceGatewayClient;
use thingcall_proto::v1::WatchDeviceRequest;
use tokio::sync::{mpsc, Semaphore};

/// The exit code of a second signal: 128 + SIGINT, as shells report it.
const EXIT_INTERRUPTED: i32 = 130;

struct Setup {
    gw: GatewayProcess,
    _mosquitto: Option<thingcall_testkit::Mosquitto>,
    _device: DeviceHandle,
    gate: Arc<Semaphore>,
    started: mpsc::UnboundedReceiver<()>,
    client: DeviceGatewayClient<tonic::transport::Channel>,
}

/// A gateway process (its embedded broker, or a Mosquitto started here) and
/// a device `held` whose `hold` method answers only when the test opens
/// its gate. `None` when the Mosquitto leg cannot run here.
async fn setup(mosquitto: bool, args: &[&str]) -> Option<Setup> {
    let broker = if mosquitto {
        Some(thingcall_testkit::Mosquitto::start()?)
    } else {
        None
    };
    let url = broker.as_ref().map(|m| format!("mqtt://{}", m.addr()));
    let mut all: Vec<&str> = args.to_vec();
    if let Some(url) = &url {
        all.extend(["--mqtt-url", url]);
    }
    let gw = GatewayProcess::start(&all).await;
    let client = DeviceGatewayClient::connect(gw.base())
        .await
        .expect("grpc connect");

    let (handlers, gate, started) = holding_methods();
    let mut watch = client
        .clone()
        .watch_device(WatchDeviceRequest {
            target: "held".into(),
            include_events: false,
        })
        .await
        .expect("watch")
        .into_inner();
    let opts = DeviceOptions::new("held", gw.mqtt.ip().to_string(), gw.mqtt.port());
    let device = spawn_device(opts, handlers);
    wait_presence(&mut watch, "held", true).await;
    Some(Setup {
        gw,
        _mosquitto: broker,
        _device: device,
        gate,
        started,
        client,
    })
}

async fn sigterm_lets_the_call_finish_then_exits_zero(mosquitto: bool) {
    let Some(mut s) = setup(mosquitto, &[]).await else {
        return;
    };
    let mut c = s.client.clone();
    let mut r = req("held", "hold", b"answer");
    r.timeout = secs_f(60.0);
    let call = tokio::spawn(async move { c.invoke(r).await });
    soon("the call reached the device", s.started.recv()).await;

    s.gw.signal("TERM");
    s.gw.wait_log("draining calls in flight").await;
    s.gate.add_permits(1);
    let answer = soon("the call in flight", call)
        .await
        .expect("task")
        .expect("answered during the drain")
        .into_inner();
    assert_eq!(&answer.payload[..], b"answer");
    let stopped = s.gw.wait_log("stopped").await;
    assert_eq!(stopped["fields"]["aborted"], 0);
    assert_eq!(stopped["fields"]["mqtt_disconnected"], true);
    let status = s.gw.exit_status().await;
    assert_eq!(status.code(), Some(0), "{status}");
}

async fn a_second_signal_exits_at_once(mosquitto: bool) {
    // A drain window far longer than the test's patience: only the second
    // signal can end the process in time.
    let Some(mut s) = setup(mosquitto, &["--drain-timeout", "10m"]).await else {
        return;
    };
    let mut c = s.client.clone();
    let mut r = req("held", "hold", b"never");
    r.timeout = secs_f(300.0);
    let call = tokio::spawn(async move { c.invoke(r).await });
    soon("the call reached the device", s.started.recv()).await;

    s.gw.signal("TERM");
    s.gw.wait_log("draining calls in flight").await;
    s.gw.signal("INT");
    let status = s.gw.exit_status().await;
    assert_eq!(status.code(), Some(EXIT_INTERRUPTED), "{status}");
    assert!(
        soon("the call's end", call).await.expect("task").is_err(),
        "the call was cut off with the process"
    );
    s.gate.add_permits(1);
}

mod embedded {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sigterm_lets_the_call_finish_then_exits_zero() {
        super::sigterm_lets_the_call_finish_then_exits_zero(false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_signal_exits_at_once() {
        super::a_second_signal_exits_at_once(false).await;
    }
}

mod mosquitto {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(mosquitto),
        ignore = "mosquitto not installed (apt-get install mosquitto)"
    )]
    async fn sigterm_lets_the_call_finish_then_exits_zero() {
        super::sigterm_lets_the_call_finish_then_exits_zero(true).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(mosquitto),
        ignore = "mosquitto not installed (apt-get install mosquitto)"
    )]
    async fn a_second_signal_exits_at_once() {
        super::a_second_signal_exits_at_once(true).await;
    }
}
