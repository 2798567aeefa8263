//! The port's timeouts: a connection that sends nothing, or only an
//! HTTP/2 preface, is closed after the header timeout; an idle keep-alive
//! connection after the idle timeout; an open event stream never.

mod common;

use std::time::Duration;

use common::{soon, Broker, Harness};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn closed(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

async fn harness() -> Harness {
    Harness::start_with(Broker::Embedded, |c| {
        c.port.http_header_timeout = Duration::from_millis(500);
        c.port.http_idle_timeout = Duration::from_secs(1);
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed_after_the_header_timeout() {
    let h = harness().await;
    let addr = h.gw().grpc_addr;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut preface_only = TcpStream::connect(addr).await.unwrap();
    preface_only
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    let mut half_headers = TcpStream::connect(addr).await.unwrap();
    half_headers
        .write_all(b"GET /v1/devices HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    for s in [&mut silent, &mut preface_only, &mut half_headers] {
        soon("closed by the header timeout", closed(s)).await;
    }
    let metrics = common::http::get(&format!("{}/metrics", h.base())).await;
    let text = String::from_utf8_lossy(&metrics.body).into_owned();
    let n: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("thingcall_connections_header_timeout_total "))
        .and_then(|v| v.parse().ok())
        .expect("the counter");
    assert!(n >= 2, "{n}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_close_and_open_streams_do_not() {
    let h = harness().await;
    let addr = h.gw().grpc_addr;
    // An SSE stream, open before and after the idle timeouts below.
    let (status, _, mut events) = common::http::sse(&format!("{}/v1/events", h.base())).await;
    assert_eq!(status, 200);
    let mut text = String::new();
    common::http::read_until(&mut events, &mut text, "event: synced").await;

    // Two keep-alive connections, one after the other, each closed once idle.
    for _ in 0..2 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /v1/devices HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let answer = soon("closed when idle", closed(&mut s)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }

    // The stream outlived both: it still delivers.
    let _d = h.device("idle-1").await;
    common::http::read_until(&mut events, &mut text, "idle-1").await;
    h.stop().await;
}
