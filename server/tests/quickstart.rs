//! The README's first command: `thingcall-server --demo N` with nothing
//! else, embedded broker included.

mod common;

use clap::Parser;
use common::{req, soon};
use thingcall_proto::v1::device_gateway_client::DeviceGatewayClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_gateway_with_embedded_broker_answers() {
    let cfg = thingcall_server::Config::parse_from([
        "thingcall-server",
        "--listen",
        "127.0.0.1:0",
        "--embedded-broker-listen",
        "127.0.0.1:0",
        "--demo",
        "3",
    ]);
    cfg.validate().unwrap();
    let gw = thingcall_server::start(cfg).await.expect("starts");
    soon("connected", gw.wait_connected()).await;
    soon("demo devices online", gw.wait_demo_online()).await;
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
