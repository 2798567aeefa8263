//! The chaos callers: `concurrency` workers over gRPC (the Rust client),
//! each taking the next call number, calling its planned device with its
//! planned deadline and the call's nonce, and recording how it resolved.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use indicatif::ProgressBar;
use thingcall_client::proto::InvokeRequest;
use thingcall_client::Client;

use super::check::{Outcome, Resolution};
use super::devices::{device_id, METHOD};
use super::plan::{call_plan, device_plan, nonce};
use crate::modes::GATEWAY_GRACE;
use crate::runner::Limits;
use crate::Setup;

/// Workers sharing one HTTP/2 connection (as in `--mode grpc`).
const WORKERS_PER_CONNECTION: usize = 64;

/// What every worker shares.
pub struct Plan {
    /// `--seed`.
    pub seed: u64,
    /// This run's nonce suffix.
    pub tag: String,
    /// Number of chaos devices.
    pub devices: usize,
}

/// What the callers did: calls started and one resolution per call.
pub struct Calls {
    /// Calls started.
    pub issued: u64,
    /// How each returned to its worker.
    pub resolutions: Vec<Resolution>,
    /// From the first call to the last resolution.
    pub window: Duration,
}

/// Shared counters.
#[derive(Default)]
struct Counters {
    next: AtomicU64,
    issued: AtomicU64,
    done: AtomicU64,
    stop: AtomicBool,
}

/// One call and how it resolved.
async fn one(client: &mut Client, plan: &Plan, index: u64) -> Resolution {
    let call = call_plan(plan.seed, index, plan.devices);
    let sent = nonce(index, &plan.tag);
    let req = InvokeRequest {
        target: device_id(call.target),
        method: METHOD.to_owned(),
        payload: Bytes::from(sent.clone().into_bytes()),
        timeout: prost_types::Duration::try_from(call.deadline).ok(),
        ..Default::default()
    };
    let began = Instant::now();
    // No grpc-timeout: the gateway alone must end the call by its deadline.
    let result = tokio::time::timeout(call.deadline + GATEWAY_GRACE, client.invoke(req)).await;
    let latency = began.elapsed();
    let outcome = match result {
        Err(_) => Outcome::NoAnswer,
        Ok(Err(e)) => Outcome::Failed(e.reason),
        Ok(Ok(reply)) => Outcome::Reply {
            status: reply.status,
            echoed: reply.payload == sent.as_bytes(),
            planned: device_plan(plan.seed, index).status(),
        },
    };
    Resolution {
        index,
        deadline: call.deadline,
        latency,
        outcome,
    }
}

/// Runs the calls to `limits` and returns what they did.
pub async fn run(
    server: &str,
    plan: Arc<Plan>,
    concurrency: u16,
    limits: Limits,
    progress: &ProgressBar,
) -> Result<Calls, Setup> {
    let n = usize::from(concurrency).div_ceil(WORKERS_PER_CONNECTION);
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        clients.push(Client::connect(server).await.map_err(Setup::from_call)?);
    }
    let counters = Arc::new(Counters::default());
    let start = Instant::now();
    let clock = crate::runner::Clock::start(
        &counters,
        |c| &c.stop,
        |c| &c.done,
        limits.duration,
        progress,
        Duration::from_millis(200),
    );
    let workers: Vec<_> = (0..usize::from(concurrency))
        .map(|i| {
            let mut client = clients[i % clients.len()].clone();
            let (counters, plan) = (counters.clone(), plan.clone());
            tokio::spawn(async move {
                let mut mine = Vec::new();
                while !counters.stop.load(Ordering::Relaxed) {
                    let index = counters.next.fetch_add(1, Ordering::Relaxed);
                    if index >= limits.calls {
                        break;
                    }
                    counters.issued.fetch_add(1, Ordering::Relaxed);
                    mine.push(one(&mut client, &plan, index).await);
                    counters.done.fetch_add(1, Ordering::Relaxed);
                }
                mine
            })
        })
        .collect();
    let mut resolutions = Vec::new();
    for worker in workers {
        match worker.await {
            Ok(mine) => resolutions.extend(mine),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("chaos worker: {e}"),
        }
    }
    let window = start.elapsed();
    drop(clock);
    resolutions.sort_unstable_by_key(|r| r.index);
    Ok(Calls {
        issued: counters.issued.load(Ordering::Relaxed),
        resolutions,
        window,
    })
}
