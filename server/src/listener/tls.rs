//! TLS on the gateway's one port (rustls): the certificate and key of
//! `--tls-cert`/`--tls-key`, ALPN `h2` and `http/1.1` (so gRPC, gRPC-web,
//! JSON and SSE share the port as they do in cleartext), and optional
//! client certificates (`--tls-client-ca`) whose subject's common name is
//! the caller's identity. The files are read again on SIGHUP: new
//! connections get the new certificate, open ones keep theirs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use thingcall_proto::wire::tls::ca_certificates;

use crate::auth::PeerIdentity;

/// The TLS files of the listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key of the leaf.
    pub key: PathBuf,
    /// PEM CA certificates that sign client certificates; with it, clients
    /// may present one (optional: callers can still use tokens).
    pub client_ca: Option<PathBuf>,
}

/// The listener's TLS configuration, swappable while serving.
pub struct ServerTls {
    files: TlsFiles,
    config: RwLock<Arc<ServerConfig>>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("files", &self.files)
            .finish()
    }
}

impl ServerTls {
    /// Loads the files; the error is one line naming the file at fault.
    pub fn load(files: TlsFiles) -> Result<ServerTls, String> {
        let config = build(&files)?;
        Ok(ServerTls {
            files,
            config: RwLock::new(Arc::new(config)),
        })
    }

    /// Reads the files again; on error the current configuration stays.
    pub fn reload(&self) -> Result<(), String> {
        let config = build(&self.files)?;
        *self.config.write() = Arc::new(config);
        Ok(())
    }

    /// The acceptor for the next connection.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.read().clone())
    }
}

fn read(path: &Path, flag: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {flag} {}: {e}", path.display()))
}

fn build(files: &TlsFiles) -> Result<ServerConfig, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let chain: Vec<CertificateDer<'static>> = ca_certificates(&read(&files.cert, "--tls-cert")?)
        .map_err(|e| format!("--tls-cert {}: {e}", files.cert.display()))?;
    let key = PrivateKeyDer::from_pem_slice(&read(&files.key, "--tls-key")?).map_err(|_| {
        format!(
            "--tls-key {}: no PEM private key in the file",
            files.key.display()
        )
    })?;
    let builder = ServerConfig::builder();
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs = ca_certificates(&read(ca, "--tls-client-ca")?)
                .map_err(|e| format!("--tls-client-ca {}: {e}", ca.display()))?;
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("--tls-client-ca {}: {e}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
                .allow_unauthenticated()
                .build()
                .map_err(|e| format!("--tls-client-ca {}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("--tls-cert/--tls-key: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The identity of a verified client certificate: its subject's common
/// name (the first one). `None` without a certificate, or without a CN.
pub fn peer_identity(conn: &rustls::ServerConnection) -> Option<PeerIdentity> {
    let leaf = conn.peer_certificates()?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?;
    (!cn.is_empty() && !cn.chars().any(char::is_control)).then(|| PeerIdentity(cn.into()))
}
