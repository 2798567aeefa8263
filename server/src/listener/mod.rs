//! The gateway's one port: accepts connections (TLS when configured),
//! serves HTTP/1.1 and HTTP/2 on each with the app, and keeps a flood of
//! connections from exhausting the process before authentication can help.
//!
//! - A connection cap (`--max-connections`, by default the open-file
//!   limit less headroom for the MQTT session and its reconnects): past it
//!   a new connection is closed at once, counted and logged at a bounded
//!   rate, so the process never runs out of file descriptors.
//! - A header timeout: an HTTP/1.1 request whose headers do not arrive in
//!   time, and a TLS handshake that does not finish, close the connection.
//! - An idle timeout: a connection with no request in flight for that long
//!   is closed gracefully (HTTP/2 gets GOAWAY). Streams count as requests
//!   until they end, so an open WatchDevice is never idle.
//! - HTTP/2 keep-alive pings (dead peers are noticed), a cap on concurrent
//!   streams per connection and on header list size; hyper's reset-flood
//!   protection stays on.
//!
//! Written over hyper-util rather than `axum::serve` for these limits, for
//! TLS (the handshake runs in the connection's own task, so a slow one
//! holds up nobody else), and so a plain gRPC `Invoke`, the hot path, goes
//! from hyper straight to [`UnaryInvoke`] without the router's stack.

pub mod args;
pub mod tls;

use std::convert::Infallible;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::Router;
use futures::future::{self, FutureExt};
use http_body_util::{BodyExt, Either};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

use crate::api::unary::UnaryInvoke;
use crate::auth::PeerIdentity;
use crate::metrics::Connections;
use tls::ServerTls;

/// How often at most a refused connection is logged.
const LOG_EVERY: Duration = Duration::from_secs(10);
/// How long a connection closed for its header timeout may take to go.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The listener's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time for a TLS handshake, and for an HTTP/1.1 request's headers.
    pub header_timeout: Duration,
    /// A connection with no request in flight this long is closed.
    pub idle_timeout: Duration,
    /// HTTP/2 keep-alive ping interval (zero: no pings).
    pub h2_keepalive_interval: Duration,
    /// How long an HTTP/2 ping may go unanswered before the connection closes.
    pub h2_keepalive_timeout: Duration,
    /// Concurrent HTTP/2 streams per connection.
    pub h2_max_streams: u32,
    /// Largest header block a request may send (HTTP/2 header list; the
    /// HTTP/1.1 read buffer).
    pub max_header_bytes: u32,
    /// Connections open at once.
    pub max_connections: usize,
}

/// The default connection cap: the process's open-file limit (raised to
/// its hard limit first) less headroom for the MQTT session, its
/// reconnects, log files and the runtime: a tenth of the limit, at least
/// 128 and at most 1024 descriptors.
pub fn default_max_connections() -> usize {
    let limit = thingcall_device::fds::raise_open_file_limit();
    let headroom = (limit / 10).clamp(128, 1024);
    limit.saturating_sub(headroom).max(1) as usize
}

/// What the port serves: every API on the router, and the unary route
/// for the plain gRPC `Invoke`s it takes.
#[derive(Clone)]
pub struct Routes {
    /// Every API.
    pub app: Router,
    /// `Invoke` over plain gRPC, without the router ([`UnaryInvoke::takes`]).
    pub unary: Arc<UnaryInvoke>,
}

/// Serves `routes` on `listener` until `stop` turns true, then closes every
/// connection gracefully and returns when the last one is gone.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    limits: Limits,
    tls: Option<Arc<ServerTls>>,
    stats: Arc<Connections>,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let max = limits.max_connections.clamp(1, u32::MAX as usize);
    let slots = Arc::new(Semaphore::new(max));
    let builder = Arc::new(builder(&limits));
    let refusals = BoundedLog::default();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.wait_for(|s| *s) => break,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // Out of descriptors (the cap should prevent it) or a
                // connection reset before accept: wait a moment, go on.
                refusals.note(|n| tracing::warn!(error = %e, times = n, "accept failed"));
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            refusals.note(|n| {
                tracing::warn!(
                    max_connections = max,
                    refused = n,
                    "connection cap reached; closing new connections"
                )
            });
            drop(tcp);
            continue;
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        tokio::spawn(connection(
            tcp,
            slot,
            Conn {
                routes: routes.clone(),
                builder: builder.clone(),
                tls: tls.clone(),
                stats: stats.clone(),
                limits,
                stop: stop.clone(),
            },
        ));
    }
    drop(listener);
    // Every connection holds a slot until it is gone.
    let _ = slots.acquire_many(max as u32).await;
    Ok(())
}

fn builder(limits: &Limits) -> Builder<TokioExecutor> {
    let mut b = Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size((limits.max_header_bytes as usize).max(8192));
    let keepalive =
        (!limits.h2_keepalive_interval.is_zero()).then_some(limits.h2_keepalive_interval);
    b.http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(keepalive)
        .keep_alive_timeout(limits.h2_keepalive_timeout)
        .max_concurrent_streams(limits.h2_max_streams)
        .max_header_list_size(limits.max_header_bytes);
    b
}

/// What a connection's task needs.
struct Conn {
    routes: Routes,
    builder: Arc<Builder<TokioExecutor>>,
    tls: Option<Arc<ServerTls>>,
    stats: Arc<Connections>,
    limits: Limits,
    stop: watch::Receiver<bool>,
}

/// Counts a connection as open for as long as it lives.
struct Open(Arc<Connections>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn connection(tcp: TcpStream, slot: OwnedSemaphorePermit, mut c: Conn) {
    let _slot = slot;
    c.stats.open.fetch_add(1, Ordering::Relaxed);
    let _open = Open(c.stats.clone());
    let Some(tls) = c.tls.clone() else {
        return serve_connection(TokioIo::new(tcp), None, c).await;
    };
    let handshake = tokio::time::timeout(c.limits.header_timeout, tls.acceptor().accept(tcp));
    let stream = tokio::select! {
        r = handshake => match r {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                c.stats.tls_failed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                c.stats.tls_failed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("TLS handshake timed out");
                return;
            }
        },
        _ = c.stop.wait_for(|s| *s) => return,
    };
    let peer = tls::peer_identity(stream.get_ref().1);
    serve_connection(TokioIo::new(stream), peer, c).await
}

/// Requests in flight on one connection, and when the last one ended.
struct Activity {
    start: Instant,
    /// Set by the first request: until then the header timeout runs.
    served: AtomicBool,
    busy: AtomicUsize,
    /// Nanoseconds after `start` of the last request start or end.
    last: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let at = self.start.elapsed().as_nanos() as u64;
        self.last.store(at, Ordering::Relaxed);
    }

    /// When the connection turns idle if nothing happens; `None` while busy.
    fn idle_at(&self, idle: Duration) -> Option<Instant> {
        (self.busy.load(Ordering::Relaxed) == 0)
            .then(|| self.start + Duration::from_nanos(self.last.load(Ordering::Relaxed)) + idle)
    }
}

/// One request in flight: dropped with the response body (or the request,
/// if it never got one).
struct Busy(Arc<Activity>);

impl Busy {
    fn new(a: &Arc<Activity>) -> Self {
        a.served.store(true, Ordering::Relaxed);
        a.busy.fetch_add(1, Ordering::Relaxed);
        a.touch();
        Busy(a.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn serve_connection<I>(io: TokioIo<I>, peer: Option<PeerIdentity>, mut c: Conn)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity {
        start: Instant::now(),
        served: AtomicBool::new(false),
        busy: AtomicUsize::new(0),
        last: AtomicU64::new(0),
    });
    let routes = c.routes.clone();
    let seen = activity.clone();
    // No `async` block around the two routes: it would keep the request
    // (and the router's future) in every unary call's state as well.
    let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
        let busy = Busy::new(&seen);
        let answer = if UnaryInvoke::takes(&req) {
            let call = routes.unary.call(req, peer.as_ref());
            future::Either::Left(call.map(|resp| resp.map(Either::Right)))
        } else {
            let mut req = req.map(Body::new);
            if let Some(p) = &peer {
                req.extensions_mut().insert(p.clone());
            }
            // Boxed: the router's future stays out of the unary route's.
            let routed = Box::pin(routes.app.clone().oneshot(req));
            future::Either::Right(routed.map(|r| match r {
                Ok(resp) => resp.map(Either::Left),
                Err(never) => match never {},
            }))
        };
        // The request stays busy until its body (a stream, maybe) ends.
        answer.map(move |resp| {
            Ok::<_, Infallible>(resp.map(move |b| {
                b.map_frame(move |f| {
                    let _busy = &busy;
                    f
                })
            }))
        })
    });
    let conn = c.builder.serve_connection(io, service);
    tokio::pin!(conn);
    let idle = c.limits.idle_timeout;
    // The first request must arrive within the header timeout, whatever
    // the protocol: hyper's own HTTP/1.1 timer does not run while the
    // protocol is still being told apart, nor for an HTTP/2 connection.
    let first_request_by = activity.start + c.limits.header_timeout;
    let mut closing = false;
    let mut give_up: Option<Instant> = None;
    loop {
        let wake = if activity.served.load(Ordering::Relaxed) {
            activity
                .idle_at(idle)
                .unwrap_or_else(|| Instant::now() + idle)
        } else {
            first_request_by
        };
        let give_up_at = give_up.unwrap_or(wake);
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = c.stop.wait_for(|s| *s), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep_until(wake.into()), if !closing => {
                if !activity.served.load(Ordering::Relaxed) {
                    c.stats.header_timeouts.fetch_add(1, Ordering::Relaxed);
                    closing = true;
                    give_up = Some(Instant::now() + CLOSE_GRACE);
                    conn.as_mut().graceful_shutdown();
                } else if activity.idle_at(idle).is_some_and(|at| at <= Instant::now()) {
                    c.stats.idle_closed.fetch_add(1, Ordering::Relaxed);
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            // A peer that never finishes its request is not waited for.
            _ = tokio::time::sleep_until(give_up_at.into()), if give_up.is_some() => return,
        }
    }
}

/// Logs at most once per [`LOG_EVERY`], with the number of times since.
#[derive(Default)]
struct BoundedLog {
    state: Mutex<(Option<Instant>, u64)>,
}

impl BoundedLog {
    fn note(&self, log: impl FnOnce(u64)) {
        let mut s = self.state.lock();
        s.1 += 1;
        if s.0.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
            let n = s.1;
            *s = (Some(Instant::now()), 0);
            drop(s);
            log(n);
        }
    }
}
