//! TLS on the gateway's one port: gRPC, HTTP/JSON and gRPC-web over https,
//! client certificates as caller identities, and a certificate reload that
//! keeps open streams.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::soon;
use prost::Message;
use thingcall_client::{CallError, Client, TlsOptions};
use thingcall_proto::v1::{device_event::Kind, InvokeRequest};
use thingcall_server::auth::apikeys::hash_line;
use thingcall_server::Running;
use thingcall_testkit::pki::{certificate_authority, sign};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEY: &str = "tc_tls_test_key_0123456789";
const POLICY: &str = r#"
[[allow]]
subjects = ["key:ops", "cert:console-admin"]
targets = ["tls-*"]
methods = ["echo"]
watch = true
list = true
"#;

struct Tls {
    dir: tempfile::TempDir,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    cert: PathBuf,
    key: PathBuf,
    client: (PathBuf, PathBuf),
}

impl Tls {
    fn new() -> Tls {
        let dir = tempfile::tempdir().unwrap();
        let issuer = certificate_authority(dir.path());
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let (cert, key) = sign(&issuer, names, "gateway one", &dir.path().join("server"));
        let client = sign(
            &issuer,
            Vec::new(),
            "console-admin",
            &dir.path().join("admin"),
        );
        Tls {
            dir,
            issuer,
            cert,
            key,
            client,
        }
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn options(&self, with_cert: bool) -> TlsOptions {
        TlsOptions {
            ca_pem: Some(std::fs::read(self.ca()).unwrap()),
            identity: with_cert.then(|| {
                (
                    std::fs::read(&self.client.0).unwrap(),
                    std::fs::read(&self.client.1).unwrap(),
                )
            }),
        }
    }
}

/// A gateway with TLS, client certificates, an API key and a policy, on
/// its embedded broker.
async fn gateway(tls: &Tls) -> (Running, thingcall_server::broker::EmbeddedBroker) {
    let broker =
        thingcall_server::broker::EmbeddedBroker::start("127.0.0.1:0".parse().unwrap(), 1 << 20)
            .await
            .unwrap();
    let keys = tls.dir.path().join("keys");
    std::fs::write(&keys, format!("ops {}\n", hash_line(KEY))).unwrap();
    let policy = tls.dir.path().join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let mut c = common::gateway_config(broker.addr());
    c.port.tls_cert = Some(tls.cert.clone());
    c.port.tls_key = Some(tls.key.clone());
    c.port.tls_client_ca = Some(tls.ca());
    c.auth.api_keys = Some(keys);
    c.auth.policy = Some(policy);
    c.validate().expect("valid");
    let gw = thingcall_server::start(c).await.unwrap();
    soon("MQTT session", gw.wait_connected()).await;
    (gw, broker)
}

fn https(gw: &Running) -> String {
    format!("https://localhost:{}", gw.grpc_addr.port())
}

/// A device, online as the gateway sees it.
async fn device(
    gw: &Running,
    broker: &thingcall_server::broker::EmbeddedBroker,
    id: &str,
) -> thingcall_device::DeviceHandle {
    let addr = broker.addr();
    let opts = thingcall_device::DeviceOptions::new(id, addr.ip().to_string(), addr.port());
    common::device_seen(gw, opts).await
}

fn echo(target: &str, payload: &[u8]) -> InvokeRequest {
    InvokeRequest {
        target: target.into(),
        method: "echo".into(),
        payload: payload.to_vec().into(),
        ..Default::default()
    }
}

/// A raw TLS connection to the gateway offering `alpn`, trusting `ca`.
async fn raw_tls(
    gw: &Running,
    ca: &Path,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for c in thingcall_proto::wire::tls::ca_certificates(&std::fs::read(ca).unwrap()).unwrap() {
        roots.add(c).unwrap();
    }
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = tokio::net::TcpStream::connect(gw.grpc_addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake")
}

/// Sends one HTTP/1.1 request (`Connection: close`) and reads the whole answer.
async fn http1(
    stream: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    head: &str,
    body: &[u8],
) -> Vec<u8> {
    let request = format!(
        "{head}\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut out = Vec::new();
    soon("HTTP answer", stream.read_to_end(&mut out))
        .await
        .unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_surface_over_tls_and_certificates_identify_callers() {
    let tls = Tls::new();
    let (gw, broker) = gateway(&tls).await;
    let _d = device(&gw, &broker, "tls-1").await;

    // gRPC over TLS, with a token.
    let mut c = Client::connect_with(&https(&gw), &tls.options(false))
        .await
        .expect("TLS connect")
        .with_token(KEY)
        .unwrap();
    let r = c.invoke(echo("tls-1", b"token")).await.expect("call");
    assert_eq!(r.payload, b"token".as_slice());

    // A client certificate is the caller's identity (cert:console-admin).
    let mut c = Client::connect_with(&https(&gw), &tls.options(true))
        .await
        .expect("mTLS connect");
    let r = c
        .invoke(echo("tls-1", b"cert"))
        .await
        .expect("call by certificate");
    assert_eq!(r.payload, b"cert".as_slice());

    // Neither: UNAUTHENTICATED.
    let mut c = Client::connect_with(&https(&gw), &tls.options(false))
        .await
        .unwrap();
    let e: CallError = c.invoke(echo("tls-1", b"")).await.unwrap_err();
    assert_eq!(e.reason, "UNAUTHENTICATED", "{e}");

    // Cleartext HTTP/2 to the TLS port does not get through.
    let plain = format!("http://{}", gw.grpc_addr);
    let e = match Client::connect(&plain).await {
        Ok(mut c) => c.invoke(echo("tls-1", b"")).await.unwrap_err(),
        Err(e) => e,
    };
    // (the TLS server drops the HTTP/2 preface: a transport error, not an answer)
    assert!(
        e.is_unreachable() || e.message.contains("h2 protocol error"),
        "{e}"
    );

    // HTTP/JSON over HTTP/1.1 (ALPN http/1.1), as curl --cacert would.
    let mut s = raw_tls(&gw, &tls.ca(), b"http/1.1").await;
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let head = format!("GET /v1/devices HTTP/1.1\r\nx-api-key: {KEY}");
    let out = String::from_utf8(http1(&mut s, &head, b"").await).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("\"tls-1\""), "{out}");

    // gRPC-web over https: one framed message, the status in the trailer frame.
    let mut s = raw_tls(&gw, &tls.ca(), b"http/1.1").await;
    let msg = echo("tls-1", b"web").encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    frame.extend_from_slice(&msg);
    let head = format!(
        "POST /thingcall.v1.DeviceGateway/Invoke HTTP/1.1\r\n\
         content-type: application/grpc-web+proto\r\nx-grpc-web: 1\r\nx-api-key: {KEY}"
    );
    let out = http1(&mut s, &head, &frame).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("grpc-status:0"), "{text}");
    assert!(text.contains("web"), "{text}");

    // HTTP/2 is offered first (ALPN h2).
    let s = raw_tls(&gw, &tls.ca(), b"h2").await;
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    gw.stop().await;
    broker.stop().await;
}

/// The common name of the certificate the gateway presents now.
async fn served_name(gw: &Running, ca: &Path) -> String {
    let s = raw_tls(gw, ca, b"h2").await;
    let leaf = s.get_ref().1.peer_certificates().unwrap()[0].clone();
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).unwrap();
    let cn = cert.subject().iter_common_name().next().unwrap();
    cn.as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_reload_keeps_open_streams() {
    let tls = Tls::new();
    let (gw, broker) = gateway(&tls).await;
    let mut c = Client::connect_with(&https(&gw), &tls.options(false))
        .await
        .unwrap()
        .with_token(KEY)
        .unwrap();
    let mut watch = c.watch("tls-*", false).await.expect("watch");
    let synced = soon("synced", watch.message()).await.unwrap().unwrap();
    assert!(matches!(synced.kind, Some(Kind::Synced(_))), "{synced:?}");
    assert_eq!(served_name(&gw, &tls.ca()).await, "gateway one");

    // A new certificate in the same files, then a reload (what SIGHUP does).
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let base = tls.dir.path().join("server");
    sign(&tls.issuer, names, "gateway two", &base);
    gw.reload();
    assert_eq!(served_name(&gw, &tls.ca()).await, "gateway two");

    // A broken file keeps the certificate in force.
    std::fs::write(&tls.key, "not a key").unwrap();
    gw.reload();
    assert_eq!(served_name(&gw, &tls.ca()).await, "gateway two");

    // The stream opened before the reload still delivers.
    let _d = device(&gw, &broker, "tls-2").await;
    let ev = soon("presence on the old stream", watch.message())
        .await
        .expect("stream alive")
        .expect("an event");
    assert_eq!(ev.device, "tls-2", "{ev:?}");
    gw.stop().await;
    broker.stop().await;
}
