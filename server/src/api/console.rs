//! The browser console at `/`: a static page, its script and its style,
//! compiled into the binary from the committed bundle in `server/console/`
//! (built by `clients/web/console/build.mjs`), so running the gateway needs
//! no Node and no files beside the binary.
//!
//! Served without caller authentication: the page must load before the user
//! can type a token into it. Nothing here is secret; every API call the page
//! makes is authenticated like any other.

use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// The page's HTML.
const INDEX: &str = include_str!("../../console/index.html");
/// Its script, one esbuild bundle.
const SCRIPT: &str = include_str!("../../console/console.js");
/// Its style.
const STYLE: &str = include_str!("../../console/console.css");

/// Path of the script, as `index.html` names it.
pub const SCRIPT_PATH: &str = "/console/console.js";
/// Path of the style, as `index.html` names it.
pub const STYLE_PATH: &str = "/console/console.css";

/// Only the page's own script, style and API calls (same origin); no inline
/// script or style, no plugins, no framing, no form posts elsewhere. A
/// token typed into the page can then only go to this gateway.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// The console's routes: GET (and HEAD, which axum answers from GET) only.
pub fn router() -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            SCRIPT_PATH,
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            STYLE_PATH,
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .method_not_allowed_fallback(crate::api::http::method_not_allowed)
}

/// One asset with its type and the headers every asset carries: revalidate
/// on each load (a new gateway version must not run an old script), no
/// MIME sniffing, and the strict policy above.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ];
    (headers, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page names the asset paths this module serves, and loads no
    /// inline script the policy would block.
    #[test]
    fn index_names_the_served_assets() {
        assert!(INDEX.contains(&format!("src=\"{SCRIPT_PATH}\"")));
        assert!(INDEX.contains(&format!("href=\"{STYLE_PATH}\"")));
        assert!(
            !INDEX.contains("<script>"),
            "inline script would break the CSP"
        );
    }
}
