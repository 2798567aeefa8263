//! [`Direct`]: gRPC over one h2c connection driven by hyper's HTTP/2
//! client, with no request buffer in front of it.
//!
//! tonic's `Channel` puts a `tower::Buffer` before its connection: every
//! call is handed to a background worker task over an mpsc channel and its
//! answer comes back over a oneshot, one more task hop and cross-thread
//! wakeup per call. hyper's `SendRequest` is itself `Clone` and usable from
//! many tasks at once, so callers can hand requests to the connection
//! themselves. hyper still passes each request to its connection task (that
//! task does the I/O, and the gateway's answer has to wake it anyway); what
//! goes is the extra worker in between.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::{HeaderMap, Request, Response, Uri};
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
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
/// attempt. A request the closing connection never took (so the gateway
/// cannot have seen it) is sent on the new connection, within the same
/// one attempt.
///
/// A `grpc-timeout` on a request (tonic's `Request::set_timeout`) is also
/// enforced on this side, as `Channel` does, so a call on a link that went
/// silent ends at its deadline instead of hanging.
pub struct Direct {
    shared: Arc<Shared>,
    /// This handle's sender; `None` after a failed reconnect.
    conn: Option<SendRequest<Body>>,
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

type ReconnectFuture =
    Pin<Box<dyn Future<Output = (u64, Result<SendRequest<Body>, Failure>)> + Send>>;

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
    current: Result<SendRequest<Body>, Failure>,
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
        // tonic's endpoint of a `unix:` URL is an `http://` one.
        let tcp = !server.starts_with("unix:");
        let (addr, authority) = target(&uri).filter(|_| tcp).ok_or_else(|| {
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
    async fn open(&self) -> Result<SendRequest<Body>, Failure> {
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
            let (sender, connection) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .handshake(TokioIo::new(tcp))
                .await
                .map_err(|e| fail(std::io::ErrorKind::Other, error_chain(&e)))?;
            tokio::spawn(async move {
                // Its end is seen by the senders as `is_closed`; calls in
                // flight get the error itself.
                let _ = connection.await;
            });
            Ok(sender)
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
    async fn reconnect(self: Arc<Self>, seen: u64) -> (u64, Result<SendRequest<Body>, Failure>) {
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
                Some(sender) => ready!(sender.poll_ready(cx)).is_err(),
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
        let sent = sender.try_send_request(Request::from_parts(head, body));
        // A request the connection closed before taking can be sent again
        // on a new one, unless this call made its attempt already.
        let retry =
            (!std::mem::take(&mut self.attempted)).then(|| (self.shared.clone(), self.seen));
        let exchange = async move {
            let mut e = match sent.await {
                Ok(response) => return Ok(response),
                Err(e) => e,
            };
            let (Some(message), Some((shared, seen))) = (e.take_message(), retry) else {
                return Err(BoxError::from(e.into_error()));
            };
            let (_, current) = shared.reconnect(seen).await;
            let mut sender = current.map_err(|f| f.to_error())?;
            Ok(sender.send_request(message).await?)
        };
        Box::pin(async move {
            let response = match deadline {
                None => exchange.await?,
                Some(limit) => tokio::time::timeout(limit, exchange)
                    .await
                    .map_err(|_| TimeoutExpired(()))??,
            };
            Ok(response.map(Body::new))
        })
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
