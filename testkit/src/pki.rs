//! Certificates for tests (rcgen): a CA, and leaf certificates it signs for
//! servers (with their names) and clients (with a common name).

use std::path::PathBuf;

/// A CA for tests: a self-signed certificate written to `{dir}/ca.pem`.
pub fn certificate_authority(dir: &std::path::Path) -> rcgen::Issuer<'static, rcgen::KeyPair> {
    let mut params = rcgen::CertificateParams::new(Vec::new()).expect("CA parameters");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "thingcall test CA");
    let key = rcgen::KeyPair::generate().expect("CA key");
    let cert = params.self_signed(&key).expect("CA certificate");
    std::fs::write(dir.join("ca.pem"), cert.pem()).expect("write ca.pem");
    rcgen::Issuer::new(params, key)
}

/// A certificate for `names` with common name `cn`, signed by `issuer`,
/// written to `{base}.pem` and `{base}-key.pem`; returns the two paths.
pub fn sign(
    issuer: &rcgen::Issuer<'static, rcgen::KeyPair>,
    names: Vec<String>,
    cn: &str,
    base: &std::path::Path,
) -> (PathBuf, PathBuf) {
    let mut params = rcgen::CertificateParams::new(names).expect("certificate parameters");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, issuer).expect("signed certificate");
    let (cert_path, key_path) = (
        PathBuf::from(format!("{}.pem", base.display())),
        PathBuf::from(format!("{}-key.pem", base.display())),
    );
    std::fs::write(&cert_path, cert.pem()).expect("write certificate");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    (cert_path, key_path)
}
