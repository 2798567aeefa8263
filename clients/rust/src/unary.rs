//! `Invoke` on a [`Direct`] connection without tonic's generated client:
//! the call's one message is encoded into one buffer, written on its
//! HTTP/2 stream, and the answer's one message and status are read back
//! from the stream's data and trailers.
//!
//! Why: at c1 on a small machine the client's CPU is on every call's
//! critical path, and tonic's unary path adds its encode stream, its
//! `Streaming` decoder and their boxes per call. This is the client-side
//! twin of the gateway's own unary route. The answers are tonic's: the same
//! statuses from the same headers and trailers, transport failures through
//! `Status::from_error` as tonic maps them, and prost's decode.

use std::future::poll_fn;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use prost::Message;
use thingcall_proto::codec::DecodeFailure;
use thingcall_proto::v1::{InvokeRequest, InvokeResponse};
use tonic::body::Body;
use tonic::{Code, Status};
use tower_service::Service;

use crate::direct::Direct;

/// The method's path.
const PATH: &str = "/thingcall.v1.DeviceGateway/Invoke";
/// gRPC's length prefix: a flag byte and a big-endian `u32`.
const PREFIX: usize = 5;

/// Runs `req` on `direct`'s connection; see the module docs.
pub(crate) async fn invoke(
    direct: &mut Direct,
    req: tonic::Request<InvokeRequest>,
) -> Result<InvokeResponse, Status> {
    poll_fn(|cx| direct.poll_ready(cx))
        .await
        .map_err(Status::from_error)?;
    let (metadata, _, message) = req.into_parts();
    let len = message.encoded_len();
    let mut buf = BytesMut::with_capacity(PREFIX + len);
    buf.put_u8(0);
    buf.put_u32(u32::try_from(len).map_err(|_| Status::resource_exhausted("request too large"))?);
    message
        .encode(&mut buf)
        .expect("the buffer was sized for the message");
    let mut request = http::Request::new(Body::new(Full::new(buf.freeze())));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = http::Uri::from_static(PATH);
    let headers = request.headers_mut();
    *headers = metadata.into_headers();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
    let response = direct.call(request).await.map_err(Status::from_error)?;
    let (parts, body) = response.into_parts();
    // Trailers-only: a failure's status is in the headers.
    if let Some(status) = Status::from_header_map(&parts.headers) {
        if status.code() != Code::Ok {
            return Err(status);
        }
    }
    if parts.status != StatusCode::OK {
        return Err(http_status(parts.status));
    }
    let collected = body.collect().await?;
    let status = collected
        .trailers()
        .and_then(Status::from_header_map)
        .or_else(|| Status::from_header_map(&parts.headers))
        .ok_or_else(|| Status::internal("the gateway's answer carries no grpc-status"))?;
    if status.code() != Code::Ok {
        return Err(status);
    }
    decode(collected.to_bytes())
}

/// The one message of an answer's body.
fn decode(data: Bytes) -> Result<InvokeResponse, Status> {
    let cut = || Status::internal("the gateway's answer is not one whole gRPC message");
    let (head, message) = data.split_at_checked(PREFIX).ok_or_else(cut)?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if head[0] != 0 {
        return Err(Status::internal(
            "the gateway's answer is compressed, which was not asked for",
        ));
    }
    if message.len() != len {
        return Err(cut());
    }
    InvokeResponse::decode(message).map_err(InvokeResponse::decode_failure)
}

/// The status of an answer that is not HTTP 200 and carries none (a proxy
/// in the way), as tonic infers it from the HTTP status.
fn http_status(status: StatusCode) -> Status {
    let code = match status.as_u16() {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502 | 503 | 504 => Code::Unavailable,
        _ => Code::Unknown,
    };
    Status::new(code, format!("HTTP status {status} without a gRPC status"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(flag: u8, msg: &[u8]) -> Bytes {
        let mut v = vec![flag];
        v.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        v.extend_from_slice(msg);
        Bytes::from(v)
    }

    #[test]
    fn decodes_one_whole_message_only() {
        let reply = InvokeResponse {
            status: 200,
            ..Default::default()
        };
        let ok = decode(framed(0, &reply.encode_to_vec())).unwrap();
        assert_eq!(ok.status, 200);
        let bytes = reply.encode_to_vec();
        assert_eq!(
            decode(framed(0, &bytes).slice(..4)).unwrap_err().code(),
            Code::Internal
        );
        let mut cut = framed(0, &bytes).to_vec();
        cut.pop();
        assert_eq!(decode(Bytes::from(cut)).unwrap_err().code(), Code::Internal);
        assert_eq!(
            decode(framed(1, &bytes)).unwrap_err().code(),
            Code::Internal
        );
    }

    #[test]
    fn http_statuses_map_as_tonic_maps_them() {
        assert_eq!(
            http_status(StatusCode::NOT_FOUND).code(),
            Code::Unimplemented
        );
        assert_eq!(
            http_status(StatusCode::SERVICE_UNAVAILABLE).code(),
            Code::Unavailable
        );
        assert_eq!(http_status(StatusCode::IM_A_TEAPOT).code(), Code::Unknown);
    }
}
