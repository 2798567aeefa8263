//! The gateway's per-call work that involves no I/O, measured in isolation
//! so a change to it shows up here before it hides in an end-to-end figure:
//! the correlation table (insert, then complete by the reply), the reply
//! topic parse, the request topic build, and the metrics record.
//!
//! `cargo bench -p thingcall-server --bench hot_path`

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use thingcall_proto::wire::Topics;
use thingcall_server::calls::{CallId, CallTable, Reply};
use thingcall_server::metrics::CallMetrics;

fn table(c: &mut Criterion) {
    let t = CallTable::new(100_000, 1024);
    t.set_connected(true);
    // A table with calls in flight, as under load.
    let _held: Vec<_> = (0..1_000u128)
        .map(|i| t.insert(CallId::from(u128::MAX - i), "other").unwrap())
        .collect();
    let reply = Reply {
        status: 200,
        payload: Bytes::from_static(b"{\"ok\":true}"),
        content_type: None,
        exec_us: Some(12),
        accepted_at: None,
    };
    let mut id = 0u128;
    c.bench_function("call table: insert + complete", |b| {
        b.iter(|| {
            id += 1;
            let call = CallId::from(id);
            let mut rx = t.insert(black_box(call), "dev-1").unwrap();
            t.complete(call, "dev-1", reply.clone());
            black_box(rx.try_recv().is_ok())
        })
    });
}

fn topics(c: &mut Criterion) {
    let topics = Topics::new("thingcall");
    c.bench_function("topics: build request topic", |b| {
        b.iter(|| topics.request(black_box("device-0042"), black_box("echo")))
    });
    let reply = topics.reply("gw-1", "device-0042");
    c.bench_function("topics: parse reply topic", |b| {
        b.iter(|| topics.parse_reply(black_box("gw-1"), black_box(&reply)))
    });
}

fn metrics(c: &mut Criterion) {
    let m = CallMetrics::new(64);
    c.bench_function("metrics: find series + record", |b| {
        b.iter(|| m.record(black_box("echo"), None, Duration::from_micros(350)))
    });
}

criterion_group!(hot_path, table, topics, metrics);
criterion_main!(hot_path);
