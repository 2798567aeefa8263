//! The other callers on the one port: HTTP/JSON, Server-Sent Events, CORS
//! and gRPC-web (tonic-web's client layer, as a browser speaks it).

mod common;

use common::http::{self as web, get, post, read_until, request, sse};
use common::{req, soon, Harness};
use http::Method;
use thingcall_proto::v1::{device_event::Kind, WatchDeviceRequest};
use tokio_stream::StreamExt;

broker_tests!(
    json_payload_round_trips,
    binary_payload_round_trips,
    device_error_status_passes_through_json,
    json_errors_carry_reason_and_status,
    devices_are_listed_and_fetched,
    sse_streams_presence_changes,
    cors_preflight_allows_configured_origin_only,
    grpc_web_unary_and_streaming,
    grpc_web_text_mode,
);

async fn json_payload_round_trips(h: Harness) {
    let _d = h.device("j-1").await;
    let r = post(
        &format!("{}/v1/devices/j-1/methods/echo", h.base()),
        r#"{"payload":{"hello":"world"},"timeout":"5s"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["payload"], serde_json::json!({"hello": "world"}));
    assert_eq!(v["status"], 200);
    assert_eq!(v["contentType"], "application/json");
    assert!(uuid::Uuid::parse_str(v["requestId"].as_str().unwrap()).is_ok());
    assert!(v["elapsed"].as_str().unwrap().ends_with('s'));
    assert!(v["deviceTime"].as_str().unwrap().ends_with('s'));
    // An empty body is a call with an empty payload.
    let r = post(&format!("{}/v1/devices/j-1/methods/echo", h.base()), "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["payloadBase64"], "");
    h.stop().await;
}

async fn binary_payload_round_trips(h: Harness) {
    let _d = h.device("j-2").await;
    // 0x00 0xff 0x10 0x80: not UTF-8, not JSON.
    let r = post(
        &format!("{}/v1/devices/j-2/methods/echo", h.base()),
        r#"{"payloadBase64":"AP8QgA=="}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["payloadBase64"], "AP8QgA==");
    assert!(v.get("payload").is_none());
    h.stop().await;
}

async fn device_error_status_passes_through_json(h: Harness) {
    let _d = h.device("j-3").await;
    let r = post(&format!("{}/v1/devices/j-3/methods/fail", h.base()), "{}").await;
    assert_eq!(
        r.status, 200,
        "a device failure is the device's answer, not a gateway error"
    );
    assert_eq!(r.json()["status"], 500);
    h.stop().await;
}

async fn json_errors_carry_reason_and_status(h: Harness) {
    let d = h.device("j-4").await;
    let mut w = h.watch("j-4").await;
    let url = |m: &str| format!("{}/v1/devices/j-4/methods/{m}", h.base());
    let r = post(&url("nope"), "").await;
    assert_eq!(
        (
            r.status.as_u16(),
            r.json()["error"]["reason"].as_str().unwrap()
        ),
        (501, "METHOD_NOT_SUPPORTED")
    );
    let r = post(&url("sleep"), r#"{"payload":5000,"timeout":"200ms"}"#).await;
    assert_eq!(
        (
            r.status.as_u16(),
            r.json()["error"]["reason"].as_str().unwrap()
        ),
        (504, "DEVICE_TIMEOUT")
    );
    assert_eq!(r.json()["error"]["code"], 504);
    let id = r.json()["error"]["requestId"].as_str().unwrap().to_owned();
    uuid::Uuid::parse_str(&id).expect("a failed call names its request id");
    let r = post(&url("echo"), r#"{"payload":"x","unknownField":1}"#).await;
    assert_eq!(
        (
            r.status.as_u16(),
            r.json()["error"]["reason"].as_str().unwrap()
        ),
        (400, "INVALID_ARGUMENT")
    );
    assert!(
        r.json()["error"].get("requestId").is_none(),
        "an unreadable body makes no call"
    );
    let big = format!(r#"{{"payloadBase64":"{}"}}"#, "A".repeat(200_000));
    let r = post(&url("echo"), &big).await;
    assert_eq!(
        (
            r.status.as_u16(),
            r.json()["error"]["reason"].as_str().unwrap()
        ),
        (413, "PAYLOAD_TOO_LARGE")
    );
    d.shutdown().await;
    common::wait_presence(&mut w, "j-4", false).await;
    let r = post(&url("echo"), "").await;
    assert_eq!(
        (
            r.status.as_u16(),
            r.json()["error"]["reason"].as_str().unwrap()
        ),
        (404, "DEVICE_OFFLINE")
    );
    let r = get(&format!("{}/no/such/route", h.base())).await;
    assert_eq!(r.status, 404);
    // A known route with the wrong method: JSON like every other refusal,
    // with the methods it takes.
    for (method, path, allow) in [
        (Method::GET, "/v1/devices/j-4/methods/echo", "POST"),
        (Method::DELETE, "/v1/devices", "GET,HEAD"),
        (Method::POST, "/invoke", "GET,HEAD"),
    ] {
        let r = request(method.clone(), &format!("{}{path}", h.base()), "", &[]).await;
        assert_eq!(r.status, 405, "{method} {path}");
        assert_eq!(
            r.json()["error"]["reason"],
            "METHOD_NOT_ALLOWED",
            "{method} {path}"
        );
        assert_eq!(r.headers["allow"], allow, "{method} {path}");
    }
    h.stop().await;
}

async fn devices_are_listed_and_fetched(h: Harness) {
    let _a = h.device("lj-1").await;
    let _b = h.device("lj-2").await;
    let r = get(&format!("{}/v1/devices?target=lj-*", h.base())).await;
    assert_eq!(r.status, 200);
    let ids: Vec<_> = r.json()["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["lj-1", "lj-2"]);
    let r = get(&format!("{}/v1/devices/lj-2", h.base())).await;
    let v = r.json();
    assert_eq!(
        (v["id"].as_str(), v["online"].as_bool()),
        (Some("lj-2"), Some(true))
    );
    assert!(v["methods"].as_array().unwrap().iter().any(|m| m == "echo"));
    assert!(v["since"].as_str().unwrap().ends_with('Z'));
    let r = get(&format!("{}/v1/devices/nobody", h.base())).await;
    assert_eq!(
        (
            r.status.as_u16(),
            r.json()["error"]["reason"].as_str().unwrap()
        ),
        (404, "DEVICE_NOT_FOUND")
    );
    h.stop().await;
}

async fn sse_streams_presence_changes(h: Harness) {
    let d = h.device("s-1").await;
    let (status, headers, mut body) = sse(&format!("{}/v1/devices/s-1/events", h.base())).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/event-stream");
    let mut text = String::new();
    soon(
        "initial state",
        read_until(&mut body, &mut text, "event: synced"),
    )
    .await;
    assert!(text.contains("id: 1\n"), "{text}");
    assert!(text.contains("event: presence\n"), "{text}");
    d.shutdown().await;
    soon(
        "offline event",
        read_until(&mut body, &mut text, r#""online":false"#),
    )
    .await;
    let _back = h.device("s-1").await;
    let mut after = String::new();
    soon(
        "online again",
        read_until(&mut body, &mut after, r#""online":true"#),
    )
    .await;
    // The same events through /v1/events?target=glob.
    let (_, _, mut all) = sse(&format!("{}/v1/events?target=s-*", h.base())).await;
    let mut t = String::new();
    soon("glob stream", read_until(&mut all, &mut t, "event: synced")).await;
    assert!(t.contains(r#""device":"s-1""#), "{t}");
    h.stop().await;
}

async fn cors_preflight_allows_configured_origin_only(h: Harness) {
    let h2 = Harness::start_with(h.kind(), |c| {
        c.cors_origins = vec!["https://console.example".into()]
    })
    .await
    .unwrap();
    let preflight = |origin: &'static str| {
        let url = format!("{}/thingcall.v1.DeviceGateway/Invoke", h2.base());
        async move {
            request(
                Method::OPTIONS,
                &url,
                "",
                &[
                    ("origin", origin),
                    ("access-control-request-method", "POST"),
                    ("access-control-request-headers", "content-type,x-grpc-web"),
                ],
            )
            .await
        }
    };
    let ok = preflight("https://console.example").await;
    assert_eq!(
        ok.headers["access-control-allow-origin"],
        "https://console.example"
    );
    assert!(ok.headers["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
    let other = preflight("https://evil.example").await;
    assert!(other.headers.get("access-control-allow-origin").is_none());
    let r = request(
        Method::GET,
        &format!("{}/v1/devices", h2.base()),
        "",
        &[("origin", "https://console.example")],
    )
    .await;
    let exposed = r.headers["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        exposed.contains("grpc-status") && exposed.contains("grpc-status-details-bin"),
        "{exposed}"
    );
    // A POST from a browser gets CORS headers; one without Origin (a
    // service, curl) gets none, and no Vary either: nothing caches a POST.
    let invoke = format!("{}/v1/devices/nobody/methods/echo", h2.base());
    let browser = request(
        Method::POST,
        &invoke,
        "{}",
        &[("origin", "https://console.example")],
    )
    .await;
    assert_eq!(
        browser.headers["access-control-allow-origin"],
        "https://console.example"
    );
    assert!(
        browser.headers.get("vary").is_some(),
        "{:?}",
        browser.headers
    );
    let service = request(Method::POST, &invoke, "{}", &[]).await;
    assert_eq!(service.status, browser.status);
    assert!(service.headers.get("access-control-allow-origin").is_none());
    assert!(
        service.headers.get("vary").is_none(),
        "{:?}",
        service.headers
    );
    h2.stop().await;
    h.stop().await;
}

async fn grpc_web_unary_and_streaming(h: Harness) {
    let _d = h.device("gw-1").await;
    let mut c = web::grpc_web(&h.base());
    let r = c
        .invoke(req("gw-1", "echo", b"from a browser"))
        .await
        .expect("grpc-web invoke")
        .into_inner();
    assert_eq!(&r.payload[..], b"from a browser");
    let e = c.invoke(req("gw-1", "", b"")).await.unwrap_err();
    assert_eq!(
        common::reason(&e),
        "INVALID_ARGUMENT",
        "ErrorInfo survives gRPC-web"
    );
    let mut s = c
        .watch_device(WatchDeviceRequest {
            target: "gw-*".into(),
            include_events: false,
        })
        .await
        .expect("grpc-web stream")
        .into_inner();
    let first = soon("first event", s.next()).await.unwrap().unwrap();
    assert!(matches!(first.kind, Some(Kind::Presence(ref d)) if d.id == "gw-1"));
    let second = soon("synced", s.next()).await.unwrap().unwrap();
    assert!(matches!(second.kind, Some(Kind::Synced(_))));
    // Plain HTTP/1.1 to a gRPC route that is not gRPC-web is refused by tonic-web.
    let r = get(&format!("{}/thingcall.v1.DeviceGateway/Invoke", h.base())).await;
    assert!(r.status.is_client_error(), "{}", r.status);
    h.stop().await;
}

async fn grpc_web_text_mode(h: Harness) {
    use base64::Engine;
    use prost::Message;
    let _d = h.device("gwt-1").await;
    let msg = req("gwt-1", "echo", b"text mode").encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    frame.extend_from_slice(&msg);
    let b64 = base64::engine::general_purpose::STANDARD;
    let r = request(
        Method::POST,
        &format!("{}/thingcall.v1.DeviceGateway/Invoke", h.base()),
        &b64.encode(&frame),
        &[
            ("content-type", "application/grpc-web-text"),
            ("accept", "application/grpc-web-text"),
            ("x-grpc-web", "1"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    let ct = r.headers["content-type"].to_str().unwrap();
    assert!(
        ct.starts_with("application/grpc-web-text"),
        "{ct}: {}",
        String::from_utf8_lossy(&r.body)
    );
    // The body is base64 of: a data frame (the InvokeResponse), then a trailer frame.
    let body: Vec<u8> = r
        .body
        .split(|&b| b == b'=')
        .filter(|p| !p.is_empty())
        .flat_map(|part| {
            let mut p = part.to_vec();
            while p.len() % 4 != 0 {
                p.push(b'=');
            }
            b64.decode(&p).unwrap()
        })
        .collect();
    assert_eq!(body[0], 0, "data frame first");
    let len = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
    let resp = thingcall_proto::v1::InvokeResponse::decode(&body[5..5 + len]).unwrap();
    assert_eq!(&resp.payload[..], b"text mode");
    let trailers = String::from_utf8_lossy(&body[5 + len + 5..]).to_ascii_lowercase();
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
    h.stop().await;
}
