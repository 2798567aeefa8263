//! [`Direct`]: gRPC over one h2c connection of the `h2` crate, with
//! nothing between the caller's task and the HTTP/2 stream.
//!
//! tonic's `Channel` puts a `tower::Buffer` before its connection: every
//! call is handed to a background worker task over an mpsc channel and its
//! answer comes back over a oneshot. Under it, hyper's HTTP/2 client hands
//! each request to its dispatch task over another channel, and spawns a
//! task per request to pipe the body into the stream. Here the caller's
//! task opens the stream, writes the (unary) body and reads the answer
//! itself, through `h2`'s `SendRequest`, which is `Clone` and shared by
//! every task; only the connection task, which does the socket I/O, is
//! woken besides the caller.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use http::uri::{Authority, Scheme};
use http::{HeaderMap, Request, Response, Uri};
use http_body::Frame;
use http_body_util::BodyExt;
use tokio::net::TcpStream;
use tonic::body::Body;
use tonic::{Code, ConnectError, TimeoutExpired};

use crate::client::{endpoint, GATEWAY_CONNECT_TIMEOUT};
use crate::error::{error_chain, reason, CallError};

/// Errors of [`Direct`] as tonic sees them. tonic turns a
/// [`ConnectError`] into `UNAVAILABLE`, and [`CallError`] then into
/// `UNREACHABLE`, the same as for a `Channel` that cannot connect.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The future of one call on a [`Direct`] connection.
pub type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send + 'static>>;

/// A gRPC transport over one plaintext HTTP/2 (h2c) connection to an
/// `http://` gateway, without the buffer task of tonic's `Channel`, so a
/// call costs one task hop less (see the module docs). Use it through
/// [`Client::connect`](crate::Client::connect), which picks it for
/// `http://` URLs, or wrap it yourself:
/// `DeviceGatewayClient::new(direct)`. For `https://` and `unix:`
/// gateways use a tonic `Channel` ([`endpoint_with`](crate::endpoint_with)):
/// this type speaks h2c over TCP only.
///
/// Clones share the connection, and calls from many tasks at once are
/// multiplexed on it as HTTP/2 streams: every answer goes back to the
/// future of its own request. TCP_NODELAY is set.
///
/// **When the connection drops**, calls in flight on it fail with a
/// transport error (`UNREACHABLE` as a [`CallError`]); they are not
/// retried, since the gateway may have started them. The connection is
/// then remade lazily, like `Channel` does: the next call that finds it
/// closed makes one connection attempt, bounded by
/// [`GATEWAY_CONNECT_TIMEOUT`], and fails with `UNREACHABLE` if that
/// attempt fails. Calls that find the connection closed at the same moment
/// share one attempt, so a gateway that is down costs one connect per wave
/// of calls, not one per caller, and no call waits longer than one
/// attempt. A request the closing connection refused (so the gateway
/// cannot have seen it) fails as `UNREACHABLE` too, and is safe to send
/// again: the next call reconnects.
///
/// A `grpc-timeout` on a request (tonic's `Request::set_timeout`) is also
/// enforced on this side, as `Channel` does, so a call on a link that went
/// silent ends at its deadline instead of hanging.
pub struct Direct {
    shared: Arc<Shared>,
    /// This handle's connection; `None` after a failed reconnect.
    conn: Option<Link>,
    /// The newest connection attempt this handle knows the outcome of.
    seen: u64,
    /// A reconnect this handle is waiting on. In a `Mutex` only so that
    /// `Direct` is `Sync` (the future is not); it is reached through
    /// `get_mut`, never locked.
    connecting: Option<Mutex<ReconnectFuture>>,
    /// Why the coming call must fail: the reconnect made for it failed.
    failed: Option<Failure>,
    /// Whether the coming call already made its reconnect attempt.
    attempted: bool,
}

type ReconnectFuture = Pin<Box<dyn Future<Output = (u64, Result<Link, Failure>)> + Send>>;

/// One HTTP/2 connection: its sender, and whether its connection task has
/// ended (h2's sender does not say so until a request fails on it).
#[derive(Clone)]
struct Link {
    send: SendRequest<Bytes>,
    closed: Arc<AtomicBool>,
}

impl Link {
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// What the clones of one [`Direct`] share.
struct Shared {
    /// The URL as given, for messages.
    server: String,
    /// `host:port` to connect to.
    addr: String,
    /// The `:authority` of every request.
    authority: Authority,
    /// The newest connection, or why the newest attempt failed.
    slot: tokio::sync::Mutex<Slot>,
}

struct Slot {
    /// Bumped by every connection attempt.
    generation: u64,
    current: Result<Link, Failure>,
}

/// A failed connection attempt, kept so that every call that waited on it
/// can fail with it.
#[derive(Clone)]
struct Failure {
    kind: std::io::ErrorKind,
    message: String,
}

impl Failure {
    fn to_error(&self) -> BoxError {
        let io = std::io::Error::new(self.kind, self.message.clone());
        Box::new(ConnectError(Box::new(io)))
    }
}

impl Direct {
    /// Connects to the `http://host:port` gateway at `server` now, so a
    /// gateway that is not there is reported as `UNREACHABLE` right away;
    /// an `https://` or `unix:` URL is `INVALID_ARGUMENT` (use a `Channel`).
    pub async fn connect(server: &str) -> Result<Direct, CallError> {
        let uri = endpoint(server)?.uri().clone();
        let (addr, authority) =
            target(&uri)
                .filter(|_| Direct::serves(server))
                .ok_or_else(|| {
                    CallError::new(
                        reason::INVALID_ARGUMENT,
                        format!(
                            "the direct transport speaks h2c only, not {server:?}: \
                     use a tonic Channel for https:// and unix: gateways"
                        ),
                        Code::InvalidArgument,
                    )
                })?;
        let mut shared = Shared {
            server: server.to_owned(),
            addr,
            authority,
            slot: tokio::sync::Mutex::new(Slot {
                generation: 1,
                current: Err(Failure {
                    kind: std::io::ErrorKind::NotConnected,
                    message: "not connected yet".to_owned(),
                }),
            }),
        };
        let sender = shared
            .open()
            .await
            .map_err(|f| CallError::unreachable(f.message))?;
        shared.slot.get_mut().current = Ok(sender.clone());
        Ok(Direct {
            shared: Arc::new(shared),
            conn: Some(sender),
            seen: 1,
            connecting: None,
            failed: None,
            attempted: false,
        })
    }

    /// Whether `server` is a gateway this transport can reach: an
    /// `http://` URL (h2c over TCP). `https://` and `unix:` need a tonic
    /// `Channel`; the one place that decides which, for the client and the
    /// bench alike.
    pub fn serves(server: &str) -> bool {
        // tonic's endpoint of a `unix:` URL is an `http://` one, so the
        // scheme alone does not say it.
        server
            .get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case("http://"))
    }

    /// Starts (or joins) the reconnect after the connection of attempt
    /// `seen` was found closed.
    fn start_reconnect(&mut self) {
        let shared = self.shared.clone();
        self.attempted = true;
        self.connecting = Some(Mutex::new(Box::pin(shared.reconnect(self.seen))));
    }
}

/// `host:port` and the authority of an `http://` URL; `None` for any other.
fn target(uri: &Uri) -> Option<(String, Authority)> {
    if uri.scheme() != Some(&Scheme::HTTP) {
        return None;
    }
    let authority = uri.authority()?.clone();
    let port = authority.port_u16().unwrap_or(80);
    Some((format!("{}:{port}", authority.host()), authority))
}

impl Shared {
    /// One connection attempt: TCP (with TCP_NODELAY) and the HTTP/2
    /// handshake, within [`GATEWAY_CONNECT_TIMEOUT`]. The connection's
    /// driver runs as its own task until every sender is gone or the
    /// connection closes.
    async fn open(&self) -> Result<Link, Failure> {
        let fail = |kind, why: String| Failure {
            kind,
            message: format!("cannot connect to {}: {why}", self.server),
        };
        let attempt = async {
            let tcp = TcpStream::connect(&self.addr)
                .await
                .map_err(|e| fail(e.kind(), error_chain(&e)))?;
            tcp.set_nodelay(true)
                .map_err(|e| fail(e.kind(), error_chain(&e)))?;
            let (send, connection) = h2::client::handshake(tcp)
                .await
                .map_err(|e| fail(std::io::ErrorKind::Other, error_chain(&e)))?;
            let closed = Arc::new(AtomicBool::new(false));
            let ended = closed.clone();
            tokio::spawn(async move {
                // Its end is seen by the handles as `is_closed`; calls in
                // flight get the error itself.
                let _ = connection.await;
                ended.store(true, Ordering::Release);
            });
            Ok(Link { send, closed })
        };
        tokio::time::timeout(GATEWAY_CONNECT_TIMEOUT, attempt)
            .await
            .unwrap_or_else(|_| {
                Err(fail(
                    std::io::ErrorKind::TimedOut,
                    format!("no connection within {GATEWAY_CONNECT_TIMEOUT:?}"),
                ))
            })
    }

    /// The connection to use after generation `seen` was found closed:
    /// the one another caller made meanwhile, the failure of the attempt
    /// another caller made meanwhile, or a new attempt of its own.
    /// Returns the attempt's generation with its outcome.
    async fn reconnect(self: Arc<Self>, seen: u64) -> (u64, Result<Link, Failure>) {
        let mut slot = self.slot.lock().await;
        if slot.generation != seen {
            match &slot.current {
                // Closed again already: this caller makes its own attempt.
                Ok(sender) if sender.is_closed() => {}
                current => return (slot.generation, current.clone()),
            }
        }
        let result = self.open().await;
        slot.generation += 1;
        slot.current = result.clone();
        (slot.generation, result)
    }
}

impl Clone for Direct {
    /// Another handle on the same connection (the reconnect state of this
    /// handle stays here: a clone starts ready to call).
    fn clone(&self) -> Self {
        Direct {
            shared: self.shared.clone(),
            conn: self.conn.clone(),
            seen: self.seen,
            connecting: None,
            failed: None,
            attempted: false,
        }
    }
}

impl fmt::Debug for Direct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Direct")
            .field("server", &self.shared.server)
            .field("generation", &self.seen)
            .finish_non_exhaustive()
    }
}

impl tower_service::Service<Request<Body>> for Direct {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = ResponseFuture;

    /// Ready when the connection is open, after at most one reconnect
    /// attempt when it is not. Never an error: tonic reports errors of
    /// `poll_ready` as `UNKNOWN` without their cause, so a failed reconnect
    /// is kept and returned by the call instead (as `Channel` does).
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        loop {
            if self.failed.is_some() {
                return Poll::Ready(Ok(()));
            }
            if let Some(connecting) = self.connecting.as_mut() {
                let future = connecting.get_mut().unwrap_or_else(|e| e.into_inner());
                let (generation, result) = ready!(future.as_mut().poll(cx));
                self.connecting = None;
                self.seen = generation;
                match result {
                    Ok(sender) => self.conn = Some(sender),
                    Err(failure) => {
                        self.conn = None;
                        self.failed = Some(failure);
                    }
                }
                continue;
            }
            let closed = match self.conn.as_mut() {
                Some(link) => link.is_closed() || ready!(link.send.poll_ready(cx)).is_err(),
                None => true,
            };
            if !closed {
                return Poll::Ready(Ok(()));
            }
            if self.attempted {
                // The connection this call's attempt made is closed already.
                self.failed = Some(Failure {
                    kind: std::io::ErrorKind::ConnectionAborted,
                    message: format!("the connection to {} closed", self.shared.server),
                });
                continue;
            }
            self.start_reconnect();
        }
    }

    fn call(&mut self, req: Request<Body>) -> ResponseFuture {
        if let Some(failure) = self.failed.take() {
            self.attempted = false;
            return Box::pin(std::future::ready(Err(failure.to_error())));
        }
        let Some(sender) = self.conn.as_mut() else {
            self.attempted = false;
            let failure = Failure {
                kind: std::io::ErrorKind::NotConnected,
                message: "called before poll_ready".to_owned(),
            };
            return Box::pin(std::future::ready(Err(failure.to_error())));
        };
        let (mut head, body) = req.into_parts();
        let mut parts = std::mem::take(&mut head.uri).into_parts();
        parts.scheme = Some(Scheme::HTTP);
        parts.authority = Some(self.shared.authority.clone());
        if parts.path_and_query.is_none() {
            parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        }
        head.uri = match Uri::from_parts(parts) {
            Ok(uri) => uri,
            Err(e) => return Box::pin(std::future::ready(Err(e.into()))),
        };
        let deadline = grpc_timeout(&head.headers);
        self.attempted = false;
        // The stream opens here, in order with the other calls on this
        // handle; its body goes in the future (a unary body is ready at
        // once, so that costs no wait).
        let (response, mut stream) = match sender
            .send
            .send_request(Request::from_parts(head, ()), false)
        {
            Ok(opened) => opened,
            Err(e) => {
                // The connection refused a new stream: it is going away,
                // and the gateway has not seen this request. The next call
                // reconnects.
                self.conn = None;
                let failure = Failure {
                    kind: std::io::ErrorKind::ConnectionAborted,
                    message: format!("the connection to {} closed: {e}", self.shared.server),
                };
                return Box::pin(std::future::ready(Err(failure.to_error())));
            }
        };
        let exchange = async move {
            let data = body.collect().await.map_err(BoxError::from)?.to_bytes();
            stream.send_data(data, true)?;
            let response = response.await?;
            Ok::<_, BoxError>(response.map(|recv| {
                Body::new(RecvBody {
                    recv,
                    data_done: false,
                })
            }))
        };
        Box::pin(async move {
            match deadline {
                None => exchange.await,
                Some(limit) => tokio::time::timeout(limit, exchange)
                    .await
                    .map_err(|_| BoxError::from(TimeoutExpired(())))?,
            }
        })
    }
}

/// An answer's body as tonic reads it: the stream's data, with its flow
/// control window given back as it is read, then its trailers (where gRPC
/// puts the status).
struct RecvBody {
    recv: h2::RecvStream,
    data_done: bool,
}

impl http_body::Body for RecvBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        let this = &mut *self;
        if !this.data_done {
            match ready!(this.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = this.recv.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => this.data_done = true,
            }
        }
        match ready!(this.recv.poll_trailers(cx)) {
            Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Ok(None) => Poll::Ready(None),
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.recv.is_end_stream()
    }
}

/// The request's `grpc-timeout` header (`1-8 digits` and a unit), the
/// deadline tonic's `Request::set_timeout` sets; `None` when absent or
/// malformed (the gateway then applies its own).
fn grpc_timeout(headers: &HeaderMap) -> Option<Duration> {
    thingcall_proto::deadline::parse_grpc_timeout(headers.get("grpc-timeout")?.to_str().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_comes_from_the_header() {
        let mut h = HeaderMap::new();
        assert_eq!(grpc_timeout(&h), None);
        h.insert("grpc-timeout", http::HeaderValue::from_static("250m"));
        assert_eq!(grpc_timeout(&h), Some(Duration::from_millis(250)));
        h.insert("grpc-timeout", http::HeaderValue::from_static("1.5S"));
        assert_eq!(grpc_timeout(&h), None);
    }

    #[test]
    fn only_http_urls_have_a_target() {
        let t = |s: &str| target(&s.parse().unwrap());
        let (addr, authority) = t("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            (addr.as_str(), authority.as_str()),
            ("127.0.0.1:8080", "127.0.0.1:8080")
        );
        assert_eq!(t("http://[::1]:9").unwrap().0, "[::1]:9");
        assert_eq!(t("http://gw.example").unwrap().0, "gw.example:80");
        assert!(t("https://gw.example").is_none());
    }

    #[test]
    fn serves_http_urls_only() {
        for url in ["http://127.0.0.1:8080", "HTTP://gw:1"] {
            assert!(Direct::serves(url), "{url}");
        }
        for url in ["https://gw:1", "unix:/tmp/tc.sock", "http:/x", ""] {
            assert!(!Direct::serves(url), "{url}");
        }
    }

    #[tokio::test]
    async fn https_and_unix_are_refused() {
        for url in ["https://127.0.0.1:1", "unix:/tmp/tc.sock"] {
            let err = Direct::connect(url).await.unwrap_err();
            assert_eq!(err.reason, reason::INVALID_ARGUMENT, "{url}");
        }
    }

    #[tokio::test]
    async fn connect_to_nothing_is_unreachable() {
        let err = Direct::connect("http://127.0.0.1:1").await.unwrap_err();
        assert_eq!(err.reason, reason::UNREACHABLE);
        assert!(err.message.contains("127.0.0.1:1"), "{}", err.message);
    }

    #[test]
    fn direct_is_send_and_sync() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<Direct>();
    }
}
