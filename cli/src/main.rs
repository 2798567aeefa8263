#![forbid(unsafe_code)]
//! `thingcall`: invoke methods on devices, watch presence and list devices
//! through a thingcall gateway, from a shell or a script, and benchmark it
//! (`thingcall bench`). Exit codes are listed in `thingcall --help` and on
//! `thingcall_client::CallError`.

mod cli;
mod cmd;
mod format;

use std::process::ExitCode;

use clap::Parser;

/// One call per process needs only a single-threaded runtime, which starts
/// fastest; `bench` runs its workers on every core.
fn main() -> ExitCode {
    // Usage errors exit 2 here, through clap.
    let cli = cli::Cli::parse();
    let mut runtime = match cli.command {
        cli::Command::Bench(_) => tokio::runtime::Builder::new_multi_thread(),
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
