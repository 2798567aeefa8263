//! The command line of `thingcall`: flags, subcommands and their parsing,
//! with no I/O, so every rule can be unit-tested with `try_parse_from`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use thingcall_client::EXIT_CODES_HELP;

/// Where the gateway listens unless told otherwise (its own default).
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// Call methods on IoT devices through a thingcall gateway.
#[derive(Debug, Parser)]
#[command(name = "thingcall", version, after_help = EXIT_CODES_HELP)]
pub struct Cli {
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
    #[command(after_help = EXIT_CODES_HELP)]
    Invoke(InvokeArgs),
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
}

/// `thingcall invoke`.
#[derive(Debug, Args)]
pub struct InvokeArgs {
    /// Device id.
    pub target: String,
    /// Method name.
    pub method: String,
    /// Payload text to send.
    #[arg(long, value_name = "TEXT", conflicts_with = "payload_file")]
    pub payload: Option<String>,
    /// Read the payload from a file ('-' = stdin).
    #[arg(long, value_name = "PATH")]
    pub payload_file: Option<PathBuf>,
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
    /// Print status, timings and request id on stderr.
    #[arg(short, long)]
    pub verbose: bool,
}

/// `thingcall watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Device id or glob such as 'pump-*'; all devices when omitted.
    pub pattern: Option<String>,
    /// Also show the devices' own events.
    #[arg(long)]
    pub events: bool,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `thingcall devices`.
#[derive(Debug, Args)]
pub struct DevicesArgs {
    /// Device id or glob such as 'pump-*'; all devices when omitted.
    pub pattern: Option<String>,
    /// A JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `thingcall device`.
#[derive(Debug, Args)]
pub struct DeviceArgs {
    /// Device id.
    pub id: String,
    /// A JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
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
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("thingcall").chain(args.iter().copied()))
    }

    fn invoke(args: &[&str]) -> InvokeArgs {
        match parse(args).unwrap().command {
            Command::Invoke(a) => a,
            other => panic!("expected invoke, got {other:?}"),
        }
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn invoke_defaults() {
        let a = invoke(&["invoke", "demo-1", "echo"]);
        assert_eq!(a.target, "demo-1");
        assert_eq!(a.method, "echo");
        assert_eq!(a.payload, None);
        assert_eq!(a.payload_file, None);
        assert_eq!(a.timeout, Duration::from_secs(5));
        assert_eq!(a.connect_timeout, Duration::ZERO);
        assert_eq!(a.content_type, None);
        assert!(a.metadata.is_empty());
        assert_eq!(a.idempotency_key, None);
        assert!(!a.verbose);
    }

    #[test]
    fn invoke_all_flags() {
        let a = invoke(&[
            "invoke",
            "demo-1",
            "echo",
            "--payload",
            "hello",
            "--timeout",
            "1m 30s",
            "--connect-timeout",
            "250ms",
            "--content-type",
            "text/plain",
            "--metadata",
            "a=1",
            "--metadata",
            "b=x=y",
            "--idempotency-key",
            "k1",
            "-v",
        ]);
        assert_eq!(a.payload.as_deref(), Some("hello"));
        assert_eq!(a.timeout, Duration::from_secs(90));
        assert_eq!(a.connect_timeout, Duration::from_millis(250));
        assert_eq!(a.content_type.as_deref(), Some("text/plain"));
        assert_eq!(
            a.metadata,
            vec![
                ("a".to_owned(), "1".to_owned()),
                ("b".to_owned(), "x=y".to_owned())
            ]
        );
        assert_eq!(a.idempotency_key.as_deref(), Some("k1"));
        assert!(a.verbose);
    }

    #[test]
    fn invoke_payload_file_dash_is_stdin() {
        let a = invoke(&["invoke", "d", "m", "--payload-file", "-"]);
        assert_eq!(a.payload_file, Some(PathBuf::from("-")));
    }

    #[test]
    fn invoke_rejects_bad_input() {
        let kind = |args: &[&str]| parse(args).unwrap_err().kind();
        assert_eq!(
            kind(&["invoke", "d", "m", "--timeout", "soon"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            kind(&["invoke", "d", "m", "--connect-timeout", "5"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            kind(&["invoke", "d", "m", "--metadata", "novalue"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            kind(&["invoke", "d", "m", "--metadata", "=v"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            kind(&["invoke", "d", "m", "--payload", "x", "--payload-file", "f"]),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(kind(&["invoke", "d"]), ErrorKind::MissingRequiredArgument);
        assert_eq!(
            parse(&["invoke", "d", "m", "--nope"])
                .unwrap_err()
                .exit_code(),
            2
        );
    }

    #[test]
    fn server_flag_is_global_and_validated() {
        let cli = parse(&["devices", "--server", "http://gw:9000"]).unwrap();
        assert_eq!(cli.server, "http://gw:9000");
        let cli = parse(&["--server", "http://gw:9000", "device", "x"]).unwrap();
        assert_eq!(cli.server, "http://gw:9000");
        assert_eq!(
            parse(&["--server", "gw:9000", "devices"])
                .unwrap_err()
                .kind(),
            ErrorKind::ValueValidation
        );
        if std::env::var_os("THINGCALL_SERVER").is_none() {
            assert_eq!(parse(&["devices"]).unwrap().server, DEFAULT_SERVER);
        }
    }

    #[test]
    fn watch_args() {
        match parse(&["watch"]).unwrap().command {
            Command::Watch(a) => {
                assert_eq!(a.pattern, None);
                assert!(!a.events && !a.json);
            }
            other => panic!("{other:?}"),
        }
        match parse(&["watch", "pump-*", "--events", "--json"])
            .unwrap()
            .command
        {
            Command::Watch(a) => {
                assert_eq!(a.pattern.as_deref(), Some("pump-*"));
                assert!(a.events && a.json);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn devices_and_device_args() {
        match parse(&["devices", "demo-*", "--json"]).unwrap().command {
            Command::Devices(a) => {
                assert_eq!(a.pattern.as_deref(), Some("demo-*"));
                assert!(a.json);
            }
            other => panic!("{other:?}"),
        }
        match parse(&["devices"]).unwrap().command {
            Command::Devices(a) => assert!(a.pattern.is_none() && !a.json),
            other => panic!("{other:?}"),
        }
        match parse(&["device", "demo-1"]).unwrap().command {
            Command::Device(a) => assert_eq!(a.id, "demo-1"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse(&["device"]).unwrap_err().kind(),
            ErrorKind::MissingRequiredArgument
        );
        assert!(parse(&[]).is_err());
    }

    #[test]
    fn help_documents_exit_codes() {
        use clap::CommandFactory;
        let help = Cli::command().render_help().to_string();
        assert!(help.contains("69  gateway unreachable"), "{help}");
    }
}
