#![forbid(unsafe_code)]
//! `thingcall bench`: how little the gateway adds on top of the MQTT round
//! trip it cannot avoid (`raw-mqtt`), and how far it beats a fresh MQTT
//! connection per request (`conn-per-request`). Flags become a plan
//! (targets, payload, connections), the plan runs (warmup, then the
//! measured phase), and the result is reported as a table or one JSON
//! object.

mod args;
mod breakdown;
pub mod chaos;
mod frames;
mod modes;
mod mqtt;
mod procstat;
pub mod progress;
mod report;
mod runner;
mod tally;
mod targets;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use bytes::Bytes;
use thingcall_client::{exit, CallError};
use thingcall_proto::wire::validate_id;

pub use args::BenchArgs;
use args::Mode;

use modes::{CallSpec, Caller, MqttSetup};
use mqtt::Broker;
use report::Report;
use runner::Limits;

/// Why a bench could not start.
#[derive(Debug)]
pub enum Setup {
    /// Bad flags or a list naming no device: exit 2.
    Usage(String),
    /// The gateway or broker cannot be reached: exit 69.
    Unreachable(String),
    /// The gateway answered with an error: exit 70.
    Other(String),
    /// The chaos run broke an invariant: the report (which says which),
    /// printed on stdout like any report, then exit 1.
    Broken(String),
}

impl Setup {
    /// Sorts a gateway error: unreachable or anything else.
    pub fn from_call(err: CallError) -> Setup {
        if err.is_unreachable() {
            Setup::Unreachable(err.to_string())
        } else {
            Setup::Other(err.to_string())
        }
    }
}

impl Setup {
    /// The one line to print and the `thingcall` exit code for it.
    pub fn into_message_and_exit(self) -> (String, u8) {
        match self {
            Setup::Usage(m) => (m, exit::USAGE),
            Setup::Unreachable(m) => (m, exit::UNREACHABLE),
            Setup::Other(m) => (m, exit::OTHER),
            Setup::Broken(m) => (m, 1),
        }
    }
}

/// Runs the bench `args` describe against `server` (or the broker) and
/// returns its report (a table, or one JSON line), whatever the calls'
/// outcomes; only a bench that could not run is an error.
pub async fn run(server: &str, args: BenchArgs) -> Result<String, Setup> {
    if args.chaos.chaos {
        return chaos::run(server, &args).await;
    }
    let (calls, duration) = args.limits();
    validate_id("method", &args.method).map_err(|e| Setup::Usage(format!("--method: {e}")))?;
    // The bench watches itself too: a load generator that costs as much as
    // the gateway it times measures itself (on shared cores it slows what it
    // measures), so its CPU per call is reported next to the others'.
    let mut pids = args.watched_pids();
    pids.push(("bench".to_owned(), std::process::id()));
    let clk_tck = procstat::clock_ticks_per_second();
    // Fail on a wrong pid before any call is made.
    procstat::Watch::start(&pids, clk_tck).map_err(Setup::Usage)?;
    let tls = if args.mode.is_mqtt() && args.use_tls() {
        Some(
            thingcall_proto::wire::tls::tls_config(args.mqtt_ca.as_deref())
                .map_err(Setup::Usage)?,
        )
    } else {
        None
    };
    if args.idempotency_keys && !matches!(args.mode, Mode::Grpc | Mode::GrpcChannel | Mode::GrpcWeb)
    {
        return Err(Setup::Usage(
            "--idempotency-keys needs --mode grpc or grpc-web".into(),
        ));
    }
    let targets = targets::resolve(&args.targets, server).await?;
    let spec = Arc::new(CallSpec {
        targets,
        method: args.method.clone(),
        payload: payload(args.payload_bytes),
        timeout: args.timeout,
        breakdown: args.breakdown,
        // A prefix per run: keys of an earlier run may still be kept.
        keys: args
            .idempotency_keys
            .then(|| (modes::run_id(&uuid::Uuid::new_v4()), AtomicU64::new(0))),
    });
    let mqtt = MqttSetup {
        broker: Broker {
            url: args.mqtt_url.clone(),
            tls,
        },
        topic_root: args.topic_root.clone(),
        qos: args.qos,
    };
    let load = Load::connect(args.mode, server, spec.clone(), mqtt, args.concurrency).await?;
    let show = !args.quiet && !args.json;
    let n_targets = spec.targets.len();

    if args.warmup > 0 {
        let bar = runner::progress_bar(show, args.warmup, "warmup");
        let limits = Limits {
            calls: args.warmup,
            duration,
        };
        load.phase(n_targets, args.concurrency, limits, &bar, None)
            .await;
        bar.finish_and_clear();
    }

    let watch = procstat::Watch::start(&pids, clk_tck).map_err(Setup::Usage)?;
    let bar = runner::progress_bar(show, calls, args.mode.name());
    let phase = load
        .phase(
            n_targets,
            args.concurrency,
            Limits { calls, duration },
            &bar,
            args.breakdown.then_some(!args.mode.is_mqtt()),
        )
        .await;
    let usage = watch.finish();
    bar.finish_and_clear();
    load.close().await;

    let report = Report {
        mode: args.mode.name(),
        concurrency: args.concurrency,
        warmup: args.warmup,
        tally: phase.tally,
        breakdown: phase.breakdown,
        window: phase.window,
        qos: args.mode.is_mqtt().then_some(args.qos),
        payload_bytes: args.payload_bytes,
        targets: n_targets,
        method: args.method,
        timeout: args.timeout,
        label: args.label,
        usage,
        clk_tck: watch.clk_tck(),
    };
    Ok(if args.json {
        format!("{}\n", report.json())
    } else {
        report.table()
    })
}

/// How a run's calls are made: worker tasks over a [`Caller`], or the
/// cheap load path's threads ([`frames`]).
enum Load {
    Tasks(Caller),
    Frames(frames::Target),
}

impl Load {
    async fn connect(
        mode: Mode,
        server: &str,
        spec: Arc<CallSpec>,
        mqtt: MqttSetup,
        concurrency: u16,
    ) -> Result<Load, Setup> {
        if mode == Mode::H2 {
            let target = frames::Target::new(server, &spec)?;
            target.probe()?;
            return Ok(Load::Frames(target));
        }
        Caller::connect(mode, server, spec, mqtt, concurrency)
            .await
            .map(Load::Tasks)
    }

    async fn phase(
        &self,
        targets: usize,
        concurrency: u16,
        limits: Limits,
        bar: &indicatif::ProgressBar,
        breakdown: Option<bool>,
    ) -> runner::Phase {
        match self {
            Load::Tasks(caller) => {
                runner::run(caller, targets, concurrency, limits, bar, breakdown).await
            }
            Load::Frames(target) => target.run(concurrency, limits, bar).await,
        }
    }

    async fn close(self) {
        if let Load::Tasks(caller) = self {
            caller.close().await;
        }
    }
}

/// `len` pseudo-random bytes (xorshift from a fixed seed): the same for
/// every call and every run, and not trivially compressible.
fn payload(len: usize) -> Bytes {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_stable_and_varied() {
        let a = payload(64);
        assert_eq!(a.len(), 64);
        assert_eq!(a, payload(64));
        assert!(a.iter().collect::<std::collections::HashSet<_>>().len() > 16);
        assert!(payload(0).is_empty());
    }

    #[test]
    fn setup_errors_map_to_exit_codes() {
        let code = |s: Setup| s.into_message_and_exit().1;
        assert_eq!(code(Setup::Usage("u".into())), 2);
        assert_eq!(code(Setup::Unreachable("x".into())), 69);
        assert_eq!(code(Setup::Other("o".into())), 70);
        assert_eq!(code(Setup::Broken("b".into())), 1);
        assert!(matches!(
            Setup::from_call(CallError::unreachable("down")),
            Setup::Unreachable(_)
        ));
    }
}
