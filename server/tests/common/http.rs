//! A plain HTTP/1.1 client for the JSON, SSE, CORS and `/invoke` tests, and
//! a gRPC-web client (tonic-web's client layer over HTTP/1.1).

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use thingcall_proto::v1::device_gateway_client::DeviceGatewayClient;

/// One HTTP response, body read whole.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Sends one request and reads the whole answer.
pub async fn request(method: Method, url: &str, body: &str, headers: &[(&str, &str)]) -> Reply {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client
        .request(req.body(Full::new(Bytes::from(body.to_owned()))).unwrap())
        .await
        .expect("HTTP request");
    let (parts, body) = resp.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

pub async fn get(url: &str) -> Reply {
    request(Method::GET, url, "", &[]).await
}

pub async fn post(url: &str, body: &str) -> Reply {
    request(
        Method::POST,
        url,
        body,
        &[("content-type", "application/json")],
    )
    .await
}

/// Opens a Server-Sent Events stream; returns a reader of raw text chunks.
pub async fn sse(url: &str) -> (StatusCode, HeaderMap, hyper::body::Incoming) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = Request::get(url)
        .header("accept", "text/event-stream")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client.request(req).await.expect("SSE request");
    let (parts, body) = resp.into_parts();
    (parts.status, parts.headers, body)
}

/// Reads `body` until the accumulated text contains `needle`; returns all text read.
pub async fn read_until(body: &mut hyper::body::Incoming, text: &mut String, needle: &str) {
    while !text.contains(needle) {
        let frame = body
            .frame()
            .await
            .expect("stream ended")
            .expect("stream error");
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
}

/// The HTTP/1.1 client under the gRPC-web layer.
pub type WebClient = Client<
    hyper_util::client::legacy::connect::HttpConnector,
    tonic_web::GrpcWebCall<tonic::body::Body>,
>;

/// A gRPC-web client: HTTP/1.1 with tonic-web's framing, as a browser would.
pub fn grpc_web(base: &str) -> DeviceGatewayClient<tonic_web::GrpcWebClientService<WebClient>> {
    let client = Client::builder(TokioExecutor::new()).build_http();
    let svc = tower::ServiceBuilder::new()
        .layer(tonic_web::GrpcWebClientLayer::new())
        .service(client);
    DeviceGatewayClient::with_origin(svc, base.parse().unwrap())
}
