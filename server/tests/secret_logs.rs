//! Logs never carry the WebSocket upgrade request: with SigV4 it holds
//! the signature and the session token, and tungstenite logs it whole at
//! trace level. The gateway caps that one target whatever `RUST_LOG` says.

mod common;

use common::process::GatewayProcess;
use common::soon;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upgrade_request_is_not_logged_even_at_trace() {
    // A peer that reads one upgrade request line and hangs up.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        let mut line = String::new();
        BufReader::new(sock).read_line(&mut line).await.unwrap();
        line
    });
    let url = format!("ws://{addr}/mqtt");
    let mut gw = GatewayProcess::start_logging("trace", &["--mqtt-url", &url]).await;
    let line = soon("the upgrade request", peer).await.unwrap();
    assert!(line.starts_with("GET /mqtt "), "{line}");
    // The failed connect is logged after the request was built and sent;
    // no line before it may show the request.
    gw.wait_line("the failed connect", |l| {
        assert!(
            !l.contains("GET /mqtt") && !l.contains("Request: "),
            "the upgrade request was logged: {l}"
        );
        l.contains("MQTT connect failed")
    })
    .await;
}
