//! What the CLI's integration tests share: a whole gateway (embedded broker,
//! demo devices) on free ports, and a bound on every wait.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

/// A gateway with its embedded broker and `demo-1`, `demo-2` online.
pub async fn gateway() -> thingcall_server::Running {
    within("demo gateway", thingcall_server::start_local_demo(2))
        .await
        .expect("gateway")
}

/// A gateway with its embedded broker, `demo-1` online, and the flags
/// `extra` (limits, credentials) on top.
pub async fn gateway_with(extra: &[&str]) -> thingcall_server::Running {
    use clap::Parser;
    let base = [
        "thingcall-server",
        "--listen",
        "127.0.0.1:0",
        "--embedded-broker-listen",
        "127.0.0.1:0",
        "--demo",
        "1",
    ];
    let config = thingcall_server::Config::try_parse_from(base.iter().chain(extra)).unwrap();
    config.validate().unwrap();
    let gw = within("gateway", thingcall_server::start(config))
        .await
        .unwrap();
    within("demo online", async {
        gw.wait_connected().await;
        gw.wait_demo_online().await;
    })
    .await;
    gw
}

/// Awaits `f`, failing the test after 20 s (a generous bound, not a timing check).
pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}
