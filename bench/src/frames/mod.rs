//! `--mode h2`, the cheap load path: Invoke over h2c from plain threads
//! with blocking sockets and frames built once, so the bench's own CPU per
//! call stays a small part of the gateway's it measures. The tonic client
//! of `--mode grpc` costs about as much as the gateway on this path, and on
//! shared cores a costly load generator slows what it times.
//!
//! Outcomes are read from the replies, as in the other modes: the
//! `grpc-status` trailer (a failure by its ErrorInfo reason) and the
//! device's status in the decoded `InvokeResponse`; an error is never a
//! success. Calls are spread over one connection per 256 in flight (the
//! gateway's default stream limit), each on its own thread.

mod conn;
mod wire;

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use indicatif::ProgressBar;
use prost::Message;
use thingcall_client::proto::InvokeRequest;

use crate::breakdown::Breakdown;
use crate::modes::{CallSpec, GATEWAY_GRACE};
use crate::runner::{Clock, Limits, Phase};
use crate::tally::Tally;
use crate::Setup;

/// Calls in flight per connection, at most.
pub const STREAMS_PER_CONNECTION: usize = 256;

/// The path of the unary Invoke RPC.
const INVOKE_PATH: &str = "/thingcall.v1.DeviceGateway/Invoke";

/// What every connection sends, built once.
pub struct Plan {
    /// `HOST:PORT` of the gateway.
    authority: String,
    /// The header block of every request.
    block: Vec<u8>,
    /// Each target's gRPC-framed `InvokeRequest`, called round-robin.
    bodies: Vec<Vec<u8>>,
    /// Calls to start in this phase.
    calls: u64,
    /// A connection that hears nothing for this long gives up on its calls
    /// (`CLIENT_TIMEOUT`).
    give_up: Duration,
    /// `--breakdown`.
    breakdown: bool,
}

/// The counters the connections of one phase share.
#[derive(Default)]
pub struct Shared {
    next: AtomicU64,
    done: AtomicU64,
    stop: AtomicBool,
}

/// A checked `--server` for this mode, and the requests, built once.
pub struct Target {
    authority: String,
    block: Vec<u8>,
    bodies: Vec<Vec<u8>>,
    give_up: Duration,
    breakdown: bool,
}

impl Target {
    /// Builds the frames of a run against `server` (`http://HOST:PORT`).
    pub fn new(server: &str, spec: &CallSpec) -> Result<Target, Setup> {
        let uri: http::Uri = server
            .parse()
            .map_err(|e| Setup::Usage(format!("--server {server:?}: {e}")))?;
        let authority = match (uri.scheme_str(), uri.authority()) {
            (Some("http"), Some(a)) => a.to_string(),
            _ => {
                return Err(Setup::Usage(
                    "--mode h2 speaks h2c only: give --server http://HOST:PORT".into(),
                ))
            }
        };
        let timeout = prost_types::Duration::try_from(spec.timeout)
            .map_err(|_| Setup::Usage("--timeout is out of range".to_owned()))?;
        let bodies = spec
            .targets
            .iter()
            .map(|target| {
                let req = InvokeRequest {
                    target: target.clone(),
                    method: spec.method.clone(),
                    payload: spec.payload.clone(),
                    timeout: Some(timeout),
                    ..Default::default()
                };
                let mut buf = BytesMut::with_capacity(5 + req.encoded_len());
                buf.put_u8(0);
                buf.put_u32(req.encoded_len() as u32);
                req.encode(&mut buf).expect("capacity was reserved");
                buf.to_vec()
            })
            .collect();
        Ok(Target {
            block: wire::request_block(INVOKE_PATH, &authority),
            authority,
            bodies,
            give_up: spec.timeout + GATEWAY_GRACE,
            breakdown: spec.breakdown,
        })
    }

    /// Checks that the gateway accepts a connection, before any call.
    pub fn probe(&self) -> Result<(), Setup> {
        std::net::TcpStream::connect(&self.authority)
            .map(drop)
            .map_err(|e| Setup::Unreachable(format!("cannot connect to {}: {e}", self.authority)))
    }

    /// Runs one phase of `concurrency` calls in flight.
    pub async fn run(&self, concurrency: u16, limits: Limits, progress: &ProgressBar) -> Phase {
        let plan = Arc::new(Plan {
            authority: self.authority.clone(),
            block: self.block.clone(),
            bodies: self.bodies.clone(),
            calls: limits.calls,
            give_up: self.give_up,
            breakdown: self.breakdown,
        });
        let shared = Arc::new(Shared::default());
        let start = Instant::now();
        let clock = Clock::start(
            &shared,
            |s| &s.stop,
            |s| &s.done,
            limits.duration,
            progress,
            Duration::from_millis(100),
        );
        let c = usize::from(concurrency);
        let n = c.div_ceil(STREAMS_PER_CONNECTION);
        let threads: Vec<_> = (0..n)
            .map(|i| {
                // Connection i takes an even share of the calls in flight.
                let share = c / n + usize::from(i < c % n);
                let (plan, shared) = (plan.clone(), shared.clone());
                std::thread::spawn(move || conn::run(&plan, &shared, share))
            })
            .collect();
        let joined = tokio::task::spawn_blocking(move || {
            threads
                .into_iter()
                .map(|t| t.join().expect("a bench connection panicked"))
                .collect::<Vec<_>>()
        })
        .await
        .expect("joining the bench connections");
        let window = start.elapsed();
        drop(clock);
        let mut tally = Tally::default();
        let mut breakdown: Option<Breakdown> = None;
        for measured in joined {
            match measured {
                Ok(m) => {
                    tally.merge(m.tally);
                    match (&mut breakdown, m.breakdown) {
                        (Some(all), Some(b)) => all.merge(b),
                        (None, b) => breakdown = b,
                        (Some(_), None) => {}
                    }
                }
                Err(_) => tally.record(Duration::ZERO, crate::tally::Outcome::TRANSPORT),
            }
        }
        progress.set_position(tally.count());
        Phase {
            tally,
            breakdown,
            window,
        }
    }
}
