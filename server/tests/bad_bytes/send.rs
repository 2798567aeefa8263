//! Sending a raw case: HTTP/1.1 requests and gRPC calls (h2c or gRPC-web)
//! of hand-built bytes, with the gRPC status read from wherever the
//! gateway put it.

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::common;

/// One HTTP/1.1 request of raw bytes.
pub async fn http(
    base: &str,
    method: Method,
    path: &str,
    content_type: Option<&[u8]>,
    body: &[u8],
) -> common::http::Reply {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = Request::builder()
        .method(method)
        .uri(format!("{base}{path}"));
    if let Some(ct) = content_type {
        let ct = http::HeaderValue::from_bytes(ct).expect("obs-text is a valid header value");
        req = req.header(http::header::CONTENT_TYPE, ct);
    }
    let req = req.body(Full::new(Bytes::from(body.to_vec()))).unwrap();
    let resp = client.request(req).await.expect("HTTP request");
    let (parts, body) = resp.into_parts();
    common::http::Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.expect("HTTP body").to_bytes(),
    }
}

/// One gRPC call of raw bytes over h2c, or over gRPC-web with content type
/// `web`; the status from the headers (trailers-only), the trailers, or
/// gRPC-web's trailer frame.
pub async fn grpc(
    base: &str,
    web: Option<&str>,
    path: &str,
    body: Vec<u8>,
) -> Option<tonic::Status> {
    let mut builder = Client::builder(TokioExecutor::new());
    builder.http2_only(web.is_none());
    let client = builder.build_http::<Full<Bytes>>();
    let req = Request::post(format!("{base}{path}"))
        .header("content-type", web.unwrap_or("application/grpc"))
        .header("te", "trailers")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = client.request(req).await.expect("gRPC request");
    let (parts, body) = resp.into_parts();
    assert_eq!(parts.status, 200, "gRPC answers in its status, not HTTP's");
    if let Some(s) = tonic::Status::from_header_map(&parts.headers) {
        return Some(s);
    }
    let collected = body.collect().await.expect("gRPC body");
    if let Some(s) = collected
        .trailers()
        .and_then(tonic::Status::from_header_map)
    {
        return Some(s);
    }
    let mut bytes = collected.to_bytes().to_vec();
    if web.is_some_and(|w| w.starts_with("application/grpc-web-text")) {
        use base64::Engine;
        bytes = base64::engine::general_purpose::STANDARD
            .decode(&bytes)
            .ok()?;
    }
    web_trailers(&bytes).and_then(|t| tonic::Status::from_header_map(&t))
}

/// The trailer frame (flag 0x80) of a gRPC-web body as headers.
fn web_trailers(mut body: &[u8]) -> Option<HeaderMap> {
    while body.len() >= 5 {
        let len = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
        let (flag, data) = (body[0], body.get(5..5 + len)?);
        if flag & 0x80 != 0 {
            let mut map = HeaderMap::new();
            for line in std::str::from_utf8(data).ok()?.split("\r\n") {
                if let Some((k, v)) = line.split_once(':') {
                    map.insert(
                        http::HeaderName::from_bytes(k.trim().as_bytes()).ok()?,
                        v.trim().parse().ok()?,
                    );
                }
            }
            return Some(map);
        }
        body = &body[5 + len..];
    }
    None
}
