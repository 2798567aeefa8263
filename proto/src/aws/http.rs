//! The one HTTP GET the credential sources need (the container endpoint,
//! STS), plain HTTP over hyper, bounded in time and size. No secret goes
//! into an error: errors name the URL's host and the status only.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// How long one request may take, connect included.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Largest body read (credential documents are a few KiB).
const MAX_BODY: usize = 64 * 1024;

/// `GET url` with `headers`; the body of a 2xx answer.
pub async fn get(url: &str, headers: &[(&str, String)]) -> Result<Bytes, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| "not a valid http:// URL".to_owned())?;
    let host = uri.host().unwrap_or("?").to_owned();
    if uri.scheme_str() != Some("http") {
        return Err(format!("{host}: only http:// is supported here"));
    }
    let mut req = http::Request::get(uri);
    for (name, value) in headers {
        req = req.header(*name, value.as_str());
    }
    let req = req
        .body(Empty::<Bytes>::new())
        .map_err(|_| format!("{host}: a header value is not valid"))?;
    let client = Client::builder(TokioExecutor::new()).build_http();
    let res = tokio::time::timeout(TIMEOUT, async {
        let res = client.request(req).await.map_err(|e| e.to_string())?;
        let status = res.status();
        let body = Limited::new(res.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok::<_, String>((status, body))
    })
    .await
    .map_err(|_| format!("{host}: no answer within {TIMEOUT:?}"))?
    .map_err(|e| format!("{host}: {e}"))?;
    match res {
        (status, body) if status.is_success() => Ok(body),
        (status, _) => Err(format!("{host}: HTTP {status}")),
    }
}
