//! The peer against rumqttc's client: its default answers, a refusal, a
//! withheld SUBACK, and broken framing.

use super::*;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, MqttOptions};

fn client(peer: &ScriptedPeer) -> (AsyncClient, rumqttc::v5::EventLoop) {
    let opts = MqttOptions::new("c", "127.0.0.1", peer.addr().port());
    AsyncClient::new(opts, 8)
}

async fn incoming(ev: &mut rumqttc::v5::EventLoop) -> Result<Packet, ConnectionError> {
    loop {
        if let Event::Incoming(p) = ev.poll().await? {
            return Ok(p);
        }
    }
}

#[tokio::test]
async fn answers_like_a_broker_and_reports_what_it_got() {
    let mut peer = ScriptedPeer::start().await;
    let (c, mut ev) = client(&peer);
    let driver = tokio::spawn(async move {
        assert!(matches!(incoming(&mut ev).await, Ok(Packet::ConnAck(_))));
        c.subscribe("a/#", QoS::AtMostOnce).await.unwrap();
        assert!(matches!(incoming(&mut ev).await, Ok(Packet::SubAck(_))));
        c.publish("a/b", QoS::AtLeastOnce, false, "hi")
            .await
            .unwrap();
        assert!(matches!(incoming(&mut ev).await, Ok(Packet::PubAck(_))));
        // What the test sends arrives, non-UTF-8 topic included.
        match incoming(&mut ev).await {
            Ok(Packet::Publish(p)) => assert_eq!(&p.topic[..], b"a/\xff"),
            other => panic!("{other:?}"),
        }
    });
    let mut conn = peer.accept().await;
    assert!(matches!(conn.next().await, Seen::Packet(p) if matches!(*p, Packet::Connect(..))));
    assert_eq!(conn.subscribe().await.unwrap().filters[0].path, "a/#");
    let p = conn.publish_seen().await.unwrap();
    assert_eq!((&p.topic[..], &p.payload[..]), (&b"a/b"[..], &b"hi"[..]));
    conn.publish(&b"a/\xff"[..], "x", None);
    driver.await.unwrap();
}

#[tokio::test]
async fn refuses_a_login_and_closes() {
    let mut peer = ScriptedPeer::start_with(Script::refuse(ConnectReturnCode::NotAuthorized)).await;
    let (_c, mut ev) = client(&peer);
    let got = tokio::spawn(async move { incoming(&mut ev).await });
    let mut conn = peer.accept().await;
    assert!(conn.closed().await.contains("script"));
    assert!(matches!(
        got.await.unwrap(),
        Err(ConnectionError::ConnectionRefused(
            ConnectReturnCode::NotAuthorized
        ))
    ));
}

#[tokio::test]
async fn withheld_suback_is_sent_when_the_test_says() {
    let mut peer = ScriptedPeer::start_with(Script {
        suback: false,
        ..Script::default()
    })
    .await;
    let (c, mut ev) = client(&peer);
    let (tx, mut acks) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(p) = incoming(&mut ev).await {
            let _ = tx.send(p);
        }
    });
    c.subscribe("x", QoS::AtMostOnce).await.unwrap();
    let mut conn = peer.accept().await;
    let s = conn.subscribe().await.unwrap();
    assert!(matches!(acks.recv().await, Some(Packet::ConnAck(_))));
    conn.suback(&s);
    assert!(matches!(acks.recv().await, Some(Packet::SubAck(a)) if a.pkid == s.pkid));
}

#[tokio::test]
async fn broken_framing_ends_the_clients_connection() {
    let mut peer = ScriptedPeer::start().await;
    let (_c, mut ev) = client(&peer);
    let got = tokio::spawn(async move {
        incoming(&mut ev).await.unwrap();
        incoming(&mut ev).await
    });
    let conn = peer.accept().await;
    conn.send_raw(raw::bad_remaining_length());
    assert!(got.await.unwrap().is_err());
}
