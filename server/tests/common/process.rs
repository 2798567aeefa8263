//! `thingcall-server` as a real process: started with JSON logs on free
//! ports, its addresses read from its own "listening" line, its log lines
//! waited on as events, and signalled like an operator would.

use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use super::soon;

/// A running gateway process, killed when dropped.
pub struct GatewayProcess {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    /// Its one port (gRPC, gRPC-web, HTTP/JSON).
    pub grpc: SocketAddr,
    /// The broker it uses.
    pub mqtt: SocketAddr,
    /// Its "listening" log line, as JSON.
    pub listening: serde_json::Value,
}

impl GatewayProcess {
    /// Starts the binary with `args` (after `--listen 127.0.0.1:0`, JSON
    /// logs and an embedded broker on a free port unless `args` name a
    /// broker) and returns once it listens.
    pub async fn start(args: &[&str]) -> GatewayProcess {
        Self::start_logging("warn,thingcall_server=info", args).await
    }

    /// [`GatewayProcess::start`] with `RUST_LOG` set to `filter`.
    pub async fn start_logging(filter: &str, args: &[&str]) -> GatewayProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_thingcall-server"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--embedded-broker-listen",
                "127.0.0.1:0",
            ])
            .args(["--log-format", "json"])
            .args(args)
            .env("RUST_LOG", filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("gateway binary");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut gw = GatewayProcess {
            child,
            lines,
            grpc: ([0, 0, 0, 0], 0).into(),
            mqtt: ([0, 0, 0, 0], 0).into(),
            listening: serde_json::Value::Null,
        };
        let listening = gw.wait_log("thingcall-server listening").await;
        let addr = |k: &str| {
            listening["fields"][k]
                .as_str()
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("no {k} address in {listening}"))
        };
        gw.grpc = addr("grpc");
        gw.mqtt = addr("mqtt");
        gw.listening = listening;
        gw
    }

    /// `http://127.0.0.1:PORT` of its port.
    pub fn base(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// Waits for a log line whose message is `message`; returns the line.
    pub async fn wait_log(&mut self, message: &str) -> serde_json::Value {
        let line = self
            .wait_line(&format!("log line {message:?}"), |l| {
                l.contains(message)
                    && serde_json::from_str::<serde_json::Value>(l)
                        .is_ok_and(|v| v["fields"]["message"] == message)
            })
            .await;
        serde_json::from_str(&line).expect("JSON log line")
    }

    /// Waits for a log line (as printed) that `wanted` accepts; earlier
    /// lines are passed over.
    pub async fn wait_line(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let lines = &mut self.lines;
        soon(what, async {
            while let Some(line) = lines.recv().await {
                if wanted(&line) {
                    return line;
                }
            }
            panic!("the gateway's stderr ended before {what}");
        })
        .await
    }

    /// Sends `signal` (`TERM`, `INT`) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("running");
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits for the process to exit.
    pub async fn exit_status(&mut self) -> ExitStatus {
        soon("gateway exit", self.child.wait()).await.expect("wait")
    }
}
