#![forbid(unsafe_code)]
//! Test support shared by thingcall's integration tests: a real Mosquitto
//! on a free loopback port with a generated configuration, and an OTLP
//! trace receiver ([`otlp`]).
//!
//! A missing `mosquitto` binary skips the caller's test with a message,
//! unless `CI` is set: there it fails, so CI never passes without the
//! Mosquitto leg.

pub mod otlp;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long Mosquitto may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A Mosquitto process, killed on drop.
pub struct Mosquitto {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    tls_port: Option<u16>,
    /// Set when only this login may connect (no anonymous clients).
    password_file: Option<PathBuf>,
    /// The CA of the TLS listener, which signs its certificate and clients'.
    /// Boxed: it is large, and most brokers here have none.
    issuer: Option<Box<rcgen::Issuer<'static, rcgen::KeyPair>>>,
    /// The TLS listener wants a client certificate, whose CN is the username.
    mutual_tls: bool,
    child: Option<Child>,
}

fn free_port() -> Option<u16> {
    Some(
        TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port(),
    )
}

fn find_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|d| d.join("mosquitto"))
        .find(|p| p.is_file())
}

impl Mosquitto {
    /// Starts Mosquitto on a free port and returns once it accepts
    /// connections; `None` (after saying so on stderr) when it is not
    /// installed and `CI` is not set.
    pub fn start() -> Option<Self> {
        Self::launch(Tls::None, None)
    }

    /// Like [`Mosquitto::start`], but anonymous clients are refused: only
    /// `username` with `password` may connect (a `password_file` made with
    /// `mosquitto_passwd`).
    pub fn start_with_password(username: &str, password: &str) -> Option<Self> {
        Self::launch(Tls::None, Some((username, password)))
    }

    /// Like [`Mosquitto::start`], plus a TLS listener with a certificate
    /// for 127.0.0.1 from a CA generated on the fly (see [`Mosquitto::ca_path`]).
    pub fn start_with_tls() -> Option<Self> {
        Self::launch(Tls::Server, None)
    }

    /// Like [`Mosquitto::start_with_tls`], but the TLS listener accepts only
    /// clients with a certificate of its CA ([`Mosquitto::client_cert`]),
    /// and takes the certificate's common name as the username
    /// (`require_certificate`, `use_identity_as_username`).
    pub fn start_with_mutual_tls() -> Option<Self> {
        Self::launch(Tls::Mutual, None)
    }

    fn launch(tls: Tls, login: Option<(&str, &str)>) -> Option<Self> {
        let Some(bin) = find_binary() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "mosquitto is not installed, and CI requires the Mosquitto leg"
            );
            eprintln!("SKIPPED: mosquitto not installed (apt-get install mosquitto); Mosquitto leg not run");
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let (tls_port, issuer) = match tls {
            Tls::None => (None, None),
            Tls::Server | Tls::Mutual => {
                let issuer = certificate_authority(dir.path());
                let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
                sign(&issuer, names, "mosquitto", &dir.path().join("server"));
                (Some(free_port()?), Some(Box::new(issuer)))
            }
        };
        let password_file = login.map(|(user, password)| {
            let file = dir.path().join("passwords");
            let status = Command::new("mosquitto_passwd")
                .args(["-b", "-c"])
                .arg(&file)
                .args([user, password])
                .status()
                .expect("mosquitto_passwd (it comes with mosquitto)");
            assert!(status.success(), "mosquitto_passwd failed");
            file
        });
        let mut m = Self {
            bin,
            dir,
            port: free_port()?,
            tls_port,
            password_file,
            issuer,
            mutual_tls: tls == Tls::Mutual,
            child: None,
        };
        m.spawn();
        Some(m)
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TLS listener's address, when started with TLS.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_port.map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
    }

    /// A client certificate and key with common name `name`, signed by the
    /// TLS listener's CA: (certificate PEM file, key PEM file).
    pub fn client_cert(&self, name: &str) -> (PathBuf, PathBuf) {
        let issuer = self.issuer.as_ref().expect("started with TLS");
        let base = self.dir.path().join(format!("client-{name}"));
        sign(issuer, Vec::new(), name, &base)
    }

    /// PEM file of the CA a TLS client must trust.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn spawn(&mut self) {
        let conf = self.dir.path().join("mosquitto.conf");
        // Nagle off (see the README), unlimited queues for the gateway's
        // client, which receives every reply, and packets up to 1 MiB.
        let access = match &self.password_file {
            Some(file) => format!("allow_anonymous false\npassword_file {}", file.display()),
            None => "allow_anonymous true".to_owned(),
        };
        let mut text = format!(
            "listener {} 127.0.0.1\n{access}\nset_tcp_nodelay true\npersistence false\n\
             max_queued_messages 0\nmax_inflight_messages 0\nmax_packet_size 1048576\n\
             log_dest stderr\nlog_type error\n",
            self.port
        );
        if let Some(tls) = self.tls_port {
            let d = self.dir.path().display();
            text.push_str(&format!(
                "listener {tls} 127.0.0.1\ncafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server-key.pem\n"
            ));
        }
        if self.mutual_tls {
            text.push_str("require_certificate true\nuse_identity_as_username true\n");
        }
        std::fs::write(&conf, text).expect("write mosquitto.conf");
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn mosquitto");
        self.child = Some(child);
        // A readiness probe of another process: poll its port, bounded.
        let started = Instant::now();
        let ready = |m: &Self| {
            TcpStream::connect(m.addr()).is_ok()
                && m.tls_addr().is_none_or(|a| TcpStream::connect(a).is_ok())
        };
        while !ready(self) {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("mosquitto exited at start: {status}");
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "mosquitto did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILL: every connection drops without a goodbye.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port (after [`Mosquitto::kill`], or kills first).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

/// What the TLS listener, if any, asks of clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tls {
    None,
    Server,
    Mutual,
}

/// A CA and a server certificate for `127.0.0.1` and `localhost` it
/// signed, written to `dir` for a test's own TLS listener.
#[derive(Debug, Clone)]
pub struct TestCertificates {
    /// The CA's certificate (PEM), for clients to trust.
    pub ca: PathBuf,
    /// The server certificate (PEM).
    pub cert: PathBuf,
    /// The server certificate's private key (PEM).
    pub key: PathBuf,
}

impl TestCertificates {
    /// Makes them in `dir`.
    pub fn generate(dir: &std::path::Path) -> Self {
        let issuer = certificate_authority(dir);
        let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        let (cert, key) = sign(&issuer, names, "thingcall test server", &dir.join("server"));
        TestCertificates {
            ca: dir.join("ca.pem"),
            cert,
            key,
        }
    }
}

/// A free TCP port on loopback at the time of asking, for listeners that
/// cannot report the port they bound.
pub fn free_loopback_port() -> u16 {
    free_port().expect("a free loopback port")
}

/// A CA made for one broker: `ca.pem` in `dir`, and the issuer that signs.
fn certificate_authority(dir: &std::path::Path) -> rcgen::Issuer<'static, rcgen::KeyPair> {
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
fn sign(
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

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}
