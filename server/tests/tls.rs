//! The gateway's one session over TLS (`mqtts://` and `--mqtt-ca`) to a
//! Mosquitto TLS listener with a certificate made for this run.

mod common;

use common::{req, soon};
use thingcall_device::{spawn_device, standard_methods, DeviceOptions};
use thingcall_proto::v1::device_gateway_client::DeviceGatewayClient;

/// A gateway configuration for `broker`'s TLS listener, trusting the CA of
/// `ca_of`.
fn tls_config(
    broker: &thingcall_testkit::Mosquitto,
    ca_of: &thingcall_testkit::Mosquitto,
) -> thingcall_server::Config {
    let mut cfg = common::gateway_config(broker.addr());
    cfg.mqtt_url = Some(format!(
        "mqtts://{}",
        broker.tls_addr().expect("TLS listener")
    ));
    cfg.broker.mqtt_ca = Some(ca_of.ca_path());
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(mosquitto),
    ignore = "mosquitto not installed (apt-get install mosquitto)"
)]
async fn gateway_session_over_tls() {
    let Some(broker) = thingcall_testkit::Mosquitto::start_with_tls() else {
        return;
    };
    let cfg = tls_config(&broker, &broker);
    cfg.validate().unwrap();
    let gw = thingcall_server::start(cfg).await.expect("gateway");
    soon("TLS session up", gw.wait_connected()).await;
    // The device stays on the plain listener: same broker, same topics.
    let d = spawn_device(
        DeviceOptions::new("tls-1", "127.0.0.1", broker.port()),
        standard_methods(),
    );
    soon("device online", d.wait_online()).await;
    let mut c = DeviceGatewayClient::connect(format!("http://{}", gw.grpc_addr))
        .await
        .unwrap();
    let r = c
        .invoke(req("tls-1", "echo", b"over tls"))
        .await
        .expect("call over the TLS session")
        .into_inner();
    assert_eq!(&r.payload[..], b"over tls");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(mosquitto),
    ignore = "mosquitto not installed (apt-get install mosquitto)"
)]
async fn untrusted_broker_certificate_is_refused() {
    let Some(broker) = thingcall_testkit::Mosquitto::start_with_tls() else {
        return;
    };
    let Some(other) = thingcall_testkit::Mosquitto::start_with_tls() else {
        return;
    };
    // A CA that did not sign this broker's certificate.
    let cfg = tls_config(&broker, &other);
    let gw = thingcall_server::start(cfg)
        .await
        .expect("gateway starts; the session keeps retrying");
    // Wait for a connect attempt to have failed, so "not connected" below
    // means "refused", not "not tried yet".
    let mut tallies = gw.gateway.tallies();
    soon(
        "a refused TLS handshake",
        tallies.wait_for(|t| t.connection_failures > 0),
    )
    .await
    .expect("gateway alive");
    let mut c = DeviceGatewayClient::connect(format!("http://{}", gw.grpc_addr))
        .await
        .unwrap();
    let err = c.invoke(req("tls-2", "echo", b"x")).await.unwrap_err();
    assert_eq!(common::reason(&err), "BROKER_UNAVAILABLE");
    assert!(!*gw.gateway.connected().borrow());
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(mosquitto),
    ignore = "mosquitto not installed (apt-get install mosquitto)"
)]
async fn gateway_and_device_present_client_certificates() {
    let Some(broker) = thingcall_testkit::Mosquitto::start_with_mutual_tls() else {
        return;
    };
    let tls = broker.tls_addr().unwrap();
    let mut cfg = tls_config(&broker, &broker);
    let (cert, key) = broker.client_cert("gateway");
    cfg.broker.mqtt_cert = Some(cert);
    cfg.broker.mqtt_key = Some(key);
    cfg.validate().expect("valid configuration");
    let gw = thingcall_server::start(cfg).await.expect("gateway");
    soon("mutual TLS session up", gw.wait_connected()).await;

    // The device on the same listener, with a certificate of its own.
    let mut opts = DeviceOptions::new("mtls-1", "127.0.0.1", tls.port());
    let (cert, key) = broker.client_cert("mtls-1");
    opts.tls = Some(thingcall_proto::wire::tls::TlsFiles {
        ca: Some(broker.ca_path()),
        client: Some((cert, key)),
        alpn: Vec::new(),
    });
    let d = spawn_device(opts, standard_methods());
    soon("device online over mutual TLS", d.wait_online()).await;
    let mut c = DeviceGatewayClient::connect(format!("http://{}", gw.grpc_addr))
        .await
        .unwrap();
    let r = c
        .invoke(req("mtls-1", "echo", b"both sides known"))
        .await
        .expect("call over mutual TLS")
        .into_inner();
    assert_eq!(&r.payload[..], b"both sides known");
    d.shutdown().await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(mosquitto),
    ignore = "mosquitto not installed (apt-get install mosquitto)"
)]
async fn a_gateway_without_a_client_certificate_is_refused() {
    let Some(broker) = thingcall_testkit::Mosquitto::start_with_mutual_tls() else {
        return;
    };
    let cfg = tls_config(&broker, &broker);
    let gw = thingcall_server::start(cfg)
        .await
        .expect("gateway starts, keeps trying");
    let mut tallies = gw.gateway.tallies();
    soon(
        "a refused handshake",
        tallies.wait_for(|t| t.connection_failures > 0),
    )
    .await
    .expect("gateway alive");
    assert_eq!(tallies.borrow().sessions_up, 0, "never connected");
    gw.stop().await;
}
