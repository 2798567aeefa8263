//! TLS for the MQTT modes: a rustls client configuration trusting the CA
//! of `--mqtt-ca` (PEM) or the platform's roots, with the ring provider.

use std::path::Path;
use std::sync::Arc;

use rumqttc::TlsConfiguration;

/// The rustls client configuration: trust the CA in `ca` (PEM) or, without
/// one, the platform's roots. Installs the ring crypto provider for the
/// process once (a provider installed earlier is kept).
pub fn tls_config(ca: Option<&Path>) -> Result<TlsConfiguration, String> {
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
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConfiguration::Rustls(Arc::new(config)))
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
            std::env::temp_dir().join(format!("thingcall-bench-ca-{}.pem", std::process::id()));
        std::fs::write(&path, garbage).unwrap();
        let err = tls_config(Some(&path));
        std::fs::remove_file(&path).unwrap();
        assert!(err.is_err(), "a malformed certificate was accepted");
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
        let path = std::env::temp_dir().join(format!(
            "thingcall-bench-good-ca-{}.pem",
            std::process::id()
        ));
        std::fs::write(&path, TEST_CA).unwrap();
        let config = tls_config(Some(&path));
        std::fs::remove_file(&path).unwrap();
        assert!(
            matches!(config, Ok(TlsConfiguration::Rustls(_))),
            "{config:?}"
        );
    }
}
