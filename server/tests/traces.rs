//! One trace from caller to device and back, across processes: the gateway
//! binary runs as its own process exporting to an OTLP receiver in this
//! test, and the device runs here with its own tracer provider, exporting to
//! the same receiver. A caller's `traceparent` must become the parent of the
//! gateway's span, the device's span the child of the gateway's publish span;
//! a timeout and a device error are recorded as such.
//!
//! One test function: the OTEL_* environment is process-wide.

mod common;

use std::time::Duration;

use common::http::request;
use common::process::GatewayProcess;
use common::{soon, wait_presence};
use http::Method;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode, Span};
use thingcall_device::{spawn_device, standard_methods, DeviceOptions};
use thingcall_proto::v1::device_gateway_client::DeviceGatewayClient;
use thingcall_proto::v1::{InvokeRequest, WatchDeviceRequest};
use thingcall_testkit::otlp::{hex, string_attr, Receiver};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

fn attr(span: &Span, key: &str) -> String {
    string_attr(&span.attributes, key)
        .unwrap_or_else(|| panic!("span {:?} has no {key}: {:?}", span.name, span.attributes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_from_caller_through_gateway_and_device() {
    // The receiver.
    let (receiver, otlp) = Receiver::start().await.expect("OTLP receiver");
    let endpoint = format!("http://{otlp}");

    // Without an endpoint nothing is built; with OTEL_SDK_DISABLED neither.
    // Nothing from the developer's shell: the in-process device reads these too.
    for var in [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_SERVICE_NAME",
    ] {
        std::env::remove_var(var);
    }
    assert!(thingcall_proto::trace::provider_from_env("x")
        .unwrap()
        .is_none());
    std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint);
    std::env::set_var("OTEL_SDK_DISABLED", "true");
    assert!(thingcall_proto::trace::provider_from_env("x")
        .unwrap()
        .is_none());
    std::env::remove_var("OTEL_SDK_DISABLED");

    // The gateway, in its own process, with its embedded broker.
    let mut gw = GatewayProcess::start_logging("warn,thingcall_server=debug", &[]).await;
    let base = gw.base();
    let mqtt = gw.mqtt.port();
    let mut client = DeviceGatewayClient::connect(base.clone())
        .await
        .expect("gateway listening");
    let mut watch = client
        .watch_device(WatchDeviceRequest {
            target: "tr-1".into(),
            include_events: false,
        })
        .await
        .expect("watch")
        .into_inner();

    // The device, here, exporting as thingcall-sim.
    let provider = thingcall_proto::trace::provider_from_env("thingcall-sim")
        .unwrap()
        .expect("endpoint set");
    opentelemetry::global::set_tracer_provider(provider.clone());
    // It sends the interim `accepted` reply, which the gateway's span shows.
    let mut opts = DeviceOptions::new("tr-1", "127.0.0.1", mqtt);
    opts.ack = true;
    let device = spawn_device(opts, standard_methods());
    soon("device online", device.wait_online()).await;
    wait_presence(&mut watch, "tr-1", true).await;

    // 1. curl's call: HTTP/JSON with a traceparent.
    let traceparent = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    let r = request(
        Method::POST,
        &format!("{base}/v1/devices/tr-1/methods/echo"),
        r#"{"payload":"traced"}"#,
        &[("traceparent", &traceparent)],
    )
    .await;
    assert_eq!(r.status, 200);
    let request_id = r.json()["requestId"].as_str().unwrap().to_owned();

    // 2. A device error over gRPC, 3. a timeout: each its own trace.
    let call = |method: &str, payload: &[u8], timeout: f64, trace: &str| {
        let mut req = tonic::Request::new(InvokeRequest {
            target: "tr-1".into(),
            method: method.into(),
            payload: payload.to_vec().into(),
            timeout: Some(Duration::from_secs_f64(timeout).try_into().unwrap()),
            ..Default::default()
        });
        req.metadata_mut().insert(
            "traceparent",
            format!("00-{trace}-{PARENT_ID}-01").parse().unwrap(),
        );
        req
    };
    let failed = client
        .invoke(call("fail", b"", 5.0, &"1".repeat(32)))
        .await
        .unwrap();
    assert_eq!(failed.into_inner().status, 500);
    let slow = call("sleep", b"1500", 0.2, &"2".repeat(32));
    assert!(client.invoke(slow).await.is_err());

    let line = gw
        .wait_line("the call's log line", |l| {
            l.contains("call finished") && l.contains(&request_id)
        })
        .await;
    assert!(line.contains(TRACE_ID), "the line names the trace: {line}");
    // Flush both processes.
    gw.signal("TERM");
    assert_eq!(gw.exit_status().await.code(), Some(0));
    let _ = tokio::task::spawn_blocking(move || provider.force_flush()).await;

    let spans = soon(
        "gateway and device spans exported",
        receiver.wait_for(|spans| {
            let ours = |t: &str| spans.iter().filter(|(_, s)| hex(&s.trace_id) == t).count();
            // Call 1: server + publish + device. Call 2: the same. Call 3:
            // server + publish (the device span ends after the export).
            ours(TRACE_ID) >= 3 && ours(&"1".repeat(32)) >= 3 && ours(&"2".repeat(32)) >= 2
        }),
    )
    .await;
    let find = |trace: &str, kind: SpanKind| {
        spans
            .iter()
            .find(|(_, s)| hex(&s.trace_id) == trace && s.kind == kind as i32)
            .unwrap_or_else(|| panic!("no {kind:?} span in {trace}: {spans:#?}"))
    };

    // Call 1: caller -> gateway -> device, one trace.
    let (svc, server) = find(TRACE_ID, SpanKind::Server);
    assert_eq!(svc, "thingcall-gateway");
    assert_eq!(
        hex(&server.parent_span_id),
        PARENT_ID,
        "the caller's span is the parent"
    );
    assert_eq!(server.name, "POST /v1/devices/{target}/methods/{method}");
    assert_eq!(attr(server, "thingcall.target"), "tr-1");
    assert_eq!(attr(server, "thingcall.method"), "echo");
    assert_eq!(attr(server, "thingcall.outcome"), "OK");
    assert_eq!(attr(server, "thingcall.request_id"), request_id);
    assert_eq!(attr(server, "http.request.method"), "POST");
    let events: Vec<&str> = server.events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(events, ["accepted", "reply received"]);
    let (_, publish) = find(TRACE_ID, SpanKind::Producer);
    assert_eq!(publish.parent_span_id, server.span_id);
    assert_eq!(attr(publish, "messaging.system"), "mqtt");
    assert_eq!(attr(publish, "messaging.operation.type"), "publish");
    assert_eq!(
        attr(publish, "messaging.destination.name"),
        "thingcall/devices/tr-1/methods/echo"
    );
    let (svc, dev) = find(TRACE_ID, SpanKind::Consumer);
    assert_eq!(svc, "thingcall-sim", "exported by the device's process");
    assert_eq!(
        dev.parent_span_id, publish.span_id,
        "the device continues the publish"
    );
    assert_eq!(dev.name, "execute echo");

    // Call 2: the device's 500 marks both its span and the gateway's.
    let (_, server) = find(&"1".repeat(32), SpanKind::Server);
    assert_eq!(attr(server, "rpc.system"), "grpc");
    assert_eq!(attr(server, "thingcall.status"), "500");
    assert_eq!(
        server.status.as_ref().unwrap().code,
        StatusCode::Error as i32
    );
    let (_, dev) = find(&"1".repeat(32), SpanKind::Consumer);
    assert_eq!(dev.status.as_ref().unwrap().code, StatusCode::Error as i32);

    // Call 3: the timeout, with its reason.
    let (_, server) = find(&"2".repeat(32), SpanKind::Server);
    assert_eq!(attr(server, "thingcall.outcome"), "DEVICE_TIMEOUT");
    let status = server.status.as_ref().unwrap();
    assert_eq!(status.code, StatusCode::Error as i32);
    assert!(
        status.message.contains("DEVICE_TIMEOUT"),
        "{}",
        status.message
    );
    device.shutdown().await;
}
