//! The command line of `thingcall`: flags, subcommands and their parsing,
//! with no I/O, so every rule can be unit-tested with `try_parse_from`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::Shell;
use thingcall_client::EXIT_CODES_HELP;

/// Where the gateway listens unless told otherwise (its own default).
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// The shapes `--output json` prints; stable (fields may be added, none
/// renamed or removed).
pub const JSON_HELP: &str = "\
JSON output (--output json, env THINGCALL_OUTPUT=json; --json is the same):
  invoke   one object: {\"status\", \"payload\", \"payloadEncoding\": \"utf8\"|\"base64\",
           \"contentType\", \"requestId\", \"elapsed\", \"deviceTime\"}; payload is the
           text when it is UTF-8, else base64; durations like \"0.001175s\",
           deviceTime null when the device sent none
  devices  an array of {\"id\", \"online\", \"session\", \"methods\", \"since\"}
  device   one such object
  watch    one object per line: {\"device\", \"time\", \"kind\", ...}
  bench    the report as one object
  errors   still on stderr, as one object: {\"reason\", \"message\", \"requestId\",
           \"exitCode\", \"metadata\"} (requestId null when no call was made;
           invoke adds \"status\" for DEVICE_STATUS), with the exit codes above";

/// Under `thingcall --help`: the exit codes, then the JSON shapes, so a
/// script's author finds both without leaving the terminal.
fn main_help() -> String {
    format!("{EXIT_CODES_HELP}\n\n{JSON_HELP}")
}

/// How results (and, for scripts, errors) are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// For people: the payload as is, aligned tables, one-line errors.
    Text,
    /// For scripts: the shapes listed under --help.
    Json,
}

/// Call methods on IoT devices through a thingcall gateway.
#[derive(Debug, Parser)]
#[command(name = "thingcall", version, after_help = main_help())]
pub struct Cli {
    /// Output format of every command (JSON shapes: see below).
    #[arg(
        short,
        long,
        global = true,
        value_enum,
        value_name = "FORMAT",
        env = "THINGCALL_OUTPUT",
        default_value = "text"
    )]
    pub output: Output,

    /// Same as `--output json` (kept for scripts written before --output;
    /// wins over `--output` and THINGCALL_OUTPUT).
    #[arg(long, global = true, hide = true)]
    pub json: bool,

    /// Gateway URL.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "THINGCALL_SERVER",
        default_value = DEFAULT_SERVER,
        value_parser = parse_server,
    )]
    pub server: String,

    /// Token for a gateway that authenticates callers: a JWT or an API key,
    /// sent as `authorization: Bearer`. Prefer the environment variable: a
    /// flag shows in `ps`.
    #[arg(
        long,
        global = true,
        value_name = "TOKEN",
        env = "THINGCALL_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// PEM CA certificate to trust for an https:// gateway, instead of the
    /// system's roots.
    #[arg(long, global = true, value_name = "FILE", env = "THINGCALL_CACERT")]
    pub cacert: Option<PathBuf>,

    /// PEM client certificate for a gateway that authenticates callers by
    /// certificate (with --key).
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "THINGCALL_CERT",
        requires = "key"
    )]
    pub cert: Option<PathBuf>,

    /// PEM private key of --cert.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "THINGCALL_KEY",
        requires = "cert"
    )]
    pub key: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands; one module under `cmd/` runs each.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run METHOD on device TARGET and print the device's answer.
    #[command(after_help = main_help())]
    Invoke(InvokeArgs),
    /// Run METHOD on many devices (a glob, or ids from a file), paced and
    /// bounded: a progress bar, then a summary table. Exit 0 when every
    /// device answered with a 2xx/3xx status, 1 otherwise.
    #[command(name = "invoke-many", after_help = INVOKE_MANY_HELP)]
    InvokeMany(InvokeManyArgs),
    /// Stream presence changes, invocation outcomes and (with --events)
    /// device events until Ctrl-C.
    Watch(WatchArgs),
    /// List the devices the gateway knows, sorted by id.
    Devices(DevicesArgs),
    /// Show one device.
    Device(DeviceArgs),
    /// Measure throughput and latency of many calls: through the gateway
    /// (grpc, json, grpc-web) or straight over MQTT (raw-mqtt,
    /// conn-per-request).
    Bench(thingcall_bench::BenchArgs),
    /// Print a shell completion script on stdout, e.g.
    /// `thingcall completions bash > ~/.local/share/bash-completion/completions/thingcall`.
    Completions(CompletionsArgs),
}

impl Cli {
    /// The output format in force: `--json` (the old spelling) wins, then
    /// `--output`/THINGCALL_OUTPUT.
    pub fn output(&self) -> Output {
        if self.json {
            Output::Json
        } else {
            self.output
        }
    }
}

/// Whether `argv` (and THINGCALL_OUTPUT) ask for JSON output, read even
/// from a command line that does not parse, so a script that asked for JSON
/// gets its usage error as JSON too.
pub fn json_requested<I, T>(argv: I) -> bool
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::CommandFactory;
    let Ok(matches) = Cli::command()
        .ignore_errors(true)
        .try_get_matches_from(argv)
    else {
        return false;
    };
    let flag = matches.try_get_one::<bool>("json").ok().flatten() == Some(&true);
    let output = matches.try_get_one::<Output>("output").ok().flatten();
    flag || output == Some(&Output::Json)
}

/// The one-line text of a clap error: its first paragraph, without clap's
/// `error: ` prefix, tips and usage (for the JSON error object).
pub fn usage_message(err: &clap::Error) -> String {
    let text = err.render().to_string();
    // The first paragraph: the error and what it lists (missing arguments).
    let paragraph: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let line = paragraph.join(" ");
    line.strip_prefix("error: ").unwrap_or(&line).to_owned()
}

/// `thingcall completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

/// The shells `thingcall completions` writes scripts for: the ones whose
/// install lines the README documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

impl From<CompletionShell> for Shell {
    fn from(shell: CompletionShell) -> Shell {
        match shell {
            CompletionShell::Bash => Shell::Bash,
            CompletionShell::Zsh => Shell::Zsh,
            CompletionShell::Fish => Shell::Fish,
        }
    }
}

/// The payload flags of `invoke` and `invoke-many`.
#[derive(Debug, Args)]
pub struct PayloadArgs {
    /// Payload text to send.
    #[arg(long, value_name = "TEXT", conflicts_with = "payload_file")]
    pub payload: Option<String>,
    /// Read the payload from a file ('-' = stdin).
    #[arg(long, value_name = "PATH")]
    pub payload_file: Option<PathBuf>,
}

/// `thingcall invoke`.
#[derive(Debug, Args)]
pub struct InvokeArgs {
    /// Device id.
    pub target: String,
    /// Method name.
    pub method: String,
    #[command(flatten)]
    pub body: PayloadArgs,
    /// How long to wait for the device's answer.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// How long to wait for an offline device to come online.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,
    /// MIME type of the payload.
    #[arg(long, value_name = "TYPE")]
    pub content_type: Option<String>,
    /// Metadata forwarded to the device as MQTT user properties (repeatable).
    #[arg(long = "metadata", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub metadata: Vec<(String, String)>,
    /// Key for duplicate suppression, forwarded to the device.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    /// MQTT contract the device speaks: `native`, or `seed` for devices
    /// built for the AWS sample (default: the gateway's).
    #[arg(long, value_name = "CONTRACT", value_parser = ["native", "seed"])]
    pub contract: Option<String>,
    /// Print status, timings and request id on stderr (text output; JSON
    /// output carries them anyway).
    #[arg(short, long)]
    pub verbose: bool,
}

/// Under `thingcall invoke-many --help`.
const INVOKE_MANY_HELP: &str = "\
Examples:
  thingcall invoke-many 'pump-*' reboot --rate 100 --max-concurrency 50
  thingcall invoke-many @meters.txt read --offline skip --abort 0.1,20
  thingcall invoke-many 'valve-*' close --rate 200 --ramp 10,2,50 --idempotency-key close-2026-12

With -o json: one object per line, {\"result\": {...}} per device as its call
ends, then {\"summary\": {...}} (the HTTP API's NDJSON shapes).";

/// `thingcall invoke-many`.
#[derive(Debug, Args)]
pub struct InvokeManyArgs {
    /// A glob over the devices the gateway knows ('pump-*', '?' for one
    /// character), or @FILE with one device id per line ('@-' = stdin).
    pub targets: String,
    /// Method name.
    pub method: String,
    #[command(flatten)]
    pub body: PayloadArgs,
    /// How long each device has to answer.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Devices not online: `report` them as DEVICE_OFFLINE, `skip` them
    /// (listed as not attempted), or `wait` up to --connect-timeout.
    #[arg(long, value_name = "POLICY", default_value = "report", value_parser = ["report", "skip", "wait"])]
    pub offline: String,
    /// With --offline wait: how long each device may take to come online.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub connect_timeout: Option<Duration>,
    /// Calls in flight at once (the gateway caps all fan-outs together at
    /// half of its --max-in-flight).
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub max_concurrency: u32,
    /// Calls started per second (0 = as fast as --max-concurrency allows).
    #[arg(long, value_name = "PER_SECOND", default_value_t = 0.0)]
    pub rate: f64,
    /// Ramp up to --rate: START,FACTOR,STEP starts at START calls/s and
    /// multiplies the rate by FACTOR after every STEP successes.
    #[arg(long, value_name = "START,FACTOR,STEP", value_parser = parse_ramp)]
    pub ramp: Option<(f64, f64, u32)>,
    /// Stop starting calls when more than RATIO of at least MIN results
    /// failed, e.g. 0.1,20.
    #[arg(long, value_name = "RATIO,MIN", value_parser = parse_abort)]
    pub abort: Option<(f64, u32)>,
    /// Makes per-device keys KEY:DEVICE, so running the same command again
    /// runs each device at most once (within the gateway's
    /// --idempotency-window).
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    /// MIME type of the payload.
    #[arg(long, value_name = "TYPE")]
    pub content_type: Option<String>,
    /// Metadata forwarded to every device as MQTT user properties (repeatable).
    #[arg(long = "metadata", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub metadata: Vec<(String, String)>,
    /// MQTT contract the devices speak: `native` or `seed`.
    #[arg(long, value_name = "CONTRACT", value_parser = ["native", "seed"])]
    pub contract: Option<String>,
}

/// `START,FACTOR,STEP` of --ramp.
fn parse_ramp(s: &str) -> Result<(f64, f64, u32), String> {
    let bad = || format!("expected START,FACTOR,STEP such as 10,2,50, got {s:?}");
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let [start, factor, step] = parts[..] else {
        return Err(bad());
    };
    Ok((
        start.parse().map_err(|_| bad())?,
        factor.parse().map_err(|_| bad())?,
        step.parse().map_err(|_| bad())?,
    ))
}

/// `RATIO,MIN` of --abort.
fn parse_abort(s: &str) -> Result<(f64, u32), String> {
    let bad = || format!("expected RATIO,MIN such as 0.1,20, got {s:?}");
    let (ratio, min) = s.split_once(',').ok_or_else(bad)?;
    Ok((
        ratio.trim().parse().map_err(|_| bad())?,
        min.trim().parse().map_err(|_| bad())?,
    ))
}

/// `thingcall watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Device id or glob such as 'pump-*'; all devices when omitted.
    pub pattern: Option<String>,
    /// Also show the devices' own events.
    #[arg(long)]
    pub events: bool,
}

/// `thingcall devices`.
#[derive(Debug, Args)]
pub struct DevicesArgs {
    /// Device id or glob such as 'pump-*'; all devices when omitted.
    pub pattern: Option<String>,
}

/// `thingcall device`.
#[derive(Debug, Args)]
pub struct DeviceArgs {
    /// Device id.
    pub id: String,
}

/// Rejects a malformed gateway URL as a usage error (exit 2) before any
/// connection is attempted.
fn parse_server(s: &str) -> Result<String, String> {
    thingcall_client::endpoint(s)
        .map(|_| s.to_owned())
        .map_err(|e| e.message)
}

/// `KEY=VALUE` for --metadata; the value may itself contain '='.
fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

#[cfg(test)]
mod tests;
