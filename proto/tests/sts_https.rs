//! Web identity credentials over HTTPS: STS is reached with rustls,
//! trusting the system's roots plus `AWS_CA_BUNDLE`. A stand-in STS on
//! loopback with a certificate of a test CA answers only when that CA is
//! the bundle; without it the certificate is refused.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use thingcall_proto::aws::chain::Chain;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const ANSWER: &str = "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult>\
<Credentials><SessionToken>tls-token</SessionToken><SecretAccessKey>sek</SecretAccessKey>\
<Expiration>2099-01-01T00:00:00Z</Expiration><AccessKeyId>ASIATLS</AccessKeyId></Credentials>\
</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>";

#[tokio::test]
async fn sts_over_https_trusts_the_ca_bundle() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = std::env::temp_dir().join(format!("tc-sts-https-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let certs = thingcall_testkit::TestCertificates::generate(&dir);
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&certs.cert)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&certs.key).unwrap();
    let server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            // A refused handshake ends this connection only.
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let mut buf = vec![0; 8192];
            let _ = tls.read(&mut buf).await;
            let res = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{ANSWER}",
                ANSWER.len()
            );
            let _ = tls.write_all(res.as_bytes()).await;
            let _ = tls.shutdown().await;
        }
    });

    let token = dir.join("token");
    std::fs::write(&token, "a.jwt").unwrap();
    let vars = |bundle: bool| {
        let mut v: HashMap<&'static str, String> = HashMap::from([
            ("HOME", "/nonexistent".to_owned()),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", token.display().to_string()),
            ("AWS_ROLE_ARN", "arn:aws:iam::1:role/gw".to_owned()),
            ("AWS_ENDPOINT_URL_STS", format!("https://{addr}")),
        ]);
        if bundle {
            v.insert("AWS_CA_BUNDLE", certs.ca.display().to_string());
        }
        let env: thingcall_proto::aws::credentials::Env =
            Arc::new(move |name| v.get(name).cloned());
        env
    };

    let untrusted = Chain::resolve(vars(false)).unwrap().credentials().await;
    let err = untrusted.expect_err("a certificate of an unknown CA");
    assert!(err.contains("certificate"), "{err}");

    let c = Chain::resolve(vars(true))
        .unwrap()
        .credentials()
        .await
        .expect("credentials over HTTPS");
    assert_eq!(c.access_key_id, "ASIATLS");
    assert_eq!(c.session_token.unwrap().expose(), "tls-token");
    std::fs::remove_dir_all(&dir).unwrap();
}
