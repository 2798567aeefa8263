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

/// `wss://`: the gateway trusting the broker's CA with --mqtt-ca, and a
/// device whose upgrade URL is SigV4-presigned at each connect (the
/// embedded broker ignores the query; AWS IoT Core would check it), one
/// call end to end over TLS WebSockets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_and_signed_device_over_tls_websockets() {
    use std::sync::Arc;
    use thingcall_proto::aws::{chain::Chain, iot::Signer};

    let dir = std::env::temp_dir().join(format!("tc-wss-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let certs = thingcall_testkit::TestCertificates::generate(&dir);
    let wss = std::net::SocketAddr::from(([127, 0, 0, 1], thingcall_testkit::free_loopback_port()));
    let broker = thingcall_server::broker::EmbeddedBroker::start_with_listeners(
        "127.0.0.1:0".parse().unwrap(),
        None,
        Some(thingcall_server::broker::WebSocketTls {
            addr: wss,
            cert: certs.cert.clone(),
            key: certs.key.clone(),
        }),
        1 << 20,
    )
    .await
    .expect("embedded broker");

    let mut cfg = common::gateway_config(broker.addr());
    cfg.mqtt_url = Some(format!("wss://{wss}{WEBSOCKET_PATH}"));
    cfg.broker.mqtt_ca = Some(certs.ca.clone());
    cfg.validate().expect("wss:// with --mqtt-ca");
    let gw = thingcall_server::start(cfg).await.expect("gateway");
    soon("session over TLS WebSockets", gw.wait_connected()).await;

    let env: thingcall_proto::aws::credentials::Env = Arc::new(|name| match name {
        "AWS_ACCESS_KEY_ID" => Some("AKIAIOSFODNN7EXAMPLE".into()),
        "AWS_SECRET_ACCESS_KEY" => Some("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into()),
        _ => None,
    });
    let mut opts = DeviceOptions::new("wss-1", wss.ip().to_string(), wss.port());
    opts.websocket = Some(WEBSOCKET_PATH.to_owned());
    opts.tls = Some(thingcall_proto::wire::tls::TlsFiles {
        ca: Some(certs.ca.clone()),
        ..Default::default()
    });
    opts.sigv4 = Some(Signer::new(
        "eu-west-1",
        Arc::new(Chain::resolve(env).unwrap()),
    ));
    let d = spawn_device(opts, standard_methods());
    soon("signed device online over TLS WebSockets", d.wait_online()).await;

    let mut c = DeviceGatewayClient::connect(format!("http://{}", gw.grpc_addr))
        .await
        .unwrap();
    let r = c
        .invoke(req("wss-1", "echo", b"over wss"))
        .await
        .expect("call over TLS WebSockets")
        .into_inner();
    assert_eq!(&r.payload[..], b"over wss");
    d.shutdown().await;
    gw.stop().await;
    broker.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--embedded-broker-ws-listen`: the binary's own broker also serves
/// MQTT over WebSockets, for devices that can only open WebSockets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_broker_serves_websockets_on_request() {
    let gw =
        common::process::GatewayProcess::start(&["--embedded-broker-ws-listen", "127.0.0.1:0"])
            .await;
    // The "listening" line names the WebSocket listener next to the others.
    let line = &gw.listening;
    let ws: std::net::SocketAddr = line["fields"]["mqtt_ws"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no ws address in {line}"));
    let url = thingcall_proto::wire::BrokerUrl::parse(&format!("ws://{ws}/mqtt")).unwrap();
    let mut c = DeviceGatewayClient::connect(gw.base()).await.unwrap();
    // The process logs "listening" before its MQTT session is up: the
    // device's presence reaching the gateway says the session is.
    let mut watch = common::watch_synced(&c, "ws-bin-1", false).await;
    let d = spawn_device(DeviceOptions::at("ws-bin-1", &url), standard_methods());
    soon("device online over WebSockets", d.wait_online()).await;
    common::wait_presence(&mut watch, "ws-bin-1", true).await;
    let r = c
        .invoke(req("ws-bin-1", "echo", b"via the flag"))
        .await
        .expect("call")
        .into_inner();
    assert_eq!(&r.payload[..], b"via the flag");
    d.shutdown().await;
}
