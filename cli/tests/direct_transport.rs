//! The typed client on its `Direct` h2c transport against a real gateway
//! (embedded broker, demo devices): answers reach their own callers when
//! one connection is shared by many tasks, a dropped connection fails the
//! calls in flight as UNREACHABLE and is remade by the next call, and the
//! gateway's reasons arrive as they do over tonic's `Channel`.

mod common;

use std::time::{Duration, Instant};

use common::{gateway, gateway_with, within};
use thingcall_client::proto::InvokeRequest;
use thingcall_client::{CallError, Client, Direct};
use thingcall_testkit::fault::{Fault, FaultProxy};

fn echo(target: &str, payload: Vec<u8>) -> InvokeRequest {
    InvokeRequest {
        target: target.into(),
        method: "echo".into(),
        payload: payload.into(),
        ..Default::default()
    }
}

fn seconds(s: i64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: s,
        nanos: 0,
    }
}

fn millis(ms: i32) -> prost_types::Duration {
    prost_types::Duration {
        seconds: 0,
        nanos: ms * 1_000_000,
    }
}

async fn direct(server: &str) -> Client {
    let client = Client::with_transport(Direct::connect(server).await.unwrap());
    assert!(format!("{client:?}").contains("Direct"), "{client:?}");
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shared_direct_client_keeps_every_answer_with_its_caller() {
    let gw = gateway().await;
    let server = format!("http://{}", gw.grpc_addr);
    // `connect` picks the direct transport for http://.
    let client = Client::connect(&server).await.unwrap();
    assert!(format!("{client:?}").contains("Direct"), "{client:?}");

    let tasks: Vec<_> = (0..64u32)
        .map(|task| {
            let mut client = client.clone();
            tokio::spawn(async move {
                for call in 0..50u32 {
                    let nonce = format!("task {task} call {call} {:016x}", rand_u64(task, call));
                    let target = if (task + call) % 2 == 0 {
                        "demo-1"
                    } else {
                        "demo-2"
                    };
                    let reply = client
                        .invoke(echo(target, nonce.clone().into_bytes()))
                        .await
                        .unwrap_or_else(|e| panic!("{nonce}: {e}"));
                    assert_eq!(reply.status, 200, "{nonce}");
                    assert_eq!(reply.payload, nonce.as_bytes(), "answer of another call");
                }
            })
        })
        .collect();
    join_all("3200 calls from 64 tasks", tasks).await;
    gw.stop().await;
}

/// A cheap per-call nonce (no rand in the test's tree).
fn rand_u64(task: u32, call: u32) -> u64 {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    (seed ^ (u64::from(task) << 32 | u64::from(call))).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dropped_connection_fails_calls_in_flight_and_the_next_call_reconnects() {
    let gw = gateway().await;
    let proxy = FaultProxy::start(gw.grpc_addr).await;
    let mut client = direct(&format!("http://{}", proxy.addr())).await;
    let reply = client.invoke(echo("demo-1", b"before".to_vec())).await;
    assert_eq!(reply.unwrap().payload, b"before".as_slice());

    // Calls in flight: the device sleeps 10 s on each.
    let in_flight: Vec<_> = (0..8)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move {
                let req = InvokeRequest {
                    target: "demo-1".into(),
                    method: "sleep".into(),
                    payload: b"10000".to_vec().into(),
                    timeout: Some(seconds(30)),
                    ..Default::default()
                };
                client.invoke(req).await
            })
        })
        .collect();
    within("8 calls in flight", async {
        while gw.gateway.in_flight() < 8 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    // The connection dies (RST, and every new one too for now).
    proxy.set(Fault::CutRst);
    let started = Instant::now();
    for call in in_flight {
        let err = within("the calls in flight fail", call)
            .await
            .unwrap()
            .unwrap_err();
        assert!(err.is_unreachable(), "{err:?}");
        assert_eq!(err.exit_code(), 69);
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // While the gateway cannot be reached, calls fail fast, never hang.
    let err = within(
        "a call while cut",
        client.invoke(echo("demo-1", b"x".to_vec())),
    )
    .await
    .unwrap_err();
    assert!(err.is_unreachable(), "{err:?}");

    // The link is back: the next call reconnects and succeeds, and so do
    // the clones, on the same new connection.
    proxy.set(Fault::Pass);
    let accepted = proxy.counts().borrow().accepted;
    let reply = within(
        "a call after",
        client.invoke(echo("demo-1", b"after".to_vec())),
    )
    .await
    .unwrap();
    assert_eq!(reply.payload, b"after".as_slice());
    let mut clones: Vec<_> = (0..4).map(|_| client.clone()).collect();
    for (i, c) in clones.iter_mut().enumerate() {
        let payload = format!("clone {i}").into_bytes();
        let reply = c.invoke(echo("demo-2", payload.clone())).await.unwrap();
        assert_eq!(reply.payload, payload);
    }
    assert_eq!(
        proxy.counts().borrow().accepted,
        accepted + 1,
        "one reconnect"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_gateway_is_unreachable_on_the_direct_transport() {
    let gw = gateway().await;
    let mut client = direct(&format!("http://{}", gw.grpc_addr)).await;
    client.invoke(echo("demo-1", b"up".to_vec())).await.unwrap();
    gw.stop().await;
    for _ in 0..2 {
        let err = within(
            "a call to a stopped gateway",
            client.invoke(echo("demo-1", vec![])),
        )
        .await
        .unwrap_err();
        assert!(err.is_unreachable(), "{err:?}");
        assert_eq!(err.exit_code(), 69);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_keep_the_gateways_reasons_on_the_direct_transport() {
    let gw = gateway().await;
    let mut client = direct(&format!("http://{}", gw.grpc_addr)).await;
    let reason = |r: Result<_, CallError>| r.unwrap_err().reason;

    // The device is slower than the call's timeout: DEVICE_TIMEOUT.
    let slow = InvokeRequest {
        target: "demo-1".into(),
        method: "sleep".into(),
        payload: b"2000".to_vec().into(),
        timeout: Some(millis(200)),
        ..Default::default()
    };
    assert_eq!(reason(client.invoke(slow).await), "DEVICE_TIMEOUT");

    // A device never seen, waited for up to its connect timeout.
    let started = Instant::now();
    let unknown = InvokeRequest {
        connect_timeout: Some(millis(300)),
        ..echo("never-seen", vec![])
    };
    assert_eq!(reason(client.invoke(unknown).await), "DEVICE_NOT_FOUND");
    assert!(started.elapsed() >= Duration::from_millis(300));

    // A device gone offline, waited for up to its connect timeout.
    let (host, port) = gw.mqtt_addr.clone();
    let d = thingcall_device::spawn_device(
        thingcall_device::DeviceOptions::new("direct-off", host, port),
        thingcall_device::standard_methods(),
    );
    within("online", d.wait_online()).await;
    d.shutdown().await;
    within("offline seen", async {
        loop {
            let dev = client.get_device("direct-off").await.unwrap();
            if !dev.online {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let offline = InvokeRequest {
        connect_timeout: Some(millis(200)),
        ..echo("direct-off", vec![])
    };
    assert_eq!(reason(client.invoke(offline).await), "DEVICE_OFFLINE");

    // A client-side deadline (grpc-timeout) is enforced by the transport
    // too, as Channel does, even if the gateway's answer never comes.
    let mut req = tonic::Request::new(InvokeRequest {
        target: "demo-1".into(),
        method: "sleep".into(),
        payload: b"3000".to_vec().into(),
        timeout: Some(seconds(10)),
        ..Default::default()
    });
    req.set_timeout(Duration::from_millis(200));
    let started = Instant::now();
    let status = within("a call past its grpc-timeout", client.raw().invoke(req))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(
            status.code(),
            tonic::Code::Cancelled | tonic::Code::DeadlineExceeded
        ),
        "{status:?}"
    );

    // And the connection is still good for the next call.
    let reply = client.invoke(echo("demo-2", b"still".to_vec())).await;
    assert_eq!(reply.unwrap().payload, b"still".as_slice());
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_past_the_http2_windows_go_both_ways_on_the_direct_transport() {
    // 64 KiB is HTTP/2's initial window, of each stream and of the
    // connection: these calls only finish if both sides give it back as
    // they read.
    let gw = gateway_with(&["--max-payload", "1MiB"]).await;
    let client = direct(&format!("http://{}", gw.grpc_addr)).await;
    let calls: Vec<_> = (0..4u8)
        .map(|k| {
            let mut client = client.clone();
            tokio::spawn(async move {
                let payload: Vec<u8> = (0..100 * 1024u32).map(|i| (i % 251) as u8 ^ k).collect();
                let reply = client
                    .invoke(echo("demo-1", payload.clone()))
                    .await
                    .unwrap();
                assert!(
                    reply.payload == payload,
                    "echo {k}: {} bytes back",
                    reply.payload.len()
                );
                let big = InvokeRequest {
                    target: "demo-1".into(),
                    method: "big".into(),
                    payload: b"900000".to_vec().into(),
                    ..Default::default()
                };
                let reply = client.invoke(big).await.unwrap();
                assert_eq!(reply.payload.len(), 900_000, "big {k}");
            })
        })
        .collect();
    join_all("4 large calls at once", calls).await;
    gw.stop().await;
}

/// Waits for every spawned task (within the common bound), so a panic in
/// one fails the test.
async fn join_all(what: &str, tasks: Vec<tokio::task::JoinHandle<()>>) {
    within(what, async {
        for t in tasks {
            t.await.unwrap();
        }
    })
    .await;
}
