//! TLS to the broker, one way for the gateway, the device SDK, the
//! simulator and the bench: a rustls client configuration trusting the CA
//! of `--mqtt-ca` (PEM) or, without one, the platform's roots; a client
//! certificate and key for mutual TLS; ALPN protocols on request (AWS IoT
//! Core takes mutual TLS on port 443 with ALPN `x-amzn-mqtt-ca`). The server
//! name checked is the URL's host (SNI).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rumqttc::TlsConfiguration;

/// What a TLS connection to the broker needs, as files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM file of the CA that signed the broker's certificate; `None`
    /// trusts the platform's roots.
    pub ca: Option<PathBuf>,
    /// PEM files of the client certificate and its private key, for mutual TLS.
    pub client: Option<(PathBuf, PathBuf)>,
    /// ALPN protocols to offer, in order (none by default).
    pub alpn: Vec<String>,
}

impl TlsFiles {
    /// The rumqttc transport settings of these files; the error names the
    /// file at fault and never a key's contents.
    pub fn load(&self) -> Result<TlsConfiguration, String> {
        let roots = root_store(self.ca.as_deref())?;
        let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
        let mut config = match &self.client {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                use rustls::pki_types::pem::PemObject;
                let chain = ca_certificates(&read(cert, "--mqtt-cert")?)
                    .map_err(|e| format!("--mqtt-cert {}: {e}", cert.display()))?;
                let key_der =
                    rustls::pki_types::PrivateKeyDer::from_pem_slice(&read(key, "--mqtt-key")?)
                        .map_err(|_| {
                            format!(
                                "--mqtt-key {}: no PEM private key in the file",
                                key.display()
                            )
                        })?;
                builder
                    .with_client_auth_cert(chain, key_der)
                    .map_err(|e| format!("--mqtt-cert/--mqtt-key: {e}"))?
            }
        };
        config.alpn_protocols = self.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        Ok(TlsConfiguration::Rustls(Arc::new(config)))
    }
}

fn read(path: &Path, flag: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {flag} {}: {e}", path.display()))
}

/// The rustls client configuration trusting the CA in `ca` (PEM) or,
/// without one, the platform's roots; no client certificate.
pub fn tls_config(ca: Option<&Path>) -> Result<TlsConfiguration, String> {
    TlsFiles {
        ca: ca.map(Path::to_path_buf),
        ..TlsFiles::default()
    }
    .load()
}

/// The platform's root certificates (for HTTPS to AWS, say); installs
/// the ring crypto provider as [`TlsFiles::load`] does.
pub fn system_roots() -> Result<rustls::RootCertStore, String> {
    root_store(None)
}

/// The roots to trust. Installs the ring crypto provider for the process
/// once (a provider installed earlier is kept).
fn root_store(ca: Option<&Path>) -> Result<rustls::RootCertStore, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read --mqtt-ca {}: {e}", path.display()))?;
            let certs =
                ca_certificates(&pem).map_err(|e| format!("--mqtt-ca {}: {e}", path.display()))?;
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("--mqtt-ca {}: {e}", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(
                    "no trusted root certificates found on this system: give --mqtt-ca FILE"
                        .to_owned(),
                );
            }
        }
    }
    Ok(roots)
}

/// The certificates in a PEM text; an error when there are none.
pub fn ca_certificates(
    pem: &[u8],
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate file: {e}"))?;
    if certs.is_empty() {
        return Err("no PEM certificate in the file".to_owned());
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_file_must_hold_a_certificate() {
        assert!(ca_certificates(b"").is_err());
        assert!(ca_certificates(b"just text\n").is_err());
        let err = tls_config(Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
        let garbage = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let path =
            std::env::temp_dir().join(format!("thingcall-tls-ca-{}.pem", std::process::id()));
        std::fs::write(&path, garbage).unwrap();
        let err = tls_config(Some(&path));
        std::fs::remove_file(&path).unwrap();
        assert!(err.is_err(), "a malformed certificate was accepted");
    }

    #[test]
    fn a_missing_client_key_is_named() {
        let files = TlsFiles {
            client: Some(("/nonexistent/c.pem".into(), "/nonexistent/k.pem".into())),
            ..TlsFiles::default()
        };
        let err = files.load().unwrap_err();
        assert!(err.contains("--mqtt-cert /nonexistent/c.pem"), "{err}");
    }

    /// A self-signed CA made for this test only (EC P-256, no key kept).
    const TEST_CA: &str = "\
-----BEGIN CERTIFICATE-----
MIIBpTCCAUugAwIBAgIUFsNyR65lKKKha01vbgQyrWdZe2gwCgYIKoZIzj0EAwIw
JzElMCMGA1UEAwwcdGhpbmdjYWxsIGJlbmNoIHVuaXQtdGVzdCBDQTAgFw0yNjEx
MjYwNDM3NTJaGA8yMTI2MTEwMjA0Mzc1MlowJzElMCMGA1UEAwwcdGhpbmdjYWxs
IGJlbmNoIHVuaXQtdGVzdCBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABFsw
T2YCusZnpbsdnEHlljB39YF5SPAnnSZqNxD1oOiBwkry/uFvr64a5Y+1MTOfOP8V
IdckudfTlmcZaV0bHzCjUzBRMB0GA1UdDgQWBBQVko1QEJcwYDCojBStr/Ln98fH
+TAfBgNVHSMEGDAWgBQVko1QEJcwYDCojBStr/Ln98fH+TAPBgNVHRMBAf8EBTAD
AQH/MAoGCCqGSM49BAMCA0gAMEUCIQD4rlidlzrr/O3AuyBUq567+/5wv7Znuxmi
jt2Ujq0z1wIgfc/iwEWgWXVFOi1TL+e6GS1YBbjtjgFj53UCO7o8OJg=
-----END CERTIFICATE-----
";

    #[test]
    fn a_pem_ca_builds_a_rustls_config() {
        assert_eq!(ca_certificates(TEST_CA.as_bytes()).unwrap().len(), 1);
        let path =
            std::env::temp_dir().join(format!("thingcall-tls-good-ca-{}.pem", std::process::id()));
        std::fs::write(&path, TEST_CA).unwrap();
        let config = tls_config(Some(&path));
        std::fs::remove_file(&path).unwrap();
        assert!(
            matches!(config, Ok(TlsConfiguration::Rustls(_))),
            "{config:?}"
        );
    }
}
