#![forbid(unsafe_code)]
//! `thingcall-sim`: runs one to many thousands of simulated devices serving
//! the standard methods, so a gateway can be tried and load-tested without
//! hardware.

use std::collections::HashSet;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{Parser, ValueEnum};
use thingcall_device::broker_args::BrokerArgs;
use thingcall_device::fds;
use thingcall_device::{spawn_device, standard_methods, DeviceHandle};
use thingcall_device::{Contract, DeviceOptions, Handlers};
use thingcall_proto::wire::{validate_id, Topics};
use tokio::task::JoinSet;
use tracing::{info, warn};
use tracing_subscriber::EnvFilter;

/// Exit status for bad flags or values (BSD `EX_USAGE`).
const EXIT_USAGE: u8 = 64;
/// How long one batch of connecting devices may take before the rest are
/// started without waiting (the broker is probably down or overloaded).
const BATCH_WAIT: Duration = Duration::from_secs(10);
/// How often the number of online devices is checked for the log.
const REPORT_EVERY: Duration = Duration::from_secs(2);
/// Log filter when RUST_LOG is unset: the simulator's own lines, and from
/// the device library only warnings (it logs per device, and thousands of
/// devices reconnecting after a broker restart would flood the terminal).
const DEFAULT_LOG: &str = "info,thingcall_device=warn";

/// Simulated thingcall devices: each connects to the broker, announces its
/// presence and serves the methods echo, sleep, fail, random, big and reboot
/// until Ctrl-C or SIGTERM, then goes offline cleanly. Logs go to stderr;
/// RUST_LOG overrides the default filter `info,thingcall_device=warn`.
///
/// With --contract seed the devices speak the AWS sample's contract instead:
/// no presence, requests on `{id}/{method}/{client_prefix}/{m_id}` with JSON
/// `{"timestamp","request","id"}`, acks on
/// `{client_prefix}/{m_id}/{id}/{method}/ack` with JSON `{"id","response"}`.
/// The standard methods get the "request" string as payload; any other
/// method (e.g. reqid-ABCD) gets the sample device's answer
/// `Your request was '{request}'. Some random response: '{number}'`.
#[derive(Parser, Debug)]
#[command(name = "thingcall-sim", version)]
struct Cli {
    /// Broker URL: mqtt://host:port, mqtts://host:port for TLS, or MQTT
    /// over WebSockets ws://host:port/path, wss://host:port/path.
    #[arg(
        long,
        env = "THINGCALL_MQTT_URL",
        default_value = "mqtt://127.0.0.1:1883"
    )]
    mqtt_url: String,
    /// TLS and login for the broker, as the gateway takes them.
    #[command(flatten)]
    broker: BrokerArgs,
    /// Number of devices named <ID_PREFIX>1..<ID_PREFIX>N (default 1 when no
    /// --device-id is given). Each holds one connection: with the extra ids
    /// they may number the open-file hard limit (`ulimit -Hn`) less 64; the
    /// simulator raises its soft limit to the hard one at start.
    #[arg(long, env = "THINGCALL_DEVICES")]
    devices: Option<u32>,
    /// Prefix of the numbered device ids.
    #[arg(long, env = "THINGCALL_ID_PREFIX", default_value = "sim-")]
    id_prefix: String,
    /// An extra device with exactly this id (repeatable; the env variable
    /// takes a comma-separated list).
    #[arg(
        long = "device-id",
        value_name = "ID",
        env = "THINGCALL_DEVICE_ID",
        value_delimiter = ','
    )]
    device_ids: Vec<String>,
    /// Wire contract: native (thingcall's) or seed (the AWS sample's, see
    /// above; --topic-root, --ack and --no-announce do not apply to it).
    #[arg(long, env = "THINGCALL_CONTRACT", value_enum, default_value_t = ContractArg::Native)]
    contract: ContractArg,
    /// Topic root shared with the gateway.
    #[arg(long, env = "THINGCALL_TOPIC_ROOT", default_value = "thingcall")]
    topic_root: String,
    /// Send an interim `stage=accepted` reply before running each method.
    #[arg(long, env = "THINGCALL_ACK")]
    ack: bool,
    /// Delay added before every reply, e.g. 5ms.
    #[arg(long, env = "THINGCALL_LATENCY", default_value = "0s", value_parser = parse_duration)]
    latency: Duration,
    /// Probability (0 to 1) of answering status 500 instead of running a method.
    #[arg(long, env = "THINGCALL_FAIL_RATE", default_value_t = 0.0, value_parser = parse_rate)]
    fail_rate: f64,
    /// Do not list the methods in the presence document.
    #[arg(long, env = "THINGCALL_NO_ANNOUNCE")]
    no_announce: bool,
    /// MQTT keep-alive (at least 5s).
    #[arg(long, env = "THINGCALL_KEEP_ALIVE", default_value = "30s", value_parser = parse_keep_alive)]
    keep_alive: Duration,
    /// Largest request payload the devices take (bytes; KiB, MiB): set it
    /// to the gateway's `--max-payload` when that is above 192KiB, or the
    /// broker drops larger requests unseen and calls end DEVICE_TIMEOUT.
    #[arg(long, env = "THINGCALL_MAX_PAYLOAD", default_value = "128KiB",
          value_parser = thingcall_proto::size::parse_size)]
    max_payload: usize,
    /// Devices connecting at the same time while starting up.
    #[arg(long, env = "THINGCALL_CONNECT_CONCURRENCY", default_value_t = 64,
          value_parser = clap::value_parser!(u16).range(1..))]
    connect_concurrency: u16,
}

/// The values of --contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ContractArg {
    /// thingcall's contract: presence, ResponseTopic, statuses.
    Native,
    /// the AWS sample's contract: no presence, JSON acks.
    Seed,
}

/// A humantime duration such as `5ms` or `1m 30s`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("{e} (try 5ms, 2s, 1m)"))
}

/// A keep-alive of at least 5 seconds (rumqttc's floor).
fn parse_keep_alive(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_secs(5) {
        return Err("must be at least 5s".into());
    }
    Ok(d)
}

/// A probability between 0 and 1.
fn parse_rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err("expected a number from 0 to 1".into()),
    }
}

/// The validated command line: what to start and how.
struct Plan {
    url: String,
    ids: Vec<String>,
    template: DeviceOptions,
    concurrency: usize,
}

impl Plan {
    /// Checks what clap cannot: URL, topic root, ids and their uniqueness.
    fn new(cli: Cli) -> Result<Plan, String> {
        let url = thingcall_proto::wire::BrokerUrl::parse(&cli.mqtt_url)?;
        let tls = cli.broker.tls(&url)?;
        let sigv4 = cli.broker.sigv4(&url)?;
        let (host, port, websocket) = (url.host, url.port, url.websocket);
        let root = cli.topic_root.as_str();
        if root.is_empty()
            || root.starts_with(['/', '$'])
            || root.ends_with('/')
            || root.contains(['+', '#'])
            || root.chars().any(char::is_control)
        {
            return Err(format!(
                "invalid --topic-root {root:?}: use levels like thingcall or org/thingcall"
            ));
        }
        let count = cli
            .devices
            .unwrap_or(if cli.device_ids.is_empty() { 1 } else { 0 });
        let mut ids: Vec<String> = (1..=count)
            .map(|i| format!("{}{i}", cli.id_prefix))
            .collect();
        ids.extend(cli.device_ids.iter().map(|s| s.trim().to_owned()));
        if ids.is_empty() {
            return Err("no devices to simulate: pass --devices N or --device-id ID".into());
        }
        let mut unique = HashSet::with_capacity(ids.len());
        for id in &ids {
            validate_id("device id", id).map_err(|e| format!("invalid device id {id:?}: {e}"))?;
            if !unique.insert(id.as_str()) {
                return Err(format!("device id {id:?} is given twice"));
            }
        }
        let mut template = DeviceOptions::new("", host, port);
        template.contract = match cli.contract {
            ContractArg::Native => Contract::Native,
            ContractArg::Seed => Contract::Seed,
        };
        template.topics = Topics::new(root);
        template.ack = cli.ack;
        template.latency = cli.latency;
        template.fail_rate = cli.fail_rate;
        template.announce_methods = !cli.no_announce;
        template.keep_alive = cli.keep_alive;
        template.max_packet =
            u32::try_from(cli.max_payload + thingcall_proto::size::PACKET_HEADROOM)
                .unwrap_or(u32::MAX)
                .max(thingcall_device::DEFAULT_MAX_PACKET);
        template.tls = tls;
        template.websocket = websocket;
        template.sigv4 = sigv4;
        template.credentials = cli.broker.credentials()?;
        Ok(Plan {
            url: cli.mqtt_url,
            ids,
            template,
            concurrency: cli.connect_concurrency.into(),
        })
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => return usage_error(&e.to_string()),
    };
    let plan = match Plan::new(cli) {
        Ok(plan) => plan,
        Err(msg) => return usage_error(&msg),
    };
    // One socket per device: take every file the hard limit allows, and
    // refuse up front a count that could never all connect.
    let open_files = fds::raise_open_file_limit();
    if let Err(msg) = fds::check_device_count(plan.ids.len(), open_files) {
        eprintln!("thingcall-sim: {msg}");
        return ExitCode::from(EXIT_USAGE);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG))
                .add_directive(
                    thingcall_proto::aws::iot::LOG_CAP
                        .parse()
                        .expect("a valid directive"),
                ),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("thingcall-sim: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let traces = start_traces();
        run(plan, open_files).await;
        if let Some(provider) = traces {
            // Flushes the last spans; blocking, so off the async workers.
            let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        }
    });
    ExitCode::SUCCESS
}

/// Installs the OTLP tracer provider the `OTEL_*` environment asks for, so
/// each traced request gets a span continuing the gateway's trace.
fn start_traces() -> Option<opentelemetry_sdk::trace::SdkTracerProvider> {
    match thingcall_proto::trace::provider_from_env("thingcall-sim") {
        Ok(Some(provider)) => {
            opentelemetry::global::set_tracer_provider(provider.clone());
            info!("exporting traces over OTLP");
            Some(provider)
        }
        Ok(None) => None,
        Err(e) => {
            warn!("traces off: {e}");
            None
        }
    }
}

/// Prints the first line of `msg` as one clear line and returns exit 64.
fn usage_error(msg: &str) -> ExitCode {
    let line = msg
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("bad arguments");
    let line = line.strip_prefix("error: ").unwrap_or(line);
    eprintln!("thingcall-sim: {line} (see --help)");
    ExitCode::from(EXIT_USAGE)
}

/// Starts every device, reports when all are online, and stops them all
/// cleanly on Ctrl-C or SIGTERM.
async fn run(plan: Plan, open_files: u64) {
    let handlers = standard_methods();
    let mut devices = Vec::with_capacity(plan.ids.len());
    let mut stop = std::pin::pin!(stop_signal());
    info!(devices = plan.ids.len(), broker = %plan.url, open_files, "starting devices");
    let stopped_early = {
        let startup = start_all(&plan, &handlers, &mut devices);
        tokio::select! {
            () = startup => false,
            () = &mut stop => true,
        }
    };
    if !stopped_early {
        tokio::select! {
            () = &mut stop => {}
            () = report_changes(&devices) => {}
        }
    }
    info!(devices = devices.len(), "stopping: disconnecting cleanly");
    let mut stopping = JoinSet::new();
    for device in devices {
        stopping.spawn(device.shutdown());
    }
    tokio::select! {
        () = async { while stopping.join_next().await.is_some() {} } => info!("all devices stopped"),
        () = stop_signal() => warn!("second signal: exiting without waiting"),
    }
}

/// Spawns the devices in batches of `plan.concurrency`, waiting for each
/// batch to come online before the next so a broker is not flooded with
/// thousands of simultaneous CONNECTs; logs once all are online.
async fn start_all(plan: &Plan, handlers: &Handlers, devices: &mut Vec<DeviceHandle>) {
    let mut patient = true;
    for batch in plan.ids.chunks(plan.concurrency) {
        let first = devices.len();
        for id in batch {
            let mut opts = plan.template.clone();
            opts.id = id.clone();
            devices.push(spawn_device(opts, handlers.clone()));
        }
        if patient {
            let started = &devices[first..];
            let online = async {
                for d in started {
                    d.wait_online().await;
                }
            };
            if tokio::time::timeout(BATCH_WAIT, online).await.is_err() {
                warn!(broker = %plan.url, "devices are slow to come online; is the broker up? \
                       starting the rest without waiting (they keep retrying)");
                patient = false;
            }
        }
    }
    for d in devices.iter() {
        d.wait_online().await;
    }
    info!("{} devices online", devices.len());
}

/// Logs how many devices are online whenever that changes (checked every
/// [`REPORT_EVERY`]), instead of one line per device and reconnect.
async fn report_changes(devices: &[DeviceHandle]) {
    let mut last = devices.len();
    loop {
        tokio::time::sleep(REPORT_EVERY).await;
        let online = devices.iter().filter(|d| d.is_online()).count();
        if online != last {
            info!("{online} of {} devices online", devices.len());
            last = online;
        }
    }
}

/// Resolves on Ctrl-C or (on Unix) SIGTERM.
async fn stop_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(args: &[&str]) -> Result<Plan, String> {
        let argv = std::iter::once("thingcall-sim").chain(args.iter().copied());
        Plan::new(Cli::try_parse_from(argv).map_err(|e| e.to_string())?)
    }

    #[test]
    fn broker_login() {
        let file = std::env::temp_dir().join(format!("tc-sim-pw-{}", std::process::id()));
        std::fs::write(&file, "pw\n").unwrap();
        let p = plan(&[
            "--mqtt-username",
            "sim",
            "--mqtt-password-file",
            file.to_str().unwrap(),
        ])
        .unwrap();
        let login = p.template.credentials.expect("a login");
        assert_eq!(
            (login.username.as_str(), login.password.expose()),
            ("sim", "pw")
        );
        let Err(err) = plan(&["--mqtt-password-file", file.to_str().unwrap()]) else {
            panic!("a password without a username was accepted");
        };
        assert!(err.contains("username"), "{err}");
        std::fs::remove_file(&file).unwrap();
        assert!(plan(&[]).unwrap().template.credentials.is_none());
    }

    #[test]
    fn ids_and_defaults() {
        let p = plan(&[]).unwrap();
        assert_eq!(p.ids, ["sim-1"]);
        assert_eq!(
            (p.template.host.as_str(), p.template.port),
            ("127.0.0.1", 1883)
        );
        let p = plan(&[
            "--devices",
            "3",
            "--id-prefix",
            "d",
            "--device-id",
            "x",
            "--device-id",
            "y",
        ])
        .unwrap();
        assert_eq!(p.ids, ["d1", "d2", "d3", "x", "y"]);
        let p = plan(&[
            "--device-id",
            "only",
            "--latency",
            "5ms",
            "--fail-rate",
            "0.1",
            "--ack",
        ])
        .unwrap();
        assert_eq!(p.ids, ["only"]);
        assert_eq!(p.template.latency, Duration::from_millis(5));
        assert!(p.template.ack && p.template.announce_methods);
        assert_eq!(p.template.contract, Contract::Native);
        let p = plan(&["--contract", "seed"]).unwrap();
        assert_eq!(p.template.contract, Contract::Seed);
        // Packets sized for the payloads: never below the default.
        assert_eq!(p.template.max_packet, thingcall_device::DEFAULT_MAX_PACKET);
        let p = plan(&["--max-payload", "1MiB"]).unwrap();
        assert_eq!(p.template.max_packet, (1 << 20) + 64 * 1024);
    }

    #[test]
    fn refusals() {
        for args in [
            &["--devices", "0"][..],
            &["--devices", "-1"],
            &["--devices", "2", "--device-id", "sim-2"],
            &["--device-id", "a/b"],
            &["--mqtt-url", "http://x"],
            &["--topic-root", "a/+/b"],
            &["--topic-root", ""],
            &["--latency", "soon"],
            &["--fail-rate", "1.5"],
            &["--keep-alive", "1s"],
            &["--connect-concurrency", "0"],
            &["--contract", "aws"],
            &["--bogus"],
        ] {
            assert!(plan(args).is_err(), "{args:?} accepted");
        }
    }
}
