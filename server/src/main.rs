#![forbid(unsafe_code)]
//! `thingcall-server`: parse configuration, run until Ctrl-C or SIGTERM.

use clap::Parser;
use thingcall_server::config::{Config, EX_USAGE};

fn main() {
    let config = match Config::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => bad_config(e.to_string().lines().next().unwrap_or("invalid arguments")),
    };
    if let Err(msg) = config.validate() {
        bad_config(&msg);
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,mqtt5=warn".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if config.log_format == "json" {
        logs.json().with_current_span(true).init();
    } else {
        logs.init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = runtime.block_on(thingcall_server::run(config, shutdown_signal())) {
        eprintln!("thingcall-server: {e:#}");
        std::process::exit(1);
    }
}

fn bad_config(msg: &str) -> ! {
    let msg = msg.trim_start_matches("error: ");
    eprintln!("thingcall-server: {msg}");
    std::process::exit(EX_USAGE);
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
