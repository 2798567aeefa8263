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
        Self::launch(false, None)
    }

    /// Like [`Mosquitto::start`], but anonymous clients are refused: only
    /// `username` with `password` may connect (a `password_file` made with
    /// `mosquitto_passwd`).
    pub fn start_with_password(username: &str, password: &str) -> Option<Self> {
        Self::launch(false, Some((username, password)))
    }

    /// Like [`Mosquitto::start`], plus a TLS listener with a certificate
    /// for 127.0.0.1 generated on the fly (see [`Mosquitto::ca_path`]).
    pub fn start_with_tls() -> Option<Self> {
        Self::launch(true, None)
    }

    fn launch(tls: bool, login: Option<(&str, &str)>) -> Option<Self> {
        let Some(bin) = find_binary() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "mosquitto is not installed, and CI requires the Mosquitto leg"
            );
            eprintln!("SKIPPED: mosquitto not installed (apt-get install mosquitto); Mosquitto leg not run");
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let tls_port = if tls {
            let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
            let cert = rcgen::generate_simple_self_signed(names).expect("certificate");
            std::fs::write(dir.path().join("ca.pem"), cert.cert.pem()).expect("write ca.pem");
            std::fs::write(dir.path().join("key.pem"), cert.signing_key.serialize_pem())
                .expect("write key.pem");
            Some(free_port()?)
        } else {
            None
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

    /// PEM file of the CA (the self-signed certificate) a TLS client must trust.
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
                "listener {tls} 127.0.0.1\ncafile {d}/ca.pem\ncertfile {d}/ca.pem\nkeyfile {d}/key.pem\n"
            ));
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

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}
