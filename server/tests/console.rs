//! The browser console at `/`: served by the real binary, with its
//! security headers, without caller authentication while the API behind it
//! still requires it, and without hiding the JSON 404 of unknown paths.

mod common;

use common::http::{get, request};
use common::process::GatewayProcess;
use http::{Method, StatusCode};
use thingcall_server::auth::apikeys::hash_line;

const KEY: &str = "tc_console_0123456789abcdef";

/// The page, with a strict CSP (same origin only, no inline script), and
/// the script and style it names, each with its own content type.
#[tokio::test]
async fn page_and_assets_are_served_with_their_headers() {
    let gw = GatewayProcess::start(&[]).await;
    let page = get(&format!("{}/", gw.base())).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.headers["content-type"], "text/html; charset=utf-8");
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'self'"), "CSP: {csp}");
    assert!(csp.contains("script-src 'self'"), "CSP: {csp}");
    assert!(!csp.contains("unsafe-inline"), "CSP: {csp}");
    assert_eq!(page.headers["x-content-type-options"], "nosniff");
    assert_eq!(page.headers["cache-control"], "no-cache");
    let html = String::from_utf8_lossy(&page.body);
    assert!(html.contains("<title>thingcall console</title>"), "{html}");
    assert!(html.contains(r#"src="/console/console.js""#), "{html}");

    let js = get(&format!("{}/console/console.js", gw.base())).await;
    assert_eq!(js.status, StatusCode::OK);
    assert_eq!(js.headers["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(js.headers["x-content-type-options"], "nosniff");
    assert!(!js.body.is_empty(), "empty script");

    let css = get(&format!("{}/console/console.css", gw.base())).await;
    assert_eq!(css.status, StatusCode::OK);
    assert_eq!(css.headers["content-type"], "text/css; charset=utf-8");

    // HEAD answers like GET, without a body.
    let head = request(Method::HEAD, &format!("{}/", gw.base()), "", &[]).await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.headers["content-type"], "text/html; charset=utf-8");
    assert!(head.body.is_empty());
}

/// With API keys configured the page still loads (its user has yet to type
/// the key), the API it calls does not without a key, and does with one.
#[tokio::test]
async fn page_loads_without_a_key_while_the_api_needs_one() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, format!("console {}\n", hash_line(KEY))).unwrap();
    let gw = GatewayProcess::start(&["--api-keys", keys.to_str().unwrap()]).await;

    let page = get(&format!("{}/", gw.base())).await;
    assert_eq!(page.status, StatusCode::OK);
    let js = get(&format!("{}/console/console.js", gw.base())).await;
    assert_eq!(js.status, StatusCode::OK);

    let api = get(&format!("{}/v1/devices", gw.base())).await;
    assert_eq!(api.status, StatusCode::UNAUTHORIZED);
    assert_eq!(api.json()["error"]["reason"], "UNAUTHENTICATED");
    let bearer = format!("Bearer {KEY}");
    let api = request(
        Method::GET,
        &format!("{}/v1/devices", gw.base()),
        "",
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(api.status, StatusCode::OK);
}

/// Paths the console does not serve keep the gateway's JSON 404, and other
/// methods on the console's paths are refused, not served.
#[tokio::test]
async fn unknown_paths_stay_json_404() {
    let gw = GatewayProcess::start(&[]).await;
    for path in ["/nope", "/console/", "/console/other.js", "/index.html"] {
        let r = get(&format!("{}{path}", gw.base())).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(r.json()["error"]["reason"], "NOT_FOUND", "{path}");
    }
    let post = request(Method::POST, &format!("{}/", gw.base()), "", &[]).await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.json()["error"]["reason"], "METHOD_NOT_ALLOWED");
    assert_eq!(post.headers["allow"], "GET,HEAD");
}
