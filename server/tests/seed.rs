//! Compatibility with the AWS sample: its `GET /invoke` API and its MQTT
//! topic contract, against a seed-contract device on a real broker.

mod common;

use common::http::get;
use common::{req, Harness};
use thingcall_device::{spawn_device, standard_methods, Contract};
use thingcall_proto::v1::Contract as ApiContract;

broker_tests!(
    invoke_answers_like_the_sample,
    invoke_timeout_and_invalid_shapes,
    grpc_calls_a_seed_device
);

async fn seed_device(h: &Harness, id: &str) -> thingcall_device::DeviceHandle {
    let mut opts = h.device_options(id);
    opts.contract = Contract::Seed;
    let d = spawn_device(opts, standard_methods());
    common::soon("seed device subscribed", d.wait_online()).await;
    d
}

async fn invoke_answers_like_the_sample(h: Harness) {
    let _d = seed_device(&h, "Device001").await;
    let url = format!(
        "{}/invoke?request=my_request_1&method=reqid-ABCD&target=Device001&timeout=3",
        h.base()
    );
    let r = get(&url).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["result"], "ok");
    let elapsed = v["elapsed"]
        .as_str()
        .expect("elapsed is a string, as in the sample");
    assert!(
        elapsed.parse::<u64>().is_ok(),
        "elapsed is whole milliseconds: {elapsed}"
    );
    let response = v["response"].as_str().unwrap();
    assert!(
        response.starts_with("Your request was 'my_request_1'. Some random response: '"),
        "{response}"
    );
    // Without timeout: the sample's default applies, and the call still works.
    let r = get(&format!(
        "{}/invoke?request=again&method=echo&target=Device001",
        h.base()
    ))
    .await;
    assert_eq!(r.json()["response"], "again");
    h.stop().await;
}

async fn invoke_timeout_and_invalid_shapes(h: Harness) {
    let r = get(&format!(
        "{}/invoke?request=x&method=reqid-ABCD&target=NoSuchDevice&timeout=1",
        h.base()
    ))
    .await;
    assert_eq!(r.status, 504);
    let v = r.json();
    assert_eq!(v["result"], "timeout");
    let elapsed: u64 = v["elapsed"].as_str().unwrap().parse().unwrap();
    assert!(elapsed >= 1000, "waited the timeout: {elapsed}");
    assert!(v.get("response").is_none());

    for query in [
        "method=m&target=t",
        "request=x&target=t",
        "request=x&method=m",
        "request=x&method=m&target=t&timeout=0",
        "request=x&method=m&target=t&timeout=61",
        "request=x&method=m&target=t&timeout=soon",
    ] {
        let r = get(&format!("{}/invoke?{query}", h.base())).await;
        assert_eq!(r.status, 400, "{query}");
        let v = r.json();
        assert_eq!(v["result"], "invalid_parameters", "{query}");
        assert!(
            v["response"].as_str().is_some_and(|m| !m.is_empty()),
            "{query}"
        );
    }
    h.stop().await;
}

async fn grpc_calls_a_seed_device(h: Harness) {
    let _d = seed_device(&h, "Device002").await;
    let mut c = h.client.clone();
    let mut r = req("Device002", "echo", b"hello seed");
    r.contract = ApiContract::Seed as i32;
    let got = c.invoke(r).await.expect("seed call over gRPC").into_inner();
    assert_eq!(got.status, 200);
    assert_eq!(got.content_type, "application/json");
    assert_eq!(
        &got.payload[..],
        br#""hello seed""#,
        "the ack's response, as JSON"
    );
    h.stop().await;
}
