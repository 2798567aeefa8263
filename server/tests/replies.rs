//! What a real broker cannot produce on its own: a device that answers for
//! another device, answers twice, or sends garbage. A raw MQTT 5 client
//! plays that device against the real broker.

mod common;

use bytes::Bytes;
use common::{req, secs_f, soon, Harness};
use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};

broker_tests!(
    foreign_duplicate_and_malformed_replies_are_dropped,
    seed_ack_with_another_id_is_dropped
);

async fn foreign_duplicate_and_malformed_replies_are_dropped(h: Harness) {
    let mut watch = h.watch("rogue").await;
    let mut opts = MqttOptions::new("rogue", h.mqtt.ip().to_string(), h.mqtt.port());
    opts.set_max_packet_size(Some(1 << 20));
    let (dev, mut events) = AsyncClient::new(opts, 64);
    dev.subscribe("thingcall/devices/rogue/methods/+", QoS::AtLeastOnce)
        .await
        .unwrap();
    let peer = tokio::spawn(async move {
        let mut subscribed = false;
        loop {
            let ev = events.poll().await.expect("rogue connection");
            match ev {
                Event::Incoming(Packet::SubAck(_)) => {
                    subscribed = true;
                    // Announced once it can take requests, as a device does.
                    let presence = thingcall_proto::wire::Presence {
                        online: true,
                        session: "rogue-1".into(),
                        methods: vec![],
                    };
                    dev.try_publish(
                        "thingcall/devices/rogue/presence",
                        QoS::AtLeastOnce,
                        true,
                        presence.to_json(),
                    )
                    .unwrap();
                }
                Event::Incoming(Packet::Publish(p)) if subscribed => {
                    let props = p.properties.clone().unwrap();
                    let reply_topic = props.response_topic.clone().unwrap();
                    let corr = props.correlation_data.clone().unwrap();
                    let other = reply_topic.replace("/replies/rogue", "/replies/victim");
                    let reply = |c: Bytes| PublishProperties {
                        correlation_data: Some(c),
                        ..Default::default()
                    };
                    let d = dev.clone();
                    tokio::spawn(async move {
                        // Garbage: no correlation data, then a 3-byte one.
                        d.publish(reply_topic.clone(), QoS::AtLeastOnce, false, "junk")
                            .await
                            .unwrap();
                        d.publish_with_properties(
                            reply_topic.clone(),
                            QoS::AtLeastOnce,
                            false,
                            "junk",
                            reply(Bytes::from_static(b"abc")),
                        )
                        .await
                        .unwrap();
                        // Answer as another device (a foreign reply).
                        d.publish_with_properties(
                            other,
                            QoS::AtLeastOnce,
                            false,
                            "spoofed",
                            reply(corr.clone()),
                        )
                        .await
                        .unwrap();
                        // The real answer, twice.
                        for _ in 0..2 {
                            d.publish_with_properties(
                                reply_topic.clone(),
                                QoS::AtLeastOnce,
                                false,
                                "real",
                                reply(corr.clone()),
                            )
                            .await
                            .unwrap();
                        }
                    });
                }
                _ => {}
            }
        }
    });
    common::wait_presence(&mut watch, "rogue", true).await;
    let gw = h.gw().gateway.clone();
    let mut c = h.client.clone();
    let mut r = req("rogue", "anything", b"q");
    r.timeout = secs_f(30.0);
    let got = soon("rogue answers", c.invoke(r))
        .await
        .expect("the real answer")
        .into_inner();
    assert_eq!(
        &got.payload[..],
        b"real",
        "the caller got the real answer, never the spoof"
    );
    let mut tallies = gw.tallies();
    let t = *soon(
        "duplicate counted",
        tallies.wait_for(|t| t.dropped_duplicate >= 1),
    )
    .await
    .expect("gateway alive");
    assert!(t.dropped_foreign >= 1, "spoofed reply counted as foreign");
    assert!(t.dropped_malformed >= 2, "garbage counted as malformed");
    peer.abort();
    h.stop().await;
}

/// A seed-contract device that first acks with an id that disagrees with
/// its topic, then correctly.
async fn seed_ack_with_another_id_is_dropped(h: Harness) {
    let mut opts = MqttOptions::new("SeedRogue", h.mqtt.ip().to_string(), h.mqtt.port());
    opts.set_max_packet_size(Some(1 << 20));
    let (dev, mut events) = AsyncClient::new(opts, 64);
    dev.subscribe("SeedRogue/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let peer = tokio::spawn(async move {
        let mut subscribed = false;
        loop {
            match events.poll().await.expect("rogue connection") {
                Event::Incoming(Packet::SubAck(_)) => subscribed = true,
                Event::Incoming(Packet::Publish(p)) if subscribed => {
                    let topic = String::from_utf8(p.topic.to_vec()).unwrap();
                    let parts = thingcall_proto::wire::parse_seed_request(&topic).unwrap();
                    let ack = thingcall_proto::wire::SeedTopics::new(parts.client_prefix).ack(
                        parts.m_id,
                        parts.target,
                        parts.method,
                    );
                    let wrong = serde_json::json!({"id": "not-this-call", "response": "spoofed"})
                        .to_string();
                    let right =
                        serde_json::json!({"id": parts.m_id, "response": "real"}).to_string();
                    let d = dev.clone();
                    tokio::spawn(async move {
                        d.publish(ack.clone(), QoS::AtLeastOnce, false, wrong)
                            .await
                            .unwrap();
                        d.publish(ack, QoS::AtLeastOnce, false, right)
                            .await
                            .unwrap();
                    });
                }
                _ => {}
            }
        }
    });
    let gw = h.gw().gateway.clone();
    let mut c = h.client.clone();
    let got = soon("rogue acks", async {
        loop {
            let mut r = req("SeedRogue", "anything", b"q");
            r.timeout = secs_f(2.0);
            r.contract = thingcall_proto::v1::Contract::Seed as i32;
            if let Ok(resp) = c.invoke(r).await {
                return resp.into_inner();
            }
        }
    })
    .await;
    assert_eq!(&got.payload[..], br#""real""#);
    assert!(
        gw.tallies().borrow().dropped_foreign >= 1,
        "the mismatched ack was counted"
    );
    peer.abort();
    h.stop().await;
}
