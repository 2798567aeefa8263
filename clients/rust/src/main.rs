#![forbid(unsafe_code)]
//! `thingcall`: invoke methods on devices, watch presence and list devices
//! through a thingcall gateway, from a shell or a script. Exit codes are
//! listed in `thingcall --help` and on `thingcall_cli::CallError`.

mod cli;
mod cmd;
mod format;

use std::process::ExitCode;

use clap::Parser;

/// One call per process, so a single-threaded runtime is all it needs and
/// starts fastest.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    // Usage errors exit 2 here, through clap.
    let cli = cli::Cli::parse();
    ExitCode::from(cmd::run(cli).await)
}
