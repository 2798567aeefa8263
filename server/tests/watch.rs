//! WatchDevice and the device registry through gRPC.

mod common;

use common::{req, soon, Harness};
use thingcall_proto::v1::{device_event::Kind, ListDevicesRequest, WatchDeviceRequest};
use tokio_stream::StreamExt;

broker_tests!(
    watch_sees_initial_state_offline_online_and_outcomes,
    list_devices_pages_and_filters
);

async fn watch_sees_initial_state_offline_online_and_outcomes(h: Harness) {
    let d1 = h.device("pump-1").await;
    let _d2 = h.device("pump-2").await;
    let _v = h.device("valve-1").await;
    let mut c = h.client.clone();
    let mut s = c
        .watch_device(WatchDeviceRequest {
            target: "pump-*".into(),
            include_events: false,
        })
        .await
        .unwrap()
        .into_inner();
    let mut initial = Vec::new();
    soon("initial state", async {
        while let Some(ev) = s.next().await {
            match ev.unwrap().kind {
                Some(Kind::Presence(d)) => {
                    initial.push((d.id, d.online, d.methods.contains(&"echo".to_string())))
                }
                Some(Kind::Synced(n)) => {
                    assert_eq!(n.devices, 2);
                    return;
                }
                other => panic!("unexpected before synced: {other:?}"),
            }
        }
    })
    .await;
    assert_eq!(
        initial,
        [("pump-1".into(), true, true), ("pump-2".into(), true, true)]
    );

    // An invocation outcome, then offline, then online again.
    c.invoke(req("pump-2", "echo", b"x")).await.unwrap();
    d1.shutdown().await;
    let _back = thingcall_device::spawn_device(
        h.device_options("pump-1"),
        thingcall_device::standard_methods(),
    );
    let mut seen = Vec::new();
    soon("outcome, offline, online", async {
        while let Some(ev) = s.next().await {
            let ev = ev.unwrap();
            assert_ne!(ev.device, "valve-1", "filtered by pattern");
            match ev.kind {
                Some(Kind::Invocation(o)) => {
                    assert_eq!(
                        (o.method.as_str(), o.outcome.as_str(), o.status),
                        ("echo", "OK", 200)
                    );
                    seen.push(format!("{} invoke", ev.device));
                }
                Some(Kind::Presence(d)) => seen.push(format!(
                    "{} {}",
                    d.id,
                    if d.online { "online" } else { "offline" }
                )),
                _ => {}
            }
            if seen.last().map(String::as_str) == Some("pump-1 online") {
                return;
            }
        }
    })
    .await;
    assert_eq!(seen, ["pump-2 invoke", "pump-1 offline", "pump-1 online"]);
    h.stop().await;
}

async fn list_devices_pages_and_filters(h: Harness) {
    let mut ds = Vec::new();
    for i in 1..=5 {
        ds.push(h.device(&format!("lst-{i}")).await);
    }
    let _other = h.device("zzz-1").await;
    let mut c = h.client.clone();
    let mut ids = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = c
            .list_devices(ListDevicesRequest {
                target: "lst-*".into(),
                page_size: 2,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        ids.extend(page.devices.into_iter().map(|d| d.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(ids, ["lst-1", "lst-2", "lst-3", "lst-4", "lst-5"]);
    assert_eq!(pages, 3);
    let e = c
        .get_device(thingcall_proto::v1::GetDeviceRequest {
            target: "nobody".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(common::reason(&e), "DEVICE_NOT_FOUND");
    h.stop().await;
}
