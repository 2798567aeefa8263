//! A half-open broker link (a NAT or load balancer silently dropping it)
//! is noticed by the keep-alive watchdog, with idle buffers and with
//! writes stuck on full ones: calls in flight fail with
//! BROKER_UNAVAILABLE instead of burning their deadline as DEVICE_TIMEOUT,
//! readiness turns NOT_SERVING while liveness stays SERVING, and the
//! gateway is back as soon as the link is.

mod common;

use std::time::{Duration, Instant};

use common::{holding_methods, req, secs_f, soon, Broker, Harness};
use thingcall_testkit::fault::Fault;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{health_check_response::ServingStatus, HealthCheckRequest};

/// The keep-alive of the acceptance test: 2 s, so a dead link is
/// declared 3 s after the broker was last heard from.
const KEEP_ALIVE: Duration = Duration::from_secs(2);

/// The calls' deadline: just past the watchdog's 3 s (1.5 x keep-alive,
/// counted from the last packet received, which is before the cut), and
/// far short of what rumqttc's own keep-alive (5 s at least, dead at the
/// second missed ping) would take, so a call fails as BROKER_UNAVAILABLE
/// only if the watchdog noticed the dead link within about 3 s, and as
/// DEVICE_TIMEOUT otherwise.
const CALL_TIMEOUT: f64 = 3.5;

async fn status(h: &Harness, service: &str) -> ServingStatus {
    let channel = tonic::transport::Channel::from_shared(h.base())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let r = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap();
    r.into_inner().status()
}

/// Waits on the health Watch of `service` until it reports `wanted`
/// (readiness follows the session in its own task).
async fn becomes(h: &Harness, service: &str, wanted: ServingStatus) {
    let channel = tonic::transport::Channel::from_shared(h.base())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut stream = HealthClient::new(channel)
        .watch(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap()
        .into_inner();
    soon("the health status", async {
        while let Some(r) = stream.message().await.unwrap() {
            if r.status() == wanted {
                return;
            }
        }
        panic!("the health watch ended");
    })
    .await;
}

async fn link_fault(kind: Broker, fault: Fault) {
    // The broker behind a proxy for the gateway; the device connects
    // straight to the broker, so it stays online throughout.
    let Some((h, proxy)) = Harness::start_behind_proxy(kind, |c| {
        c.mqtt_keep_alive = KEEP_ALIVE;
    })
    .await
    else {
        return;
    };
    let (handlers, gate, mut started) = holding_methods();
    let _d = h.device_with(h.device_options("link-1"), handlers).await;
    let service = "thingcall.v1.DeviceGateway";
    becomes(&h, service, ServingStatus::Serving).await;

    // A call in flight, held by the device.
    let mut c = h.client.clone();
    let mut held = req("link-1", "hold", b"x");
    held.timeout = secs_f(CALL_TIMEOUT);
    let in_flight = tokio::spawn(async move { c.invoke(held).await });
    soon("the call reached the device", started.recv()).await;

    proxy.set(fault);
    let cut = Instant::now();
    // With a stalled link, more requests pile up on the socket until its
    // writes block: the watchdog must not depend on them going out.
    let mut queued = Vec::new();
    if fault == Fault::Stall {
        for _ in 0..40 {
            let mut c = h.client.clone();
            let mut r = req("link-1", "echo", &[b'p'; 100 * 1024]);
            r.timeout = secs_f(CALL_TIMEOUT);
            queued.push(tokio::spawn(async move { c.invoke(r).await }));
        }
    }
    let err = soon("the call in flight fails", in_flight)
        .await
        .unwrap()
        .expect_err("no answer can come");
    eprintln!(
        "{fault:?}: the call in flight failed after {:?}",
        cut.elapsed()
    );
    assert_eq!(common::reason(&err), "BROKER_UNAVAILABLE", "{err:?}");
    for q in queued {
        let e = soon("a queued call fails", q).await.unwrap().unwrap_err();
        assert_eq!(common::reason(&e), "BROKER_UNAVAILABLE", "{e:?}");
    }
    // While the link is down: new calls fail at once, readiness is
    // NOT_SERVING, liveness SERVING.
    let e = h
        .client
        .clone()
        .invoke(req("link-1", "echo", b""))
        .await
        .unwrap_err();
    assert_eq!(common::reason(&e), "BROKER_UNAVAILABLE");
    becomes(&h, service, ServingStatus::NotServing).await;
    assert_eq!(status(&h, "").await, ServingStatus::Serving);
    // The same over HTTP, for load balancers that only speak HTTP/1.
    let ready = common::http::get(&format!("{}/readyz", h.base())).await;
    assert_eq!(ready.status, 503);
    assert_eq!(&ready.body[..], b"not ready: no broker session\n");
    let live = common::http::get(&format!("{}/livez", h.base())).await;
    assert_eq!(live.status, 200);

    // The link comes back: the session reconnects and calls go through.
    proxy.set(Fault::Pass);
    let mut up = h.gw().gateway.connected();
    soon("the session is back", up.wait_for(|c| *c))
        .await
        .unwrap();
    let ok = h
        .client
        .clone()
        .invoke(req("link-1", "echo", b"back"))
        .await;
    assert_eq!(
        ok.expect("a call after the link is back")
            .into_inner()
            .payload,
        b"back".as_slice()
    );
    becomes(&h, service, ServingStatus::Serving).await;
    let ready = common::http::get(&format!("{}/readyz", h.base())).await;
    assert_eq!(ready.status, 200);
    gate.add_permits(1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_blackholed_link_is_noticed() {
    link_fault(Broker::Embedded, Fault::Blackhole).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_stalled_link_with_full_buffers_is_noticed() {
    link_fault(Broker::Embedded, Fault::Stall).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(mosquitto),
    ignore = "mosquitto not installed (apt-get install mosquitto)"
)]
async fn mosquitto_blackholed_link_is_noticed() {
    link_fault(Broker::Mosquitto, Fault::Blackhole).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(mosquitto),
    ignore = "mosquitto not installed (apt-get install mosquitto)"
)]
async fn mosquitto_stalled_link_with_full_buffers_is_noticed() {
    link_fault(Broker::Mosquitto, Fault::Stall).await;
}
