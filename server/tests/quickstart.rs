//! The README's first command: `thingcall-server --demo N` with nothing
//! else, embedded broker included.

mod common;

use common::{req, soon};
use thingcall_proto::v1::device_gateway_client::DeviceGatewayClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_gateway_with_embedded_broker_answers() {
    // The same flags as the README's first command, on free ports.
    let gw = soon(
        "demo gateway up, devices online",
        thingcall_server::start_local_demo(3),
    )
    .await
    .expect("starts");
    let mut c = DeviceGatewayClient::connect(format!("http://{}", gw.grpc_addr))
        .await
        .unwrap();
    let r = c
        .invoke(req("demo-3", "echo", b"hi"))
        .await
        .expect("echo")
        .into_inner();
    assert_eq!(&r.payload[..], b"hi");
    let r = c
        .invoke(req("demo-1", "random", b""))
        .await
        .expect("random")
        .into_inner();
    let n: u32 = std::str::from_utf8(&r.payload)
        .unwrap()
        .trim()
        .parse()
        .expect("a number");
    assert!(n <= 100);
    gw.stop().await;
}

/// A gateway that takes larger payloads (`--max-payload 1MiB`) gets demo
/// devices that take them too: a 300 KiB echo comes back whole, where the
/// devices' own 256 KiB packet limit made the broker drop the request and
/// the call end `DEVICE_TIMEOUT`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_devices_take_the_gateways_largest_payload() {
    let gw = soon(
        "demo gateway up, devices online",
        thingcall_server::start_local_demo_with(1, &["--max-payload", "1MiB"]),
    )
    .await
    .expect("starts");
    let mut c = DeviceGatewayClient::connect(format!("http://{}", gw.grpc_addr))
        .await
        .unwrap()
        .max_decoding_message_size(2 << 20);
    let payload: Vec<u8> = (0..300 * 1024).map(|i| (i % 251) as u8).collect();
    let mut request = req("demo-1", "echo", &payload);
    request.timeout = Some(prost_types::Duration {
        seconds: 5,
        nanos: 0,
    });
    let r = c.invoke(request).await.expect("echo").into_inner();
    assert_eq!(r.payload.len(), payload.len());
    assert!(r.payload == payload, "the echo differs");
    gw.stop().await;
}
