#![forbid(unsafe_code)]
//! Test support shared by thingcall's integration tests: a real Mosquitto
//! on a free loopback port with a generated configuration, an OTLP trace
//! receiver ([`otlp`]), and two fault tools for what a healthy broker on
//! loopback never does:
//!
//! - [`fault::FaultProxy`], a TCP proxy between the gateway and a real
//!   broker that passes, delays, throttles, blackholes or stalls the bytes
//!   of each direction, or cuts the connection with a FIN or an RST,
//!   switchable while connections are open. It is for link faults: the
//!   broker behaves, the network does not.
//! - [`peer::ScriptedPeer`], an MQTT 5 broker played from a script for one
//!   client connection at a time. It is for broker faults real brokers
//!   refuse to produce: a refused CONNACK, withheld SUBACKs, a half-open
//!   peer, and packets no broker forwards (a topic that is not UTF-8, a
//!   topic alias never set, broken framing). What the client sends arrives
//!   as awaitable events.
//!
//! Both report what happened as events to wait on (the proxy's
//! [`fault::FaultProxy::counts`], the peer's [`peer::PeerConnection::next`]),
//! so tests never sleep to synchronise.
//!
//! A missing `mosquitto` binary skips the caller's test with a message,
//! unless `CI` is set: there it fails, so CI never passes without the
//! Mosquitto leg.

pub mod fault;
pub mod otlp;
pub mod peer;
pub mod pki;

use pki::{certificate_authority, sign};

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
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
    /// Set when an ACL file decides what each username may do; then each
    /// listener also replaces the client id with the username.
    acl_file: Option<PathBuf>,
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
        Self::launch(Tls::None, &[], None)
    }

    /// Like [`Mosquitto::start`], but anonymous clients are refused: only
    /// `username` with `password` may connect (a `password_file` made with
    /// `mosquitto_passwd`).
    pub fn start_with_password(username: &str, password: &str) -> Option<Self> {
        Self::launch(Tls::None, &[(username, password)], None)
    }

    /// Like [`Mosquitto::start`], plus a TLS listener with a certificate
    /// for 127.0.0.1 from a CA generated on the fly (see [`Mosquitto::ca_path`]).
    pub fn start_with_tls() -> Option<Self> {
        Self::launch(Tls::Server, &[], None)
    }

    /// Like [`Mosquitto::start_with_tls`], but the TLS listener accepts only
    /// clients with a certificate of its CA ([`Mosquitto::client_cert`]),
    /// and takes the certificate's common name as the username
    /// (`require_certificate`, `use_identity_as_username`).
    pub fn start_with_mutual_tls() -> Option<Self> {
        Self::launch(Tls::Mutual, &[], None)
    }

    /// Mosquitto with the security of a deployment, to test an ACL file
    /// (`acl_file` is read as it is, so a test proves the file it names):
    /// the mutual TLS listener of [`Mosquitto::start_with_mutual_tls`]
    /// (certificate CN = username), the plain listener taking only the
    /// `logins` (username, password) and no anonymous clients, and on both
    /// the client id replaced by the username (`use_username_as_clientid`),
    /// so an ACL's `%c` and `%u` are the same authenticated name.
    pub fn start_with_acl(acl_file: &Path, logins: &[(&str, &str)]) -> Option<Self> {
        Self::launch(Tls::Mutual, logins, Some(acl_file))
    }

    fn launch(tls: Tls, logins: &[(&str, &str)], acl_file: Option<&Path>) -> Option<Self> {
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
        let password_file = (!logins.is_empty()).then(|| {
            let file = dir.path().join("passwords");
            for (i, (user, password)) in logins.iter().enumerate() {
                // `-c` creates the file with the first login.
                let create: &[&str] = if i == 0 { &["-b", "-c"] } else { &["-b"] };
                let status = Command::new("mosquitto_passwd")
                    .args(create)
                    .arg(&file)
                    .args([user, password])
                    .status()
                    .expect("mosquitto_passwd (it comes with mosquitto)");
                assert!(status.success(), "mosquitto_passwd failed");
            }
            file
        });
        // An absolute path: Mosquitto resolves a relative one from its own
        // working directory, not the test's.
        let acl_file = acl_file.map(|f| {
            std::fs::canonicalize(f).unwrap_or_else(|e| panic!("ACL file {}: {e}", f.display()))
        });
        let mut m = Self {
            bin,
            dir,
            port: free_port()?,
            tls_port,
            password_file,
            issuer,
            mutual_tls: tls == Tls::Mutual,
            acl_file,
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
        let access = match (&self.password_file, &self.acl_file) {
            (Some(file), _) => format!("allow_anonymous false\npassword_file {}", file.display()),
            // An ACL names identities: nobody anonymous gets in.
            (None, Some(_)) => "allow_anonymous false".to_owned(),
            (None, None) => "allow_anonymous true".to_owned(),
        };
        // As deploy/mosquitto/mosquitto.conf: with an ACL, each listener
        // makes the username the client id (a listener option, so it
        // follows each `listener` line), and the queue keeps Mosquitto's
        // finite default: with `max_queued_messages 0` Mosquitto 2.0.11
        // closes the connection of a client right after refusing its
        // publish, which a deployment would not see.
        let (acl, per_listener, queue) = match &self.acl_file {
            Some(file) => (
                format!("acl_file {}\n", file.display()),
                "use_username_as_clientid true\n",
                "",
            ),
            None => (String::new(), "", "max_queued_messages 0\n"),
        };
        let mut text = format!(
            "listener {} 127.0.0.1\n{per_listener}{access}\n{acl}set_tcp_nodelay true\n\
             persistence false\n{queue}max_inflight_messages 0\n\
             max_packet_size 1048576\nlog_dest stderr\nlog_type error\n",
            self.port
        );
        if let Some(tls) = self.tls_port {
            let d = self.dir.path().display();
            text.push_str(&format!(
                "listener {tls} 127.0.0.1\n{per_listener}cafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server-key.pem\n"
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
impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}
