//! Test scaffolding shared by the integration tests: a real Mosquitto
//! broker on a free port and a plain rumqttc client playing the gateway.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rumqttc::v5::mqttbytes::v5::{Packet, Publish, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use thingcall_device_sim::{DeviceHandle, DeviceOptions};
use thingcall_proto::wire::{user_property, Presence};
use tokio::sync::mpsc;
use tokio::time::timeout;

/// Longest wait for any expected message or state.
pub const WAIT: Duration = Duration::from_secs(10);
/// Where the test "gateway" wants its replies.
pub const REPLY_FILTER: &str = "thingcall/gateways/test/replies/+";

/// A Mosquitto process on a free port, killed on drop.
pub struct Broker {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Broker {
    /// Starts Mosquitto, or `None` (after saying so) when it is not installed
    /// and CI is not set.
    pub fn start() -> Option<Broker> {
        let Some(exe) = find_mosquitto() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "mosquitto is required when CI is set"
            );
            eprintln!("SKIPPED: mosquitto not found in PATH or /usr/sbin");
            return None;
        };
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n\
                 persistence false\nlog_dest none\n"
            ),
        )
        .unwrap();
        let child = Command::new(exe)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        let broker = Broker {
            child,
            port,
            _dir: dir,
        };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < WAIT,
                "mosquitto did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        Some(broker)
    }

    /// Options for a device of this broker.
    pub fn device(&self, id: &str) -> DeviceOptions {
        DeviceOptions::new(id, "127.0.0.1", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_mosquitto() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|dir| dir.join("mosquitto"))
        .find(|p| p.is_file())
}

/// A plain MQTT 5 client standing in for the gateway.
pub struct Peer {
    pub client: AsyncClient,
    pub rx: mpsc::UnboundedReceiver<Publish>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Peer {
    /// Connects and subscribes to `filters`, returning once all are acked.
    pub async fn connect(broker: &Broker, id: &str, filters: &[&str]) -> Peer {
        let mut opts = MqttOptions::new(id, "127.0.0.1", broker.port);
        opts.set_max_packet_size(Some(1024 * 1024));
        let (client, mut eventloop) = AsyncClient::new(opts, 64);
        let (tx, rx) = mpsc::unbounded_channel();
        let (sub_tx, mut sub_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let _ = tx.send(p);
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = sub_tx.send(());
                    }
                    Ok(_) => {}
                    Err(e) => panic!("test client lost its connection: {e}"),
                }
            }
        });
        for filter in filters {
            client.subscribe(*filter, QoS::AtLeastOnce).await.unwrap();
        }
        for _ in filters {
            timeout(WAIT, sub_rx.recv()).await.expect("suback").unwrap();
        }
        Peer { client, rx, task }
    }

    /// Publishes a request to `device`'s `method` with a reply address.
    pub async fn request(
        &self,
        device: &str,
        method: &str,
        corr: &str,
        payload: impl Into<bytes::Bytes>,
        deadline_ms: Option<u64>,
    ) {
        let mut props = PublishProperties {
            response_topic: Some(format!("thingcall/gateways/test/replies/{device}")),
            correlation_data: Some(bytes::Bytes::copy_from_slice(corr.as_bytes())),
            content_type: Some("text/plain".into()),
            ..Default::default()
        };
        if let Some(ms) = deadline_ms {
            props
                .user_properties
                .push(("deadline".into(), ms.to_string()));
        }
        props
            .user_properties
            .push(("x-extra".into(), "ignored".into()));
        let topic = format!("thingcall/devices/{device}/methods/{method}");
        self.client
            .publish_with_properties(topic, QoS::AtLeastOnce, false, payload.into(), props)
            .await
            .unwrap();
    }

    /// The next message, failing the test after [`WAIT`].
    pub async fn next(&mut self) -> Publish {
        timeout(WAIT, self.rx.recv())
            .await
            .expect("timed out waiting for a message")
            .unwrap()
    }

    /// The next message, parsed as a presence document.
    pub async fn next_presence(&mut self) -> Presence {
        let msg = self.next().await;
        assert!(msg.topic.ends_with(b"/presence"), "{msg:?}");
        Presence::from_json(&msg.payload).expect("presence JSON")
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

pub fn props(msg: &Publish) -> &PublishProperties {
    msg.properties.as_ref().expect("reply has properties")
}

pub fn corr(msg: &Publish) -> &[u8] {
    props(msg)
        .correlation_data
        .as_deref()
        .expect("correlation data echoed")
}

pub fn user<'a>(msg: &'a Publish, name: &str) -> Option<&'a str> {
    user_property(&props(msg).user_properties, name)
}

pub async fn online(device: &DeviceHandle) {
    timeout(WAIT, device.wait_online())
        .await
        .expect("device online");
}
