#![forbid(unsafe_code)]
//! `thingcall-server`: parse configuration, run until Ctrl-C or SIGTERM,
//! then drain and exit 0; a second signal exits at once.

use clap::Parser;
use thingcall_server::config::{Config, EX_USAGE};

fn main() {
    let config = match Config::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => bad_config(&first_line(&e.to_string())),
    };
    if let Err(msg) = config.validate() {
        bad_config(&msg);
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,mqtt5=warn".into())
        .add_directive(
            thingcall_proto::aws::iot::LOG_CAP
                .parse()
                .expect("a valid directive"),
        );
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
    let served = runtime.block_on(async {
        let (first, shutdown) = tokio::sync::oneshot::channel();
        tokio::spawn(signals(first));
        thingcall_server::run(config, async {
            let _ = shutdown.await;
        })
        .await
    });
    if let Err(e) = served {
        eprintln!("thingcall-server: {e:#}");
        std::process::exit(1);
    }
}

/// The one line of a clap error: its first line, and when that announces a
/// list (`... were not provided:`), the list's first item too.
fn first_line(text: &str) -> String {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("invalid arguments");
    match lines.next() {
        Some(item) if first.ends_with(':') => format!("{first} {item}"),
        _ => first.to_owned(),
    }
}

fn bad_config(msg: &str) -> ! {
    let msg = msg.trim_start_matches("error: ");
    eprintln!("thingcall-server: {msg}");
    std::process::exit(EX_USAGE);
}

/// Exit code of a second signal during the drain (128 + SIGINT, as shells
/// report an interrupted program).
const EXIT_INTERRUPTED: i32 = 130;

/// The first Ctrl-C or SIGTERM starts the ordered shutdown; a second one
/// exits at once, for an operator who will not wait for the drain.
async fn signals(first: tokio::sync::oneshot::Sender<()>) {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    let mut first = Some(first);
    loop {
        #[cfg(unix)]
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        match first.take() {
            Some(tx) => {
                let _ = tx.send(());
            }
            None => {
                eprintln!("thingcall-server: second signal, exiting without draining");
                std::process::exit(EXIT_INTERRUPTED);
            }
        }
    }
}
