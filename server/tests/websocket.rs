//! MQTT over WebSockets (`ws://`): the gateway's one session and a device,
//! both on the embedded broker's WebSocket listener, and one call end to
//! end. (Mosquitto's websockets listener cannot start on this machine
//! kind, so only the embedded broker runs this.)

mod common;

use common::{req, soon};
use thingcall_device::{spawn_device, standard_methods, DeviceOptions};
use thingcall_proto::v1::device_gateway_client::DeviceGatewayClient;
use thingcall_server::broker::{EmbeddedBroker, WEBSOCKET_PATH};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_and_device_over_websockets() {
    let loopback = "127.0.0.1:0".parse().unwrap();
    let broker = EmbeddedBroker::start_with_websocket(loopback, Some(loopback), 1 << 20)
        .await
        .expect("embedded broker");
    let ws = broker.ws_addr().expect("a WebSocket listener");
    let mut cfg = common::gateway_config(broker.addr());
    cfg.mqtt_url = Some(format!("ws://{ws}{WEBSOCKET_PATH}"));
    cfg.validate().expect("ws:// is a broker URL");
    let gw = thingcall_server::start(cfg).await.expect("gateway");
    soon("session over WebSockets", gw.wait_connected()).await;

    let mut opts = DeviceOptions::new("ws-1", ws.ip().to_string(), ws.port());
    opts.websocket = Some(WEBSOCKET_PATH.to_owned());
    let d = spawn_device(opts, standard_methods());
    soon("device online over WebSockets", d.wait_online()).await;

    let mut c = DeviceGatewayClient::connect(format!("http://{}", gw.grpc_addr))
        .await
        .unwrap();
    let r = c
        .invoke(req("ws-1", "echo", b"over websockets"))
        .await
        .expect("call over WebSockets")
        .into_inner();
    assert_eq!(&r.payload[..], b"over websockets");
    d.shutdown().await;
    gw.stop().await;
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_websocket_path_never_connects() {
    let loopback = "127.0.0.1:0".parse().unwrap();
    let broker = EmbeddedBroker::start_with_websocket(loopback, Some(loopback), 1 << 20)
        .await
        .expect("embedded broker");
    let ws = broker.ws_addr().unwrap();
    let mut cfg = common::gateway_config(broker.addr());
    cfg.mqtt_url = Some(format!("ws://{ws}/elsewhere"));
    let gw = thingcall_server::start(cfg).await.expect("gateway");
    let mut tallies = gw.gateway.tallies();
    soon(
        "a refused WebSocket upgrade",
        tallies.wait_for(|t| t.connection_failures > 0),
    )
    .await
    .expect("gateway alive");
    assert!(!*gw.gateway.connected().borrow());
    gw.stop().await;
    broker.stop().await;
}
