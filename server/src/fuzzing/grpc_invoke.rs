//! Plain gRPC `Invoke` requests of any body, answered by the unary route
//! and by tonic's server through the router: the two must agree.

use axum::body::Body;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tonic::Status;
use tonic_types::StatusExt;

use super::rig::{self, Rig};
use crate::api::unary::{UnaryInvoke, PATH};

/// The first byte picks the request's extras (bit 0: a `grpc-timeout`,
/// bit 1: `+proto` in the content type); the rest is the request body.
/// The request goes to the unary route (as the listener hands it a plain
/// gRPC Invoke over HTTP/2) and, the same, to the gateway's whole router
/// (tonic's generated server), both over a drained gateway. Both answer
/// HTTP 200 with the same `grpc-status`, in the same place (headers, or
/// trailers after a message), the same `grpc-message`, the same ErrorInfo
/// (reason, domain and metadata but the random `requestId`), the same
/// messages; and Invoke never succeeds (no device).
pub fn grpc_invoke(data: &[u8]) {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let request = || {
        let mut r = http::Request::post(PATH)
            .version(http::Version::HTTP_2)
            .header(
                http::header::CONTENT_TYPE,
                if pick & 2 != 0 {
                    "application/grpc+proto"
                } else {
                    "application/grpc"
                },
            )
            .header("te", "trailers");
        if pick & 1 != 0 {
            r = r.header("grpc-timeout", "5S");
        }
        r.body(Bytes::copy_from_slice(body))
            .expect("a POST with a static path builds")
    };
    assert!(UnaryInvoke::takes(&request()), "the route takes it");
    let (unary, tonic) = Rig::with(|rig| {
        rig.runtime.block_on(async {
            let route = &rig.drained_unary;
            let resp = route.call(request().map(Full::new), None).await;
            let (parts, body) = resp.into_parts();
            let collected = body.collect().await.expect("infallible");
            let trailers = collected.trailers().cloned();
            let unary = (parts, collected.to_bytes(), trailers);
            let tonic = rig::send(&rig.drained, request().map(Body::from)).await;
            (unary, tonic)
        })
    });
    let (u, t) = (answer(unary), answer(tonic));
    assert_eq!(
        u, t,
        "unary route (left) and tonic (right) disagree on {body:?}"
    );
    assert_ne!(u.code, 0, "Invoke succeeded on a drained gateway");
}

/// An ErrorInfo's reason, domain and sorted metadata.
type ErrorInfo = (String, String, Vec<(String, String)>);

/// What two answers must share.
#[derive(Debug, PartialEq)]
struct Answer {
    http: http::StatusCode,
    code: i32,
    in_headers: bool,
    message: String,
    error_info: Option<ErrorInfo>,
    body: Bytes,
}

fn answer(
    (parts, body, trailers): (http::response::Parts, Bytes, Option<http::HeaderMap>),
) -> Answer {
    let (status, in_headers) = match Status::from_header_map(&parts.headers) {
        Some(s) => (s, true),
        None => (
            trailers
                .as_ref()
                .and_then(Status::from_header_map)
                .expect("a grpc-status in the headers or the trailers"),
            false,
        ),
    };
    let error_info = status.get_details_error_info().map(|i| {
        let mut meta: Vec<_> = i
            .metadata
            .into_iter()
            .filter(|(k, _)| k != "requestId")
            .collect();
        meta.sort();
        (i.reason, i.domain, meta)
    });
    Answer {
        http: parts.status,
        code: status.code() as i32,
        in_headers,
        message: status.message().to_owned(),
        error_info,
        body,
    }
}
