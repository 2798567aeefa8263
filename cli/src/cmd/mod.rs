//! Runs one subcommand and turns its outcome into the process exit code,
//! printing at most one `thingcall: ...` line on stderr on failure.

mod devices;
mod invoke;
mod watch;

use std::io::{self, Write};

use thingcall_client::{exit, CallError, Client, TlsOptions};

use crate::cli::{Cli, Command};

/// Why a command failed, with what it should print and exit with.
#[derive(Debug)]
pub enum Failure {
    /// The gateway (or the way to it) reported an error. `verbose` adds the
    /// `ErrorInfo` metadata to the line.
    Call { err: CallError, verbose: bool },
    /// A problem on this side (unreadable payload file, stdout gone).
    Local { message: String, exit: u8 },
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
            Failure::Local { message, .. } => message.clone(),
        }
    }

    fn exit_code(&self) -> u8 {
        match self {
            Failure::Call { err, .. } => err.exit_code(),
            Failure::Local { exit, .. } => *exit,
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
            command(cmd, &gateway).await
        }
        Err(failure) => Err(failure),
    };
    match result {
        Ok(code) => code,
        Err(failure) => {
            // One line, whatever the message contains.
            let text = failure.message().replace(['\n', '\r'], " ");
            let _ = writeln!(io::stderr(), "thingcall: {text}");
            failure.exit_code()
        }
    }
}

/// The TLS files of the command line, read.
fn tls_options(cli: &Cli) -> Result<TlsOptions, Failure> {
    let read = |flag: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| Failure::Local {
            message: format!("cannot read --{flag} {}: {e}", path.display()),
            exit: exit::USAGE,
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

async fn command(command: Command, gateway: &Gateway<'_>) -> Result<u8, Failure> {
    match command {
        Command::Invoke(args) => invoke::run(gateway, args).await,
        Command::Watch(args) => watch::run(gateway, args).await,
        Command::Devices(args) => devices::list(gateway, args).await,
        Command::Device(args) => devices::show(gateway, args).await,
        Command::Bench(args) => match thingcall_bench::run(gateway.server, args).await {
            Ok(report) => write_stdout(report.as_bytes()).map(|_| exit::OK),
            // A chaos run that broke an invariant: the report as always, then exit 1.
            Err(thingcall_bench::Setup::Broken(report)) => {
                write_stdout(report.as_bytes())?;
                Err(Failure::Local {
                    message: "the chaos run broke an invariant (see the report)".into(),
                    exit: 1,
                })
            }
            Err(setup) => {
                let (message, exit) = setup.into_message_and_exit();
                Err(Failure::Local { message, exit })
            }
        },
    }
}

/// Writes `bytes` to stdout. A closed pipe (`thingcall ... | head`) is not
/// an error worth reporting: returns `Ok(false)` so the caller stops.
pub fn write_stdout(bytes: &[u8]) -> Result<bool, Failure> {
    let mut out = io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(Failure::Local {
            message: format!("cannot write to stdout: {e}"),
            exit: exit::OTHER,
        }),
    }
}
