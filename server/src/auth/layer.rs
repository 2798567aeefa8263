//! The one authentication step in front of every surface. It runs before
//! any handler (so nothing is parsed, validated or published for a caller
//! that fails it), puts the caller's [`Access`] on the request for the
//! adapters to hand to the core, and answers a refusal in the caller's own
//! protocol: a gRPC status (also for gRPC-web), the seed API's body for
//! `/invoke`, and the JSON error body with `WWW-Authenticate` otherwise.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::HeaderValue;

use super::{Access, Auth, PeerIdentity};
use crate::error::Error;

/// Authenticates the request, or refuses it.
pub async fn authenticate(State(auth): State<Arc<Auth>>, mut req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<PeerIdentity>();
    match auth.caller_access(req.uri().path(), req.headers(), peer) {
        Ok(access) => {
            req.extensions_mut().insert(access);
            next.run(req).await
        }
        Err(e) => refuse(&req, e),
    }
}

/// The refusal of `req` with `e`, in the protocol `req` speaks.
fn refuse(req: &Request, e: Error) -> Response {
    let content_type = req.headers().get(http::header::CONTENT_TYPE);
    let grpc = content_type.is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if grpc {
        let mut resp = tonic::Status::from(e).into_http::<axum::body::Body>();
        // gRPC-web clients want their own content type back.
        if let Some(ct) = content_type {
            resp.headers_mut()
                .insert(http::header::CONTENT_TYPE, ct.clone());
        }
        return resp;
    }
    let mut resp = if req.uri().path() == "/invoke" {
        crate::api::seed::refusal(e)
    } else {
        crate::api::http::ApiError(e, None).into_response()
    };
    resp.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"thingcall\""),
    );
    resp
}

/// Adapters take the caller's access with this extractor; a request the
/// layer did not see (no authentication configured) may do everything.
impl<S: Send + Sync> FromRequestParts<S> for Access {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(access(&parts.extensions))
    }
}

/// The access of a gRPC request (tonic keeps the HTTP extensions).
pub fn grpc_access<T>(req: &tonic::Request<T>) -> Access {
    req.extensions()
        .get::<Access>()
        .cloned()
        .unwrap_or_default()
}

/// The access the layer put on a request (HTTP extensions); everything
/// when the layer did not run (no authentication configured).
pub fn access(extensions: &http::Extensions) -> Access {
    extensions.get::<Access>().cloned().unwrap_or_default()
}
