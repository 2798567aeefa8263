//! Presence across reconnects: a gateway restarted while its devices stay
//! connected rebuilds presence from the retained messages and calls work
//! at once; after a broker restart (short or long) a call gets through
//! within 2 s of the broker being up, and a call to a device that has not
//! come back fails with DEVICE_OFFLINE instead of burning its deadline on a
//! stale "online"; a device that flaps never leaves a call to time out; and
//! once its grace period ends, a device never confirmed is shown offline.
//! From outside the session (`Running::link`, as the Lambda adapter uses
//! it after a freeze) the link can be verified or redone, and what was
//! asked during an outage does not redo the session that follows it.

mod common;

use std::time::{Duration, Instant};

use common::{reason, req, secs_f, soon, wait_presence, Broker, Harness};
use thingcall_proto::v1::device_gateway_client::DeviceGatewayClient;
use thingcall_proto::v1::InvokeRequest;
use tonic::transport::Channel;

broker_tests!(
    gateway_restart_rebuilds_presence_from_retained,
    broker_restart_after_a_short_outage,
    broker_restart_after_a_long_outage,
    flapping_device_never_leaves_a_call_to_time_out,
    retained_presence_has_all_arrived_when_synced,
    link_control_verifies_and_redoes_the_link,
);

/// The line of `name` (with its labels) on the gateway's `/metrics`.
fn metric(h: &Harness, name: &str) -> u64 {
    let text = h.gw().gateway.metrics_text();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not on /metrics:\n{text}"))
}

/// `echo` on `device` with the deadline and connect timeout both ending at `by`.
fn echo_by(device: &str, payload: &[u8], by: Instant) -> InvokeRequest {
    let left = by
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(10));
    InvokeRequest {
        timeout: left.try_into().ok(),
        connect_timeout: left.try_into().ok(),
        ..req(device, "echo", payload)
    }
}

/// Calls `echo` until it succeeds, by `by` at the latest (the calls'
/// deadlines end there, so a late success is a failure). Between tries
/// it waits for the gateway's session, the only outage a call fails fast on.
async fn echo_succeeds_by(h: &Harness, device: &str, by: Instant) {
    let mut c = h.client.clone();
    let mut connected = h.gw().gateway.connected();
    loop {
        match c.invoke(echo_by(device, b"back", by)).await {
            Ok(r) => {
                assert_eq!(&r.into_inner().payload[..], b"back");
                return;
            }
            Err(e) if reason(&e) == "BROKER_UNAVAILABLE" && Instant::now() < by => {
                soon("gateway reconnects", connected.wait_for(|c| *c))
                    .await
                    .unwrap();
            }
            Err(e) => panic!("no call got through to {device} in time: {e:?}"),
        }
    }
}

async fn gateway_restart_rebuilds_presence_from_retained(mut h: Harness) {
    let _a = h.device("gr-a").await;
    let _b = h.device("gr-b").await;
    h.gw.take().unwrap().stop().await;

    // A new gateway process on the same broker; the devices never noticed.
    let gw = thingcall_server::start(common::gateway_config(h.mqtt))
        .await
        .unwrap();
    soon("new gateway MQTT session", gw.wait_connected()).await;
    h.client = DeviceGatewayClient::<Channel>::connect(format!("http://{}", gw.grpc_addr))
        .await
        .unwrap();
    h.gw = Some(gw);
    // At once: no watch, no retry. Presence still arriving is waited for.
    let mut c = h.client.clone();
    for device in ["gr-a", "gr-b"] {
        let got = c
            .invoke(req(device, "echo", device.as_bytes()))
            .await
            .unwrap_or_else(|e| panic!("{device}: {e:?}"))
            .into_inner();
        assert_eq!(&got.payload[..], device.as_bytes());
    }
    let err = c.invoke(req("gr-never", "echo", b"")).await.unwrap_err();
    assert_eq!(reason(&err), "DEVICE_NOT_FOUND");
    assert_eq!(metric(&h, "thingcall_presence_synced"), 1);
    assert_eq!(metric(&h, "thingcall_devices_online"), 2);
    h.stop().await;
}

/// Kills the broker with devices `stays` and `leaves` online, lets `leaves`
/// go for good while the broker is down, starts the broker again after
/// `outage` has run, and checks what calls get.
async fn broker_restart(mut h: Harness, outage: impl std::future::Future<Output = ()>) {
    let stays = h.device("br-stays").await;
    let leaves = h.device("br-leaves").await;
    let mut connected = h.gw().gateway.connected();
    let mut tallies = h.gw().gateway.tallies();
    h.kill_broker().await;
    soon("gateway notices", connected.wait_for(|c| !*c))
        .await
        .unwrap();
    leaves.kill();
    let failures = tallies.borrow_and_update().connection_failures;
    soon(
        "the gateway retries",
        tallies.wait_for(|t| t.connection_failures > failures),
    )
    .await
    .unwrap();
    outage.await;
    h.restart_broker().await;
    let up = Instant::now();

    // The broker kept no retained presence: `br-stays` counts once it
    // announces itself again, within 2 s of the broker being up.
    echo_succeeds_by(&h, "br-stays", up + Duration::from_secs(2)).await;
    assert!(stays.connections() >= 2);

    // `br-leaves` never comes back: refused as offline, with no connect
    // timeout, well before its 30 s deadline (which would be DEVICE_TIMEOUT).
    let mut c = h.client.clone();
    let mut r = req("br-leaves", "echo", b"");
    r.timeout = secs_f(30.0);
    let err = c.invoke(r).await.expect_err("gone");
    assert_eq!(reason(&err), "DEVICE_OFFLINE");
    // A killed Mosquitto sent no Will, so the gateway knew `br-leaves`
    // online until the reconnect; the embedded broker, stopping, sends the
    // devices' Wills first.
    if h.kind() == Broker::Mosquitto {
        assert!(metric(&h, "thingcall_presence_waits_total{outcome=\"offline\"}") >= 1);
    }
    h.stop().await;
}

async fn broker_restart_after_a_short_outage(h: Harness) {
    broker_restart(h, async {}).await;
}

async fn broker_restart_after_a_long_outage(h: Harness) {
    // Long enough for the gateway's reconnect backoff to reach its cap
    // (--mqtt-reconnect-max, 1 s): five more failed attempts at least.
    let mut tallies = h.gw().gateway.tallies();
    let from = tallies.borrow_and_update().connection_failures;
    let outage = async move {
        soon(
            "the reconnect backoff reaches its cap",
            tallies.wait_for(|t| t.connection_failures >= from + 6),
        )
        .await
        .unwrap();
    };
    broker_restart(h, outage).await;
}

async fn flapping_device_never_leaves_a_call_to_time_out(h: Harness) {
    let d = h.device("flap-1").await;
    let mut c = h.client.clone();
    let mut outcomes = std::collections::BTreeMap::<String, u32>::new();
    for round in 0..5u64 {
        let before = d.connections();
        // Away for 20 ms each time, with calls going out all along.
        let reboot = {
            let mut c = c.clone();
            // The gateway may not have seen the last comeback yet: wait for it.
            let mut r = req("flap-1", "reboot", b"20");
            r.connect_timeout = secs_f(10.0);
            tokio::spawn(async move { c.invoke(r).await })
        };
        let mut calls = Vec::new();
        for i in 0..20 {
            let mut c = c.clone();
            let mut r = req("flap-1", "echo", format!("{round}-{i}").as_bytes());
            r.timeout = secs_f(20.0);
            calls.push(tokio::spawn(async move { c.invoke(r).await }));
        }
        let rebooted = soon("reboot answered", reboot).await.unwrap();
        assert!(rebooted.is_ok(), "reboot: {rebooted:?}");
        for call in calls {
            let outcome = match soon("call ends", call).await.unwrap() {
                Ok(_) => "OK".to_string(),
                Err(e) => reason(&e),
            };
            *outcomes.entry(outcome).or_default() += 1;
        }
        soon("device back", d.wait_connection(before + 1)).await;
    }
    let bad: Vec<_> = outcomes
        .keys()
        .filter(|o| !["OK", "DEVICE_OFFLINE", "DEVICE_DISCONNECTED"].contains(&o.as_str()))
        .collect();
    assert!(bad.is_empty(), "outcomes while flapping: {outcomes:?}");
    // Settled: callable (once the gateway has its presence).
    let mut r = req("flap-1", "echo", b"settled");
    r.connect_timeout = secs_f(10.0);
    c.invoke(r).await.expect("callable once settled");
    h.stop().await;
}

/// With a short grace, a device known before a reconnect whose retained
/// presence the broker lost, and which does not come back, turns offline
/// for watchers when the grace ends.
async fn grace_end_shows_unconfirmed_devices_offline(kind: Broker) {
    let Some(mut h) = Harness::start_with(kind, |c| {
        c.presence_grace = Duration::from_millis(300);
    })
    .await
    else {
        return;
    };
    let d = h.device("ge-1").await;
    let mut w = h.watch("ge-1").await;
    let mut connected = h.gw().gateway.connected();
    h.kill_broker().await;
    soon("gateway notices", connected.wait_for(|c| !*c))
        .await
        .unwrap();
    d.kill();
    h.restart_broker().await;
    wait_presence(&mut w, "ge-1", false).await;
    assert_eq!(metric(&h, "thingcall_devices_unconfirmed"), 0);
    assert_eq!(metric(&h, "thingcall_devices_online"), 0);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_grace_end_shows_unconfirmed_devices_offline() {
    grace_end_shows_unconfirmed_devices_offline(Broker::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(mosquitto), ignore = "mosquitto not installed")]
async fn mosquitto_grace_end_shows_unconfirmed_devices_offline() {
    grace_end_shows_unconfirmed_devices_offline(Broker::Mosquitto).await;
}

/// `--call-unannounced`: a device that never announced presence is called
/// and waited for, as before presence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_unannounced_sends_calls_to_unknown_devices() {
    let h = Harness::start_with(Broker::Embedded, |c| c.call_unannounced = true)
        .await
        .unwrap();
    let mut c = h.client.clone();
    let mut r = req("never-seen", "echo", b"");
    r.timeout = secs_f(0.2);
    let err = c.invoke(r).await.expect_err("nobody answers");
    assert_eq!(reason(&err), "DEVICE_TIMEOUT");
    h.stop().await;
}

/// Without it, a call to a device not seen yet waits up to its connect
/// timeout for the device to announce itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_device_is_waited_for_up_to_the_connect_timeout() {
    let h = Harness::start(Broker::Embedded).await.unwrap();
    let mut c = h.client.clone();
    let mut r = req("late-1", "echo", b"hi");
    r.timeout = secs_f(30.0);
    r.connect_timeout = secs_f(20.0);
    let call = tokio::spawn(async move { c.invoke(r).await });
    let _d = h.device("late-1").await;
    let got = soon("the call", call)
        .await
        .unwrap()
        .expect("called once seen");
    assert_eq!(&got.into_inner().payload[..], b"hi");
    h.stop().await;
}

/// Devices whose retained presence says online, published by a loader (no
/// device behind them): `n` of them, ids `{prefix}{i}`.
async fn load_retained_presence(h: &Harness, prefix: &str, n: usize) {
    use rumqttc::v5::mqttbytes::v5::Packet;
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::{AsyncClient, Event, MqttOptions};
    let opts = MqttOptions::new("loader", h.mqtt.ip().to_string(), h.mqtt.port());
    let (client, mut events) = AsyncClient::new(opts, n + 8);
    let doc = thingcall_proto::wire::Presence {
        online: true,
        session: "loaded".into(),
        methods: vec![],
    }
    .to_json();
    for i in 0..n {
        let topic = format!("thingcall/devices/{prefix}{i}/presence");
        client
            .publish(topic, QoS::AtLeastOnce, true, doc.clone())
            .await
            .unwrap();
    }
    let mut acked = 0;
    soon("retained presence stored", async {
        while acked < n {
            if let Event::Incoming(Packet::PubAck(_)) = events.poll().await.expect("loader") {
                acked += 1;
            }
        }
    })
    .await;
    let _ = client.disconnect().await;
}

/// The sync SUBACK comes after every retained presence: a fresh gateway
/// calls each of 300 loaded devices (which time out, nobody being behind
/// them) and refuses none of them as never seen.
async fn retained_presence_has_all_arrived_when_synced(mut h: Harness) {
    const N: usize = 300;
    load_retained_presence(&h, "ld-", N).await;
    h.gw.take().unwrap().stop().await;
    let gw = thingcall_server::start(common::gateway_config(h.mqtt))
        .await
        .unwrap();
    soon("new gateway MQTT session", gw.wait_connected()).await;
    let client = DeviceGatewayClient::<Channel>::connect(format!("http://{}", gw.grpc_addr))
        .await
        .unwrap();
    h.gw = Some(gw);
    let calls: Vec<_> = (0..N)
        .rev()
        .map(|i| {
            let mut c = client.clone();
            let mut r = req(&format!("ld-{i}"), "echo", b"");
            r.timeout = secs_f(0.3);
            tokio::spawn(async move { c.invoke(r).await })
        })
        .collect();
    for call in calls {
        let err = soon("call ends", call)
            .await
            .unwrap()
            .expect_err("no device");
        assert_eq!(
            reason(&err),
            "DEVICE_TIMEOUT",
            "called, not refused as unknown"
        );
    }
    assert_eq!(metric(&h, "thingcall_devices_online"), N as u64);
    h.stop().await;
}

async fn link_control_verifies_and_redoes_the_link(mut h: Harness) {
    let link = h.gw().link.clone();
    soon("a round trip", link.verify())
        .await
        .expect("the link is up");
    assert_eq!(metric(&h, "thingcall_mqtt_reconnects_total"), 0);

    // Redone on request: down, then up on a new session.
    let mut connected = h.gw().gateway.connected();
    link.reconnect();
    soon("the old session ends", connected.wait_for(|c| !*c))
        .await
        .unwrap();
    soon("a new session", connected.wait_for(|c| *c))
        .await
        .unwrap();
    assert_eq!(metric(&h, "thingcall_mqtt_reconnects_total"), 1);
    soon("a round trip", link.verify()).await.expect("up again");

    // Asked during an outage: the verification fails (no link), and the
    // reconnect request does not redo the session that comes once the
    // broker is back.
    let mut tallies = h.gw().gateway.tallies();
    h.kill_broker().await;
    soon("gateway notices", connected.wait_for(|c| !*c))
        .await
        .unwrap();
    let failures = tallies.borrow_and_update().connection_failures;
    soon(
        "the gateway retries",
        tallies.wait_for(|t| t.connection_failures > failures),
    )
    .await
    .unwrap();
    assert!(link.verify().await.is_err(), "no session, no round trip");
    link.reconnect();
    h.restart_broker().await;
    soon("the session is back", connected.wait_for(|c| *c))
        .await
        .unwrap();
    soon("a round trip", link.verify())
        .await
        .expect("the session after the outage answers");
    assert_eq!(metric(&h, "thingcall_mqtt_reconnects_total"), 2);
    h.stop().await;
}
