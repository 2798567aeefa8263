//! The session faults only a scripted broker can produce: the gateway's
//! MQTT link goes to a `thingcall_testkit::peer::ScriptedPeer`, which
//! refuses the login, withholds SUBACKs, goes half-open, or sends what
//! real brokers refuse to forward (a topic that is not UTF-8, broken
//! framing, a topic alias never set, bad correlation data, replies twice
//! or late). Each case asserts what the caller sees and what is counted.

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use common::capture::Capture;
use common::{req, secs_f, soon};
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, PublishProperties};
use thingcall_proto::v1::device_gateway_client::DeviceGatewayClient;
use thingcall_proto::v1::{device_event::Kind, InvokeResponse};
use thingcall_proto::wire::{Presence, Topics};
use thingcall_server::Running;
use thingcall_testkit::peer::{raw, PeerConnection, Script, ScriptedPeer};
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{health_check_response::ServingStatus, HealthCheckRequest};

/// The device the peer answers for.
const DEVICE: &str = "dev";

/// The gateway's keep-alive: its watchdog gives up after 1.5 x this.
const KEEP_ALIVE: Duration = Duration::from_secs(1);

/// A call's deadline when the test needs it to outlast the watchdog's
/// 1.5 s but not rumqttc's own keep-alive (a ping at 5 s at the soonest):
/// BROKER_UNAVAILABLE before it means the watchdog noticed.
const CALL_TIMEOUT: f64 = 4.0;

/// Everything logged in this test binary at warn and above.
fn logs() -> &'static Capture {
    static LOGS: OnceLock<Capture> = OnceLock::new();
    LOGS.get_or_init(|| {
        let capture = Capture::default();
        tracing_subscriber::fmt()
            .with_env_filter("warn")
            .with_writer(capture.clone())
            .init();
        capture
    })
}

/// A call in flight, as the gRPC client will see its end.
type Call = JoinHandle<Result<tonic::Response<InvokeResponse>, tonic::Status>>;

struct Rig {
    peer: ScriptedPeer,
    gw: Running,
    client: DeviceGatewayClient<Channel>,
}

/// A gateway whose broker is `peer`; nothing waits for the session.
async fn gateway(peer: ScriptedPeer) -> Rig {
    logs();
    let mut cfg = common::gateway_config(peer.addr());
    cfg.mqtt_keep_alive = KEEP_ALIVE;
    let gw = thingcall_server::start(cfg).await.expect("gateway starts");
    let client = DeviceGatewayClient::connect(format!("http://{}", gw.grpc_addr))
        .await
        .expect("grpc connect");
    Rig { peer, gw, client }
}

impl Rig {
    /// The next connection, through to the session being up (the peer's
    /// default script grants the subscriptions).
    async fn session(&mut self) -> PeerConnection {
        let conn = soon("the gateway connects", self.peer.accept()).await;
        let mut up = self.gw.gateway.connected();
        soon("the session is up", up.wait_for(|c| *c))
            .await
            .unwrap();
        // The device online in this session (presence is trusted only in
        // the session it arrives in), under a session id of its own, so
        // the gateway's watch shows this very announcement.
        let session = uuid::Uuid::new_v4().to_string();
        let mut seen = self
            .gw
            .gateway
            .watch(&thingcall_server::auth::Access::All, DEVICE, false)
            .expect("in-process watch");
        let presence = Presence {
            online: true,
            session: session.clone(),
            methods: vec![],
        };
        conn.publish(Topics::default().presence(DEVICE), presence.to_json(), None);
        soon("the device online", async {
            while let Some(ev) = seen.next().await {
                if matches!(&ev.kind, Some(Kind::Presence(p)) if p.online && p.session == session) {
                    return;
                }
            }
            panic!("the watch ended");
        })
        .await;
        conn
    }

    /// A call to [`DEVICE`] in flight, and the request the peer got for it.
    async fn call(&self, conn: &mut PeerConnection, timeout: f64) -> (Call, Request) {
        let mut c = self.client.clone();
        let mut r = req(DEVICE, "m", b"q");
        r.timeout = secs_f(timeout);
        let call = tokio::spawn(async move { c.invoke(r).await });
        let p = soon("the request", conn.publish_seen()).await.unwrap();
        let props = p.properties.expect("request properties");
        let request = Request {
            topic: props.response_topic.expect("response topic"),
            correlation: props.correlation_data.expect("correlation data"),
        };
        (call, request)
    }

    async fn health(&self) -> ServingStatus {
        let r = HealthClient::new(self.client_channel().await)
            .check(HealthCheckRequest {
                service: "thingcall.v1.DeviceGateway".into(),
            })
            .await
            .unwrap();
        r.into_inner().status()
    }

    async fn client_channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.gw.grpc_addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// A call now fails with BROKER_UNAVAILABLE, without waiting its
    /// (long) deadline.
    async fn refused_at_once(&self) {
        let mut r = req(DEVICE, "m", b"");
        r.timeout = secs_f(240.0);
        let e = soon("a call while down", self.client.clone().invoke(r))
            .await
            .unwrap_err();
        assert_eq!(common::reason(&e), "BROKER_UNAVAILABLE", "{e:?}");
    }

    async fn tallies_reach(
        &self,
        what: &str,
        f: impl Fn(&thingcall_server::gateway::Tallies) -> bool,
    ) {
        let mut t = self.gw.gateway.tallies();
        soon(what, t.wait_for(|t| f(t))).await.unwrap();
    }

    async fn metrics(&self) -> String {
        let r = common::http::get(&format!("http://{}/metrics", self.gw.grpc_addr)).await;
        String::from_utf8(r.body.to_vec()).unwrap()
    }

    async fn stop(self) {
        self.gw.stop().await;
    }
}

/// Where and with what the peer answers a request.
struct Request {
    topic: String,
    correlation: Bytes,
}

impl Request {
    fn props(&self) -> Option<PublishProperties> {
        Some(PublishProperties {
            correlation_data: Some(self.correlation.clone()),
            ..Default::default()
        })
    }
}

async fn answered(call: Call) -> Bytes {
    soon("the answer", call)
        .await
        .unwrap()
        .expect("an answer")
        .into_inner()
        .payload
}

async fn failed(call: Call) -> String {
    let e = soon("the call fails", call)
        .await
        .unwrap()
        .expect_err("no answer");
    common::reason(&e)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withheld_subacks_give_up_and_reconnect() {
    let peer = ScriptedPeer::start_with(Script {
        suback: false,
        ..Script::default()
    })
    .await;
    let mut rig = gateway(peer).await;
    let mut first = soon("the gateway connects", rig.peer.accept()).await;
    soon("its SUBSCRIBE", first.subscribe()).await.unwrap();
    // CONNACKed but not subscribed: not ready, calls refused at once.
    assert_eq!(rig.health().await, ServingStatus::NotServing);
    rig.refused_at_once().await;
    // The next connection gets its SubAcks.
    rig.peer.set_script(Script::default());
    let why = soon("the gateway gives up", first.closed()).await;
    assert!(why.contains("client"), "{why}");
    assert!(
        first.accepted_at.elapsed() >= KEEP_ALIVE * 3 / 2,
        "it waited the bound"
    );
    let mut conn = rig.session().await;
    rig.tallies_reach("a failure counted", |t| t.connection_failures >= 1)
        .await;
    let (call, r) = rig.call(&mut conn, CALL_TIMEOUT).await;
    conn.publish(r.topic.clone(), "ok", r.props());
    assert_eq!(&answered(call).await[..], b"ok");
    rig.stop().await;
}

async fn refused_login_is_retried(code: ConnectReturnCode) {
    let mut rig = gateway(ScriptedPeer::start_with(Script::refuse(code)).await).await;
    let mut conns = Vec::new();
    for _ in 0..3 {
        let mut c = soon("a connection attempt", rig.peer.accept()).await;
        soon("refused", c.closed()).await;
        conns.push(c);
    }
    // The first retry is at once, the next after the backoff (50 ms at least).
    assert!(
        conns[2].accepted_at - conns[1].accepted_at >= Duration::from_millis(50),
        "backoff"
    );
    assert_eq!(rig.health().await, ServingStatus::NotServing);
    rig.refused_at_once().await;
    let text = logs().text();
    let name = format!("{code:?}");
    assert!(
        text.lines()
            .any(|l| l.contains("MQTT connect failed") && l.contains(&name)),
        "the refusal's reason is logged at warn:\n{text}"
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_authorized_login_is_retried_with_backoff() {
    refused_login_is_retried(ConnectReturnCode::NotAuthorized).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_are_retried_with_backoff() {
    refused_login_is_retried(ConnectReturnCode::BadUserNamePassword).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_replies_are_counted_and_the_first_real_one_wins() {
    let mut rig = gateway(ScriptedPeer::start().await).await;
    let mut conn = rig.session().await;
    let (call, r) = rig.call(&mut conn, 30.0).await;
    // A topic that is not UTF-8, under the reply topic.
    let mut bad_topic = r.topic.clone().into_bytes();
    bad_topic.extend_from_slice(b"\xff");
    conn.publish(bad_topic, "junk", r.props());
    // Correlation data of the wrong length.
    let short = Some(PublishProperties {
        correlation_data: Some(Bytes::from_static(b"abc")),
        ..Default::default()
    });
    conn.publish(r.topic.clone(), "junk", short);
    rig.tallies_reach("two malformed", |t| t.dropped_malformed >= 2)
        .await;
    // The right answer, twice: the first wins, the second is a duplicate.
    conn.publish(r.topic.clone(), "first", r.props());
    conn.publish(r.topic.clone(), "second", r.props());
    assert_eq!(&answered(call).await[..], b"first");
    rig.tallies_reach("a duplicate", |t| t.dropped_duplicate >= 1)
        .await;
    let t = *rig.gw.gateway.tallies().borrow();
    assert_eq!((t.dropped_malformed, t.dropped_duplicate), (2, 1));
    let m = rig.metrics().await;
    assert!(
        m.contains("thingcall_replies_dropped_total{cause=\"duplicate\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("thingcall_replies_dropped_total{cause=\"malformed\"} 2"),
        "{m}"
    );
    // The session took none of it as fatal.
    assert_eq!(t.connection_failures, 0);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_flagged_utf8_that_is_not_passes_through_as_bytes() {
    let mut rig = gateway(ScriptedPeer::start().await).await;
    let mut conn = rig.session().await;
    let (call, r) = rig.call(&mut conn, 30.0).await;
    // The gateway treats payloads as opaque bytes: the flag is advisory
    // (MQTT 5 lets a receiver skip the check), so the caller gets them.
    conn.publish(
        r.topic.clone(),
        &b"\xff\xfe"[..],
        r.props().map(raw::utf8_flagged),
    );
    assert_eq!(&answered(call).await[..], b"\xff\xfe");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_after_the_deadline_is_counted_late() {
    let mut rig = gateway(ScriptedPeer::start().await).await;
    let mut conn = rig.session().await;
    let (call, r) = rig.call(&mut conn, 0.3).await;
    assert_eq!(failed(call).await, "DEVICE_TIMEOUT");
    conn.publish(r.topic.clone(), "too late", r.props());
    rig.tallies_reach("a late reply", |t| t.dropped_late >= 1)
        .await;
    let m = rig.metrics().await;
    assert!(
        m.contains("thingcall_replies_dropped_total{cause=\"late\"} 1"),
        "{m}"
    );
    rig.stop().await;
}

/// Sends what `poison` makes on a session with a call in flight: the
/// gateway must drop the connection, fail the call with
/// BROKER_UNAVAILABLE, and come back on a new connection.
async fn fatal_packet(poison: impl FnOnce(&PeerConnection, &Request)) {
    let mut rig = gateway(ScriptedPeer::start().await).await;
    let mut conn = rig.session().await;
    let (call, r) = rig.call(&mut conn, 30.0).await;
    poison(&conn, &r);
    assert_eq!(failed(call).await, "BROKER_UNAVAILABLE");
    soon("the old connection ends", conn.closed()).await;
    let mut again = rig.session().await;
    let (call, r) = rig.call(&mut again, 30.0).await;
    again.publish(r.topic.clone(), "back", r.props());
    assert_eq!(&answered(call).await[..], b"back");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_framing_drops_the_connection() {
    fatal_packet(|conn, _| conn.send_raw(raw::bad_remaining_length())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_alias_never_set_drops_the_connection() {
    fatal_packet(|conn, r| {
        let mut props = raw::unknown_topic_alias(7);
        props.correlation_data = Some(r.correlation.clone());
        conn.publish(Bytes::new(), "aliased", Some(props));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_broker_fails_calls_within_the_keep_alive() {
    let mut rig = gateway(ScriptedPeer::start().await).await;
    let mut conn = rig.session().await;
    let (call, _r) = rig.call(&mut conn, CALL_TIMEOUT).await;
    // The reconnection gets no CONNACK, so the gateway stays down.
    rig.peer.set_script(Script {
        connack: None,
        ..Script::default()
    });
    // Up, but reading and answering nothing: only the watchdog can tell.
    conn.silence();
    assert_eq!(failed(call).await, "BROKER_UNAVAILABLE");
    let _unanswered = soon("a reconnection", rig.peer.accept()).await;
    rig.refused_at_once().await;
    assert_eq!(rig.health().await, ServingStatus::NotServing);
    // The silent connection is still open; the gateway comes back on a
    // new one once the broker answers again.
    rig.peer.set_script(Script::default());
    let _again = rig.session().await;
    drop(conn);
    rig.stop().await;
}

/// A broker busy sending (a large retained presence sync) answers PINGREQ
/// late, behind everything queued before it. rumqttc pings every
/// keep-alive whatever the traffic and, by itself, drops the connection
/// when the previous PINGRESP is still due: each reconnect restarted the
/// sync. Anything received must count as the answer, so the gateway pings
/// again on the same connection while messages keep coming.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_pingresp_behind_traffic_keeps_the_link() {
    let mut rig = gateway(
        ScriptedPeer::start_with(Script {
            pingresp: false,
            ..Script::default()
        })
        .await,
    )
    .await;
    let mut conn = rig.session().await;
    let topics = Topics::default();
    let online = Presence {
        online: true,
        session: "s1".into(),
        methods: vec![],
    }
    .to_json();
    // Traffic paced well inside the watchdog's 1.5 x keep-alive; the
    // pacing makes load, it synchronises nothing.
    let stream = {
        let commands = conn.sender();
        tokio::spawn(async move {
            for i in 0u64.. {
                commands.publish(topics.presence(&format!("busy-{i}")), online.clone(), None);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    // rumqttc's first ping goes at 5 s (its floor), the second at 10 s:
    // without the fix the second is an error that closes the link instead.
    let pings = tokio::time::timeout(Duration::from_secs(30), async {
        let mut pings = 0;
        while pings < 2 {
            match conn.next().await {
                thingcall_testkit::peer::Seen::Packet(p)
                    if matches!(*p, rumqttc::v5::mqttbytes::v5::Packet::PingReq(_)) =>
                {
                    pings += 1
                }
                thingcall_testkit::peer::Seen::Packet(_) => {}
                thingcall_testkit::peer::Seen::Closed(why) => return Err(why),
            }
        }
        Ok(pings)
    })
    .await
    .expect("two pings within 30 s");
    stream.abort();
    assert_eq!(pings, Ok(2), "the link was dropped");
    assert!(rig
        .metrics()
        .await
        .contains("thingcall_mqtt_reconnects_total 0"));
    rig.stop().await;
}
