//! Trace-id exemplars on `/metrics`: a gateway that traces (an OTLP
//! endpoint in its environment, a receiver in this test), a real broker and
//! device, and a call with a sampled `traceparent`. The OpenMetrics scrape
//! carries that trace id as the exemplar of the bucket the call landed in,
//! and the trace it names was exported; an unsampled call gives none, and
//! the Prometheus scrape stays without exemplars.
//!
//! One test function for both brokers: the OTEL_* environment is
//! process-wide, so it is set once, before any gateway starts.

mod common;

use common::http::{get, request};
use common::{soon, Broker, Harness};
use http::Method;
use thingcall_testkit::otlp::{hex, Receiver};

/// The sampled call's trace, one per broker leg (each exports its own).
const TRACE_IDS: [&str; 2] = [
    "0af7651916cd43dd8448eb211c80319c",
    "0af7651916cd43dd8448eb211c80319d",
];
const UNSAMPLED: &str = "1234567890abcdef1234567890abcdef";
const PARENT_ID: &str = "b7ad6b7169203331";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sampled_call_is_the_exemplar_of_its_bucket_on_the_openmetrics_scrape() {
    let (receiver, otlp) = Receiver::start().await.expect("OTLP receiver");
    for var in [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_SDK_DISABLED",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
    ] {
        std::env::remove_var(var);
    }
    std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{otlp}"));
    // Export soon after the span ends rather than after the default 5 s.
    std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", "100");

    for (kind, trace) in [Broker::Embedded, Broker::Mosquitto]
        .into_iter()
        .zip(TRACE_IDS)
    {
        if kind == Broker::Mosquitto && !cfg!(mosquitto) {
            eprintln!("mosquitto not installed: its leg skipped");
            continue;
        }
        let Some(h) = Harness::start(kind).await else {
            continue;
        };
        sampled_call_is_its_buckets_exemplar(&h, &receiver, trace).await;
        h.stop().await;
    }
}

async fn sampled_call_is_its_buckets_exemplar(h: &Harness, receiver: &Receiver, trace: &str) {
    assert!(h.gw().gateway.tracing(), "an OTLP endpoint is set");
    let _device = h.device("ex-1").await;
    let call = |method: &str, trace: &str, flags: &str| {
        let traceparent = format!("00-{trace}-{PARENT_ID}-{flags}");
        let url = format!("{}/v1/devices/ex-1/methods/{method}", h.base());
        async move {
            let r = request(
                Method::POST,
                &url,
                r#"{"payload":"x"}"#,
                &[
                    ("content-type", "application/json"),
                    ("traceparent", &traceparent),
                ],
            )
            .await;
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        }
    };
    // Sampled (flags 01), then one whose caller did not sample (00): its
    // span is not sampled either, so it is exported nowhere.
    call("echo", trace, "01").await;
    call("random", UNSAMPLED, "00").await;

    let r = request(
        Method::GET,
        &format!("{}/metrics", h.base()),
        "",
        &[(
            "accept",
            "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.2",
        )],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], OPENMETRICS);
    let om = String::from_utf8(r.body.to_vec()).expect("UTF-8");
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(
        om.contains("# TYPE thingcall_invocations counter\n"),
        "{om}"
    );

    // The echo series: one call, so its bucket is the first line counting
    // 1, and only that line has an exemplar.
    let bucket = "thingcall_invocation_duration_seconds_bucket";
    let echo: Vec<&str> = om
        .lines()
        .filter(|l| l.starts_with(&format!("{bucket}{{method=\"echo\",outcome=\"OK\",")))
        .collect();
    assert_eq!(echo.len(), 17, "{om}");
    let landed = echo
        .iter()
        .position(|l| l.split(" # ").next().unwrap().ends_with("} 1"))
        .expect("a bucket counts the call");
    let with: Vec<usize> = (0..echo.len())
        .filter(|&i| echo[i].contains(" # "))
        .collect();
    assert_eq!(with, [landed], "{echo:#?}");
    let (sample, exemplar) = echo[landed].split_once(" # ").unwrap();
    assert_eq!(
        exemplar.split(' ').next().unwrap(),
        format!("{{trace_id=\"{trace}\"}}"),
        "{sample}"
    );
    // Its value lies within the bucket's bounds.
    let le = |l: &str| -> f64 {
        let v = l.split("le=\"").nth(1).unwrap().split('"').next().unwrap();
        if v == "+Inf" {
            f64::INFINITY
        } else {
            v.parse().unwrap()
        }
    };
    let value: f64 = exemplar.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(value <= le(sample), "{value} in {sample}");
    if landed > 0 {
        assert!(value > le(echo[landed - 1]), "{value} in {sample}");
    }

    // The unsampled call counted, with no exemplar.
    let random: Vec<&str> = om
        .lines()
        .filter(|l| l.contains("method=\"random\""))
        .collect();
    assert!(random.iter().any(|l| l.ends_with("le=\"+Inf\"} 1")), "{om}");
    assert!(!random.iter().any(|l| l.contains(" # ")), "{random:#?}");
    assert!(!om.contains(UNSAMPLED));

    // The plain scrape: Prometheus text as ever, no exemplar.
    let plain = get(&format!("{}/metrics", h.base())).await;
    assert_eq!(
        plain.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let plain = String::from_utf8(plain.body.to_vec()).unwrap();
    assert!(!plain.contains(trace) && !plain.contains("# EOF"));
    assert!(plain.contains("# TYPE thingcall_invocations_total counter\n"));

    // The exemplar links to a trace that was exported: the gateway's span.
    soon(
        "the sampled call's span exported",
        receiver.wait_for(|spans| {
            spans
                .iter()
                .any(|(svc, s)| svc == "thingcall-gateway" && hex(&s.trace_id) == trace)
        }),
    )
    .await;
    assert!(!receiver
        .spans()
        .iter()
        .any(|(_, s)| hex(&s.trace_id) == UNSAMPLED));
}
