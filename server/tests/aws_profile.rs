//! `--broker-profile aws-iot`: AWS IoT Core's limits, enforced by the
//! gateway. A request whose topic AWS would refuse never reaches the
//! broker (checked on a real broker, with a subscriber on `#`); the
//! session never has more than 100 QoS 1 publishes unacknowledged and
//! never sends a SUBSCRIBE of more than 8 filters (checked at a scripted
//! MQTT 5 peer, since no real broker here withholds PUBACKs on purpose).

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::{req, soon, Broker, Harness};
use rumqttc::v5::mqttbytes::v5::{
    ConnAck, ConnectReturnCode, Packet, PubAck, Publish, SubAck, SubscribeReasonCode,
};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use thingcall_proto::wire::BrokerProfile;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// The AWS IoT Core profile; the calls here go to devices that announce
/// no presence (nothing answers, or a raw client does).
fn aws_iot(cfg: &mut thingcall_server::Config) {
    cfg.broker.broker_profile = Some(BrokerProfile::AwsIot);
    cfg.call_unannounced = true;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_over_long_topic_is_refused_before_anything_is_published() {
    let h = Harness::start_with(Broker::Embedded, aws_iot)
        .await
        .expect("embedded");
    soon("session up", h.gw().wait_connected()).await;

    // Everything published on the broker, in order.
    let mut opts = MqttOptions::new("spy", h.mqtt.ip().to_string(), h.mqtt.port());
    opts.set_max_packet_size(Some(1 << 20));
    let (spy, mut spy_loop) = AsyncClient::new(opts, 16);
    spy.subscribe("#", QoS::AtMostOnce).await.unwrap();
    let (seen_tx, mut seen) = mpsc::unbounded_channel::<String>();
    let spy_task = tokio::spawn(async move {
        while let Ok(ev) = spy_loop.poll().await {
            match ev {
                Event::Incoming(Packet::SubAck(_)) => {
                    let _ = seen_tx.send("<subscribed>".into());
                }
                Event::Incoming(Packet::Publish(p)) => {
                    let _ = seen_tx.send(String::from_utf8_lossy(&p.topic).into_owned());
                }
                _ => {}
            }
        }
    });
    assert_eq!(
        soon("spy subscribed", seen.recv()).await.unwrap(),
        "<subscribed>"
    );

    // thingcall/devices/{target}/methods/{method}: 27 bytes besides the
    // names, so 128 + 102 makes 257, one over AWS IoT's 256.
    let long_method = "m".repeat(102);
    let mut client = h.client.clone();
    let err = client
        .invoke(req(&"t".repeat(128), &long_method, b"x"))
        .await
        .expect_err("refused");
    assert_eq!(common::reason(&err), "INVALID_ARGUMENT");
    assert!(
        err.message().contains("limit of 256 bytes"),
        "{}",
        err.message()
    );

    // A call that is published, after the refused one on the same session:
    // once the spy sees it, it would have seen the refused one before.
    let mut sentinel = req("sentinel", "echo", b"x");
    sentinel.timeout = common::secs_f(30.0);
    let mut c = h.client.clone();
    let call = tokio::spawn(async move { c.invoke(sentinel).await });
    let sentinel_topic = "thingcall/devices/sentinel/methods/echo";
    loop {
        let topic = soon("the sentinel request", seen.recv())
            .await
            .expect("spy alive");
        assert!(!topic.contains(&long_method), "published: {topic}");
        if topic == sentinel_topic {
            break;
        }
    }
    call.abort();
    spy_task.abort();
    h.stop().await;
}

/// What the scripted peer saw, as it happened.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// A SUBSCRIBE with this many filters.
    Subscribe(usize),
    /// A QoS 1 request; how many are unacknowledged now.
    Publish { unacked: usize },
    /// The client acknowledged the peer's own QoS 1 publish; how many
    /// requests had arrived by then.
    BarrierAcked { received: usize },
    /// A second connection (the session broke).
    Reconnected,
}

/// What the test asks of the peer.
enum Do {
    /// Publish QoS 1 to the client and report its PUBACK: every request
    /// the client wrote before that PUBACK has been read by then.
    Barrier,
    /// Acknowledge every request held so far.
    AckAll,
}

/// A minimal MQTT 5 broker for one client: CONNACK, SUBACK for every
/// SUBSCRIBE, PINGRESP, and QoS 1 requests held unacknowledged until told.
async fn scripted_peer(
    listener: TcpListener,
    seen: mpsc::UnboundedSender<Seen>,
    mut todo: mpsc::UnboundedReceiver<Do>,
) {
    let (mut sock, _) = listener.accept().await.unwrap();
    sock.set_nodelay(true).unwrap();
    let mut buf = BytesMut::new();
    let mut held: Vec<u16> = Vec::new();
    let mut received = 0usize;
    let barrier_pkid = 7;
    loop {
        tokio::select! {
            read = sock.read_buf(&mut buf) => {
                if read.unwrap_or(0) == 0 {
                    // The client hung up: report if it comes back.
                    if listener.accept().await.is_ok() {
                        let _ = seen.send(Seen::Reconnected);
                    }
                    return;
                }
                while let Ok(packet) = Packet::read(&mut buf, Some(1 << 20)) {
                    match packet {
                        Packet::Connect(..) => send(&mut sock, Packet::ConnAck(ConnAck {
                            session_present: false,
                            code: ConnectReturnCode::Success,
                            properties: None,
                        })).await,
                        Packet::Subscribe(sub) => {
                            let _ = seen.send(Seen::Subscribe(sub.filters.len()));
                            send(&mut sock, Packet::SubAck(SubAck {
                                pkid: sub.pkid,
                                return_codes: sub.filters.iter().map(|_| SubscribeReasonCode::Success(QoS::AtMostOnce)).collect(),
                                properties: None,
                            })).await;
                        }
                        Packet::Publish(p) if p.qos == QoS::AtLeastOnce => {
                            received += 1;
                            held.push(p.pkid);
                            let _ = seen.send(Seen::Publish { unacked: held.len() });
                        }
                        Packet::PubAck(ack) if ack.pkid == barrier_pkid => {
                            let _ = seen.send(Seen::BarrierAcked { received });
                        }
                        Packet::PingReq(_) => send(&mut sock, Packet::PingResp(rumqttc::v5::mqttbytes::v5::PingResp)).await,
                        _ => {}
                    }
                }
            }
            Some(what) = todo.recv() => match what {
                Do::Barrier => {
                    let mut p = Publish::new("thingcall/devices/peer/events/barrier", QoS::AtLeastOnce, "b", None);
                    p.pkid = barrier_pkid;
                    send(&mut sock, Packet::Publish(p)).await;
                }
                Do::AckAll => {
                    for pkid in held.drain(..) {
                        send(&mut sock, Packet::PubAck(PubAck::new(pkid, None))).await;
                    }
                }
            },
        }
    }
}

/// Waits for `count` requests at the peer; the most it held unacknowledged.
async fn requests(what: &str, count: usize, seen: &mut mpsc::UnboundedReceiver<Seen>) -> usize {
    let (mut got, mut most) = (0, 0);
    while got < count {
        match soon(what, seen.recv()).await.expect("peer alive") {
            Seen::Publish { unacked } => {
                most = most.max(unacked);
                got += 1;
            }
            Seen::Subscribe(n) => assert!(n <= 8, "{n} filters in one SUBSCRIBE"),
            other => panic!("{what}: {other:?}"),
        }
    }
    most
}

async fn send(sock: &mut TcpStream, packet: Packet) {
    let mut out = BytesMut::new();
    packet.write(&mut out, None).expect("encodable");
    sock.write_all(&out).await.expect("peer write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_100_unacknowledged_publishes_and_8_filters_per_subscribe() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let (todo, todo_rx) = mpsc::unbounded_channel();
    tokio::spawn(scripted_peer(listener, seen_tx, todo_rx));

    let mut cfg = common::gateway_config(addr);
    aws_iot(&mut cfg);
    // The window is one of QoS 1 publishes (the default is 0).
    cfg.qos = 1;
    cfg.drain_timeout = Duration::ZERO;
    cfg.validate().expect("valid");
    let gw = thingcall_server::start(cfg).await.expect("gateway");
    match soon("a SUBSCRIBE", seen.recv()).await.unwrap() {
        Seen::Subscribe(n) => assert!((1..=8).contains(&n), "{n} filters in one SUBSCRIBE"),
        other => panic!("{other:?}"),
    }
    soon("session up", gw.wait_connected()).await;

    // 150 calls, each polled once: that runs it up to its wait for the
    // reply, so its request is queued on the session before we go on.
    let mut calls: Vec<_> = (0..150)
        .map(|i| {
            let mut r = req(&format!("d{i}"), "echo", b"x");
            r.timeout = common::secs_f(60.0);
            Box::pin(gw.gateway.invoke(r, Default::default()))
        })
        .collect();
    for call in &mut calls {
        assert!(futures::poll!(call.as_mut()).is_pending());
    }

    let most = requests("the first 100 requests", 100, &mut seen).await;
    assert_eq!(most, 100);
    // The client is live (it answers the peer's publish) yet sent no more.
    todo.send(Do::Barrier).unwrap();
    match soon("the barrier", seen.recv()).await.unwrap() {
        Seen::BarrierAcked { received } => assert_eq!(received, 100, "sent past the limit"),
        other => panic!("{other:?}"),
    }
    assert!(*gw.gateway.connected().borrow(), "the session holds");

    // Acknowledged: the other 50 go out, on the same session.
    todo.send(Do::AckAll).unwrap();
    let most = requests("the other 50 requests", 50, &mut seen).await;
    assert!(most <= 100, "{most} unacknowledged at once");
    todo.send(Do::Barrier).unwrap();
    assert_eq!(
        soon("the second barrier", seen.recv()).await.unwrap(),
        Seen::BarrierAcked { received: 150 }
    );
    assert!(*gw.gateway.connected().borrow(), "the session holds");
    drop(calls);
    gw.stop().await;
}
