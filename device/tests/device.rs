//! The device library against the embedded broker (a real MQTT 5 broker in-process), with a plain rumqttc
//! client playing the gateway. No mocks and no sleeps as synchronisation:
//! every wait is for a message or a state, under a timeout guard.

mod common;

use common::*;
use rumqttc::v5::mqttbytes::QoS;
use thingcall_device::{spawn_device, standard_methods, DeviceOptions};
use thingcall_proto::wire::Presence;
use tokio::time::timeout;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_big_and_unknown_method() {
    let broker = Broker::start().await;
    let mut gw = Peer::connect(&broker, "gw", &[REPLY_FILTER]).await;
    let device = spawn_device(device(&broker, "d1"), standard_methods());
    online(&device).await;
    assert_eq!(device.connections(), 1);

    gw.request("d1", "echo", "c1", "hello", Some(now_ms() + 10_000))
        .await;
    let reply = gw.next().await;
    assert_eq!(reply.topic, "thingcall/gateways/test/replies/d1");
    assert_eq!(reply.payload, "hello");
    assert_eq!(corr(&reply), b"c1");
    assert_eq!(user(&reply, "status"), Some("200"));
    user(&reply, "exec-us")
        .expect("exec-us")
        .parse::<u64>()
        .expect("exec-us is a number");
    assert_eq!(props(&reply).content_type.as_deref(), Some("text/plain"));
    assert!(!reply.retain);
    assert_eq!(reply.qos, QoS::AtLeastOnce);

    // 128 KiB, the gateway's default payload limit, in both directions.
    let big = vec![b'x'; 128 * 1024];
    gw.request("d1", "echo", "c2", big.clone(), None).await;
    let reply = gw.next().await;
    assert_eq!(corr(&reply), b"c2");
    assert_eq!(reply.payload, big);

    gw.request("d1", "nope", "c3", "", None).await;
    let reply = gw.next().await;
    assert_eq!(corr(&reply), b"c3");
    assert_eq!(user(&reply, "status"), Some("501"));
    assert_eq!(reply.payload, "method not supported");

    gw.request("d1", "sleep", "c4", "soon", None).await;
    let reply = gw.next().await;
    assert_eq!(user(&reply, "status"), Some("400"));
    assert_eq!(device.stats().executed, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_or_unaddressed_requests_are_not_run() {
    let broker = Broker::start().await;
    let mut gw = Peer::connect(&broker, "gw", &[REPLY_FILTER]).await;
    let device = spawn_device(device(&broker, "d2"), standard_methods());
    online(&device).await;

    gw.request("d2", "echo", "old", "late", Some(now_ms() - 1_000))
        .await;
    // No ResponseTopic: nowhere to answer, so not run either.
    let topic = "thingcall/devices/d2/methods/echo";
    gw.client
        .publish(topic, QoS::AtLeastOnce, false, "lost")
        .await
        .unwrap();
    gw.request("d2", "echo", "new", "fresh", Some(now_ms() + 10_000))
        .await;

    // The device handles requests in order, so once "new" is answered the
    // two before it have been dropped.
    let reply = gw.next().await;
    assert_eq!(corr(&reply), b"new");
    assert_eq!(reply.payload, "fresh");
    let stats = device.stats();
    assert_eq!((stats.executed, stats.expired, stats.duplicates), (1, 1, 0));
    assert!(gw.rx.try_recv().is_err(), "expired request was answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_correlation_runs_once() {
    let broker = Broker::start().await;
    let mut gw = Peer::connect(&broker, "gw", &[REPLY_FILTER]).await;
    let device = spawn_device(device(&broker, "d3"), standard_methods());
    online(&device).await;

    gw.request("d3", "echo", "same", "1", None).await;
    gw.request("d3", "echo", "same", "2", None).await;
    gw.request("d3", "echo", "other", "3", None).await;
    let mut got = [gw.next().await, gw.next().await];
    got.sort_by(|a, b| corr(a).cmp(corr(b)));
    assert_eq!(
        (corr(&got[0]), &got[0].payload[..]),
        (&b"other"[..], &b"3"[..])
    );
    assert_eq!(
        (corr(&got[1]), &got[1].payload[..]),
        (&b"same"[..], &b"1"[..])
    );
    let stats = device.stats();
    assert_eq!((stats.executed, stats.duplicates), (2, 1));
    assert!(gw.rx.try_recv().is_err(), "duplicate was answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_precedes_the_reply() {
    let broker = Broker::start().await;
    let mut gw = Peer::connect(&broker, "gw", &[REPLY_FILTER]).await;
    let mut opts = device(&broker, "d4");
    opts.ack = true;
    let device = spawn_device(opts, standard_methods());
    online(&device).await;

    gw.request("d4", "sleep", "c1", "20", None).await;
    let interim = gw.next().await;
    assert_eq!(corr(&interim), b"c1");
    assert_eq!(user(&interim, "stage"), Some("accepted"));
    assert!(interim.payload.is_empty());
    assert_eq!(user(&interim, "status"), None);
    let fin = gw.next().await;
    assert_eq!(corr(&fin), b"c1");
    assert_eq!(user(&fin, "stage"), None);
    assert_eq!(user(&fin, "status"), Some("200"));
    assert_eq!(fin.payload, "slept 20 ms");
    let exec_us: u64 = user(&fin, "exec-us").unwrap().parse().unwrap();
    assert!(exec_us >= 20_000, "exec-us {exec_us} below the 20 ms slept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_makes_the_broker_publish_the_will() {
    let broker = Broker::start().await;
    let presence = "thingcall/devices/d5/presence";
    let mut watcher = Peer::connect(&broker, "watcher", &[presence]).await;
    let device = spawn_device(device(&broker, "d5"), standard_methods());
    online(&device).await;
    let up = watcher.next_presence().await;
    assert!(up.online);
    assert_eq!(
        up.methods,
        ["big", "echo", "fail", "random", "reboot", "sleep"]
    );
    uuid::Uuid::parse_str(&up.session).expect("session is a UUID");

    device.kill();
    let down = watcher.next_presence().await;
    assert_eq!(
        down,
        Presence {
            online: false,
            session: up.session.clone(),
            methods: vec![]
        }
    );

    // The Will is retained: a later subscriber sees the device offline.
    let mut late = Peer::connect(&broker, "late", &[presence]).await;
    let msg = late.next().await;
    assert!(msg.retain);
    assert_eq!(Presence::from_json(&msg.payload).unwrap(), down);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_announces_offline() {
    let broker = Broker::start().await;
    let presence = "thingcall/devices/d6/presence";
    let mut watcher = Peer::connect(&broker, "watcher", &[presence]).await;
    let mut opts = device(&broker, "d6");
    opts.announce_methods = false;
    let device = spawn_device(opts, standard_methods());
    online(&device).await;
    let up = watcher.next_presence().await;
    assert!(up.online && up.methods.is_empty());

    timeout(WAIT, device.shutdown())
        .await
        .expect("shutdown finished");
    let down = watcher.next_presence().await;
    assert_eq!(
        down,
        Presence {
            online: false,
            session: up.session,
            methods: vec![]
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reboot_reconnects_with_a_new_session() {
    let broker = Broker::start().await;
    let presence = "thingcall/devices/d7/presence";
    let mut gw = Peer::connect(&broker, "gw", &[REPLY_FILTER, presence]).await;
    let device = spawn_device(device(&broker, "d7"), standard_methods());
    online(&device).await;
    let first = gw.next_presence().await;

    gw.request("d7", "reboot", "r1", "10", None).await;
    let reply = gw.next().await;
    assert_eq!(
        (corr(&reply), &reply.payload[..]),
        (&b"r1"[..], &b"rebooting"[..])
    );
    let will = gw.next_presence().await;
    assert_eq!(
        (will.online, will.session.as_str()),
        (false, first.session.as_str())
    );
    let second = gw.next_presence().await;
    assert!(second.online);
    assert_ne!(second.session, first.session);
    timeout(WAIT, device.wait_connection(2))
        .await
        .expect("second connection");
    assert_eq!(device.connections(), 2);

    // Served on the new connection; the old correlation id is still known.
    gw.request("d7", "echo", "r1", "again", None).await;
    gw.request("d7", "echo", "r2", "after", None).await;
    let reply = gw.next().await;
    assert_eq!(
        (corr(&reply), &reply.payload[..]),
        (&b"r2"[..], &b"after"[..])
    );
    assert_eq!(device.stats().duplicates, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_published() {
    let broker = Broker::start().await;
    let mut gw = Peer::connect(&broker, "gw", &["thingcall/devices/+/events/+"]).await;
    let device = spawn_device(device(&broker, "d8"), standard_methods());
    online(&device).await;
    device.publish_event("door", "open").await.unwrap();
    let msg = gw.next().await;
    assert_eq!(msg.topic, "thingcall/devices/d8/events/door");
    assert_eq!(msg.payload, "open");
    assert!(device.publish_event("a/b", "x").await.is_err());

    // A device that cannot reach its broker refuses events instead of
    // queueing them.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let offline = spawn_device(
        DeviceOptions::new("d9", "127.0.0.1", closed),
        standard_methods(),
    );
    assert!(offline.publish_event("door", "open").await.is_err());
    assert!(!offline.is_online());
}
