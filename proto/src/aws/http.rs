//! The few HTTP requests the credential sources make (the container
//! endpoint, STS), and the gateway's JWKS fetch ([`get_trusting`]), over hyper's HTTP/1 client connection on a plain or a
//! TLS socket (rustls: the system's roots, plus the PEM bundle of
//! `AWS_CA_BUNDLE` as the AWS SDKs read it, for TLS-inspecting proxies and
//! private endpoints), bounded in time and size. No secret goes into an
//! error: errors name the URL's host and the status.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::credentials::Env;

/// How long one request may take, connect included.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Largest body read (credential documents are a few KiB).
const MAX_BODY: usize = 64 * 1024;

/// `GET url` with `headers`; the body of a 2xx answer.
pub async fn get(env: &Env, url: &str, headers: &[(&str, String)]) -> Result<Bytes, String> {
    send(env, http::Method::GET, url, headers, Bytes::new()).await
}

/// `GET url` trusting the system's roots plus the PEM bundle `ca_bundle`;
/// the body of a 2xx answer. For fetches outside AWS (a JWKS).
pub async fn get_trusting(url: &str, ca_bundle: Option<&str>) -> Result<Bytes, String> {
    let bundle = ca_bundle.map(str::to_owned);
    let env: Env = std::sync::Arc::new(move |k: &str| {
        if k == "AWS_CA_BUNDLE" {
            bundle.clone()
        } else {
            None
        }
    });
    get(&env, url, &[]).await
}

/// `POST url` of an `application/x-www-form-urlencoded` `form`; the body
/// of a 2xx answer.
pub async fn post_form(env: &Env, url: &str, form: String) -> Result<Bytes, String> {
    let headers = [(
        "content-type",
        "application/x-www-form-urlencoded".to_owned(),
    )];
    send(env, http::Method::POST, url, &headers, Bytes::from(form)).await
}

/// The roots HTTPS to AWS trusts: the system's, and `AWS_CA_BUNDLE`'s.
fn roots(env: &Env) -> Result<rustls::RootCertStore, String> {
    let Some(bundle) = env("AWS_CA_BUNDLE") else {
        return crate::wire::tls::system_roots();
    };
    let pem =
        std::fs::read(&bundle).map_err(|e| format!("cannot read AWS_CA_BUNDLE {bundle}: {e}"))?;
    let mut roots =
        crate::wire::tls::system_roots().unwrap_or_else(|_| rustls::RootCertStore::empty());
    for cert in crate::wire::tls::ca_certificates(&pem)
        .map_err(|e| format!("AWS_CA_BUNDLE {bundle}: {e}"))?
    {
        roots
            .add(cert)
            .map_err(|e| format!("AWS_CA_BUNDLE {bundle}: {e}"))?;
    }
    Ok(roots)
}

async fn send(
    env: &Env,
    method: http::Method,
    url: &str,
    headers: &[(&str, String)],
    body: Bytes,
) -> Result<Bytes, String> {
    let uri: http::Uri = url.parse().map_err(|_| "not a valid URL".to_owned())?;
    let host = uri.host().unwrap_or_default().to_owned();
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(format!("{host}: only http:// and https:// are supported")),
    };
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_else(|| host.clone());
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, authority);
    for (name, value) in headers {
        req = req.header(*name, value.as_str());
    }
    let req = req
        .body(Full::new(body))
        .map_err(|_| format!("{host}: a header value is not valid"))?;
    let exchange = async {
        let tcp = TcpStream::connect((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|e| e.to_string())?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        if tls {
            let config = rustls::ClientConfig::builder()
                .with_root_certificates(roots(env)?)
                .with_no_client_auth();
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|_| "not a valid TLS server name".to_owned())?;
            let stream = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
                .connect(name, tcp)
                .await
                .map_err(|e| e.to_string())?;
            exchange(stream, req).await
        } else {
            exchange(tcp, req).await
        }
    };
    let (status, body) = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| format!("{host}: no answer within {TIMEOUT:?}"))?
        .map_err(|e| format!("{host}: {e}"))?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(format!("{host}: HTTP {status}"))
    }
}

/// One request and its answer on a fresh connection.
async fn exchange<S>(
    stream: S,
    req: http::Request<Full<Bytes>>,
) -> Result<(http::StatusCode, Bytes), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(conn);
    let res = sender.send_request(req).await.map_err(|e| e.to_string());
    let out = match res {
        Ok(res) => {
            let status = res.status();
            Limited::new(res.into_body(), MAX_BODY)
                .collect()
                .await
                .map(|b| (status, b.to_bytes()))
                .map_err(|e| e.to_string())
        }
        Err(e) => Err(e),
    };
    driver.abort();
    out
}
