//! The Lambda adapter fed API Gateway REST (v1), HTTP API (v2) and ALB
//! event fixtures, against a Mosquitto started here with devices on both
//! contracts: every kind reaches the gateway's core, a warm function
//! keeps its one MQTT session, and a freeze between invocations (the
//! runtime's thread blocked, as Lambda stops the process) is noticed by
//! the next one, which checks the link before publishing.

use std::time::Duration;

use clap::Parser;
use lambda_http::Body;
use thingcall_device::{spawn_device, standard_methods, Contract, DeviceHandle, DeviceOptions};
use thingcall_lambda::{Function, LinkCheck};
use thingcall_server::Config;

/// The gateway's keep-alive here: a freeze shorter than it is verified,
/// a longer one reconnects.
const KEEP_ALIVE: Duration = Duration::from_secs(2);

fn event(name: &str) -> lambda_http::Request {
    let path = format!("{}/tests/events/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let json = std::fs::read_to_string(&path).expect("fixture");
    lambda_http::request::from_str(&json).unwrap_or_else(|e| panic!("{name}: {e}"))
}

async fn function(broker: &thingcall_testkit::Mosquitto) -> Function {
    let mut cfg = Config::parse_from(["thingcall-lambda"]);
    cfg.mqtt_url = Some(format!("mqtt://{}", broker.addr()));
    cfg.gateway_id = Some(format!("lambda-{}", std::process::id()));
    cfg.mqtt_keep_alive = KEEP_ALIVE;
    Function::start(cfg).await.expect("the function starts")
}

/// `pump-1` on the native contract and the sample's `Device001`.
async fn devices(broker: &thingcall_testkit::Mosquitto) -> Vec<DeviceHandle> {
    let native = DeviceOptions::new("pump-1", "127.0.0.1", broker.port());
    let seed = DeviceOptions {
        contract: Contract::Seed,
        ..DeviceOptions::new("Device001", "127.0.0.1", broker.port())
    };
    let devices = vec![
        spawn_device(native, standard_methods()),
        spawn_device(seed, standard_methods()),
    ];
    for d in &devices {
        tokio::time::timeout(Duration::from_secs(20), d.wait_online())
            .await
            .expect("device online");
    }
    devices
}

fn json(body: &Body) -> serde_json::Value {
    match body {
        Body::Text(t) => serde_json::from_str(t).expect("JSON"),
        other => panic!("not a text body: {other:?}"),
    }
}

fn metric(f: &Function, name: &str) -> String {
    let text = f.running().gateway.metrics_text();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ').map(str::to_owned))
        .unwrap_or_else(|| panic!("no {name}"))
}

async fn seen(f: &Function) {
    tokio::time::timeout(
        Duration::from_secs(20),
        f.running().gateway.wait_seen_online("pump-1"),
    )
    .await
    .expect("the gateway sees pump-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(mosquitto),
    ignore = "mosquitto not installed (apt-get install mosquitto)"
)]
async fn every_event_kind_reaches_the_core_over_one_warm_session() {
    let Some(broker) = thingcall_testkit::Mosquitto::start() else {
        return;
    };
    let _devices = devices(&broker).await;
    let f = function(&broker).await;
    seen(&f).await;

    // The sample's own caller: GET /invoke through a REST API stage.
    let r = f.handle(event("apigw_v1_seed_invoke")).await;
    assert_eq!(r.status(), 200, "{:?}", r.body());
    let v = json(r.body());
    assert_eq!(v["result"], "ok", "{v}");
    let answer = v["response"].as_str().expect("the device's answer");
    assert!(
        answer.starts_with("Your request was 'lower the window'"),
        "{answer}"
    );

    // HTTP API: Invoke.
    let r = f.handle(event("apigw_v2_invoke")).await;
    assert_eq!(r.status(), 200, "{:?}", r.body());
    let v = json(r.body());
    assert_eq!(
        (v["status"].as_i64(), v["payload"].as_str()),
        (Some(200), Some("open sesame"))
    );

    // ALB: ListDevices.
    let r = f.handle(event("alb_list_devices")).await;
    assert_eq!(r.status(), 200, "{:?}", r.body());
    let v = json(r.body());
    let ids: Vec<&str> = v["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["pump-1"]);

    // Warm: three events, one MQTT session, no freeze seen.
    assert_eq!(f.last_check(), LinkCheck::Fresh);
    assert_eq!(metric(&f, "thingcall_mqtt_reconnects_total"), "0");
    assert_eq!(metric(&f, "thingcall_invocations_in_flight"), "0");
    f.stop().await;
}

/// A current-thread runtime, so blocking its thread stops everything in
/// the function, MQTT session included, as Lambda's freeze does.
#[tokio::test(flavor = "current_thread")]
#[cfg_attr(
    not(mosquitto),
    ignore = "mosquitto not installed (apt-get install mosquitto)"
)]
async fn a_freeze_is_checked_before_the_next_call_publishes() {
    let Some(broker) = thingcall_testkit::Mosquitto::start() else {
        return;
    };
    let _devices = devices(&broker).await;
    let f = function(&broker).await;
    seen(&f).await;

    // Frozen for less than the keep-alive: one round trip, same session.
    std::thread::sleep(KEEP_ALIVE / 2 + Duration::from_millis(300));
    let r = f.handle(event("apigw_v2_invoke")).await;
    assert_eq!(r.status(), 200, "{:?}", r.body());
    assert_eq!(f.last_check(), LinkCheck::Verified);
    assert_eq!(metric(&f, "thingcall_mqtt_reconnects_total"), "0");

    // Longer than the keep-alive: reconnect first. The call still gets its
    // answer: pump-1's presence turns provisional and is confirmed by the
    // retained presence the new session brings.
    std::thread::sleep(KEEP_ALIVE + Duration::from_millis(500));
    let r = f.handle(event("apigw_v2_invoke")).await;
    assert_eq!(r.status(), 200, "{:?}", r.body());
    assert_eq!(f.last_check(), LinkCheck::Reconnected);
    assert_eq!(metric(&f, "thingcall_mqtt_reconnects_total"), "1");
    f.stop().await;
}

#[tokio::test]
async fn without_a_broker_url_the_function_refuses_to_start() {
    let mut cfg = Config::parse_from(["thingcall-lambda"]);
    cfg.mqtt_url = None;
    let err = Function::start(cfg).await.err().expect("refused");
    assert!(err.to_string().contains("THINGCALL_MQTT_URL"), "{err}");
}
