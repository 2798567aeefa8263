//! Runs one subcommand and turns its outcome into the process exit code,
//! printing at most one error on stderr on failure: a `thingcall: ...`
//! line, or with `--output json` one JSON object.

mod completions;
mod devices;
mod invoke;
mod invoke_many;
mod watch;

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde_json::{json, Map};
use thingcall_client::{exit, CallError, Client, TlsOptions};

use crate::cli::{Cli, Command, Output};
use crate::format::error::{self as error_format, ErrorReport};

/// Why a command failed, with what it should print and exit with.
#[derive(Debug)]
pub enum Failure {
    /// The gateway (or the way to it) reported an error. `verbose` adds the
    /// `ErrorInfo` metadata to the text line (JSON always has it).
    Call { err: CallError, verbose: bool },
    /// The device answered, with a status outside 2xx (exit 1); the answer
    /// itself is already on stdout.
    Status { status: i32, request_id: String },
    /// A problem on this side (unreadable payload file, stdout gone) or a
    /// bench that could not run; `reason` names it in JSON.
    Local {
        reason: &'static str,
        message: String,
        exit: u8,
    },
}

impl From<CallError> for Failure {
    fn from(err: CallError) -> Self {
        Failure::Call {
            err,
            verbose: false,
        }
    }
}

impl Failure {
    /// A local failure of `exit` code, its reason named after the code.
    pub fn local(message: impl Into<String>, exit: u8) -> Self {
        let reason = match exit {
            exit::USAGE => "USAGE",
            exit::UNREACHABLE => "UNREACHABLE",
            _ => "OTHER",
        };
        Failure::Local {
            reason,
            message: message.into(),
            exit,
        }
    }

    /// The single stderr line (without the `thingcall: ` prefix).
    fn message(&self) -> String {
        match self {
            Failure::Call { err, verbose } => {
                let mut line = err.to_string();
                if *verbose && !err.metadata.is_empty() {
                    let pairs: Vec<String> = err
                        .metadata
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect();
                    line.push_str(&format!(" ({})", pairs.join(" ")));
                }
                line
            }
            Failure::Status { status, .. } => format!("device answered status {status}"),
            Failure::Local { message, .. } => message.clone(),
        }
    }

    fn exit_code(&self) -> u8 {
        match self {
            Failure::Call { err, .. } => err.exit_code(),
            Failure::Status { .. } => exit::DEVICE_STATUS,
            Failure::Local { exit, .. } => *exit,
        }
    }

    /// What stderr gets: the text line, or the JSON object (one line).
    pub fn render(&self, output: Output) -> String {
        match output {
            // One line, whatever the message contains.
            Output::Text => format!("thingcall: {}", self.message().replace(['\n', '\r'], " ")),
            Output::Json => {
                let none = BTreeMap::new();
                let status_meta;
                let (reason, message, metadata, extra) = match self {
                    Failure::Call { err, .. } => {
                        let mut extra = Map::new();
                        if let Some(wait) = err.retry_after {
                            // Seconds, as HTTP's Retry-After counts them.
                            extra.insert("retryAfter".into(), json!(wait.as_secs_f64()));
                        }
                        (
                            err.reason.as_str(),
                            err.message.clone(),
                            &err.metadata,
                            extra,
                        )
                    }
                    Failure::Status { status, request_id } => {
                        status_meta =
                            BTreeMap::from([("requestId".to_owned(), request_id.clone())]);
                        let mut extra = Map::new();
                        extra.insert("status".into(), json!(status));
                        ("DEVICE_STATUS", self.message(), &status_meta, extra)
                    }
                    Failure::Local {
                        reason, message, ..
                    } => (*reason, message.clone(), &none, Map::new()),
                };
                error_format::json(&ErrorReport {
                    reason,
                    message: &message,
                    exit_code: self.exit_code(),
                    metadata,
                    extra,
                })
                .to_string()
            }
        }
    }
}

/// The gateway the commands call, and the caller's TLS files and token.
pub struct Gateway<'a> {
    server: &'a str,
    token: Option<&'a str>,
    tls: TlsOptions,
}

impl Gateway<'_> {
    /// Connects, with the token when one was given.
    pub async fn connect(&self) -> Result<Client, CallError> {
        let client = Client::connect_with(self.server, &self.tls).await?;
        match self.token {
            Some(token) => client.with_token(token),
            None => Ok(client),
        }
    }
}

/// Runs the parsed command line; returns the process exit code.
pub async fn run(cli: Cli) -> u8 {
    let output = cli.output();
    let result = match tls_options(&cli) {
        Ok(tls) => {
            let Cli {
                server,
                token,
                command: cmd,
                ..
            } = cli;
            let gateway = Gateway {
                server: &server,
                token: token.as_deref(),
                tls,
            };
            command(cmd, &gateway, output).await
        }
        Err(failure) => Err(failure),
    };
    match result {
        Ok(code) => code,
        Err(failure) => {
            let _ = writeln!(io::stderr(), "{}", failure.render(output));
            failure.exit_code()
        }
    }
}

/// The TLS files of the command line, read.
fn tls_options(cli: &Cli) -> Result<TlsOptions, Failure> {
    let read = |flag: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| {
            Failure::local(
                format!("cannot read --{flag} {}: {e}", path.display()),
                exit::USAGE,
            )
        })
    };
    Ok(TlsOptions {
        ca_pem: cli
            .cacert
            .as_deref()
            .map(|p| read("cacert", p))
            .transpose()?,
        identity: match (&cli.cert, &cli.key) {
            (Some(c), Some(k)) => Some((read("cert", c)?, read("key", k)?)),
            _ => None,
        },
    })
}

async fn command(command: Command, gateway: &Gateway<'_>, output: Output) -> Result<u8, Failure> {
    match command {
        Command::Invoke(args) => invoke::run(gateway, args, output).await,
        Command::InvokeMany(args) => invoke_many::run(gateway, args, output).await,
        Command::Watch(args) => watch::run(gateway, args, output).await,
        Command::Devices(args) => devices::list(gateway, args, output).await,
        Command::Device(args) => devices::show(gateway, args, output).await,
        Command::Completions(args) => completions::run(args),
        Command::Bench(mut args) => {
            args.json = output == Output::Json;
            bench(gateway, args).await
        }
    }
}

/// `thingcall bench`: the report on stdout (also for a chaos run that broke
/// an invariant, which then exits 1).
async fn bench(gateway: &Gateway<'_>, args: thingcall_bench::BenchArgs) -> Result<u8, Failure> {
    match thingcall_bench::run(gateway.server, args).await {
        Ok(report) => write_stdout(report.as_bytes()).map(|_| exit::OK),
        Err(thingcall_bench::Setup::Broken(report)) => {
            write_stdout(report.as_bytes())?;
            Err(Failure::Local {
                reason: "INVARIANT_BROKEN",
                message: "the chaos run broke an invariant (see the report)".into(),
                exit: 1,
            })
        }
        Err(setup) => {
            let (message, exit) = setup.into_message_and_exit();
            Err(Failure::local(message, exit))
        }
    }
}

/// Writes `bytes` to stdout. A closed pipe (`thingcall ... | head`) is not
/// an error worth reporting: returns `Ok(false)` so the caller stops.
pub fn write_stdout(bytes: &[u8]) -> Result<bool, Failure> {
    let mut out = io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(Failure::local(
            format!("cannot write to stdout: {e}"),
            exit::OTHER,
        )),
    }
}
