//! Idempotency keys end to end: retries with one key run the device once,
//! whether they arrive while the call runs or after it ended, whichever
//! surface they use. Each scenario runs on the embedded broker and on
//! Mosquitto.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::http::post;
use common::{reason, req, secs_f, soon, wait_presence, Harness};
use thingcall_device::{standard_methods, DeviceHandle, Reply};
use thingcall_proto::v1::InvokeRequest;
use tokio::sync::{mpsc, watch};
use tonic::Code;

broker_tests!(
    retries_with_one_key_run_the_device_once,
    a_key_reused_for_another_request_is_refused,
    a_caller_going_away_does_not_cancel_its_keyed_call,
    a_refusal_before_publishing_leaves_the_key_free,
    http_retries_with_one_key_get_one_answer,
);

/// A device whose `open` counts its executions, says when one starts, and
/// answers only once the gate is open.
struct Door {
    _device: DeviceHandle,
    runs: Arc<AtomicUsize>,
    started: mpsc::UnboundedReceiver<usize>,
    gate: watch::Sender<bool>,
}

async fn door(h: &Harness, id: &str) -> Door {
    let runs = Arc::new(AtomicUsize::new(0));
    let (started_tx, started) = mpsc::unbounded_channel();
    let (gate, gate_rx) = watch::channel(false);
    let counter = runs.clone();
    let handlers = standard_methods().method("open", move |r| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        let _ = started_tx.send(n);
        let mut gate = gate_rx.clone();
        async move {
            let _ = gate.wait_for(|open| *open).await;
            let mut body = format!("opened by run {n}: ").into_bytes();
            body.extend_from_slice(&r.payload);
            Reply::ok(body)
        }
    });
    let device = h.device_with(h.device_options(id), handlers).await;
    Door {
        _device: device,
        runs,
        started,
        gate,
    }
}

fn keyed(target: &str, key: &str, payload: &[u8]) -> InvokeRequest {
    let mut r = req(target, "open", payload);
    r.idempotency_key = key.into();
    r.timeout = secs_f(30.0);
    r
}

/// The gateway's count of calls answered through their key.
async fn wait_replays(h: &Harness, n: u64) {
    let mut replays = h.gw().gateway.idempotent_replays();
    soon("idempotent replays counted", replays.wait_for(|r| *r >= n))
        .await
        .expect("gateway alive");
    let want = format!("thingcall_idempotent_replays_total {n}\n");
    assert!(
        h.gw().gateway.metrics_text().contains(&want),
        "/metrics shows {n} replays"
    );
}

async fn retries_with_one_key_run_the_device_once(h: Harness) {
    let mut d = door(&h, "door-1").await;
    let mut c = h.client.clone();
    let first = tokio::spawn({
        let mut c = c.clone();
        async move { c.invoke(keyed("door-1", "k-1", b"up")).await }
    });
    soon("device runs the call", d.started.recv()).await;
    // A retry while the call runs joins it instead of publishing again.
    let second = tokio::spawn({
        let mut c = c.clone();
        async move { c.invoke(keyed("door-1", "k-1", b"up")).await }
    });
    wait_replays(&h, 1).await;
    d.gate.send_replace(true);
    let first = soon("first call", first)
        .await
        .unwrap()
        .expect("ok")
        .into_inner();
    let second = soon("second call", second)
        .await
        .unwrap()
        .expect("ok")
        .into_inner();
    assert_eq!(&first.payload[..], b"opened by run 1: up");
    assert_eq!(
        first.payload, second.payload,
        "the joiner gets the same answer"
    );
    assert_eq!(
        first.request_id, second.request_id,
        "and the same request id"
    );

    // After it ended, a retry gets the kept answer.
    let third = c
        .invoke(keyed("door-1", "k-1", b"up"))
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(third.payload, first.payload);
    assert_eq!(third.request_id, first.request_id);
    assert_eq!(
        d.runs.load(Ordering::SeqCst),
        1,
        "the device ran the method once"
    );

    // Another key is another call; a call without a key is never de-duplicated.
    let other = c
        .invoke(keyed("door-1", "k-2", b"up"))
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(&other.payload[..], b"opened by run 2: up");
    assert_ne!(other.request_id, first.request_id);
    for _ in 0..2 {
        let mut r = req("door-1", "open", b"up");
        r.timeout = secs_f(30.0);
        c.invoke(r).await.expect("ok");
    }
    assert_eq!(d.runs.load(Ordering::SeqCst), 4);
    assert!(h
        .gw()
        .gateway
        .metrics_text()
        .contains("thingcall_invocations_total{method=\"open\",outcome=\"OK\"} 6\n"));
    h.stop().await;
}

async fn a_key_reused_for_another_request_is_refused(h: Harness) {
    let d = door(&h, "door-2").await;
    d.gate.send_replace(true);
    let mut c = h.client.clone();
    c.invoke(keyed("door-2", "k", b"up")).await.expect("ok");
    for r in [
        keyed("door-2", "k", b"down"),
        InvokeRequest {
            method: "echo".into(),
            ..keyed("door-2", "k", b"up")
        },
    ] {
        let err = c.invoke(r).await.expect_err("refused");
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(reason(&err), "INVALID_ARGUMENT");
        assert!(
            err.message().contains("idempotency_key"),
            "{}",
            err.message()
        );
    }
    assert_eq!(d.runs.load(Ordering::SeqCst), 1, "nothing was published");
    // Timeout and metadata may change between retries.
    let mut retry = keyed("door-2", "k", b"up");
    retry.timeout = secs_f(5.0);
    retry.metadata.insert("attempt".into(), "2".into());
    let got = c.invoke(retry).await.expect("replayed").into_inner();
    assert_eq!(&got.payload[..], b"opened by run 1: up");
    // The same key for another device is that device's own.
    let other = door(&h, "door-3").await;
    other.gate.send_replace(true);
    c.invoke(keyed("door-3", "k", b"down")).await.expect("ok");
    assert_eq!(other.runs.load(Ordering::SeqCst), 1);
    h.stop().await;
}

async fn a_caller_going_away_does_not_cancel_its_keyed_call(h: Harness) {
    let mut d = door(&h, "door-4").await;
    let c = h.client.clone();
    let first = tokio::spawn({
        let mut c = c.clone();
        async move { c.invoke(keyed("door-4", "k", b"up")).await }
    });
    soon("device runs the call", d.started.recv()).await;
    // The caller gives up (its HTTP/2 stream is reset)...
    first.abort();
    let _ = first.await;
    // ...and retries: the call it started is still running, and the retry joins it.
    let retry = tokio::spawn({
        let mut c = c.clone();
        async move { c.invoke(keyed("door-4", "k", b"up")).await }
    });
    wait_replays(&h, 1).await;
    assert_eq!(
        h.gw().gateway.in_flight(),
        1,
        "the first call is still in flight"
    );
    d.gate.send_replace(true);
    let got = soon("retry", retry)
        .await
        .unwrap()
        .expect("ok")
        .into_inner();
    assert_eq!(&got.payload[..], b"opened by run 1: up");
    assert_eq!(d.runs.load(Ordering::SeqCst), 1);
    h.stop().await;
}

async fn a_refusal_before_publishing_leaves_the_key_free(h: Harness) {
    let d = h.device("door-5").await;
    let mut w = h.watch("door-5").await;
    d.shutdown().await;
    wait_presence(&mut w, "door-5", false).await;
    let mut c = h.client.clone();
    let err = c
        .invoke(keyed("door-5", "k", b"up"))
        .await
        .expect_err("offline");
    assert_eq!(reason(&err), "DEVICE_OFFLINE");
    // The device never saw the call, so a retry with the key runs it.
    let d = door(&h, "door-5").await;
    d.gate.send_replace(true);
    let got = c
        .invoke(keyed("door-5", "k", b"up"))
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(&got.payload[..], b"opened by run 1: up");
    assert_eq!(d.runs.load(Ordering::SeqCst), 1);
    h.stop().await;
}

async fn http_retries_with_one_key_get_one_answer(h: Harness) {
    let d = door(&h, "door-6").await;
    d.gate.send_replace(true);
    let url = format!("{}/v1/devices/door-6/methods/open", h.base());
    let body = r#"{"payload": {"to": 30}, "idempotencyKey": "k-http"}"#;
    let first = post(&url, body).await;
    assert_eq!(
        first.status,
        200,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    let again = post(&url, body).await;
    assert_eq!(again.status, 200);
    let (first, again) = (first.json(), again.json());
    assert!(first["requestId"].is_string(), "{first}");
    assert_eq!(first["requestId"], again["requestId"]);
    assert!(first["payloadBase64"].is_string(), "{first}");
    assert_eq!(first["payloadBase64"], again["payloadBase64"]);
    assert_eq!(d.runs.load(Ordering::SeqCst), 1);
    let changed = post(
        &url,
        r#"{"payload": {"to": 0}, "idempotencyKey": "k-http"}"#,
    )
    .await;
    assert_eq!(changed.status, 400);
    assert_eq!(changed.json()["error"]["reason"], "INVALID_ARGUMENT");
    assert_eq!(d.runs.load(Ordering::SeqCst), 1);
    h.stop().await;
}
