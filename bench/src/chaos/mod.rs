//! `thingcall bench --chaos`: a bounded, seeded chaos run with checked
//! invariants (docs/chaos.md). Chaotic devices (random latency, failures,
//! reboots) run in this process on the gateway's broker; callers over gRPC
//! give every call a random deadline from 5 ms to 1 s and a unique nonce
//! the device echoes; at the end the checker ([`check`]) judges timing,
//! routing, accounting, the gateway's in-flight gauge and its memory, and
//! a broken invariant makes the run fail (exit 1).

mod calls;
pub mod check;
mod devices;
mod metrics;
pub mod plan;
pub mod rss;

use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde_json::json;

use crate::{runner, BenchArgs, Setup};
use check::{Evidence, Lateness, Verdict};
use rss::RssVerdict;

/// How long the devices may take to come online, at the broker and then
/// at the gateway.
const ONLINE_WITHIN: Duration = Duration::from_secs(30);
/// How long the gateway's in-flight gauge may take to reach 0 once every
/// call has resolved (every call has already been answered, so this only
/// covers the gateway's own bookkeeping).
const DRAIN_WITHIN: Duration = Duration::from_secs(5);

/// The flags of the chaos run (shown under "Chaos run" in `--help`).
#[derive(Debug, Args)]
pub struct ChaosArgs {
    /// Run the chaos run instead of a benchmark: chaotic devices on
    /// --mqtt-url, gRPC calls to --server with random deadlines, invariants
    /// checked (exit 1 when one breaks). Sized by --count / --duration and
    /// --concurrency; --gateway-pid adds the RSS check. See docs/chaos.md.
    #[arg(long, help_heading = "Chaos run", conflicts_with_all = [
        "mode", "targets", "method", "payload_bytes", "timeout", "warmup",
        "qos", "breakdown", "idempotency_keys",
    ])]
    pub chaos: bool,
    /// Seed of the chaos schedule (deadlines, targets, latencies, failures,
    /// reboots); default: a random one, printed in the report.
    #[arg(long, value_name = "N", help_heading = "Chaos run", requires = "chaos")]
    pub seed: Option<u64>,
    /// Chaos devices, chaos-1 .. chaos-N.
    #[arg(long, value_name = "N", default_value_t = 20, help_heading = "Chaos run",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub devices: u16,
    /// Make the devices answer every 100th call with another call's nonce,
    /// to see the checker fail the run (a test of the harness itself).
    #[arg(long, hide = true, requires = "chaos")]
    pub chaos_sabotage: bool,
}

/// Everything the report shows.
struct Report<'a> {
    seed: u64,
    devices: u16,
    concurrency: u16,
    window: Duration,
    verdict: &'a Verdict,
    rss: &'a RssVerdict,
    rss_samples: &'a [u64],
    in_flight_end: Option<u64>,
}

/// Runs the chaos run against the gateway at `server`: the report on
/// success, [`Setup::Broken`] (with the report) when an invariant broke.
pub async fn run(server: &str, args: &BenchArgs) -> Result<String, Setup> {
    let (calls, duration) = args.limits();
    let seed = args.chaos.seed.unwrap_or_else(|| {
        let id = uuid::Uuid::new_v4();
        u64::from_le_bytes(id.as_bytes()[..8].try_into().expect("8 bytes"))
    });
    let n = usize::from(args.chaos.devices);
    if let Some(pid) = args.gateway_pid {
        rss::rss_kib(pid).ok_or_else(|| {
            Setup::Usage(format!("cannot read the RSS of the gateway process {pid}"))
        })?;
    }
    let show = !args.quiet && !args.json;
    if show {
        eprintln!(
            "chaos: seed {seed}, {n} devices on {}:{}",
            args.mqtt_url.host, args.mqtt_url.port
        );
    }
    let devices = devices::start(
        &args.mqtt_url,
        n,
        seed,
        args.chaos.chaos_sabotage,
        ONLINE_WITHIN,
    )
    .await
    .map_err(Setup::Unreachable)?;
    wait_gateway_sees(server, n).await?;

    let sampler = args.gateway_pid.map(rss::Sampler::start);
    let plan = Arc::new(calls::Plan {
        seed,
        tag: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
        devices: n,
    });
    let bar = runner::progress_bar(show, calls, "chaos");
    let limits = runner::Limits { calls, duration };
    let done = calls::run(server, plan, args.concurrency, limits, &bar).await?;
    bar.finish_and_clear();
    let rss_samples = match sampler {
        Some(s) => s.finish().await,
        None => Vec::new(),
    };
    let in_flight_end = metrics::drained_in_flight(server, DRAIN_WITHIN)
        .await
        .map_err(Setup::Unreachable)?;
    for d in devices {
        d.shutdown().await;
    }
    let rss = match args.gateway_pid {
        Some(_) => rss::judge(&rss_samples),
        None => RssVerdict::NotJudged("no --gateway-pid".into()),
    };
    let verdict = check::check(&Evidence {
        issued: done.issued,
        resolutions: &done.resolutions,
        in_flight_end,
        rss: &rss,
    });
    let report = Report {
        seed,
        devices: args.chaos.devices,
        concurrency: args.concurrency,
        window: done.window,
        verdict: &verdict,
        rss: &rss,
        rss_samples: &rss_samples,
        in_flight_end,
    };
    let text = if args.json {
        format!("{}\n", report.json(args.label.as_deref()))
    } else {
        report.table()
    };
    if verdict.broken.is_empty() {
        Ok(text)
    } else {
        Err(Setup::Broken(text))
    }
}

/// Waits until the gateway at `server` lists all `n` chaos devices
/// online, so the first calls do not race their presence.
async fn wait_gateway_sees(server: &str, n: usize) -> Result<(), Setup> {
    let mut client = thingcall_client::Client::connect(server)
        .await
        .map_err(Setup::from_call)?;
    let seen = async {
        loop {
            let devices = client.list_devices("chaos-*").await?;
            if devices.iter().filter(|d| d.online).count() >= n {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    match tokio::time::timeout(ONLINE_WITHIN, seen).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Setup::from_call(e)),
        Err(_) => Err(Setup::Other(format!(
            "the gateway did not see the {n} chaos devices online within {ONLINE_WITHIN:?}"
        ))),
    }
}

/// µs as signed milliseconds, e.g. `+1.2 ms`.
fn ms(us: i64) -> String {
    format!("{:+.1} ms", us as f64 / 1e3)
}

impl Report<'_> {
    fn lateness_line(l: Option<Lateness>) -> String {
        match l {
            Some(l) => format!("p50 {}  p99 {}  max {}", ms(l.p50), ms(l.p99), ms(l.max)),
            None => "no calls".to_owned(),
        }
    }

    fn rss_start_end(&self) -> (Option<u64>, Option<u64>, Option<u64>) {
        let s = self.rss_samples;
        (
            s.first().copied(),
            s.last().copied(),
            s.iter().copied().max(),
        )
    }

    /// The human-readable report.
    fn table(&self) -> String {
        let v = self.verdict;
        let secs = self.window.as_secs_f64();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "chaos run: seed {}, {} devices, concurrency {}, {:.1} s, {} calls issued, {} resolved ({:.0}/s)",
            self.seed, self.devices, self.concurrency, secs, v.issued, v.resolved,
            v.resolved as f64 / secs.max(1e-9)
        );
        let _ = writeln!(out, "\n{:<24} {:>9} {:>7}", "outcome", "calls", "share");
        for (label, n) in &v.outcomes {
            let share = *n as f64 * 100.0 / v.issued.max(1) as f64;
            let _ = writeln!(out, "{label:<24} {n:>9} {share:>6.2}%");
        }
        let _ = writeln!(
            out,
            "\nlateness (latency - deadline, at the caller; bound +{} ms):",
            check::GRACE.as_millis()
        );
        let _ = writeln!(
            out,
            "  all calls        {}",
            Self::lateness_line(v.lateness)
        );
        let _ = writeln!(
            out,
            "  DEVICE_TIMEOUT   {}",
            Self::lateness_line(v.timeout_lateness)
        );
        let (start, end, peak) = self.rss_start_end();
        match (start, end, peak) {
            (Some(s), Some(e), Some(p)) => {
                let _ = writeln!(
                    out,
                    "gateway RSS: start {s} KiB, end {e} KiB, peak {p} KiB ({} samples)",
                    self.rss_samples.len()
                );
            }
            _ => {
                let _ = writeln!(out, "gateway RSS: not sampled");
            }
        }
        let _ = writeln!(out, "  {}", self.rss.describe());
        let in_flight = self
            .in_flight_end
            .map_or("unknown".to_owned(), |n| n.to_string());
        let _ = writeln!(out, "in flight at the end: {in_flight}");
        if v.broken.is_empty() {
            let _ = writeln!(out, "\ninvariants: all held");
        } else {
            let _ = writeln!(out, "\ninvariants BROKEN ({}):", v.broken.len());
            for b in &v.broken {
                let _ = writeln!(out, "  - {b}");
            }
        }
        let _ = writeln!(
            out,
            "replay the schedule: --chaos --seed {} --devices {}",
            self.seed, self.devices
        );
        out
    }

    /// The report as one JSON object.
    fn json(&self, label: Option<&str>) -> serde_json::Value {
        let v = self.verdict;
        let lat = |l: Option<Lateness>| {
            l.map(|l| json!({"p50_us": l.p50, "p99_us": l.p99, "max_us": l.max}))
        };
        let (start, end, peak) = self.rss_start_end();
        json!({
            "mode": "chaos",
            "label": label,
            "seed": self.seed,
            "devices": self.devices,
            "concurrency": self.concurrency,
            "window_s": self.window.as_secs_f64(),
            "issued": v.issued,
            "resolved": v.resolved,
            "outcomes": v.outcomes,
            "lateness": lat(v.lateness),
            "timeout_lateness": lat(v.timeout_lateness),
            "rss_kib": {"start": start, "end": end, "peak": peak, "samples": self.rss_samples.len()},
            "rss_verdict": self.rss.describe(),
            "in_flight_end": self.in_flight_end,
            "broken": v.broken,
        })
    }
}
