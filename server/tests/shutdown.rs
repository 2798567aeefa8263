//! The ordered shutdown, step by step, on both brokers: health goes
//! NOT_SERVING, new calls get SHUTTING_DOWN (gRPC UNAVAILABLE, HTTP 503 with
//! Retry-After), calls in flight keep their answers within the drain window
//! and fail with SHUTTING_DOWN past it, watchers get a final `closing` event,
//! HTTP/2 connections get GOAWAY, and the MQTT session says goodbye.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{holding_methods, http, reason, req, secs_f, soon, Broker, Harness};
use thingcall_proto::v1::device_event::Kind;
use tokio::sync::{mpsc, Semaphore};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// Each scenario against each broker (the Mosquitto leg is skipped, loudly,
/// where Mosquitto is missing, and fails under CI).
macro_rules! both_brokers {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Broker::Embedded).await;
                }
            )*
        }
        mod mosquitto {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(not(mosquitto), ignore = "mosquitto not installed (apt-get install mosquitto)")]
                async fn $name() {
                    super::$name(super::Broker::Mosquitto).await;
                }
            )*
        }
    };
}

both_brokers!(
    calls_in_flight_finish_while_new_ones_are_refused,
    calls_past_the_drain_window_fail_with_shutting_down,
);

/// A device whose `hold` calls stay in flight until the test opens the gate.
async fn holding_device(
    h: &Harness,
    id: &str,
) -> (
    thingcall_device::DeviceHandle,
    Arc<Semaphore>,
    mpsc::UnboundedReceiver<()>,
) {
    let (handlers, gate, started) = holding_methods();
    let d = h.device_with(h.device_options(id), handlers).await;
    (d, gate, started)
}

async fn health_status(
    health: &mut tonic::Streaming<tonic_health::pb::HealthCheckResponse>,
) -> i32 {
    soon("health status", health.next())
        .await
        .expect("health stream open")
        .expect("health status")
        .status
}

async fn calls_in_flight_finish_while_new_ones_are_refused(kind: Broker) {
    let Some(mut h) = Harness::start_with(kind, |_| {}).await else {
        return;
    };
    let (_d, gate, mut started) = holding_device(&h, "drain-1").await;
    let core = h.gw().gateway.clone();
    let base = h.base();

    let channel = tonic::transport::Channel::from_shared(base.clone())
        .expect("URL")
        .connect()
        .await
        .expect("connect");
    let mut health = HealthClient::new(channel)
        .watch(HealthCheckRequest {
            service: "thingcall.v1.DeviceGateway".into(),
        })
        .await
        .expect("health watch")
        .into_inner();
    assert_eq!(
        health_status(&mut health).await,
        ServingStatus::Serving as i32
    );
    let mut watch = h.watch("drain-*").await;
    // A separate HTTP/2 connection, to see the server's GOAWAY close it.
    let tcp = tokio::net::TcpStream::connect(h.gw().grpc_addr)
        .await
        .expect("connect");
    let (_send, conn) =
        hyper::client::conn::http2::handshake::<_, _, http_body_util::Empty<bytes::Bytes>>(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tcp),
        )
        .await
        .expect("h2 handshake");
    let conn = tokio::spawn(conn);

    let mut c = h.client.clone();
    let mut r = req("drain-1", "hold", b"kept");
    r.timeout = secs_f(60.0);
    let in_flight = tokio::spawn(async move { c.invoke(r).await });
    soon("the call reached the device", started.recv()).await;

    let stop = tokio::spawn(h.gw.take().expect("running").stop());

    // 1. Health says NOT_SERVING.
    assert_eq!(
        health_status(&mut health).await,
        ServingStatus::NotServing as i32
    );
    // 2. New calls are refused with SHUTTING_DOWN, on gRPC and HTTP.
    soon("draining", async {
        let mut draining = core.draining();
        let _ = draining.wait_for(|d| *d).await;
    })
    .await;
    let ready = common::http::get(&format!("{base}/readyz")).await;
    assert_eq!(ready.status, 503);
    assert_eq!(&ready.body[..], b"not ready: shutting down\n");
    let refused = h
        .client
        .clone()
        .invoke(req("drain-1", "hold", b"new"))
        .await
        .expect_err("refused while draining");
    assert_eq!(refused.code(), Code::Unavailable);
    assert_eq!(reason(&refused), "SHUTTING_DOWN");
    let refused = http::post(&format!("{base}/v1/devices/drain-1/methods/hold"), "{}").await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.headers["retry-after"], "1");
    assert_eq!(refused.json()["error"]["reason"], "SHUTTING_DOWN");
    assert!(
        started.try_recv().is_err(),
        "no refused call reached the device"
    );
    assert!(
        !stop.is_finished(),
        "the gateway waits for its call in flight"
    );

    // 3. The call in flight finishes with its answer.
    gate.add_permits(1);
    let answer = soon("the call in flight", in_flight)
        .await
        .expect("task")
        .expect("answered, not failed")
        .into_inner();
    assert_eq!(&answer.payload[..], b"kept");

    // 4. Watchers get a final event and their stream ends; GOAWAY closes HTTP/2.
    let last = soon("closing event", async {
        loop {
            let ev = watch.next().await.expect("stream open").expect("event");
            if let Some(Kind::Closing(c)) = ev.kind {
                return c;
            }
        }
    })
    .await;
    assert_eq!(last.reason, "SHUTTING_DOWN");
    assert!(
        soon("watch end", watch.next()).await.is_none(),
        "the watch stream ends after closing"
    );
    soon("HTTP/2 connection closed by the server", conn)
        .await
        .expect("task")
        .expect("closed gracefully (GOAWAY), not broken");

    // 5. The MQTT session disconnected cleanly.
    let report = soon("stop", stop).await.expect("stop task");
    assert_eq!(report.in_flight, 1);
    assert_eq!(report.aborted, 0, "the call fit in the drain window");
    assert!(report.mqtt_disconnected, "DISCONNECT sent to the broker");
    h.stop().await;
}

async fn calls_past_the_drain_window_fail_with_shutting_down(kind: Broker) {
    let Some(mut h) = Harness::start_with(kind, |c| {
        c.drain_timeout = Duration::from_millis(300);
    })
    .await
    else {
        return;
    };
    let (_d, gate, mut started) = holding_device(&h, "stuck-1").await;
    let base = h.base();
    let mut c = h.client.clone();
    let mut r = req("stuck-1", "hold", b"never");
    r.timeout = secs_f(60.0);
    let grpc_call = tokio::spawn(async move { c.invoke(r).await });
    soon("the gRPC call reached the device", started.recv()).await;
    let http_call = tokio::spawn(async move {
        http::post(
            &format!("{base}/v1/devices/stuck-1/methods/hold"),
            r#"{"payload":"never","timeout":"60s"}"#,
        )
        .await
    });
    soon("the HTTP call reached the device", started.recv()).await;

    let report = soon("stop", h.gw.take().expect("running").stop()).await;
    assert_eq!(report.in_flight, 2);
    assert_eq!(report.aborted, 2, "both outlived the 300 ms drain window");
    let failed = grpc_call
        .await
        .expect("task")
        .expect_err("failed at the end of the window");
    assert_eq!(failed.code(), Code::Unavailable);
    assert_eq!(reason(&failed), "SHUTTING_DOWN");
    let failed = http_call.await.expect("task");
    assert_eq!(failed.status, 503);
    assert_eq!(failed.json()["error"]["reason"], "SHUTTING_DOWN");
    assert!(
        failed.json()["error"]["requestId"].is_string(),
        "a failed call names its request id"
    );
    gate.add_permits(2);
    h.stop().await;
}
