//! Logs at the most verbose level of thingcall's own crates carry each
//! call's request id, and never a payload, a metadata value or an
//! `authorization` header.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::http::request;
use common::{req, Broker, Harness};
use http::Method;
use tracing_subscriber::fmt::MakeWriter;

const SECRETS: &[&str] = &["PAYLOAD-SECRET-1", "META-SECRET-2", "TOKEN-SECRET-3"];

/// Everything logged in this test binary, as JSON lines.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_carry_request_ids_and_no_secrets() {
    let capture = Capture::default();
    tracing_subscriber::fmt()
        .with_env_filter("info,thingcall_server=trace,thingcall_device=trace")
        .json()
        .with_current_span(true)
        .with_span_list(true)
        .with_writer(capture.clone())
        .init();

    let h = Harness::start(Broker::Embedded).await.expect("embedded");
    let _d = h.device("log-1").await;
    let mut c = h.client.clone();
    let mut r = req("log-1", "echo", SECRETS[0].as_bytes());
    r.metadata.insert("authorization".into(), SECRETS[1].into());
    let answer = c.invoke(r).await.expect("echo").into_inner();
    let reply = request(
        Method::POST,
        &format!("{}/v1/devices/log-1/methods/echo", h.base()),
        &format!(r#"{{"payload":"{}"}}"#, SECRETS[0]),
        &[("authorization", &format!("Bearer {}", SECRETS[2]))],
    )
    .await;
    assert_eq!(reply.status, 200);
    h.stop().await;

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    let finished: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("call finished"))
        .collect();
    assert_eq!(finished.len(), 2, "one line per call:\n{logs}");
    assert!(
        finished[0].contains(&answer.request_id),
        "the gRPC call's line names its request id: {}",
        finished[0]
    );
    let http_id = reply.json()["requestId"].as_str().unwrap().to_owned();
    assert!(
        finished[1].contains(&http_id),
        "the HTTP call's line names its request id: {}",
        finished[1]
    );
    for line in logs.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("each line is JSON");
        for secret in SECRETS {
            assert!(!line.contains(secret), "{secret} logged: {line}");
        }
    }
}
