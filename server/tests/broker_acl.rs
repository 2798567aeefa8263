//! The shipped Mosquitto ACL (`deploy/mosquitto/acl`, loaded as it is) on a
//! real Mosquitto whose clients prove who they are with a certificate (CN =
//! username) or a password login: the whole contract works through it, and
//! a misbehaving device can neither answer for another device nor read its
//! requests. A control run without the ACL shows what the ACL prevents.
//!
//! What Mosquitto 2.0 does, as observed and asserted here: a refused QoS 1
//! publish is answered with PUBACK reason 0x87 (Not authorized) and not
//! delivered; a SUBSCRIBE to a topic the client may not read is granted,
//! and nothing published there is ever delivered to it.

mod common;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use common::peer::{reply_address, topic_of, Peer};
use common::{req, soon, wait_presence};
use rumqttc::v5::mqttbytes::v5::{PubAckReason, PublishProperties, SubscribeReasonCode};
use rumqttc::v5::MqttOptions;
use thingcall_device::{spawn_device, standard_methods, Contract, DeviceOptions};
use thingcall_proto::v1::device_event::Kind;
use thingcall_proto::v1::device_gateway_client::DeviceGatewayClient;
use thingcall_proto::v1::{Contract as ApiContract, InvokeResponse};
use thingcall_proto::wire::tls::TlsFiles;
use thingcall_proto::wire::{Credentials, Secret, Topics};
use thingcall_testkit::Mosquitto;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

/// The gateway of the shipped ACL's `user` block: its username (the
/// certificate's CN, or its login), its gateway id and its seed prefix.
const GATEWAY: &str = "gateway-1";
/// The device that is called, and the one that misbehaves.
const A: &str = "pump-a";
const B: &str = "pump-b";
/// Password of every login of the password-file test.
const PASSWORD: &str = "correct horse battery staple";

/// A file holding [`PASSWORD`], as a mounted secret would; removed when
/// dropped.
struct PasswordFile(PathBuf);

impl PasswordFile {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!("tc-acl-login-{}", std::process::id()));
        std::fs::write(&path, format!("{PASSWORD}\n")).expect("write password file");
        Self(path)
    }
}

impl Drop for PasswordFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The ACL file this repository ships.
fn shipped_acl() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/mosquitto/acl")
}

/// A gateway configured as the ACL's naming convention asks: gateway id,
/// seed client prefix and certificate CN all `gateway-1`, over mutual TLS.
fn gateway_config(broker: &Mosquitto) -> thingcall_server::Config {
    let mut cfg = common::gateway_config(broker.addr());
    cfg.mqtt_url = Some(format!("mqtts://{}", broker.tls_addr().expect("TLS")));
    cfg.broker.mqtt_ca = Some(broker.ca_path());
    let (cert, key) = broker.client_cert(GATEWAY);
    cfg.broker.mqtt_cert = Some(cert);
    cfg.broker.mqtt_key = Some(key);
    cfg.gateway_id = Some(GATEWAY.into());
    cfg.seed_client_prefix = GATEWAY.into();
    // The devices here are raw MQTT clients that announce no presence.
    cfg.call_unannounced = true;
    cfg
}

/// Starts a gateway and returns it with a client.
async fn start_gateway(
    cfg: thingcall_server::Config,
) -> (thingcall_server::Running, DeviceGatewayClient<Channel>) {
    cfg.validate().expect("valid configuration");
    let gw = thingcall_server::start(cfg).await.expect("gateway starts");
    soon("gateway session", gw.wait_connected()).await;
    let client = DeviceGatewayClient::connect(format!("http://{}", gw.grpc_addr))
        .await
        .expect("grpc connect");
    (gw, client)
}

/// SDK device options over the mutual TLS listener, with a certificate
/// whose CN is the device id.
fn device_over_tls(broker: &Mosquitto, id: &str) -> DeviceOptions {
    let mut opts = DeviceOptions::new(id, "127.0.0.1", broker.tls_addr().expect("TLS").port());
    let (cert, key) = broker.client_cert(id);
    opts.tls = Some(TlsFiles {
        ca: Some(broker.ca_path()),
        client: Some((cert, key)),
        alpn: Vec::new(),
    });
    opts
}

/// Starts a call to `target` in its own task, so the test can play the
/// device meanwhile.
fn call(
    client: &DeviceGatewayClient<Channel>,
    target: &str,
) -> tokio::task::JoinHandle<Result<InvokeResponse, tonic::Status>> {
    let mut c = client.clone();
    let r = req(target, "slow", b"q");
    tokio::spawn(async move { c.invoke(r).await.map(|r| r.into_inner()) })
}

/// The attack: device B (its own certificate) publishes on A's reply topic
/// with the correlation data of a call in flight to A, before the slow A
/// answers. Returns the broker's PUBACK to B and what A's caller got.
async fn forge_a_reply(
    broker: &Mosquitto,
) -> (PubAckReason, Result<InvokeResponse, tonic::Status>) {
    let (gw, client) = start_gateway(gateway_config(broker)).await;
    let topics = Topics::default();
    let mut a = Peer::over_tls(broker, A, A);
    let granted = a.subscribe(&[topics.device_requests_filter(A)]).await;
    assert!(matches!(granted[..], [SubscribeReasonCode::Success(_)]));
    let mut b = Peer::over_tls(broker, B, B);

    // A is not announcing presence, so the gateway calls it.
    let caller = call(&client, A);
    let request = a.request("A receives the call").await;
    let (reply_topic, correlation) = reply_address(&request);
    assert_eq!(reply_topic, topics.reply(GATEWAY, A));
    let to_b = b.reply(&reply_topic, correlation, "forged by B").await;
    // B's forgery has been judged by the broker: only now does A answer.
    let to_a = a.answer(&request, "from A").await;
    assert_eq!(to_a, PubAckReason::Success, "A answers on its own topic");
    let answer = soon("A's caller", caller).await.expect("call task");
    gw.stop().await;
    (to_b, answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(mosquitto),
    ignore = "mosquitto not installed (apt-get install mosquitto)"
)]
async fn a_device_cannot_answer_for_another() {
    let Some(broker) = Mosquitto::start_with_acl(&shipped_acl(), &[]) else {
        return;
    };
    let (to_b, answer) = forge_a_reply(&broker).await;
    assert_eq!(to_b, PubAckReason::NotAuthorized, "the broker refuses B");
    let answer = answer.expect("A's caller gets an answer");
    assert_eq!(&answer.payload[..], b"from A", "A's answer, never B's");
}

/// The control run: the same attack without the ACL succeeds, so the test
/// above proves the ACL, not a gateway check (the gateway cannot tell: the
/// topic names A and the correlation data is right).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(mosquitto),
    ignore = "mosquitto not installed (apt-get install mosquitto)"
)]
async fn without_the_acl_a_forged_reply_wins() {
    let Some(broker) = Mosquitto::start_with_mutual_tls() else {
        return;
    };
    let (to_b, answer) = forge_a_reply(&broker).await;
    assert_eq!(to_b, PubAckReason::Success);
    let answer = answer.expect("an answer");
    assert_eq!(&answer.payload[..], b"forged by B");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(mosquitto),
    ignore = "mosquitto not installed (apt-get install mosquitto)"
)]
async fn a_device_cannot_read_another_devices_requests() {
    let Some(broker) = Mosquitto::start_with_acl(&shipped_acl(), &[]) else {
        return;
    };
    let (gw, client) = start_gateway(gateway_config(&broker)).await;
    let topics = Topics::default();
    let mut a = Peer::over_tls(&broker, A, A);
    a.subscribe(&[topics.device_requests_filter(A)]).await;
    // B subscribes to A's requests and to its own. Mosquitto 2.0 grants
    // both: its ACL file is checked when a message is delivered.
    let mut b = Peer::over_tls(&broker, B, B);
    let granted = b
        .subscribe(&[
            topics.device_requests_filter(A),
            topics.device_requests_filter(B),
        ])
        .await;
    assert!(
        granted
            .iter()
            .all(|c| matches!(c, SubscribeReasonCode::Success(_))),
        "Mosquitto grants the subscription: {granted:?}"
    );

    let to_a = call(&client, A);
    let request = a.request("A receives its call").await;
    assert_eq!(topic_of(&request), topics.request(A, "slow"));
    a.answer(&request, "from A").await;
    assert_eq!(
        &soon("A's caller", to_a).await.unwrap().unwrap().payload[..],
        b"from A"
    );

    // Then a call to B. The broker delivers to B in order, so had it
    // delivered A's request, that would be B's first publish.
    let to_b = call(&client, B);
    let request = b.request("B's first publish").await;
    assert_eq!(
        topic_of(&request),
        topics.request(B, "slow"),
        "B's first publish is its own call: A's never reached it"
    );
    assert_eq!(b.answer(&request, "from B").await, PubAckReason::Success);
    assert_eq!(
        &soon("B's caller", to_b).await.unwrap().unwrap().payload[..],
        b"from B"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(mosquitto),
    ignore = "mosquitto not installed (apt-get install mosquitto)"
)]
async fn a_borrowed_client_id_gains_nothing() {
    let Some(broker) = Mosquitto::start_with_acl(&shipped_acl(), &[]) else {
        return;
    };
    let (gw, client) = start_gateway(gateway_config(&broker)).await;
    let topics = Topics::default();
    let mut a = Peer::over_tls(&broker, A, A);
    a.subscribe(&[topics.device_requests_filter(A)]).await;
    // B's certificate, A's client id: the broker makes the client id B's
    // username, so A's session is not taken over, and B's rights stay B's.
    let mut b = Peer::over_tls(&broker, B, A);
    let refused = b
        .reply(
            &topics.reply(GATEWAY, A),
            Bytes::from_static(&[0; 16]),
            "forged",
        )
        .await;
    assert_eq!(refused, PubAckReason::NotAuthorized);
    // A's connection survived B's connect (its peer ends on any error).
    let caller = call(&client, A);
    let request = a.request("A, still connected, receives a call").await;
    a.answer(&request, "from A").await;
    assert_eq!(
        &soon("A's caller", caller).await.unwrap().unwrap().payload[..],
        b"from A"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(mosquitto),
    ignore = "mosquitto not installed (apt-get install mosquitto)"
)]
async fn the_topic_root_is_no_identity() {
    let Some(broker) = Mosquitto::start_with_acl(&shipped_acl(), &[]) else {
        return;
    };
    let topics = Topics::default();
    let root = topics.root();
    // A client named like the topic root may not even publish the presence
    // that the device patterns alone would give it...
    let mut named_root = Peer::over_tls(&broker, root, root);
    let refused = named_root
        .publish(&topics.presence(root), PublishProperties::default(), "{}")
        .await;
    assert_eq!(refused, PubAckReason::NotAuthorized);
    // ...which any device may (nobody listens here: no gateway runs).
    let mut device = Peer::over_tls(&broker, B, B);
    let allowed = device
        .publish(&topics.presence(B), PublishProperties::default(), "{}")
        .await;
    assert_eq!(allowed, PubAckReason::NoMatchingSubscribers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(mosquitto),
    ignore = "mosquitto not installed (apt-get install mosquitto)"
)]
async fn the_whole_contract_passes_the_acl() {
    let Some(broker) = Mosquitto::start_with_acl(&shipped_acl(), &[]) else {
        return;
    };
    let (gw, client) = start_gateway(gateway_config(&broker)).await;

    // Native contract, SDK device: retained presence, requests, replies,
    // events, and the Will.
    let mut presence = common::watch_synced(&client, A, true).await;
    let device = spawn_device(device_over_tls(&broker, A), standard_methods());
    wait_presence(&mut presence, A, true).await;
    let r = client
        .clone()
        .invoke(req(A, "echo", b"through the ACL"))
        .await
        .expect("A answers")
        .into_inner();
    assert_eq!(&r.payload[..], b"through the ACL");
    device
        .publish_event("door", "open")
        .await
        .expect("event sent");
    soon("A's event", async {
        while let Some(ev) = presence.next().await {
            if let Some(Kind::Event(e)) = ev.expect("event").kind {
                assert_eq!((e.name.as_str(), &e.payload[..]), ("door", &b"open"[..]));
                return;
            }
        }
        panic!("watch ended");
    })
    .await;
    // No goodbye: the broker publishes A's Will, the offline presence.
    device.kill();
    wait_presence(&mut presence, A, false).await;

    // Seed contract, SDK device: a request under the gateway's prefix, the
    // ack under the device's name.
    let mut opts = device_over_tls(&broker, "Device001");
    opts.contract = Contract::Seed;
    let seed = spawn_device(opts, standard_methods());
    soon("seed device subscribed", seed.wait_online()).await;
    let mut r = req("Device001", "echo", b"seed through the ACL");
    r.contract = ApiContract::Seed as i32;
    let r = client
        .clone()
        .invoke(r)
        .await
        .expect("the seed device answers")
        .into_inner();
    assert_eq!(
        &r.payload[..],
        br#""seed through the ACL""#,
        "the ack's response"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(mosquitto),
    ignore = "mosquitto not installed (apt-get install mosquitto)"
)]
async fn the_same_acl_holds_for_password_logins() {
    let logins = [(GATEWAY, PASSWORD), (A, PASSWORD), (B, PASSWORD)];
    let Some(broker) = Mosquitto::start_with_acl(&shipped_acl(), &logins) else {
        return;
    };
    // The gateway logs in as gateway-1 on the plain listener.
    let password_file = PasswordFile::new();
    let mut cfg = common::gateway_config(broker.addr());
    cfg.gateway_id = Some(GATEWAY.into());
    cfg.seed_client_prefix = GATEWAY.into();
    cfg.broker.mqtt_username = Some(GATEWAY.into());
    cfg.broker.mqtt_password_file = Some(password_file.0.clone());
    let (gw, client) = start_gateway(cfg).await;

    let mut presence = common::watch_synced(&client, A, false).await;
    let mut opts = DeviceOptions::new(A, "127.0.0.1", broker.port());
    opts.credentials = Some(Credentials {
        username: A.into(),
        password: Secret::new(PASSWORD),
    });
    let device = spawn_device(opts, standard_methods());
    wait_presence(&mut presence, A, true).await;
    let r = client
        .clone()
        .invoke(req(A, "echo", b"logged in"))
        .await
        .expect("A answers")
        .into_inner();
    assert_eq!(&r.payload[..], b"logged in");

    // B, logged in as itself, may not answer as A.
    let mut b = Peer::with_password(&broker, B, PASSWORD);
    let topics = Topics::default();
    let refused = b
        .reply(
            &topics.reply(GATEWAY, A),
            Bytes::from_static(&[0; 16]),
            "forged",
        )
        .await;
    assert_eq!(refused, PubAckReason::NotAuthorized);
    let own = b
        .reply(
            &topics.reply(GATEWAY, B),
            Bytes::from_static(&[0; 16]),
            "mine",
        )
        .await;
    assert_eq!(own, PubAckReason::Success, "its own reply topic is allowed");

    // Without a login, nobody gets in.
    let mut anonymous = Peer::connect(MqttOptions::new("anonymous", "127.0.0.1", broker.port()));
    let refused = anonymous.refused().await;
    assert!(refused.contains("NotAuthorized"), "{refused}");
    device.shutdown().await;
    gw.stop().await;
}
