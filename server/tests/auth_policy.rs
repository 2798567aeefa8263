//! Authorization: the policy allows and denies per subject, target and
//! method (a denied call publishes nothing), limits rates, and filters
//! Watch, List and Get; on both brokers.

mod common;

use common::auth::*;
use common::{reason, req, soon, Harness};
use http::Method;
use jsonwebtoken::Algorithm;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::Event;
use thingcall_proto::v1::{
    device_event::Kind, GetDeviceRequest, ListDevicesRequest, WatchDeviceRequest,
};
use tokio_stream::StreamExt;
use tonic::Code;

/// Reads the spy until a request with `payload`, and returns every
/// request (`device/methods/method`) it saw on the way.
async fn requests_until(spy: &mut rumqttc::v5::EventLoop, payload: &[u8]) -> Vec<String> {
    soon("the sentinel request", async {
        let mut seen = Vec::new();
        loop {
            if let Event::Incoming(Packet::Publish(p)) = spy.poll().await.expect("spy") {
                let topic = String::from_utf8_lossy(&p.topic).into_owned();
                if let Some(call) = topic.strip_prefix("thingcall/devices/") {
                    if call.contains("/methods/") {
                        seen.push(call.to_owned());
                        if p.payload == payload {
                            return seen;
                        }
                    }
                }
            }
        }
    })
    .await
}

async fn policy_allows_and_denies_and_denied_calls_publish_nothing(h: Harness, s: &Setup) {
    let _d = device(&h, "auth-1").await;
    let (_spy, mut spy) = h.spy().await;
    let mut c = h.client.clone();
    let ops = Some(("x-api-key", OPS_KEY));

    // Allowed: the device's answer, with every kind of credential.
    let ok = c
        .invoke(with(ops, req("auth-1", "echo", b"k")))
        .await
        .expect("ops may echo");
    assert_eq!(ok.into_inner().payload, b"k".as_slice());
    let alice = format!("Bearer {}", hs256(&claims("alice"), SECRET));
    let r = c
        .invoke(with(
            Some(("authorization", &alice)),
            req("auth-1", "echo", b"a"),
        ))
        .await;
    assert_eq!(
        r.expect("HS256 token").into_inner().payload,
        b"a".as_slice()
    );
    let ec = format!(
        "Bearer {}",
        signed(Algorithm::ES256, "ec-1", &s.ec, &claims("ec-user"))
    );
    let r = c
        .invoke(with(
            Some(("authorization", &ec)),
            req("auth-1", "echo", b"e"),
        ))
        .await;
    assert_eq!(
        r.expect("ES256 token").into_inner().payload,
        b"e".as_slice()
    );
    if let Some(rsa) = &s.rsa {
        let t = format!(
            "Bearer {}",
            signed(Algorithm::RS256, "rsa-1", rsa, &claims("rsa-user"))
        );
        let r = c
            .invoke(with(
                Some(("authorization", &t)),
                req("auth-1", "echo", b"r"),
            ))
            .await;
        assert_eq!(
            r.expect("RS256 token").into_inner().payload,
            b"r".as_slice()
        );
    }
    let allowed = if s.rsa.is_some() { 4 } else { 3 };

    // Denied: a method, a target, a caller the policy does not cover.
    let bob = format!("Bearer {}", hs256(&claims("bob"), SECRET));
    let denied: [(&str, &str, &str, &str); 4] = [
        ("x-api-key", OPS_KEY, "auth-1", "reboot"),
        ("x-api-key", OPS_KEY, "other-1", "echo"),
        ("x-api-key", VIEWER_KEY, "auth-1", "reboot"),
        ("authorization", &bob, "auth-1", "reboot"),
    ];
    for (k, v, target, method) in denied {
        let e = c
            .invoke(with(Some((k, v)), req(target, method, b"")))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{target} {method}");
        assert_eq!(reason(&e), "PERMISSION_DENIED");
        let url = format!("{}/v1/devices/{target}/methods/{method}", h.base());
        let r = common::http::request(Method::POST, &url, "", &[(k, v)]).await;
        assert_eq!(r.status, 403, "{url}");
        assert_eq!(r.json()["error"]["reason"], "PERMISSION_DENIED");
        let url = format!(
            "{}/invoke?request=x&method={method}&target={target}",
            h.base()
        );
        let r = common::http::request(Method::GET, &url, "", &[(k, v)]).await;
        assert_eq!(r.status, 403, "{url}");
        assert_eq!(r.json()["reason"], "PERMISSION_DENIED");
    }
    // The rate limit: one call, then OVERLOADED with Retry-After.
    let burst = Some(("x-api-key", BURST_KEY));
    c.invoke(with(burst, req("auth-1", "echo", b"")))
        .await
        .expect("first call");
    let url = format!("{}/v1/devices/auth-1/methods/reboot", h.base());
    let r = common::http::request(Method::POST, &url, "", &[("x-api-key", BURST_KEY)]).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["reason"], "OVERLOADED");
    assert!(r.headers.contains_key("retry-after"));

    // Then a last allowed call: the broker carried the allowed calls, the
    // rate-limited caller's one, and nothing denied.
    c.invoke(with(ops, req("auth-1", "echo", b"sentinel")))
        .await
        .expect("ops");
    let seen = requests_until(&mut spy, b"sentinel").await;
    assert_eq!(
        seen,
        vec!["auth-1/methods/echo"; allowed + 2],
        "denied calls were published"
    );
    h.stop().await;
}

async fn watch_and_list_show_only_what_the_caller_may_see(h: Harness) {
    let d1 = device(&h, "auth-1").await;
    let _d2 = device(&h, "auth-2").await;
    let viewer = Some(("x-api-key", VIEWER_KEY));
    let ops = Some(("x-api-key", OPS_KEY));
    let nobody = Some(("x-api-key", NOBODY_KEY));
    let mut c = h.client.clone();

    let ids = |r: thingcall_proto::v1::ListDevicesResponse| {
        r.devices.into_iter().map(|d| d.id).collect::<Vec<_>>()
    };
    let all = c
        .list_devices(with(ops, ListDevicesRequest::default()))
        .await
        .unwrap();
    assert_eq!(ids(all.into_inner()), ["auth-1", "auth-2"]);
    let mine = c
        .list_devices(with(viewer, ListDevicesRequest::default()))
        .await
        .unwrap();
    assert_eq!(ids(mine.into_inner()), ["auth-1"]);
    let get = |id: &str| GetDeviceRequest { target: id.into() };
    c.get_device(with(viewer, get("auth-1")))
        .await
        .expect("visible");
    let e = c.get_device(with(viewer, get("auth-2"))).await.unwrap_err();
    assert_eq!(reason(&e), "PERMISSION_DENIED");
    let e = c
        .list_devices(with(nobody, ListDevicesRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(reason(&e), "PERMISSION_DENIED");
    let e = c
        .watch_device(with(nobody, WatchDeviceRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(reason(&e), "PERMISSION_DENIED");
    let r = common::http::request(
        Method::GET,
        &format!("{}/v1/devices", h.base()),
        "",
        &[("x-api-key", VIEWER_KEY)],
    )
    .await;
    assert_eq!(r.json()["devices"].as_array().unwrap().len(), 1);

    // The watch: only auth-1 in the snapshot, and live changes of the
    // hidden auth-3 never arrive before auth-1's own.
    let mut w = c
        .watch_device(with(viewer, WatchDeviceRequest::default()))
        .await
        .expect("viewer may watch")
        .into_inner();
    let first = w.next().await.unwrap().unwrap();
    assert_eq!(first.device, "auth-1");
    let synced = w.next().await.unwrap().unwrap();
    assert!(
        matches!(synced.kind, Some(Kind::Synced(s)) if s.devices == 1),
        "{synced:?}"
    );
    let _d3 = device(&h, "auth-3").await;
    d1.shutdown().await;
    let next = soon("auth-1 offline", w.next()).await.unwrap().unwrap();
    assert_eq!(next.device, "auth-1", "{next:?}");
    assert!(matches!(next.kind, Some(Kind::Presence(p)) if !p.online));
    h.stop().await;
}

macro_rules! auth_broker_tests {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let s = super::setup();
                    let h = super::harness(super::common::Broker::Embedded, &s).await;
                    super::$name(h, &s).await;
                }
            )*
        }
        mod mosquitto {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(not(mosquitto), ignore = "mosquitto not installed (apt-get install mosquitto)")]
                async fn $name() {
                    let s = super::setup();
                    let Some(h) = super::Harness::start_with(super::common::Broker::Mosquitto, |c| s.configure(c)).await else { return };
                    super::$name(h, &s).await;
                }
            )*
        }
    };
}

async fn watch_and_list(h: Harness, _: &Setup) {
    watch_and_list_show_only_what_the_caller_may_see(h).await
}

auth_broker_tests!(
    policy_allows_and_denies_and_denied_calls_publish_nothing,
    watch_and_list
);
