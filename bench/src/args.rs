//! The flags of `thingcall bench` and their parsing, with no I/O, so every
//! rule can be unit-tested with `try_parse_from`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::mqtt::MqttUrl;

/// Calls measured when neither `--count` nor `--duration` is given.
pub const DEFAULT_COUNT: u64 = 10_000;
/// The hard cap on the measured window when `--duration` is not given, so a
/// bench always stops by itself.
pub const DEFAULT_DURATION_CAP: Duration = Duration::from_secs(60);
/// Largest `--payload-bytes`: the MQTT legs raise the packet limit to 1 MiB,
/// and topics and properties need room too.
pub const MAX_PAYLOAD_BYTES: usize = 900_000;

/// How the calls reach the devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Invoke over gRPC (h2c) through the gateway, on thingcall-client's
    /// `Direct` transport (what `Client::connect` uses for `http://`).
    Grpc,
    /// `grpc` over tonic's `Channel` (with its request buffer task), to
    /// compare the two transports.
    GrpcChannel,
    /// Invoke over h2c through the gateway with the `h2` crate and request
    /// frames built once: the cheap load path, whose own CPU per call is a
    /// small part of the gateway's.
    H2,
    /// `POST /v1/devices/{target}/methods/{method}` over HTTP/1.1 keep-alive.
    Json,
    /// Invoke over gRPC-web (HTTP/1.1) through the gateway.
    GrpcWeb,
    /// No gateway: one MQTT 5 connection speaking the wire contract to the
    /// broker directly (the floor).
    RawMqtt,
    /// No gateway: a fresh MQTT connection per call (the pattern replaced).
    ConnPerRequest,
}

impl Mode {
    /// The name used on the command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Grpc => "grpc",
            Mode::GrpcChannel => "grpc-channel",
            Mode::H2 => "h2",
            Mode::Json => "json",
            Mode::GrpcWeb => "grpc-web",
            Mode::RawMqtt => "raw-mqtt",
            Mode::ConnPerRequest => "conn-per-request",
        }
    }

    /// Whether the calls go straight to the broker (no gateway).
    pub fn is_mqtt(self) -> bool {
        matches!(self, Mode::RawMqtt | Mode::ConnPerRequest)
    }
}

/// `thingcall bench`.
#[derive(Debug, Args)]
#[command(after_help = BENCH_HELP)]
pub struct BenchArgs {
    /// How calls are made.
    #[arg(long, value_enum, default_value = "grpc")]
    pub mode: Mode,
    /// Calls in flight at once (one worker task each).
    #[arg(long, short = 'c', value_name = "C", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
    /// Calls to measure. Without --count and --duration: 10000.
    #[arg(long, short = 'n', value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Longest measured window; the bench stops at whichever of --count and
    /// --duration comes first. Default 60s when only --count is given.
    #[arg(long, short = 'd', value_name = "DURATION", value_parser = positive_duration)]
    pub duration: Option<Duration>,
    /// Calls made before measuring (not reported).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub warmup: u64,
    /// QoS of the requests in raw-mqtt and conn-per-request (the gateway
    /// modes use the gateway's --qos).
    #[arg(long, value_name = "0|1", default_value_t = 1,
          value_parser = clap::value_parser!(u8).range(0..=1))]
    pub qos: u8,
    /// Payload size; the same pseudo-random bytes for every call.
    #[arg(long, value_name = "B", default_value_t = 16, value_parser = payload_bytes)]
    pub payload_bytes: usize,
    /// Devices to call, round-robin: a comma list where `prefix{1..N}`
    /// expands to prefix1..prefixN and a glob with `*` or `?` is resolved
    /// through the gateway's ListDevices on --server (online devices only).
    #[arg(long, value_name = "LIST", default_value = "demo-*")]
    pub targets: String,
    /// Method to call.
    #[arg(long, value_name = "M", default_value = "echo")]
    pub method: String,
    /// Deadline of each call.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = positive_duration)]
    pub timeout: Duration,
    /// Topic root of the wire contract (raw-mqtt, conn-per-request).
    #[arg(long, value_name = "ROOT", default_value = thingcall_proto::wire::DEFAULT_TOPIC_ROOT)]
    pub topic_root: String,
    /// Broker for raw-mqtt and conn-per-request: mqtt://HOST:PORT,
    /// mqtts://HOST:PORT for TLS (default port 8883), or MQTT over
    /// WebSockets ws://HOST:PORT/PATH, wss://HOST:PORT/PATH.
    #[arg(long, value_name = "URL", default_value = "mqtt://127.0.0.1:1883",
          value_parser = MqttUrl::parse)]
    pub mqtt_url: MqttUrl,
    /// Connect to the broker over TLS (implied by mqtts:// and --mqtt-ca).
    #[arg(long)]
    pub tls: bool,
    /// PEM file of the CA that signed the broker's certificate (TLS);
    /// without it the platform's trusted roots are used.
    #[arg(long, value_name = "FILE")]
    pub mqtt_ca: Option<PathBuf>,
    /// Gateway process: report its CPU time and peak RSS.
    #[arg(long, value_name = "PID")]
    pub gateway_pid: Option<u32>,
    /// Broker process: report its CPU time.
    #[arg(long, value_name = "PID")]
    pub broker_pid: Option<u32>,
    /// Threads of the bench's own runtime: 0 = one per core, 1 = a
    /// current-thread runtime (the cheapest load: no cross-thread wakeups).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
    /// Any other process to report CPU time and peak RSS of (repeatable).
    #[arg(long = "pid", value_name = "NAME=PID", value_parser = name_pid)]
    pub pids: Vec<(String, u32)>,
    /// Also show where the ok calls' time went, per percentile: the
    /// caller <-> gateway hop and the gateway's own work, the MQTT path
    /// through the broker, and the device's execution time, from the
    /// figures each reply carries (see below).
    #[arg(long)]
    pub breakdown: bool,
    /// Give every call its own idempotency key (grpc and grpc-web), to
    /// measure what the gateway's key bookkeeping costs; each call still
    /// runs on its device.
    #[arg(long)]
    pub idempotency_keys: bool,
    /// Print one JSON object on stdout instead of a table. Not a flag of
    /// its own: the `thingcall` CLI sets it from `--output json` (and its
    /// alias `--json`), the one output switch of every command.
    #[arg(skip)]
    pub json: bool,
    /// No progress bar.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Free text copied into the JSON report.
    #[arg(long, value_name = "TEXT")]
    pub label: Option<String>,
    /// `--chaos` and its flags.
    #[command(flatten)]
    pub chaos: super::chaos::ChaosArgs,
}

/// Shown under `thingcall bench --help`.
pub const BENCH_HELP: &str = "\
Latency is recorded for every completed call, ok or not; throughput counts
ok calls per second over the measured window (warmup excluded). Outcomes:
ok, the gateway's ErrorInfo reason (DEVICE_TIMEOUT, OVERLOADED, ...),
DEVICE_STATUS_<n> for a device status outside 2xx, DEVICE_TIMEOUT when no
MQTT reply came in time, TRANSPORT for connection failures, CLIENT_TIMEOUT
when the gateway did not answer within --timeout + 5s. CPU seconds come from
/proc/PID/stat (utime+stime over `getconf CLK_TCK`, 100 if unavailable);
peak RSS is VmHWM from /proc/PID/status (since the process started).

--breakdown splits each ok call's latency with the figures its reply
carries: the device's execution time (its `exec-us`: InvokeResponse
device_time, JSON deviceTime) and the gateway's elapsed time from receiving
the call to the device's reply. gateway+caller = latency - elapsed,
broker+network = elapsed - device, device = device. Without a gateway
(raw-mqtt, conn-per-request) there is no gateway+caller row and
broker+network = latency - device (for conn-per-request, connecting too).
Calls whose reply lacks a figure are left out; the report says how many
had them (JSON: breakdown_us with p50/p90/p99/p999 per part and calls).

--chaos runs the chaos run instead (docs/chaos.md): the report goes to
stdout, and the exit code is 1 when an invariant broke.

Exit codes: 0 the bench ran (even with failed calls: see the report),
1 a chaos run broke an invariant, 2 usage error, 69 the gateway or broker
cannot be reached at start.";

impl BenchArgs {
    /// Calls to measure and the cap on the measured window, after the
    /// defaults: neither flag = 10000 calls within 60 s; only --count =
    /// that many within 60 s; only --duration = as many as fit.
    pub fn limits(&self) -> (u64, Duration) {
        match (self.count, self.duration) {
            (None, None) => (DEFAULT_COUNT, DEFAULT_DURATION_CAP),
            (Some(n), None) => (n, DEFAULT_DURATION_CAP),
            (None, Some(d)) => (u64::MAX, d),
            (Some(n), Some(d)) => (n, d),
        }
    }

    /// Whether the MQTT legs use TLS: `--tls`, `--mqtt-ca` or `mqtts://`.
    pub fn use_tls(&self) -> bool {
        self.tls || self.mqtt_ca.is_some() || self.mqtt_url.tls
    }

    /// Every process to watch as (name, pid): `gateway`, `broker`, then
    /// the `--pid` ones in order.
    pub fn watched_pids(&self) -> Vec<(String, u32)> {
        let named = [("gateway", self.gateway_pid), ("broker", self.broker_pid)];
        named
            .into_iter()
            .filter_map(|(name, pid)| pid.map(|p| (name.to_owned(), p)))
            .chain(self.pids.iter().cloned())
            .collect()
    }
}

fn positive_duration(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d.is_zero() => Err("must be more than zero".to_owned()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

fn payload_bytes(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|e| format!("{e}"))?;
    if n > MAX_PAYLOAD_BYTES {
        return Err(format!("at most {MAX_PAYLOAD_BYTES}"));
    }
    Ok(n)
}

/// `NAME=PID` for --pid.
fn name_pid(s: &str) -> Result<(String, u32), String> {
    let (name, pid) = s
        .split_once('=')
        .filter(|(n, _)| !n.is_empty())
        .ok_or_else(|| format!("expected NAME=PID, got {s:?}"))?;
    let pid = pid.parse().map_err(|_| format!("not a pid: {pid:?}"))?;
    Ok((name.to_owned(), pid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;
    use clap::Parser;

    /// `thingcall bench` as the CLI mounts it.
    #[derive(Debug, Parser)]
    struct Bench {
        #[command(flatten)]
        args: BenchArgs,
    }

    fn parse(extra: &[&str]) -> Result<BenchArgs, clap::Error> {
        let argv = ["bench"].into_iter().chain(extra.iter().copied());
        Bench::try_parse_from(argv).map(|b| b.args)
    }

    #[test]
    fn defaults() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.mode, Mode::Grpc);
        assert_eq!(a.concurrency, 16);
        assert_eq!(a.limits(), (10_000, Duration::from_secs(60)));
        assert_eq!((a.warmup, a.qos, a.payload_bytes), (0, 1, 16));
        assert_eq!((a.targets.as_str(), a.method.as_str()), ("demo-*", "echo"));
        assert_eq!(a.timeout, Duration::from_secs(10));
        assert_eq!(a.topic_root, "thingcall");
        assert_eq!(a.mqtt_url.host, "127.0.0.1");
        assert_eq!(a.mqtt_url.port, 1883);
        assert!(!a.use_tls());
        assert!(a.watched_pids().is_empty());
        assert!(!a.json && !a.quiet && !a.breakdown && a.label.is_none());
        assert!(parse(&["--breakdown"]).unwrap().breakdown);
        assert!(!parse(&[]).unwrap().idempotency_keys);
        assert!(parse(&["--idempotency-keys"]).unwrap().idempotency_keys);
    }

    #[test]
    fn count_and_duration_limits() {
        let a = parse(&["--count", "200"]).unwrap();
        assert_eq!(a.limits(), (200, Duration::from_secs(60)));
        let a = parse(&["--duration", "5s"]).unwrap();
        assert_eq!(a.limits(), (u64::MAX, Duration::from_secs(5)));
        let a = parse(&["-n", "7", "-d", "2m"]).unwrap();
        assert_eq!(a.limits(), (7, Duration::from_secs(120)));
    }

    #[test]
    fn every_mode_parses() {
        for (flag, mode) in [
            ("grpc", Mode::Grpc),
            ("grpc-channel", Mode::GrpcChannel),
            ("h2", Mode::H2),
            ("json", Mode::Json),
            ("grpc-web", Mode::GrpcWeb),
            ("raw-mqtt", Mode::RawMqtt),
            ("conn-per-request", Mode::ConnPerRequest),
        ] {
            let a = parse(&["--mode", flag]).unwrap();
            assert_eq!(a.mode, mode);
            assert_eq!(mode.name(), flag);
        }
    }

    #[test]
    fn tls_from_scheme_flag_or_ca() {
        let a = parse(&["--mqtt-url", "mqtts://broker.example"]).unwrap();
        assert!(a.use_tls());
        assert_eq!(
            (a.mqtt_url.host.as_str(), a.mqtt_url.port),
            ("broker.example", 8883)
        );
        let a = parse(&["--mqtt-url", "mqtt://b:1884", "--tls"]).unwrap();
        assert!(a.use_tls());
        assert_eq!(a.mqtt_url.port, 1884);
        let a = parse(&["--mqtt-ca", "/etc/ca.pem"]).unwrap();
        assert!(a.use_tls());
        assert_eq!(a.mqtt_ca, Some(PathBuf::from("/etc/ca.pem")));
    }

    #[test]
    fn pids_in_order() {
        let a = parse(&[
            "--gateway-pid",
            "10",
            "--broker-pid",
            "11",
            "--pid",
            "sim=12",
        ])
        .unwrap();
        assert_eq!(
            a.watched_pids(),
            [
                ("gateway".to_owned(), 10),
                ("broker".to_owned(), 11),
                ("sim".to_owned(), 12)
            ]
        );
    }

    #[test]
    fn chaos_flags() {
        let a = parse(&[]).unwrap();
        assert!(!a.chaos.chaos && a.chaos.seed.is_none());
        assert_eq!(a.chaos.devices, 20);
        let a = parse(&["--chaos", "--seed", "42", "--devices", "5", "-d", "30s"]).unwrap();
        assert!(a.chaos.chaos);
        assert_eq!((a.chaos.seed, a.chaos.devices), (Some(42), 5));
        assert_eq!(a.limits(), (u64::MAX, Duration::from_secs(30)));
        // The chaos run makes its own calls: the benchmark's call flags do not apply.
        for clash in [
            &["--mode", "json"][..],
            &["--method", "x"],
            &["--timeout", "1s"],
        ] {
            let argv: Vec<&str> = ["--chaos"].iter().chain(clash).copied().collect();
            assert_eq!(
                parse(&argv).unwrap_err().kind(),
                ErrorKind::ArgumentConflict,
                "{clash:?}"
            );
        }
        assert_eq!(
            parse(&["--seed", "1"]).unwrap_err().kind(),
            ErrorKind::MissingRequiredArgument
        );
        assert!(parse(&["--chaos", "--devices", "0"]).is_err());
    }

    #[test]
    fn bad_usage_is_exit_2() {
        for bad in [
            &["--mode", "carrier-pigeon"][..],
            &["--concurrency", "0"],
            &["--count", "0"],
            &["--duration", "0s"],
            &["--timeout", "soon"],
            &["--qos", "2"],
            &["--payload-bytes", "900001"],
            &["--pid", "12"],
            &["--pid", "=12"],
            &["--pid", "x=y"],
            &["--mqtt-url", "http://b:1883"],
        ] {
            let err = parse(bad).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad:?}");
            assert_ne!(err.kind(), ErrorKind::UnknownArgument, "{bad:?}");
        }
    }
}
