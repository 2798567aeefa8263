//! A large fleet that is only retained presence: `thingcall-fleet`'s loader
//! puts 100,000 documents on a Mosquitto started here (one connection, no
//! devices), then a fresh gateway syncs from them. The size in CI; the
//! million-device figures are in BENCHMARKS.md (`bench/fleet.sh`).
//!
//! - The sync completes with every device, and `/metrics` says so: devices
//!   known, retained presence received, the last one's time, the sync's
//!   duration.
//! - `ListDevices` pages from any token and seeks a glob's literal prefix.
//! - A `WatchDevice` over the whole fleet, left unread mid-snapshot, does
//!   not hold up calls to a live device or presence changes; read, it gives
//!   every device, then `synced` with the count.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{gateway_config, soon};
use thingcall_device::fleet::{load, FleetPlan};
use thingcall_device::{spawn_device, standard_methods, DeviceOptions};
use thingcall_proto::v1::device_event::Kind;
use thingcall_proto::v1::device_gateway_client::DeviceGatewayClient;
use thingcall_proto::v1::{InvokeRequest, ListDevicesRequest, WatchDeviceRequest};
use thingcall_proto::wire::BrokerUrl;
use tokio_stream::StreamExt;

const FLEET: u64 = 100_000;
/// Loading and syncing 100,000 documents in a debug build on a loaded CI
/// machine: a few seconds; the bound only stops a hung test.
const SLOW: Duration = Duration::from_secs(120);

async fn metrics(base: &str) -> BTreeMap<String, String> {
    let page = common::http::get(&format!("{base}/metrics")).await;
    String::from_utf8_lossy(&page.body)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(mosquitto),
    ignore = "mosquitto not installed (apt-get install mosquitto)"
)]
async fn a_fresh_gateway_syncs_a_large_retained_fleet() {
    let Some(broker) = thingcall_testkit::Mosquitto::start() else {
        return;
    };
    let plan = FleetPlan {
        broker: BrokerUrl::parse(&format!("mqtt://{}", broker.addr())).unwrap(),
        prefix: "fleet-".into(),
        count: FLEET,
        topic_root: "thingcall".into(),
        methods: vec!["echo".into(), "reboot".into()],
        clear: false,
    };
    let loaded = tokio::time::timeout(SLOW, load(&plan, |_| {}))
        .await
        .expect("the load finishes")
        .expect("the load");
    assert_eq!(loaded.published, FLEET);

    let gw = thingcall_server::start(gateway_config(broker.addr()))
        .await
        .expect("gateway starts");
    let base = format!("http://{}", gw.grpc_addr);
    // Bounded polling of an observable: the sync of a separate session.
    let synced = tokio::time::timeout(SLOW, async {
        loop {
            let m = metrics(&base).await;
            if m.get("thingcall_presence_synced").map(String::as_str) == Some("1") {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the gateway syncs");
    let fleet = FLEET.to_string();
    for key in [
        "thingcall_devices_known",
        "thingcall_devices_online",
        "thingcall_presence_sync_retained",
    ] {
        assert_eq!(synced.get(key), Some(&fleet), "{key}");
    }
    assert_eq!(synced["thingcall_devices_unconfirmed"], "0");
    let last: f64 = synced["thingcall_presence_last_retained_timestamp_seconds"]
        .parse()
        .unwrap();
    assert!(last > 1.6e9, "a Unix time: {last}");
    let took: f64 = synced["thingcall_presence_sync_duration_seconds"]
        .parse()
        .unwrap();
    assert!(took > 0.0);

    let mut client = DeviceGatewayClient::connect(base.clone()).await.unwrap();
    let ids = |r: thingcall_proto::v1::ListDevicesResponse| -> (Vec<String>, String) {
        (
            r.devices.into_iter().map(|d| d.id).collect(),
            r.next_page_token,
        )
    };
    // From a token in the middle (ids sort as text).
    let page = client
        .list_devices(ListDevicesRequest {
            target: String::new(),
            page_size: 3,
            page_token: "fleet-50000".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let (got, next) = ids(page);
    assert_eq!(got, ["fleet-50001", "fleet-50002", "fleet-50003"]);
    assert_eq!(next, "fleet-50003");
    // A glob with a literal prefix, paged.
    let page = client
        .list_devices(ListDevicesRequest {
            target: "fleet-9999?".into(),
            page_size: 4,
            page_token: "fleet-99995".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        ids(page),
        (
            vec![
                "fleet-99996".to_string(),
                "fleet-99997".into(),
                "fleet-99998".into(),
                "fleet-99999".into()
            ],
            String::new()
        )
    );

    // A watch over the whole fleet, not read: its snapshot stops part way,
    // waiting for room in its buffer, while calls and presence go on.
    let mut watch = client
        .watch_device(WatchDeviceRequest {
            target: "fleet-*".into(),
            include_events: false,
        })
        .await
        .unwrap()
        .into_inner();
    let live = spawn_device(
        DeviceOptions::new("live-1", "127.0.0.1", broker.port()),
        standard_methods(),
    );
    soon("live-1 online", live.wait_online()).await;
    soon("the gateway sees live-1", async {
        loop {
            let m = metrics(&base).await;
            if m["thingcall_devices_known"] == (FLEET + 1).to_string() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    for i in 0..20 {
        let nonce = format!("call {i}");
        let answer = soon(
            "a call during the watch",
            client.invoke(InvokeRequest {
                target: "live-1".into(),
                method: "echo".into(),
                payload: nonce.clone().into_bytes().into(),
                ..Default::default()
            }),
        )
        .await
        .expect("echo")
        .into_inner();
        assert_eq!(answer.payload, nonce.as_bytes());
    }

    // Read, the watch gives every fleet device once, then synced.
    let mut seen = 0u64;
    let count = tokio::time::timeout(SLOW, async {
        while let Some(ev) = watch.next().await {
            match ev.expect("event").kind {
                Some(Kind::Presence(d)) => {
                    assert!(d.id.starts_with("fleet-") && d.online, "{d:?}");
                    seen += 1;
                }
                Some(Kind::Synced(s)) => return s.devices,
                other => panic!("before synced: {other:?}"),
            }
        }
        panic!("the watch ended");
    })
    .await
    .expect("the watch's snapshot");
    assert_eq!((seen, u64::from(count)), (FLEET, FLEET));
    live.shutdown().await;
    gw.stop().await;
}
