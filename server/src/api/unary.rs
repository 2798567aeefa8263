//! The gRPC `Invoke` route without tonic's server stack: the listener hands
//! it a plain HTTP/2 gRPC `Invoke` straight from hyper, and it reads the one
//! request message, calls the core and writes the answer itself.
//!
//! Why: `Invoke` is the hot path, and under tonic each call passed through
//! axum's router, the CORS and authentication layers, tonic's routes, the
//! framing checks, tonic's unary service and codec and the adapter, five
//! nested boxed futures (about 4.4 KB per call in flight, measured with
//! heaptrack) and a quarter of the gateway's CPU per call. Here it is one
//! future of our own inside hyper's stream task.
//!
//! What it takes: HTTP/2, `POST /thingcall.v1.DeviceGateway/Invoke`,
//! `content-type: application/grpc` (or `+proto`), no compression and no
//! `Origin` (a browser's request keeps CORS). Anything else, gRPC-web
//! included, goes to the router as before. The answers are the same as
//! tonic's: the same framing checks ([`Framed`]), the same decode failures,
//! the same authentication step, the same statuses (a failure is a
//! trailers-only response, as tonic writes it).

use std::convert::Infallible;
use std::future::{ready, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::future::Either;
use futures::FutureExt;
use http::{HeaderMap, HeaderValue, Method, Request, Response, Version};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use prost::Message;
use thingcall_proto::codec::DecodeFailure;
use thingcall_proto::v1::InvokeRequest;
use tonic::Status;

use crate::api::grpc::invoke_caller;
use crate::api::grpc_frames::{names_encoding, Framed};
use crate::auth::{Auth, PeerIdentity};
use crate::error::Error;
use crate::gateway::Gateway;

/// The route's one path.
pub const PATH: &str = "/thingcall.v1.DeviceGateway/Invoke";

/// gRPC's length prefix: a flag byte and a big-endian `u32`.
const PREFIX: usize = 5;

/// The route; one per listener, shared by its connections.
pub struct UnaryInvoke {
    core: Arc<Gateway>,
    auth: Option<Arc<Auth>>,
    max_payload: usize,
}

impl UnaryInvoke {
    /// Answers `Invoke` on `core`, behind `auth` when set (as the router is).
    pub fn new(core: Arc<Gateway>, auth: Option<Arc<Auth>>) -> Self {
        let max_payload = core.config().max_payload;
        Self {
            core,
            auth,
            max_payload,
        }
    }

    /// Whether `req` is a plain gRPC `Invoke` this route answers; see the
    /// module docs.
    pub fn takes<B>(req: &Request<B>) -> bool {
        let h = req.headers();
        req.version() == Version::HTTP_2
            && req.method() == Method::POST
            && req.uri().path() == PATH
            && h.get(http::header::CONTENT_TYPE).is_some_and(|v| {
                v.as_bytes() == b"application/grpc" || v.as_bytes() == b"application/grpc+proto"
            })
            && !names_encoding(h)
            && !h.contains_key(http::header::ORIGIN)
    }

    /// Answers `req` (one [`takes`](Self::takes) accepted), from `peer`
    /// (its TLS client certificate, if any).
    ///
    /// Not an `async fn`: the request's headers are read (authentication,
    /// deadline, trace context) and dropped before the future is made, so
    /// a call in flight keeps neither them nor a second copy of the
    /// request in its future, only its body, its `Caller` and the core's
    /// call. The future is the whole per-call state hyper's stream task
    /// holds (measured with heaptrack, `BENCHMARKS.md`).
    pub fn call<B>(
        &self,
        req: Request<B>,
        peer: Option<&PeerIdentity>,
    ) -> impl Future<Output = Response<Unary>> + Send + 'static
    where
        B: Body<Data = Bytes> + Unpin + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (parts, body) = req.into_parts();
        let access = match &self.auth {
            Some(auth) => auth.caller_access(parts.uri.path(), &parts.headers, peer),
            None => Ok(crate::auth::Access::All),
        };
        let caller = match access {
            Ok(access) => invoke_caller(&self.core, &parts.headers, access),
            Err(e) => return Either::Left(ready(Status::from(e).into_http())),
        };
        drop(parts);
        let core = self.core.clone();
        // Two stages, not one `async` block: while the body is read the
        // future holds the body, the caller and the core; then only the
        // core's call, which owns them (an async block would keep its
        // captures next to the call for as long as it runs).
        let read = read_request(body, self.max_payload);
        Either::Right(read.then(move |request| match request {
            Err(status) => Either::Left(ready(status.into_http())),
            Ok(request) => Either::Right(core.invoke_owned(request, caller).map(|r| match r {
                Ok(answer) => answered(&answer.into_response()),
                Err(failed) => Status::from(failed).into_http(),
            })),
        }))
    }
}

/// Reads and decodes the body's one message, checked as [`Framed`] checks
/// tonic's, and in tonic's order: the message is decoded as soon as it is
/// whole (so a message that does not decode is refused as such), then the
/// rest of the body is read for the frame checks. A message in one DATA
/// frame (the usual case) is decoded where it lies, without a copy.
async fn read_request<B>(body: B, max_payload: usize) -> Result<InvokeRequest, Status>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // `takes` let no encoding through: a compressed message is refused.
    let mut body = Framed::new(body, max_payload, false);
    let mut pending = Pending::default();
    let mut request = None;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue; // trailers: the checks ran on them
        };
        if request.is_some() {
            continue; // Framed refuses anything after the one message
        }
        if let Some(message) = pending.push(data) {
            let decoded = InvokeRequest::decode(message);
            request = Some(decoded.map_err(InvokeRequest::decode_failure)?);
        }
    }
    // Framed ends the body with an error unless one whole message came.
    request.ok_or_else(|| Error::invalid("the request carries no message").into())
}

/// A request's bytes until its first message is whole.
#[derive(Default)]
struct Pending {
    first: Option<Bytes>,
    more: Option<BytesMut>,
}

impl Pending {
    /// Adds `data`; the first message, without its prefix, once it is whole.
    fn push(&mut self, data: Bytes) -> Option<Bytes> {
        match (&self.first, &mut self.more) {
            (None, _) => self.first = Some(data),
            (Some(f), None) => {
                let mut m = BytesMut::with_capacity(f.len() + data.len());
                m.put_slice(f);
                m.put_slice(&data);
                self.more = Some(m);
            }
            (Some(_), Some(m)) => m.put_slice(&data),
        }
        let have: &[u8] = match (&self.first, &self.more) {
            (_, Some(m)) => m,
            (Some(f), None) => f,
            (None, None) => return None,
        };
        let len = u32::from_be_bytes(have.get(1..PREFIX)?.try_into().ok()?) as usize;
        if have.len() < PREFIX + len {
            return None;
        }
        let mut whole = match self.more.take() {
            Some(m) => m.freeze(),
            None => self.first.take()?,
        };
        whole.advance(PREFIX);
        whole.truncate(len);
        Some(whole)
    }
}

/// The success response carrying `msg`, as tonic writes it.
fn answered(msg: &impl Message) -> Response<Unary> {
    let len = msg.encoded_len();
    let mut buf = BytesMut::with_capacity(PREFIX + len);
    buf.put_u8(0);
    buf.put_u32(len as u32);
    msg.encode(&mut buf)
        .expect("the buffer was sized for the message");
    let mut trailers = HeaderMap::with_capacity(1);
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let mut resp = Response::new(Unary {
        data: Some(buf.freeze()),
        trailers: Some(trailers),
    });
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    resp
}

/// The body of a unary answer: its message, then its trailers; empty for
/// a trailers-only failure (whose status is in the headers).
#[derive(Debug, Default)]
pub struct Unary {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Body for Unary {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let frame = match self.data.take() {
            Some(d) => Some(Frame::data(d)),
            None => self.trailers.take().map(Frame::trailers),
        };
        Poll::Ready(frame.map(Ok))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    fn request(content_type: &str) -> Request<()> {
        Request::builder()
            .version(Version::HTTP_2)
            .method(Method::POST)
            .uri(PATH)
            .header(http::header::CONTENT_TYPE, content_type)
            .body(())
            .unwrap()
    }

    fn prefixed(flag: u8, msg: &[u8]) -> Vec<u8> {
        let mut v = vec![flag];
        v.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        v.extend_from_slice(msg);
        v
    }

    fn invoke_bytes() -> Vec<u8> {
        InvokeRequest {
            target: "d1".into(),
            method: "echo".into(),
            ..Default::default()
        }
        .encode_to_vec()
    }

    #[tokio::test]
    async fn reads_one_message_in_one_or_many_frames() {
        let whole = prefixed(0, &invoke_bytes());
        let one = read_request(Full::new(Bytes::from(whole.clone())), 100).await;
        assert_eq!(one.unwrap().target, "d1");
        let frames = whole
            .chunks(2)
            .map(|c| Ok::<_, Infallible>(Frame::data(Bytes::copy_from_slice(c))))
            .collect::<Vec<_>>();
        let body = http_body_util::StreamBody::new(futures::stream::iter(frames));
        let many = read_request(body, 100).await;
        assert_eq!(many.unwrap().method, "echo");
    }

    #[tokio::test]
    async fn refuses_what_tonic_would_not_read() {
        let message = |r: Result<InvokeRequest, Status>| {
            let s = r.unwrap_err();
            assert_eq!(s.code(), tonic::Code::InvalidArgument);
            s.message().to_owned()
        };
        let read = |b: Vec<u8>| read_request(Full::new(Bytes::from(b)), 100);
        assert!(message(read(vec![]).await).contains("no message"));
        assert!(message(read(vec![0, 0, 0, 0, 9, 1]).await).contains("inside a gRPC frame"));
        assert!(message(read(prefixed(1, b"x")).await).contains("compressed"));
        // As tonic: a whole message that does not decode is refused as
        // such, before the rest of the body is looked at.
        let mut bad = prefixed(0, &[0x0a, 0x01, 0xff]);
        bad.push(0);
        assert!(message(read(bad).await).contains("not a valid"));
        let mut two = prefixed(0, &invoke_bytes());
        two.extend(prefixed(0, &invoke_bytes()));
        assert!(message(read(two).await).contains("more than one message"));
    }

    #[test]
    fn takes_only_plain_grpc_invoke_over_http2() {
        assert!(UnaryInvoke::takes(&request("application/grpc")));
        assert!(UnaryInvoke::takes(&request("application/grpc+proto")));
        assert!(!UnaryInvoke::takes(&request("application/grpc-web")));
        assert!(!UnaryInvoke::takes(&request("application/grpc+json")));
        let mut r = request("application/grpc");
        *r.version_mut() = Version::HTTP_11;
        assert!(!UnaryInvoke::takes(&r));
        let mut r = request("application/grpc");
        r.headers_mut()
            .insert("grpc-encoding", HeaderValue::from_static("gzip"));
        assert!(!UnaryInvoke::takes(&r));
        let mut r = request("application/grpc");
        r.headers_mut()
            .insert(http::header::ORIGIN, HeaderValue::from_static("http://a"));
        assert!(!UnaryInvoke::takes(&r));
        let mut r = request("application/grpc");
        *r.uri_mut() = "/thingcall.v1.DeviceGateway/GetDevice".parse().unwrap();
        assert!(!UnaryInvoke::takes(&r));
    }
}
