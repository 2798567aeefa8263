//! InvokeMany against real brokers and in-process devices: results and the
//! summary, the offline policies, the rate, the ramp, abort, cancel,
//! keyed retries, and the fan-out share that keeps single calls going.
//! Devices stamp every request they get, so "published" is counted where
//! it matters: at the device.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{req, soon, Broker, Harness};
use thingcall_device::{spawn_device, standard_methods, DeviceHandle, Handlers, Reply};
use thingcall_proto::v1::{
    invoke_many_event::Kind, AbortPolicy, DeviceResult, InvokeManyEvent, InvokeManyRequest,
    InvokeManySummary, OfflinePolicy, Ramp,
};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

/// What devices saw: (device, when) per request that reached one.
type Stamps = mpsc::UnboundedReceiver<(String, Instant)>;

/// The standard methods plus `stamp` (reports each request, answers with
/// its payload) and `stamp_fail` (reports, answers 500).
fn stamping() -> (Handlers, Stamps) {
    let (tx, rx) = mpsc::unbounded_channel();
    let t2 = tx.clone();
    let h = standard_methods()
        .method("stamp", move |r| {
            let _ = tx.send((r.device.clone(), Instant::now()));
            async move { Reply::ok(r.payload) }
        })
        .method("stamp_fail", move |r| {
            let _ = t2.send((r.device.clone(), Instant::now()));
            async move { Reply::status(500, "no") }
        });
    (h, rx)
}

/// `n` devices `{prefix}-00..`, all online and seen by the gateway.
async fn devices(h: &Harness, prefix: &str, n: usize, handlers: &Handlers) -> Vec<DeviceHandle> {
    let mut watch = h.watch(&format!("{prefix}-*")).await;
    let ds: Vec<_> = (0..n)
        .map(|i| {
            spawn_device(
                h.device_options(&format!("{prefix}-{i:03}")),
                handlers.clone(),
            )
        })
        .collect();
    let mut online = std::collections::HashSet::new();
    soon("devices online", async {
        while online.len() < n {
            let ev = watch.next().await.expect("watch").expect("event");
            if let Some(Kind2::Presence(d)) = ev.kind {
                if d.online {
                    online.insert(d.id);
                }
            }
        }
    })
    .await;
    ds
}
use thingcall_proto::v1::device_event::Kind as Kind2;

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:03}")).collect()
}

fn many(targets: Vec<String>, method: &str) -> InvokeManyRequest {
    InvokeManyRequest {
        targets,
        method: method.into(),
        ..Default::default()
    }
}

/// Every result, then the summary, of a whole fan-out.
async fn run(h: &Harness, r: InvokeManyRequest) -> (Vec<DeviceResult>, InvokeManySummary) {
    let mut s = h
        .client
        .clone()
        .invoke_many(r)
        .await
        .expect("accepted")
        .into_inner();
    let mut results = Vec::new();
    soon("fan-out end", async {
        while let Some(ev) = s.next().await {
            match ev.expect("event").kind {
                Some(Kind::Result(r)) => results.push(r),
                Some(Kind::Summary(sum)) => {
                    assert!(s.next().await.is_none(), "the summary is the last event");
                    return (results, sum);
                }
                None => panic!("empty event"),
            }
        }
        panic!("stream ended without a summary");
    })
    .await
}

fn metric(h: &Harness, name: &str) -> u64 {
    let text = h.gw().gateway.metrics_text();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not on /metrics"))
}

/// Polls (every 5 ms, at most [`common::SOON`]) until `f` holds.
async fn until(what: &str, f: impl Fn() -> bool) {
    soon(what, async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

async fn results_then_a_summary(h: Harness) {
    let (handlers, _stamps) = stamping();
    let _ds = devices(&h, "res", 4, &handlers).await;
    let mut r = many(ids("res", 4), "echo");
    r.targets.push("res-nobody".into());
    r.payload = b"hi".to_vec().into();
    let (results, sum) = run(&h, r).await;
    assert_eq!(results.len(), 5);
    for r in &results {
        if r.device == "res-nobody" {
            assert_eq!(r.outcome, "DEVICE_NOT_FOUND", "{r:?}");
            assert!(r.response.is_none() && !r.message.is_empty());
        } else {
            assert_eq!(r.outcome, "OK", "{r:?}");
            assert_eq!(&r.response.as_ref().unwrap().payload[..], b"hi");
            assert_eq!(r.request_id, r.response.as_ref().unwrap().request_id);
        }
    }
    assert_eq!(
        (sum.targets, sum.attempted, sum.succeeded, sum.failed),
        (5, 5, 4, 1)
    );
    assert_eq!(sum.outcomes["OK"], 4);
    assert_eq!(sum.outcomes["DEVICE_NOT_FOUND"], 1);
    let d = |d: Option<prost_types::Duration>| Duration::try_from(d.expect("percentile")).unwrap();
    assert!(d(sum.p99) >= d(sum.p50));
    assert_eq!(sum.ended, "COMPLETED");

    // A glob over known devices, in id order; a device status of 400 or
    // more is a failure named by its status (`fail` answers 500).
    let r = InvokeManyRequest {
        pattern: "res-*".into(),
        method: "fail".into(),
        ..Default::default()
    };
    let (results, sum) = run(&h, r).await;
    assert_eq!(results.len(), 4);
    assert!(
        results.iter().all(|r| r.outcome == "DEVICE_STATUS_500"),
        "{results:?}"
    );
    assert_eq!((sum.targets, sum.succeeded, sum.failed), (4, 0, 4));
    assert_eq!(metric(&h, "thingcall_invocations_in_flight"), 0);
}

broker_tests!(results_then_a_summary);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_devices_are_reported_skipped_or_waited_for() {
    let h = Harness::start(Broker::Embedded).await.unwrap();
    let (handlers, _stamps) = stamping();
    let _on = devices(&h, "on", 1, &handlers).await;
    // Seen, then gone.
    let mut watch = h.watch("off-000").await;
    devices(&h, "off", 1, &handlers)
        .await
        .remove(0)
        .shutdown()
        .await;
    common::wait_presence(&mut watch, "off-000", false).await;
    let targets = vec!["on-000".to_string(), "off-000".to_string()];

    let (results, sum) = run(&h, many(targets.clone(), "echo")).await;
    let outcome: HashMap<_, _> = results
        .iter()
        .map(|r| (r.device.as_str(), r.outcome.as_str()))
        .collect();
    assert_eq!(outcome["off-000"], "DEVICE_OFFLINE");
    assert_eq!(sum.attempted, 2);

    let mut r = many(targets.clone(), "echo");
    r.offline = OfflinePolicy::Skip as i32;
    let (results, sum) = run(&h, r).await;
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].device, "on-000");
    assert_eq!((sum.targets, sum.attempted), (2, 1));
    assert_eq!(sum.not_attempted["OFFLINE"], 1);
    assert_eq!(sum.not_attempted_devices[0].device, "off-000");

    // WAIT: the offline device's call waits for it to come back.
    let mut r = many(vec!["off-000".into()], "echo");
    r.offline = OfflinePolicy::Wait as i32;
    r.connect_timeout = common::secs_f(15.0);
    let mut client = h.client.clone();
    let mut stream = client.invoke_many(r).await.unwrap().into_inner();
    until("the call to wait for its device", || {
        metric(&h, "thingcall_fanouts_active") == 1
    })
    .await;
    let _back = h
        .device_with(h.device_options("off-000"), handlers.clone())
        .await;
    let first = soon("result", stream.next()).await.unwrap().unwrap();
    match first.kind {
        Some(Kind::Result(r)) => assert_eq!(r.outcome, "OK", "{r:?}"),
        other => panic!("{other:?}"),
    }
}

/// Rates over the devices' own clocks: calls reaching devices per second
/// between the first and the last.
fn rate_of(stamps: &[Instant]) -> f64 {
    let span = stamps
        .last()
        .unwrap()
        .duration_since(stamps[0])
        .as_secs_f64();
    (stamps.len() - 1) as f64 / span
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_is_kept_within_ten_percent_over_ten_seconds() {
    let h = Harness::start(Broker::Embedded).await.unwrap();
    let (handlers, mut stamps) = stamping();
    let _ds = devices(&h, "rate", 201, &handlers).await;
    let mut r = many(ids("rate", 201), "stamp");
    r.rate = 20.0;
    r.max_concurrency = 50;
    let (results, sum) = run(&h, r).await;
    assert_eq!(sum.succeeded, 201, "{results:?}");
    let mut at: Vec<Instant> = std::iter::from_fn(|| stamps.try_recv().ok())
        .map(|(_, t)| t)
        .collect();
    at.sort();
    assert_eq!(at.len(), 201);
    let rate = rate_of(&at);
    assert!(
        (18.0..=22.0).contains(&rate),
        "{rate:.2} calls/s for a rate of 20"
    );
    let span = at[200].duration_since(at[0]);
    assert!(
        span >= Duration::from_secs(9),
        "201 calls at 20/s took {span:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ramp_follows_its_steps() {
    let h = Harness::start(Broker::Embedded).await.unwrap();
    let (handlers, mut stamps) = stamping();
    let _ds = devices(&h, "ramp", 20, &handlers).await;
    // 5/s for 5 successes, then 10/s, 20/s, 40/s (the rate), and 40/s on.
    let mut r = many(ids("ramp", 20), "stamp");
    r.rate = 40.0;
    r.ramp = Some(Ramp {
        start_rate: 5.0,
        factor: 2.0,
        step_successes: 5,
    });
    r.max_concurrency = 1;
    let (_, sum) = run(&h, r).await;
    assert_eq!(sum.succeeded, 20);
    let mut at: Vec<Instant> = std::iter::from_fn(|| stamps.try_recv().ok())
        .map(|(_, t)| t)
        .collect();
    at.sort();
    // Calls 0..5 start at 5/s; the 5th success makes 10/s, and so on. The
    // gap before call k follows the rate in force when call k-1 started.
    for (calls, want) in [(1..5, 5.0), (6..10, 10.0), (11..15, 20.0), (16..20, 40.0)] {
        let gaps: Vec<f64> = calls
            .map(|k| at[k].duration_since(at[k - 1]).as_secs_f64())
            .collect();
        let rate = gaps.len() as f64 / gaps.iter().sum::<f64>();
        assert!(
            (want * 0.8..=want * 1.2).contains(&rate),
            "{rate:.1}/s where the ramp is at {want}/s (gaps {gaps:?})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_stops_publishing() {
    let h = Harness::start(Broker::Embedded).await.unwrap();
    let (handlers, mut stamps) = stamping();
    let _ds = devices(&h, "ab", 30, &handlers).await;
    let mut r = many(ids("ab", 30), "stamp_fail");
    r.max_concurrency = 1;
    r.abort = Some(AbortPolicy {
        failure_ratio: 0.5,
        min_results: 5,
    });
    let (results, sum) = run(&h, r).await;
    assert_eq!(results.len(), 5);
    assert_eq!(sum.ended, "ABORTED");
    assert_eq!((sum.targets, sum.attempted), (30, 5));
    assert_eq!(sum.not_attempted["ABORTED"], 25);
    assert_eq!(sum.outcomes["DEVICE_STATUS_500"], 5);
    // Every call had its result before the summary: what reached devices is final.
    let reached = std::iter::from_fn(|| stamps.try_recv().ok()).count();
    assert_eq!(reached, 5, "devices called after the abort");
    assert_eq!(metric(&h, "thingcall_fanouts_total{event=\"aborted\"}"), 1);
}

/// A sentinel call through the same gateway: its request goes out on the
/// same MQTT session after every earlier publish, so once it is answered
/// every earlier request has reached its device.
async fn flush(h: &Harness, device: &str) {
    let mut c = h.client.clone();
    c.invoke(req(device, "echo", b"flush"))
        .await
        .expect("sentinel call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_publishing() {
    let h = Harness::start(Broker::Embedded).await.unwrap();
    let (handlers, mut stamps) = stamping();
    let _ds = devices(&h, "can", 40, &handlers).await;
    let _sentinel = h.device("sentinel").await;
    let mut r = many(ids("can", 40), "stamp");
    r.rate = 20.0;
    r.max_concurrency = 1;
    let mut s = h.client.clone().invoke_many(r).await.unwrap().into_inner();
    for _ in 0..3 {
        soon("a result", s.next()).await.unwrap().unwrap();
    }
    drop(s);
    until("the fan-out to end", || {
        metric(&h, "thingcall_fanouts_active") == 0
    })
    .await;
    flush(&h, "sentinel").await;
    let reached = std::iter::from_fn(|| stamps.try_recv().ok()).count();
    // Three answered, and at most the one in flight when the caller left.
    assert!(
        (3..=4).contains(&reached),
        "{reached} calls reached devices"
    );
    assert_eq!(
        metric(&h, "thingcall_fanouts_total{event=\"cancelled\"}"),
        1
    );
    assert_eq!(metric(&h, "thingcall_invocations_in_flight"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_retry_runs_no_device_twice() {
    let h = Harness::start(Broker::Embedded).await.unwrap();
    let (handlers, mut stamps) = stamping();
    let _ds = devices(&h, "key", 20, &handlers).await;
    let _sentinel = h.device("sentinel").await;
    let keyed = || {
        let mut r = many(ids("key", 20), "stamp");
        r.idempotency_key = "rollout-7".into();
        r.max_concurrency = 2;
        r.rate = 50.0;
        r
    };
    // The first attempt breaks off after a few results (the caller's
    // connection dropped, say); the retry runs the fan-out to its end.
    let mut s = h
        .client
        .clone()
        .invoke_many(keyed())
        .await
        .unwrap()
        .into_inner();
    let mut first = HashMap::new();
    for _ in 0..5 {
        match soon("a result", s.next()).await.unwrap().unwrap().kind {
            Some(Kind::Result(r)) => first.insert(r.device, r.request_id),
            other => panic!("{other:?}"),
        };
    }
    drop(s);
    until("the first fan-out to end", || {
        metric(&h, "thingcall_fanouts_active") == 0
    })
    .await;
    let (results, sum) = run(&h, keyed()).await;
    assert_eq!(sum.succeeded, 20, "{results:?}");
    for r in &results {
        if let Some(id) = first.get(&r.device) {
            assert_eq!(&r.request_id, id, "{} ran again", r.device);
        }
    }
    flush(&h, "sentinel").await;
    let mut per_device: HashMap<String, usize> = HashMap::new();
    while let Ok((d, _)) = stamps.try_recv() {
        *per_device.entry(d).or_default() += 1;
    }
    assert_eq!(per_device.len(), 20);
    assert!(per_device.values().all(|&n| n == 1), "{per_device:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fanout_never_starves_single_calls() {
    // 4 calls in flight at most: fan-outs share 2 of them.
    let h = Harness::start_with(Broker::Embedded, |c| c.max_in_flight = 4)
        .await
        .unwrap();
    let (handlers, gate, mut started) = common::holding_methods();
    let _ds = devices(&h, "hold", 10, &handlers).await;
    let _single = h.device("single").await;
    let mut r = many(ids("hold", 10), "hold");
    r.max_concurrency = 10;
    let fanout = tokio::spawn(run_owned(h.client.clone(), r));
    for _ in 0..2 {
        soon("a held call", started.recv()).await.unwrap();
    }
    until("the share to fill", || {
        metric(&h, "thingcall_fanout_calls_in_flight") == 2
    })
    .await;
    // Single calls still go through, two at once (the other half).
    let mut a = h.client.clone();
    let mut b = h.client.clone();
    let (x, y) = tokio::join!(
        a.invoke(req("single", "echo", b"a")),
        b.invoke(req("single", "echo", b"b"))
    );
    assert_eq!(&x.expect("single call").into_inner().payload[..], b"a");
    assert_eq!(&y.expect("single call").into_inner().payload[..], b"b");
    assert!(
        started.try_recv().is_err(),
        "the fan-out took more than its share"
    );
    gate.add_permits(10);
    let (results, sum) = soon("fan-out end", fanout).await.unwrap();
    assert_eq!(sum.succeeded, 10, "{results:?}");
}

async fn run_owned(
    mut c: thingcall_proto::v1::device_gateway_client::DeviceGatewayClient<
        tonic::transport::Channel,
    >,
    r: InvokeManyRequest,
) -> (Vec<DeviceResult>, InvokeManySummary) {
    let mut s = c.invoke_many(r).await.unwrap().into_inner();
    let mut results = Vec::new();
    while let Some(ev) = s.next().await {
        match ev.unwrap() {
            InvokeManyEvent {
                kind: Some(Kind::Result(r)),
            } => results.push(r),
            InvokeManyEvent {
                kind: Some(Kind::Summary(s)),
            } => return (results, s),
            other => panic!("{other:?}"),
        }
    }
    panic!("no summary")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_fanout_is_refused_whole_and_publishes_nothing() {
    let h = Harness::start(Broker::Embedded).await.unwrap();
    let (handlers, mut stamps) = stamping();
    let _ds = devices(&h, "bad", 2, &handlers).await;
    let bad: Vec<InvokeManyRequest> = vec![
        many(vec!["bad-000".into(), "bad/1".into()], "stamp"),
        many(vec!["bad-000".into(), "bad-000".into()], "stamp"),
        many(ids("bad", 2), "st#amp"),
        InvokeManyRequest {
            rate: -1.0,
            ..many(ids("bad", 2), "stamp")
        },
        InvokeManyRequest {
            pattern: "bad-*".into(),
            ..many(ids("bad", 2), "stamp")
        },
    ];
    for r in bad {
        let e = h.client.clone().invoke_many(r.clone()).await.unwrap_err();
        assert_eq!(common::reason(&e), "INVALID_ARGUMENT", "{r:?}: {e:?}");
    }
    let body = r#"{"targets":["bad-000"],"method":"stamp","maxConcurrency":-1}"#;
    let reply = common::http::post(&format!("{}/v1/invoke-many", h.base()), body).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["error"]["reason"], "INVALID_ARGUMENT");
    let _sentinel = h.device("sentinel").await;
    flush(&h, "sentinel").await;
    assert!(
        stamps.try_recv().is_err(),
        "a refused fan-out reached a device"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_streams_ndjson_or_server_sent_events() {
    let h = Harness::start(Broker::Embedded).await.unwrap();
    let (handlers, _stamps) = stamping();
    let _ds = devices(&h, "web", 3, &handlers).await;
    let url = format!("{}/v1/invoke-many", h.base());
    let body = r#"{"pattern":"web-*","method":"echo","payload":{"n":1},"timeout":"5s"}"#;
    let reply = common::http::post(&url, body).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["content-type"], "application/x-ndjson");
    let text = String::from_utf8(reply.body.to_vec()).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    for l in &lines[..3] {
        assert_eq!(l["result"]["outcome"], "OK", "{l}");
        assert_eq!(
            l["result"]["response"]["payload"],
            serde_json::json!({"n": 1})
        );
    }
    assert_eq!(lines[3]["summary"]["succeeded"], 3);
    assert_eq!(lines[3]["summary"]["ended"], "COMPLETED");

    let reply = common::http::request(
        http::Method::POST,
        &url,
        body,
        &[("accept", "text/event-stream")],
    )
    .await;
    assert_eq!(reply.status, 200);
    assert!(reply.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = String::from_utf8(reply.body.to_vec()).unwrap();
    assert_eq!(text.matches("event: result\n").count(), 3, "{text}");
    assert_eq!(text.matches("event: summary\n").count(), 1, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_gateway_ends_the_fanout_with_its_summary() {
    let mut h = Harness::start(Broker::Embedded).await.unwrap();
    let (handlers, _stamps) = stamping();
    let _ds = devices(&h, "stop", 5, &handlers).await;
    // One call every 5 s: the stop comes while the fan-out waits for its pace.
    let mut r = many(ids("stop", 5), "stamp");
    r.rate = 0.2;
    let mut s = h.client.clone().invoke_many(r).await.unwrap().into_inner();
    let first = soon("the first result", s.next()).await.unwrap().unwrap();
    assert!(matches!(first.kind, Some(Kind::Result(_))), "{first:?}");
    let stop = tokio::spawn(h.gw.take().expect("running").stop());
    let last = soon("the summary", s.next()).await.unwrap().unwrap();
    match last.kind {
        Some(Kind::Summary(sum)) => {
            assert_eq!(sum.ended, "SHUTTING_DOWN");
            assert_eq!((sum.targets, sum.attempted), (5, 1));
            assert_eq!(sum.not_attempted["SHUTTING_DOWN"], 4);
        }
        other => panic!("{other:?}"),
    }
    soon("the stop", stop).await.unwrap();
}
