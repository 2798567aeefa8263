#![forbid(unsafe_code)]
//! `thingcall`: invoke methods on devices, watch presence and list devices
//! through a thingcall gateway, from a shell or a script, and benchmark it
//! (`thingcall bench`). Exit codes are listed in `thingcall --help` and on
//! `thingcall_client::CallError`.

mod cli;
mod cmd;
mod format;
mod progress;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;

/// One call per process needs only a single-threaded runtime, which starts
/// fastest; `bench` runs its workers on every core.
fn main() -> ExitCode {
    // Usage errors exit 2 here, through clap (as JSON when asked for).
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(err),
    };
    let mut runtime = match cli.command {
        cli::Command::Bench(ref b) if b.threads == 1 => {
            tokio::runtime::Builder::new_current_thread()
        }
        cli::Command::Bench(ref b) => {
            let mut r = tokio::runtime::Builder::new_multi_thread();
            if b.threads > 0 {
                r.worker_threads(b.threads);
            }
            r
        }
        _ => tokio::runtime::Builder::new_current_thread(),
    };
    match runtime.enable_all().build() {
        Ok(runtime) => ExitCode::from(runtime.block_on(cmd::run(cli))),
        Err(e) => {
            eprintln!("thingcall: cannot start the async runtime: {e}");
            ExitCode::from(thingcall_client::exit::OTHER)
        }
    }
}

/// A command line that does not parse: clap's own text and exit code 2, or
/// with `--output json` the one JSON error object (reason `USAGE`). Help and
/// `--version` are not errors and print as always.
fn usage_error(err: clap::Error) -> ExitCode {
    let is_help = matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if is_help || !cli::json_requested(std::env::args_os()) {
        err.exit()
    }
    let failure = cmd::Failure::local(cli::usage_message(&err), thingcall_client::exit::USAGE);
    eprintln!("{}", failure.render(cli::Output::Json));
    ExitCode::from(thingcall_client::exit::USAGE)
}
