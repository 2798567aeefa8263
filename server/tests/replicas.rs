//! Three gateway replicas on one broker, sharing nothing: three
//! `thingcall-server` processes, each with its own gateway id (so its own
//! reply topic) and seed client prefix, on one Mosquitto started here,
//! with 1,000 devices announcing presence (the device SDK in this process,
//! one MQTT connection each, as `thingcall-sim` runs them).
//!
//! - Calls from several concurrent callers, spread round-robin over the
//!   replicas, each with a unique nonce that `echo` returns: every answer
//!   carries its own nonce to its own caller, each replica answered exactly
//!   the calls sent to it, and no replica dropped a reply (`foreign`,
//!   `unknown` or any other cause on `/metrics`).
//! - Every replica's `ListDevices`, read page by page, agrees: the same
//!   ids, states, methods and sessions, including devices gone offline. One
//!   replica starts after the devices: it builds its view from the
//!   retained presence alone.
//! - `kill -9` of one replica while callers are pinned to each (as a load
//!   balancer pins connections): its own callers' connections drop (a
//!   transport error, UNAVAILABLE with no gateway reason), the other
//!   replicas' callers see no error during or after, and their calls go on.
//!
//! This test found a deadlock: `/metrics` took the presence registry's
//! read lock twice in one statement, and a presence writer queued between
//! the two (parking_lot's RwLock is fair) stalled both for good.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::process::GatewayProcess;
use common::soon;
use thingcall_device::{spawn_device, standard_methods, DeviceHandle, DeviceOptions};
use thingcall_proto::v1::device_gateway_client::DeviceGatewayClient;
use thingcall_proto::v1::{Device, InvokeRequest, ListDevicesRequest};
use tokio::sync::{mpsc, watch};
use tonic::transport::Channel;
use tonic_types::StatusExt;

const REPLICAS: usize = 3;
const DEVICES: usize = 1000;
/// Devices started at once, each batch online before the next (as the
/// simulator's --connect-concurrency).
const CONNECT_BATCH: usize = 64;
/// Concurrent callers; in the kill phase three are pinned to each replica.
const CALLERS: usize = 9;
/// Calls per caller while spreading round-robin over the replicas.
const SPREAD_CALLS: usize = 150;
/// Calls each pinned caller completes before the kill, and each surviving
/// one after it.
const PINNED_CALLS: u64 = 40;
/// Devices stopped cleanly, so listings have offline ones to agree on.
const STOPPED: [usize; 5] = [7, 123, 456, 789, 999];
/// Page size of the listings: several pages, the last one short.
const PAGE: i32 = 128;

type Client = DeviceGatewayClient<Channel>;

fn device_id(i: usize) -> String {
    format!("rep-{i}")
}

/// The `i`-th device a caller calls: spread over the fleet, never a
/// stopped one.
fn target(caller: usize, i: usize) -> String {
    let mut n = (caller * 331 + i * 17) % DEVICES;
    while STOPPED.contains(&n) {
        n = (n + 1) % DEVICES;
    }
    device_id(n)
}

/// One replica: its process and its gateway id.
struct Replica {
    gw: GatewayProcess,
    id: String,
}

impl Replica {
    async fn start(n: usize, mqtt: std::net::SocketAddr) -> Replica {
        let pid = std::process::id();
        let id = format!("replica-{n}-{pid}");
        let prefix = format!("seed-{n}-{pid}");
        let url = format!("mqtt://{mqtt}");
        let gw = GatewayProcess::start(&[
            "--mqtt-url",
            &url,
            "--gateway-id",
            &id,
            "--seed-client-prefix",
            &prefix,
        ])
        .await;
        assert_eq!(gw.listening["fields"]["gateway_id"], id.as_str());
        Replica { gw, id }
    }

    /// A caller's own connection to this replica.
    async fn connect(&self) -> Client {
        soon("gRPC connect", Client::connect(self.gw.base()))
            .await
            .expect("gRPC connect")
    }

    /// Its `/metrics`, as `name{labels}` -> value.
    async fn metrics(&self) -> BTreeMap<String, u64> {
        let page = common::http::get(&format!("{}/metrics", self.gw.base())).await;
        String::from_utf8_lossy(&page.body)
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_owned(), v.parse().ok()?))
            })
            .collect()
    }

    async fn metric(&self, key: &str) -> u64 {
        let m = self.metrics().await;
        *m.get(key)
            .unwrap_or_else(|| panic!("no {key} on {}'s /metrics", self.id))
    }

    /// Polls `/metrics` (bounded by [`soon`]) until `key` reads `value`.
    async fn wait_metric(&self, key: &str, value: u64) {
        let last = AtomicU64::new(u64::MAX);
        let waited = tokio::time::timeout(common::SOON, async {
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            loop {
                let now = self.metric(key).await;
                last.store(now, Ordering::Relaxed);
                if now == value {
                    return;
                }
                tick.tick().await;
            }
        })
        .await;
        if waited.is_err() {
            let last = last.load(Ordering::Relaxed);
            let page = self.metrics().await;
            panic!("{key} is {last}, not {value}, on {}: {page:#?}", self.id);
        }
    }

    /// Every device, read page by page: (id, online, methods, session).
    async fn listing(&self) -> Vec<(String, bool, Vec<String>, String)> {
        let mut client = self.connect().await;
        let (mut all, mut token, mut pages) = (Vec::new(), String::new(), 0);
        loop {
            let page = client
                .list_devices(ListDevicesRequest {
                    target: "rep-*".into(),
                    page_size: PAGE,
                    page_token: token,
                })
                .await
                .expect("ListDevices")
                .into_inner();
            assert!(page.devices.len() <= PAGE as usize);
            pages += 1;
            all.extend(
                page.devices
                    .into_iter()
                    .map(|d: Device| (d.id, d.online, d.methods, d.session)),
            );
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        assert_eq!(
            pages,
            DEVICES.div_ceil(PAGE as usize),
            "pages of {}",
            self.id
        );
        all
    }

    /// Reply-drop counters are all 0, and `echo` calls ended only `OK`,
    /// exactly `answered` of them.
    async fn assert_clean(&self, answered: u64) {
        let m = self.metrics().await;
        for cause in ["late", "duplicate", "unknown", "foreign", "malformed"] {
            let key = format!("thingcall_replies_dropped_total{{cause=\"{cause}\"}}");
            assert_eq!(m.get(&key), Some(&0), "{key} on {}", self.id);
        }
        let calls: Vec<_> = m
            .iter()
            .filter(|(k, _)| k.starts_with("thingcall_invocations_total{"))
            .collect();
        let ok = "thingcall_invocations_total{method=\"echo\",outcome=\"OK\"}".to_owned();
        assert_eq!(calls, [(&ok, &answered)], "calls ended on {}", self.id);
    }
}

/// One echo of a fresh nonce through `client`: Ok when the answer is this
/// call's own nonce, the gRPC status otherwise.
async fn echo(client: &mut Client, caller: usize, i: usize) -> Result<(), tonic::Status> {
    let nonce = format!("{caller}/{i}/{}", uuid::Uuid::new_v4());
    let answer = client
        .invoke(InvokeRequest {
            target: target(caller, i),
            method: "echo".into(),
            payload: nonce.clone().into_bytes().into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(answer.status, 200);
    assert_eq!(
        String::from_utf8_lossy(&answer.payload),
        nonce,
        "caller {caller} got another call's answer"
    );
    Ok(())
}

/// Starts the devices in batches, each online before the next.
async fn start_devices(port: u16) -> Vec<DeviceHandle> {
    let mut devices = Vec::with_capacity(DEVICES);
    for first in (0..DEVICES).step_by(CONNECT_BATCH) {
        for i in first..(first + CONNECT_BATCH).min(DEVICES) {
            let opts = DeviceOptions::new(device_id(i), "127.0.0.1", port);
            devices.push(spawn_device(opts, standard_methods()));
        }
        soon("a batch of devices online", async {
            for d in &devices[first..] {
                d.wait_online().await;
            }
        })
        .await;
    }
    devices
}

/// Every replica's listing is the same, with exactly [`STOPPED`] offline.
async fn assert_listings_agree(replicas: &[&Replica]) {
    let first = replicas[0].listing().await;
    assert_eq!(first.len(), DEVICES);
    let offline: Vec<&str> = first
        .iter()
        .filter(|d| !d.1)
        .map(|d| d.0.as_str())
        .collect();
    let mut stopped: Vec<String> = STOPPED.iter().map(|&i| device_id(i)).collect();
    stopped.sort();
    assert_eq!(offline, stopped);
    assert!(first.iter().all(|d| !d.2.is_empty() && !d.3.is_empty()));
    for r in &replicas[1..] {
        assert!(
            r.listing().await == first,
            "{} disagrees with {}",
            r.id,
            replicas[0].id
        );
    }
}

/// How a pinned caller's run ended.
struct PinnedRun {
    replica: usize,
    ok: u64,
    errors: Vec<tonic::Status>,
}

/// What the pinned callers share with the test.
#[derive(Clone)]
struct Pinning {
    /// Turns true once replica 0 has been killed.
    killed: watch::Receiver<bool>,
    /// Turns true when the callers of live replicas should stop.
    stop: watch::Receiver<bool>,
    /// Gets a caller's number once it has [`PINNED_CALLS`] answers, and
    /// again [`PINNED_CALLS`] answers after the kill.
    progress: mpsc::UnboundedSender<usize>,
}

/// A caller pinned to `client`'s replica: calls until `stop`, or, with
/// `until_error`, until its first error (whatever `stop` says).
async fn pinned_caller(
    caller: usize,
    replica: usize,
    mut client: Client,
    until_error: bool,
    pinning: Pinning,
    answered: Arc<AtomicU64>,
) -> PinnedRun {
    let (mut ok, mut after_kill, mut errors) = (0, 0, Vec::new());
    let mut i = 0;
    while until_error || !*pinning.stop.borrow() {
        let was_killed = *pinning.killed.borrow();
        i += 1;
        match echo(&mut client, caller, i).await {
            Ok(()) => {
                ok += 1;
                answered.fetch_add(1, Ordering::Relaxed);
                if ok == PINNED_CALLS {
                    let _ = pinning.progress.send(caller);
                }
                if was_killed {
                    after_kill += 1;
                    if after_kill == PINNED_CALLS {
                        let _ = pinning.progress.send(caller);
                    }
                }
            }
            Err(e) => {
                errors.push(e);
                if until_error {
                    break;
                }
            }
        }
    }
    PinnedRun {
        replica,
        ok,
        errors,
    }
}

/// A dropped connection, not a gateway's answer: no ErrorInfo (every
/// gateway error carries one), and UNAVAILABLE, or UNKNOWN "transport
/// error" when the connection broke while the request was being written.
fn assert_transport_error(s: &tonic::Status) {
    let dropped = s.code() == tonic::Code::Unavailable
        || (s.code() == tonic::Code::Unknown && s.message() == "transport error");
    assert!(dropped, "not a dropped connection: {s:?}");
    assert!(
        s.get_details_error_info().is_none(),
        "a gateway error, not a dropped connection: {s:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(mosquitto),
    ignore = "mosquitto not installed (apt-get install mosquitto)"
)]
async fn three_replicas_share_one_broker_and_nothing_else() {
    // 1,000 device connections here, and Mosquitto inherits the limit.
    let fds = thingcall_device::fds::raise_open_file_limit();
    assert!(fds as usize > DEVICES + 512, "open-file limit {fds}");
    let Some(broker) = thingcall_testkit::Mosquitto::start() else {
        return;
    };
    let (r0, r1) = tokio::join!(
        Replica::start(0, broker.addr()),
        Replica::start(1, broker.addr())
    );
    let devices = start_devices(broker.port()).await;
    // The third builds its view from retained presence only.
    let r2 = Replica::start(2, broker.addr()).await;
    let mut replicas = vec![r0, r1, r2];
    for r in &replicas {
        r.wait_metric("thingcall_presence_synced", 1).await;
        r.wait_metric("thingcall_devices_online", DEVICES as u64)
            .await;
    }

    // Calls spread round-robin over the replicas, every caller with its
    // own connection to each.
    let mut spread = tokio::task::JoinSet::new();
    for caller in 0..CALLERS {
        let mut clients = Vec::new();
        for r in &replicas {
            clients.push(r.connect().await);
        }
        spread.spawn(async move {
            let mut sent = [0u64; REPLICAS];
            for i in 0..SPREAD_CALLS {
                let r = (caller + i) % REPLICAS;
                echo(&mut clients[r], caller, i)
                    .await
                    .unwrap_or_else(|e| panic!("caller {caller} via replica {r}: {e:?}"));
                sent[r] += 1;
            }
            sent
        });
    }
    let mut answered = [0u64; REPLICAS];
    while let Some(sent) = soon("spread calls", spread.join_next()).await {
        for (total, n) in answered.iter_mut().zip(sent.expect("caller")) {
            *total += n;
        }
    }
    for (r, &n) in replicas.iter().zip(&answered) {
        r.assert_clean(n).await;
    }

    // Some devices go offline cleanly; every replica lists the same.
    let mut devices: Vec<Option<DeviceHandle>> = devices.into_iter().map(Some).collect();
    for &i in &STOPPED {
        soon("clean stop", devices[i].take().unwrap().shutdown()).await;
    }
    let online = (DEVICES - STOPPED.len()) as u64;
    for r in &replicas {
        r.wait_metric("thingcall_devices_online", online).await;
    }
    assert_listings_agree(&replicas.iter().collect::<Vec<_>>()).await;

    // Callers pinned to replicas; kill -9 replica 0 while all are calling.
    let (kill_tx, killed) = watch::channel(false);
    let (stop_tx, stop) = watch::channel(false);
    let (progress, mut progressed) = mpsc::unbounded_channel();
    let pinning = Pinning {
        killed,
        stop,
        progress,
    };
    let counts: Vec<Arc<AtomicU64>> = (0..REPLICAS).map(|_| Arc::default()).collect();
    let mut pinned = tokio::task::JoinSet::new();
    for caller in 0..CALLERS {
        let r = caller % REPLICAS;
        let client = replicas[r].connect().await;
        let run = pinned_caller(
            caller,
            r,
            client,
            r == 0,
            pinning.clone(),
            counts[r].clone(),
        );
        pinned.spawn(run);
    }
    drop(pinning);
    for _ in 0..CALLERS {
        soon("every caller answered", progressed.recv())
            .await
            .expect("callers run");
    }
    replicas[0].gw.signal("KILL");
    kill_tx.send(true).unwrap();
    let dead_callers = CALLERS.div_ceil(REPLICAS);
    for _ in 0..CALLERS - dead_callers {
        soon("calls go on after the kill", progressed.recv())
            .await
            .expect("callers run");
    }
    stop_tx.send(true).unwrap();
    let mut failed = 0;
    while let Some(run) = soon("callers stop", pinned.join_next()).await {
        let run = run.expect("caller");
        assert!(run.ok >= PINNED_CALLS);
        if run.replica == 0 {
            failed += 1;
            assert_eq!(run.errors.len(), 1, "stops at its first error");
            assert_transport_error(&run.errors[0]);
        } else {
            let errors = &run.errors;
            assert!(errors.is_empty(), "replica {}: {errors:?}", run.replica);
        }
    }
    assert_eq!(failed, dead_callers);
    let mut dead = replicas.remove(0);
    let status = dead.gw.exit_status().await;
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );

    // The survivors dropped nothing, answered every call sent to them, and
    // still agree on every device.
    for (k, r) in replicas.iter().enumerate() {
        let n = answered[k + 1] + counts[k + 1].load(Ordering::Relaxed);
        r.assert_clean(n).await;
        r.wait_metric("thingcall_devices_online", online).await;
    }
    assert_listings_agree(&replicas.iter().collect::<Vec<_>>()).await;
    drop(devices);
}
