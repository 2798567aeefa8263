//! One hot device cannot take the gateway's whole in-flight limit: past
//! `--max-in-flight-per-device` its calls get OVERLOADED (with the device
//! in ErrorInfo, and Retry-After over HTTP) while other devices are served.

mod common;

use common::{holding_methods, reason, req, soon, Broker, Harness};
use http::Method;
use tonic::Code;
use tonic_types::StatusExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_device_is_capped_and_others_are_served() {
    let h = Harness::start_with(Broker::Embedded, |c| c.max_in_flight_per_device = 2)
        .await
        .unwrap();
    let (handlers, gate, mut started) = holding_methods();
    let _hot = h.device_with(h.device_options("hot-1"), handlers).await;
    let _cool = h.device("cool-1").await;

    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = h.client.clone();
        held.push(tokio::spawn(async move {
            c.invoke(req("hot-1", "hold", b"h")).await
        }));
        soon("a held call reached the device", started.recv()).await;
    }
    let e = h
        .client
        .clone()
        .invoke(req("hot-1", "echo", b""))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert_eq!(reason(&e), "OVERLOADED");
    let info = e.get_details_error_info().unwrap();
    assert_eq!(
        info.metadata.get("device").map(String::as_str),
        Some("hot-1")
    );
    let url = format!("{}/v1/devices/hot-1/methods/echo", h.base());
    let r = common::http::request(Method::POST, &url, "", &[]).await;
    assert_eq!(r.status, 429);
    assert!(r.headers.contains_key("retry-after"));

    let ok = h.client.clone().invoke(req("cool-1", "echo", b"c")).await;
    assert_eq!(
        ok.expect("another device is served").into_inner().payload,
        b"c".as_slice()
    );

    gate.add_permits(2);
    for c in held {
        soon("a held call ends", c)
            .await
            .unwrap()
            .expect("answered");
    }
    let ok = h
        .client
        .clone()
        .invoke(req("hot-1", "echo", b"again"))
        .await;
    assert_eq!(
        ok.expect("slots freed").into_inner().payload,
        b"again".as_slice()
    );
    h.stop().await;
}
