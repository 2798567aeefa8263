//! A connection flood before authentication can help: as many half-sent
//! HTTP/1.1 requests as the open-file limit allows (up to 20,000) are held
//! open against a gateway process. A legitimate caller still gets its
//! answers, connections past the cap are closed at once, the half-sent
//! requests are closed after the header timeout, and the MQTT session
//! never drops. Alone in its file: it needs most of the process's file
//! descriptors.

mod common;

use std::time::{Duration, Instant};

use common::process::GatewayProcess;
use common::soon;
use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// File descriptors this test process keeps for itself.
const OWN_HEADROOM: u64 = 256;
/// Free slots left under the gateway's cap for the legitimate calls.
const SPARE: usize = 16;
/// The gateway's header timeout here: long enough that opening the whole
/// flood on a loaded 2-core machine takes less.
const HEADER_TIMEOUT: Duration = Duration::from_secs(60);
/// Slack past the header timeout for the gateway to close them all.
const REAP_SLACK: Duration = Duration::from_secs(30);
/// Connections opened before waiting for the gateway to accept them: well
/// under the listen backlog (1024), so the kernel never drops a handshake's
/// last ACK and leaves a connection the client thinks open but the gateway
/// never sees (how a CI run on a loaded machine lost 4,700 of 19,000).
const BATCH: usize = 256;

async fn metric(base: &str, name: &str) -> u64 {
    let page = common::http::get(&format!("{base}/metrics")).await;
    let text = String::from_utf8_lossy(&page.body).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

async fn echo(base: &str, payload: &str) -> (u16, std::time::Duration) {
    let started = Instant::now();
    let url = format!("{base}/v1/devices/demo-1/methods/echo");
    let r = common::http::request(
        Method::POST,
        &url,
        &format!("{{\"payload\":\"{payload}\"}}"),
        &[],
    )
    .await;
    (r.status.as_u16(), started.elapsed())
}

/// Waits until the gateway has closed `s` (EOF or reset).
async fn closed(s: &mut TcpStream) {
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_starve_neither_callers_nor_the_broker_link() {
    let own_limit = rlimit::increase_nofile_limit(u64::MAX).expect("open-file limit");
    let mut gw = GatewayProcess::start(&[
        "--demo",
        "1",
        "--http-header-timeout",
        &format!("{}s", HEADER_TIMEOUT.as_secs()),
    ])
    .await;
    let cap = gw.listening["fields"]["max_connections"]
        .as_u64()
        .expect("max_connections in the listening line") as usize;
    let base = gw.base();
    let mut client = soon(
        "gRPC connect",
        thingcall_proto::v1::device_gateway_client::DeviceGatewayClient::connect(base.clone()),
    )
    .await
    .unwrap();
    let mut watch = client
        .watch_device(thingcall_proto::v1::WatchDeviceRequest {
            target: "demo-1".into(),
            include_events: false,
        })
        .await
        .unwrap()
        .into_inner();
    common::wait_presence(&mut watch, "demo-1", true).await;
    drop((watch, client));
    let (_, baseline) = echo(&base, "before").await;

    let flood = cap
        .saturating_sub(SPARE)
        .min(own_limit.saturating_sub(OWN_HEADROOM) as usize)
        .min(20_000);
    assert!(flood > 500, "too few descriptors to flood ({flood})");
    // Every held connection's header timeout runs from its accept, so all
    // of them are closed by this long after the first one opened.
    let flood_began = tokio::time::Instant::now();
    let reaped_by = flood_began + HEADER_TIMEOUT + REAP_SLACK;
    let mut held = Vec::with_capacity(flood);
    while held.len() < flood {
        for _ in held.len()..flood.min(held.len() + BATCH) {
            let mut s = TcpStream::connect(gw.grpc).await.expect("connect");
            s.write_all(b"POST /v1/devices/demo-1/methods/echo HTTP/1.1\r\nHost: x\r\nContent-Le")
                .await
                .unwrap();
            held.push(s);
        }
        // The gateway accepts at its own pace: wait until it holds them all
        // open (another process: its /metrics is the only thing to watch).
        let opened = held.len();
        soon("every held connection open on the gateway", async {
            while (metric(&base, "thingcall_connections_open").await as usize) < opened {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }
    eprintln!(
        "holding {flood} half-sent requests (cap {cap}), all open on the gateway after {:?}",
        flood_began.elapsed()
    );

    // A legitimate caller, on fresh connections, while the flood is held.
    let (status, during) = echo(&base, "during").await;
    assert_eq!(status, 200, "a legitimate call failed during the flood");
    eprintln!("echo latency: {baseline:?} before, {during:?} during the flood");

    // Past the cap: closed at once.
    let mut extra = Vec::new();
    for _ in 0..SPARE * 4 {
        extra.push(TcpStream::connect(gw.grpc).await.expect("connect"));
    }
    // (the few that fit under the cap wait for the header timeout)
    for s in &mut extra {
        tokio::time::timeout_at(reaped_by + HEADER_TIMEOUT, closed(s))
            .await
            .expect("an over-the-cap connection was not closed");
    }

    // The header timeout closes every half-sent request.
    for s in &mut held {
        tokio::time::timeout_at(reaped_by, closed(s))
            .await
            .expect("a half-sent request was not closed by the header timeout");
    }
    drop(held);
    drop(extra);
    let refused = metric(&base, "thingcall_connections_refused_total").await;
    assert!(refused as usize >= SPARE * 3, "{refused} refused");
    // The MQTT session never dropped, and calls go on.
    assert_eq!(metric(&base, "thingcall_mqtt_reconnects_total").await, 0);
    assert_eq!(metric(&base, "thingcall_mqtt_connected").await, 1);
    assert_eq!(echo(&base, "after").await.0, 200);
    gw.signal("TERM");
    assert!(gw.exit_status().await.success());
}
