#![forbid(unsafe_code)]
//! `otlp-receiver ADDR`: an OTLP/gRPC trace receiver that prints one line
//! per span it gets (see `thingcall_testkit::otlp`), so a script can check
//! what processes exported. Used by `.ci/trace-smoke.sh` to follow one curl
//! call across the gateway and simulator binaries; it stops on SIGTERM.

use thingcall_testkit::otlp::Receiver;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let Some(addr) = std::env::args().nth(1) else {
        eprintln!("usage: otlp-receiver ADDR");
        std::process::exit(64);
    };
    let addr = addr.parse().unwrap_or_else(|e| {
        eprintln!("otlp-receiver: bad address {addr}: {e}");
        std::process::exit(64);
    });
    let stop = async {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            term.recv().await;
        }
    };
    if let Err(e) = tonic::transport::Server::builder()
        .add_service(Receiver::printing().service())
        .serve_with_shutdown(addr, stop)
        .await
    {
        eprintln!("otlp-receiver: {e}");
        std::process::exit(1);
    }
}
