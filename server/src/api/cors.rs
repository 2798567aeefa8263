//! CORS only where a browser can be: requests that carry an `Origin`
//! header, or that a shared cache could keep (anything but POST). A POST
//! without `Origin` (gRPC from a service, curl, an API gateway) gets its
//! response untouched: CORS headers mean nothing to it, and adding `Vary`
//! to every reply cost an allocation and a header-map growth per call,
//! about 0.5 KiB of every call in flight (heaptrack, BENCHMARKS.md).

use std::task::{Context, Poll};

use axum::http::{header, Method, Request};
use futures::future::Either;
use tower::{Layer, Service};
use tower_http::cors::{Cors, CorsLayer};

/// Wraps a service in [`BrowserCors`].
#[derive(Clone)]
pub struct BrowserCorsLayer(pub CorsLayer);

impl<S: Clone> Layer<S> for BrowserCorsLayer {
    type Service = BrowserCors<S>;

    fn layer(&self, inner: S) -> BrowserCors<S> {
        BrowserCors {
            cors: self.0.layer(inner.clone()),
            plain: inner,
        }
    }
}

/// The inner service, through CORS for requests a browser or a cache may
/// see, and straight otherwise.
#[derive(Clone)]
pub struct BrowserCors<S> {
    cors: Cors<S>,
    plain: S,
}

/// Whether CORS has anything to do with `req`.
fn needs_cors<B>(req: &Request<B>) -> bool {
    req.method() != Method::POST || req.headers().contains_key(header::ORIGIN)
}

impl<S, B, R> Service<Request<B>> for BrowserCors<S>
where
    S: Service<Request<B>, Response = axum::http::Response<R>> + Clone,
    R: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<<Cors<S> as Service<Request<B>>>::Future, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Both wrap clones of the same router, which is always ready; ask
        // both so neither is called unready.
        match self.cors.poll_ready(cx) {
            Poll::Ready(Ok(())) => self.plain.poll_ready(cx),
            other => other,
        }
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if needs_cors(&req) {
            Either::Left(self.cors.call(req))
        } else {
            Either::Right(self.plain.call(req))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_origin_less_posts_skip_cors() {
        let req = |method: Method, origin: bool| {
            let mut b = Request::builder().method(method).uri("/x");
            if origin {
                b = b.header(header::ORIGIN, "https://console.example");
            }
            b.body(()).unwrap()
        };
        assert!(!needs_cors(&req(Method::POST, false)));
        assert!(needs_cors(&req(Method::POST, true)));
        assert!(needs_cors(&req(Method::GET, false)));
        assert!(needs_cors(&req(Method::OPTIONS, true)));
    }
}
