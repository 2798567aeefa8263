//! `/metrics` after a known mix of calls: every counter and histogram count
//! equals what was done, and HTTP answers carry `Server-Timing`.

mod common;

use std::collections::HashMap;

use common::http::{get, post};
use common::{reason, req, secs_f, soon, wait_presence, Harness};

broker_tests!(metrics_count_what_was_done);

/// `name{labels}` -> value, from Prometheus text.
fn parse(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (key, value) = l.rsplit_once(' ').expect("sample line");
            (key.to_owned(), value.parse().expect("numeric sample"))
        })
        .collect()
}

async fn scrape(h: &Harness) -> HashMap<String, f64> {
    let r = get(&format!("{}/metrics", h.base())).await;
    assert_eq!(r.status, 200);
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    parse(std::str::from_utf8(&r.body).expect("UTF-8"))
}

async fn metrics_count_what_was_done(h: Harness) {
    assert!(
        !h.gw().gateway.tracing(),
        "no OTLP endpoint in the environment: no tracer built"
    );
    let _on = h.device("m-1").await;
    let off = h.device("m-2").await;
    let mut c = h.client.clone();

    // 3 OK over gRPC, 1 OK over HTTP.
    for _ in 0..3 {
        c.invoke(req("m-1", "echo", b"x")).await.expect("echo");
    }
    let r = post(
        &format!("{}/v1/devices/m-1/methods/echo", h.base()),
        r#"{"payload":"hi"}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    let timing = r.headers["server-timing"].to_str().unwrap().to_owned();
    for part in ["gateway;dur=", "network;dur=", "device;dur=", "total;dur="] {
        assert!(timing.contains(part), "{part} in {timing}");
    }

    // 1 timeout: the device sleeps past the deadline, its reply comes late.
    let mut slow = req("m-1", "sleep", b"1500");
    slow.timeout = secs_f(0.2);
    let err = c.invoke(slow).await.expect_err("times out");
    assert_eq!(reason(&err), "DEVICE_TIMEOUT");

    // 1 offline.
    let mut w = h.watch("m-2").await;
    off.shutdown().await;
    wait_presence(&mut w, "m-2", false).await;
    let err = c
        .invoke(req("m-2", "echo", b"x"))
        .await
        .expect_err("offline");
    assert_eq!(reason(&err), "DEVICE_OFFLINE");

    // 1 bad input: its method name is not valid, so it gets no label.
    let err = c
        .invoke(req("m-1", "bad/name", b"x"))
        .await
        .expect_err("invalid");
    assert_eq!(reason(&err), "INVALID_ARGUMENT");

    // The late reply lands once the device wakes; the watch above is the
    // one watcher left once the harness's own watches have closed.
    let core = &h.gw().gateway;
    let (mut tallies, mut watchers) = (core.tallies(), core.watchers());
    soon(
        "late reply counted",
        tallies.wait_for(|t| t.dropped_late == 1),
    )
    .await
    .expect("gateway alive");
    soon("harness watchers closed", watchers.wait_for(|n| *n == 1))
        .await
        .expect("gateway alive");
    let m = scrape(&h).await;
    assert_eq!(m["thingcall_replies_dropped_total{cause=\"late\"}"], 1.0);
    assert_eq!(m["thingcall_watchers"], 1.0);

    let calls = [
        ("echo", "OK", 4.0),
        ("sleep", "DEVICE_TIMEOUT", 1.0),
        ("echo", "DEVICE_OFFLINE", 1.0),
        ("other", "INVALID_ARGUMENT", 1.0),
    ];
    for (method, outcome, n) in calls {
        let l = format!("method=\"{method}\",outcome=\"{outcome}\"");
        assert_eq!(m[&format!("thingcall_invocations_total{{{l}}}")], n, "{l}");
        assert_eq!(
            m[&format!("thingcall_invocation_duration_seconds_count{{{l}}}")],
            n,
            "{l}"
        );
        assert_eq!(
            m[&format!("thingcall_invocation_duration_seconds_bucket{{{l},le=\"+Inf\"}}")],
            n,
            "{l}"
        );
    }
    let counted: f64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("thingcall_invocations_total{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(counted, 7.0, "no call counted twice or elsewhere");
    // The timed-out call took at least its 0.2 s deadline.
    let l = "method=\"sleep\",outcome=\"DEVICE_TIMEOUT\"";
    assert_eq!(
        m[&format!("thingcall_invocation_duration_seconds_bucket{{{l},le=\"0.1\"}}")],
        0.0
    );
    assert_eq!(m["thingcall_invocations_in_flight"], 0.0);
    assert_eq!(m["thingcall_devices_online"], 1.0);
    assert_eq!(m["thingcall_mqtt_connected"], 1.0);
    assert_eq!(m["thingcall_mqtt_reconnects_total"], 0.0);
    for cause in ["duplicate", "unknown", "foreign", "malformed"] {
        assert_eq!(
            m[&format!("thingcall_replies_dropped_total{{cause=\"{cause}\"}}")],
            0.0,
            "{cause}"
        );
    }
    assert_eq!(m["thingcall_watch_events_lagged_total"], 0.0);
    drop(w);
    h.stop().await;
}
