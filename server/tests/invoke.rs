//! Invoke end to end against real brokers: answers, timeouts, presence,
//! broker loss. Each scenario runs on the embedded broker and on Mosquitto.

mod common;

use std::time::{Duration, Instant};

use common::{reason, req, secs_f, soon, wait_presence, Harness, SOON};
use thingcall_device::{standard_methods, Reply};
use thingcall_proto::v1::{GetDeviceRequest, InvokeRequest};
use tonic::Code;

broker_tests!(
    echo_round_trip,
    many_concurrent_calls_each_get_their_own_answer,
    timeout_says_whether_device_accepted,
    grpc_deadline_shorter_than_timeout_wins,
    unknown_device_is_not_found_at_once,
    offline_device_fails_fast,
    connect_timeout_waits_for_device_to_come_online,
    device_dropping_mid_call_is_disconnected,
    unannounced_method_is_not_supported,
    device_error_status_passes_through,
    broker_loss_fails_calls_and_gateway_recovers,
);

async fn echo_round_trip(h: Harness) {
    let _d = h.device("echo-1").await;
    let mut c = h.client.clone();
    let r = c
        .invoke(req("echo-1", "echo", b"hi"))
        .await
        .expect("invoke")
        .into_inner();
    assert_eq!(&r.payload[..], b"hi");
    assert_eq!(r.status, 200);
    assert!(
        uuid::Uuid::parse_str(&r.request_id).is_ok(),
        "request id is a UUID: {}",
        r.request_id
    );
    assert!(r.elapsed.is_some());
    assert!(r.device_time.is_some(), "device reported exec-us");
    h.stop().await;
}

async fn many_concurrent_calls_each_get_their_own_answer(h: Harness) {
    let mut devices = Vec::new();
    for i in 0..50 {
        devices.push(h.device(&format!("many-{i}")).await);
    }
    let calls = (0..2000).map(|n| {
        let mut c = h.client.clone();
        async move {
            let target = format!("many-{}", n % 50);
            let body = format!("call {n} for {target}");
            let mut r = req(&target, "echo", body.as_bytes());
            r.timeout = secs_f(60.0);
            let got = c
                .invoke(r)
                .await
                .unwrap_or_else(|e| panic!("call {n}: {e:?}"))
                .into_inner();
            assert_eq!(
                got.payload,
                body.as_bytes(),
                "call {n} got another call's answer"
            );
            got.request_id
        }
    });
    let ids: std::collections::HashSet<String> =
        futures::future::join_all(calls).await.into_iter().collect();
    assert_eq!(ids.len(), 2000, "every call has its own correlation id");
    assert_eq!(h.gw().gateway.in_flight(), 0, "table empty afterwards");
    h.stop().await;
}

async fn timeout_says_whether_device_accepted(h: Harness) {
    let _plain = h.device("slow-1").await;
    let mut opts = h.device_options("slow-ack");
    opts.ack = true;
    let _acking = h.device_with(opts, standard_methods()).await;
    let mut c = h.client.clone();
    for (target, accepted) in [("slow-1", "false"), ("slow-ack", "true")] {
        let mut r = req(target, "sleep", b"30000");
        r.timeout = secs_f(0.3);
        let started = Instant::now();
        let err = c.invoke(r).await.expect_err("must time out");
        assert_eq!(err.code(), Code::DeadlineExceeded);
        assert_eq!(reason(&err), "DEVICE_TIMEOUT");
        let info = tonic_types::StatusExt::get_details_error_info(&err).unwrap();
        assert_eq!(
            info.metadata.get("accepted").map(String::as_str),
            Some(accepted),
            "{target}"
        );
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(started.elapsed() < SOON);
    }
    assert_eq!(h.gw().gateway.in_flight(), 0);
    h.stop().await;
}

async fn grpc_deadline_shorter_than_timeout_wins(h: Harness) {
    let _d = h.device("slow-2").await;
    let mut c = h.client.clone();
    let mut r = tonic::Request::new(InvokeRequest {
        timeout: secs_f(60.0),
        ..req("slow-2", "sleep", b"30000")
    });
    r.set_timeout(Duration::from_millis(400));
    let started = Instant::now();
    let err = c.invoke(r).await.expect_err("deadline");
    // The caller's own timer fires first (tonic reports Cancelled); had the
    // gateway's fired first it would be DEADLINE_EXCEEDED.
    assert!(
        matches!(err.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "ended by the 400ms gRPC deadline, not the 60s timeout"
    );
    // The gateway cleans up the call whichever side noticed first.
    soon("table empty", h.gw().gateway.wait_idle()).await;
    assert_eq!(h.gw().gateway.in_flight(), 0);
    h.stop().await;
}

async fn unknown_device_is_not_found_at_once(h: Harness) {
    let mut c = h.client.clone();
    // A long deadline: waiting it out would end in DEVICE_TIMEOUT.
    let mut r = req("never-seen", "echo", b"");
    r.timeout = secs_f(60.0);
    let err = c.invoke(r).await.expect_err("no such device");
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(
        reason(&err),
        "DEVICE_NOT_FOUND",
        "a device that never announced presence is refused, not waited for"
    );
    // A seed-contract call is sent as before: its devices announce nothing.
    let mut r = req("never-seen", "echo", b"");
    r.contract = thingcall_proto::v1::Contract::Seed as i32;
    r.timeout = secs_f(0.2);
    let err = c.invoke(r).await.expect_err("nobody answers");
    assert_eq!(reason(&err), "DEVICE_TIMEOUT");
    h.stop().await;
}

async fn offline_device_fails_fast(h: Harness) {
    let d = h.device("off-1").await;
    let mut w = h.watch("off-1").await;
    d.shutdown().await;
    wait_presence(&mut w, "off-1", false).await;
    let mut c = h.client.clone();
    let started = Instant::now();
    let err = c
        .invoke(req("off-1", "echo", b"x"))
        .await
        .expect_err("offline");
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(reason(&err), "DEVICE_OFFLINE");
    let info = tonic_types::StatusExt::get_details_error_info(&err).unwrap();
    let id = info
        .metadata
        .get("requestId")
        .expect("the call's request id");
    uuid::Uuid::parse_str(id).expect("a UUID");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "at once, not after the 10s default timeout"
    );
    let dev = c
        .get_device(GetDeviceRequest {
            target: "off-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!dev.online);
    h.stop().await;
}

async fn connect_timeout_waits_for_device_to_come_online(h: Harness) {
    let d = h.device("late-1").await;
    let mut w = h.watch("late-1").await;
    d.shutdown().await;
    wait_presence(&mut w, "late-1", false).await;
    let mut c = h.client.clone();
    // Without connect_timeout: offline at once.
    assert_eq!(
        reason(&c.invoke(req("late-1", "echo", b"x")).await.unwrap_err()),
        "DEVICE_OFFLINE"
    );
    // With it: the call waits, the device comes back, the call succeeds.
    let mut r = req("late-1", "echo", b"waited");
    r.connect_timeout = secs_f(30.0);
    r.timeout = secs_f(60.0);
    let call = tokio::spawn(async move { c.invoke(r).await });
    let _back = h.device("late-1").await;
    let got = soon("call after device came online", call)
        .await
        .unwrap()
        .expect("succeeds")
        .into_inner();
    assert_eq!(&got.payload[..], b"waited");
    h.stop().await;
}

async fn device_dropping_mid_call_is_disconnected(h: Harness) {
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let started_tx = std::sync::Mutex::new(Some(started_tx));
    let handlers = standard_methods().method("hang", move |_req| {
        if let Some(tx) = started_tx.lock().unwrap().take() {
            let _ = tx.send(());
        }
        async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Reply::ok("never")
        }
    });
    let d = h.device_with(h.device_options("drop-1"), handlers).await;
    let mut c = h.client.clone();
    let mut r = req("drop-1", "hang", b"");
    r.timeout = secs_f(60.0);
    let call = tokio::spawn(async move {
        let t = Instant::now();
        (c.invoke(r).await, t.elapsed())
    });
    soon("handler running", started_rx).await.unwrap();
    d.kill(); // no DISCONNECT: the broker publishes the Will
    let (res, elapsed) = soon("call ends", call).await.unwrap();
    let err = res.expect_err("device went away");
    assert_eq!(err.code(), Code::Aborted);
    assert_eq!(reason(&err), "DEVICE_DISCONNECTED");
    assert!(
        elapsed < Duration::from_secs(30),
        "well before the 60s deadline"
    );
    h.stop().await;
}

async fn unannounced_method_is_not_supported(h: Harness) {
    let _d = h.device("meth-1").await;
    let mut c = h.client.clone();
    let err = c
        .invoke(req("meth-1", "launch-rockets", b""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    assert_eq!(reason(&err), "METHOD_NOT_SUPPORTED");
    h.stop().await;
}

async fn device_error_status_passes_through(h: Harness) {
    let _d = h.device("fail-1").await;
    let mut c = h.client.clone();
    let r = c
        .invoke(req("fail-1", "fail", b""))
        .await
        .expect("a device failure is not a gateway error")
        .into_inner();
    assert_eq!(r.status, 500);
    assert!(!r.payload.is_empty());
    h.stop().await;
}

async fn broker_loss_fails_calls_and_gateway_recovers(mut h: Harness) {
    // `hold` tells the test when the call reached the device; it never answers.
    let (handlers, _gate, mut started) = common::holding_methods();
    let d = h.device_with(h.device_options("bl-1"), handlers).await;
    let mut c = h.client.clone();
    let mut r = req("bl-1", "hold", b"");
    r.timeout = secs_f(60.0);
    let call = {
        let mut c = c.clone();
        tokio::spawn(async move {
            let t = Instant::now();
            (c.invoke(r).await, t.elapsed())
        })
    };
    soon("call reached the device", started.recv()).await;
    assert_eq!(h.gw().gateway.in_flight(), 1);
    let mut connected = h.gw().gateway.connected();
    h.kill_broker().await;
    let (res, elapsed) = soon("call fails", call).await.unwrap();
    assert_eq!(reason(&res.expect_err("broker gone")), "BROKER_UNAVAILABLE");
    assert!(
        elapsed < Duration::from_secs(30),
        "well before the 60s deadline"
    );
    soon("gateway notices", connected.wait_for(|c| !*c))
        .await
        .unwrap();
    let err = c.invoke(req("bl-1", "echo", b"x")).await.unwrap_err();
    assert_eq!(
        reason(&err),
        "BROKER_UNAVAILABLE",
        "new calls fail at once while disconnected"
    );

    h.restart_broker().await;
    soon("gateway reconnects", connected.wait_for(|c| *c))
        .await
        .unwrap();
    soon("device reconnects", d.wait_connection(2)).await;
    // Its presence may reach the gateway just after: wait for it.
    let mut back = req("bl-1", "echo", b"back");
    back.connect_timeout = secs_f(10.0);
    let got = soon("call after recovery", c.invoke(back))
        .await
        .expect("calls succeed again without restarting the gateway")
        .into_inner();
    assert_eq!(&got.payload[..], b"back");
    h.stop().await;
}
