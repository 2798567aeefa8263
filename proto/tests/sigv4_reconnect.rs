//! Every connection attempt signs its WebSocket upgrade anew: rumqttc
//! runs the request modifier per attempt, so two connects carry two
//! different X-Amz-Date values and signatures. The peer is a plain TCP
//! listener that records each upgrade's request line and hangs up (no
//! real broker checks SigV4).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use thingcall_proto::aws::chain::Chain;
use thingcall_proto::aws::iot::{install, Signer};
use thingcall_proto::wire::endpoint::mqtt_options;
use thingcall_proto::wire::BrokerUrl;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

fn query_param<'a>(line: &'a str, name: &str) -> &'a str {
    let start = line.find(&format!("{name}=")).expect(name) + name.len() + 1;
    let rest = &line[start..];
    &rest[..rest.find(['&', ' ']).unwrap_or(rest.len())]
}

#[tokio::test]
async fn each_connect_is_signed_again() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (lines_tx, mut lines) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let mut line = String::new();
            let mut reader = BufReader::new(sock);
            if reader.read_line(&mut line).await.is_ok() {
                let _ = lines_tx.send(line.trim_end().to_owned());
            }
            // Dropping the socket refuses the upgrade: the client retries.
        }
    });

    let env: thingcall_proto::aws::credentials::Env = Arc::new(|name| match name {
        "AWS_ACCESS_KEY_ID" => Some("AKIAIOSFODNN7EXAMPLE".into()),
        "AWS_SECRET_ACCESS_KEY" => Some("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into()),
        "AWS_SESSION_TOKEN" => Some("session-token".into()),
        _ => None,
    });
    let mut signer = Signer::new("eu-west-1", Arc::new(Chain::resolve(env).unwrap()));
    // One second later at each signing, as two real reconnects would be.
    let start = humantime::parse_rfc3339("2026-12-01T22:15:00Z").unwrap();
    let ticks = Arc::new(AtomicU64::new(0));
    signer.clock = Arc::new(move || -> SystemTime {
        start + Duration::from_secs(ticks.fetch_add(1, Ordering::SeqCst))
    });

    let url = BrokerUrl::parse(&format!("ws://{addr}/mqtt")).unwrap();
    let mut opts = mqtt_options("signed-client", &url, None).unwrap();
    install(&mut opts, signer);
    let (_client, mut eventloop) = rumqttc::v5::AsyncClient::new(opts, 10);
    let bound = Duration::from_secs(20);
    let mut seen = Vec::new();
    while seen.len() < 2 {
        // Each poll is one connection attempt, refused by the peer.
        let attempt = tokio::time::timeout(bound, eventloop.poll()).await;
        assert!(
            matches!(attempt, Ok(Err(_))),
            "the peer refuses every upgrade"
        );
        let line = tokio::time::timeout(bound, lines.recv())
            .await
            .expect("an upgrade request")
            .expect("listener alive");
        seen.push(line);
    }
    for line in &seen {
        assert!(
            line.starts_with("GET /mqtt?X-Amz-Algorithm=AWS4-HMAC-SHA256&"),
            "{line}"
        );
        assert!(
            line.ends_with("&X-Amz-Security-Token=session-token HTTP/1.1"),
            "{line}"
        );
    }
    assert_eq!(query_param(&seen[0], "X-Amz-Date"), "20261201T221500Z");
    assert_eq!(query_param(&seen[1], "X-Amz-Date"), "20261201T221501Z");
    assert_ne!(
        query_param(&seen[0], "X-Amz-Signature"),
        query_param(&seen[1], "X-Amz-Signature")
    );
}
