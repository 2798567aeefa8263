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
    within("gateway", thingcall_server::start_local_demo_with(1, extra))
        .await
        .expect("gateway")
}

/// Awaits `f`, failing the test after 20 s (a generous bound, not a timing check).
pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}
