//! Starts a real Mosquitto on a free loopback port with a generated
//! config. Missing binary: the test is skipped with a message, unless `CI`
//! is set, where it fails.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub struct Mosquitto {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

fn find_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|d| d.join("mosquitto"))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Mosquitto {
    /// Starts Mosquitto on `port` (a free one when `None`).
    pub async fn start(port: Option<u16>) -> Option<Self> {
        let Some(bin) = find_binary() else {
            if std::env::var_os("CI").is_some() {
                panic!("mosquitto is not installed, and CI requires the Mosquitto leg");
            }
            eprintln!("SKIPPED: mosquitto not installed (apt-get install mosquitto); Mosquitto leg not run");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let mut m = Self {
            bin,
            dir,
            port: port.unwrap_or_else(free_port),
            child: None,
        };
        m.spawn().await;
        Some(m)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    async fn spawn(&mut self) {
        let conf = self.dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\npersistence false\n\
                 max_queued_messages 0\nmax_inflight_messages 0\nmax_packet_size 1048576\n\
                 log_dest stderr\nlog_type error\n",
                self.port
            ),
        )
        .unwrap();
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn mosquitto");
        self.child = Some(child);
        // Wait until it accepts connections (an event, not a fixed sleep).
        let addr = self.addr();
        let deadline = std::time::Instant::now() + super::SOON;
        while TcpStream::connect(addr).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("mosquitto exited at start: {status}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "mosquitto did not start listening"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await; // poll interval, not synchronisation
        }
    }

    /// SIGKILL: connections drop without any goodbye.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same port.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}
