//! A scripted MQTT 5 broker for one client at a time: it plays the broker
//! side of each connection from a [`Script`], and lets a test send what
//! real brokers refuse to produce (a topic that is not UTF-8, a payload
//! flagged UTF-8 that is not, a topic alias never set, a packet whose
//! remaining length is broken), withhold acknowledgements, go silent
//! (half-open) or close.
//!
//! Everything the client sends reaches the test decoded, in order, as
//! awaitable events of its [`PeerConnection`], so a test asserts what the
//! client published (topics, properties, payloads) without polling.
//!
//! Packets are encoded and decoded with rumqttc's `mqttbytes`, the codec
//! the gateway itself uses; the malformed bytes it would refuse to write
//! come from [`raw`].
//!
//! By default the script answers like a broker: CONNACK success, a SUBACK
//! granting every SUBSCRIBE, PINGRESP, PUBACK / PUBREC / PUBCOMP for QoS 1
//! and 2 publishes, and a close after the client's DISCONNECT.

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use rumqttc::v5::mqttbytes::v5::{
    ConnAck, ConnectReturnCode, Packet, PingResp, PubAck, PubComp, PubRec, Publish,
    PublishProperties, SubAck, Subscribe, SubscribeReasonCode,
};
use rumqttc::v5::mqttbytes::{Error as CodecError, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How a connection answers on its own. Taken by each connection when it
/// is accepted ([`ScriptedPeer::set_script`]), and changeable on one open
/// connection ([`PeerConnection::set_script`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// The CONNACK's reason code; `None` withholds the CONNACK. A refusal
    /// is followed by a close, as the MQTT 5 specification wants.
    pub connack: Option<ConnectReturnCode>,
    /// Grant every SUBSCRIBE with a SUBACK (or withhold them all).
    pub suback: bool,
    /// Answer PINGREQ.
    pub pingresp: bool,
    /// Acknowledge QoS 1 and 2 publishes.
    pub puback: bool,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            connack: Some(ConnectReturnCode::Success),
            suback: true,
            pingresp: true,
            puback: true,
        }
    }
}

impl Script {
    /// The broker of a deployment, which refuses the login with `code`.
    pub fn refuse(code: ConnectReturnCode) -> Self {
        Script {
            connack: Some(code),
            ..Script::default()
        }
    }
}

/// What a connection saw, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// A packet the client sent, decoded (boxed: packets are large).
    Packet(Box<Packet>),
    /// The connection ended: the client closed it, it broke, or the client
    /// sent bytes that do not decode (the reason says which).
    Closed(String),
}

/// The listener. Each client connection is handed to the test by
/// [`ScriptedPeer::accept`]; dropping the peer stops accepting.
pub struct ScriptedPeer {
    addr: SocketAddr,
    script: watch::Sender<Script>,
    conns: mpsc::UnboundedReceiver<PeerConnection>,
    accept: JoinHandle<()>,
}

impl ScriptedPeer {
    /// Listens on a free loopback port, answering with [`Script::default`].
    pub async fn start() -> ScriptedPeer {
        Self::start_with(Script::default()).await
    }

    /// Listens on a free loopback port, answering with `script`.
    pub async fn start_with(script: Script) -> ScriptedPeer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind peer");
        let addr = listener.local_addr().expect("peer address");
        let (script, scripts) = watch::channel(script);
        let (tx, conns) = mpsc::unbounded_channel();
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let script = scripts.borrow().clone();
                let (events_tx, events) = mpsc::unbounded_channel();
                let (commands, commands_rx) = mpsc::unbounded_channel();
                tokio::spawn(serve(stream, script, events_tx, commands_rx));
                let conn = PeerConnection {
                    accepted_at: Instant::now(),
                    events,
                    commands,
                };
                if tx.send(conn).is_err() {
                    return;
                }
            }
        });
        ScriptedPeer {
            addr,
            script,
            conns,
            accept,
        }
    }

    /// Where the client connects.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The script of connections accepted from now on.
    pub fn set_script(&self, script: Script) {
        self.script.send_replace(script);
    }

    /// The next client connection, in accept order.
    pub async fn accept(&mut self) -> PeerConnection {
        self.conns.recv().await.expect("the peer listens")
    }
}

impl Drop for ScriptedPeer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

enum Command {
    Send(Bytes),
    Script(Script),
    Silence,
    Close,
}

/// The sending half of a [`PeerConnection`] ([`PeerConnection::sender`]).
#[derive(Clone)]
pub struct PeerSender {
    commands: mpsc::UnboundedSender<Command>,
}

impl PeerSender {
    /// Sends `packet`, encoded as a broker would.
    pub fn send(&self, packet: &Packet) {
        let mut buf = BytesMut::new();
        packet.write(&mut buf, None).expect("encodable packet");
        self.send_raw(buf.freeze());
    }

    /// Sends `bytes` as they are: anything, framed or not (see [`raw`]).
    pub fn send_raw(&self, bytes: impl Into<Bytes>) {
        let _ = self.commands.send(Command::Send(bytes.into()));
    }

    /// Publishes `payload` on `topic` (any bytes, UTF-8 or not) at QoS 0.
    pub fn publish(
        &self,
        topic: impl Into<Bytes>,
        payload: impl Into<Bytes>,
        properties: Option<PublishProperties>,
    ) {
        self.send(&Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: topic.into(),
            pkid: 0,
            payload: payload.into(),
            properties,
        }));
    }
}

/// One client connection. Dropping it closes the connection.
pub struct PeerConnection {
    /// When the listener accepted it.
    pub accepted_at: Instant,
    events: mpsc::UnboundedReceiver<Seen>,
    commands: mpsc::UnboundedSender<Command>,
}

impl PeerConnection {
    /// The next thing the connection saw; after [`Seen::Closed`], always
    /// `Closed` again.
    pub async fn next(&mut self) -> Seen {
        self.events
            .recv()
            .await
            .unwrap_or_else(|| Seen::Closed("connection ended".into()))
    }

    /// The next packet of the kind `pick` accepts, skipping others;
    /// `Err` with the reason when the connection ends first.
    pub async fn next_matching<T>(
        &mut self,
        mut pick: impl FnMut(Packet) -> Option<T>,
    ) -> Result<T, String> {
        loop {
            match self.next().await {
                Seen::Packet(p) => {
                    if let Some(t) = pick(*p) {
                        return Ok(t);
                    }
                }
                Seen::Closed(why) => return Err(why),
            }
        }
    }

    /// The next SUBSCRIBE (granted or not, as the script says).
    pub async fn subscribe(&mut self) -> Result<Subscribe, String> {
        self.next_matching(|p| match p {
            Packet::Subscribe(s) => Some(s),
            _ => None,
        })
        .await
    }

    /// The next PUBLISH of the client.
    pub async fn publish_seen(&mut self) -> Result<Publish, String> {
        self.next_matching(|p| match p {
            Packet::Publish(p) => Some(p),
            _ => None,
        })
        .await
    }

    /// Waits until the connection ends, skipping packets; the reason.
    pub async fn closed(&mut self) -> String {
        loop {
            if let Seen::Closed(why) = self.next().await {
                return why;
            }
        }
    }

    /// Sends `packet`, encoded as a broker would.
    pub fn send(&self, packet: &Packet) {
        self.sender().send(packet);
    }

    /// Sends `bytes` as they are: anything, framed or not (see [`raw`]).
    pub fn send_raw(&self, bytes: impl Into<Bytes>) {
        self.sender().send_raw(bytes);
    }

    /// Publishes `payload` on `topic` (any bytes, UTF-8 or not) at QoS 0.
    pub fn publish(
        &self,
        topic: impl Into<Bytes>,
        payload: impl Into<Bytes>,
        properties: Option<PublishProperties>,
    ) {
        self.sender().publish(topic, payload, properties);
    }

    /// A handle that sends on this connection, for a task that keeps
    /// sending while the test reads what the client sends.
    pub fn sender(&self) -> PeerSender {
        PeerSender {
            commands: self.commands.clone(),
        }
    }

    /// Grants `subscribe` now (after the script withheld its SUBACK).
    pub fn suback(&self, subscribe: &Subscribe) {
        self.send(&Packet::SubAck(grant(subscribe)));
    }

    /// Changes how this connection answers from now on.
    pub fn set_script(&self, script: Script) {
        let _ = self.commands.send(Command::Script(script));
    }

    /// Half-open from here on: the connection stays up, but nothing more
    /// is read or answered (what [`PeerConnection::send`] queues still goes).
    pub fn silence(&self) {
        let _ = self.commands.send(Command::Silence);
    }

    /// Closes the connection with a FIN.
    pub fn close(&self) {
        let _ = self.commands.send(Command::Close);
    }
}

/// A SUBACK granting every filter of `s` at the QoS it asked for.
fn grant(s: &Subscribe) -> SubAck {
    SubAck {
        pkid: s.pkid,
        return_codes: s
            .filters
            .iter()
            .map(|f| SubscribeReasonCode::Success(f.qos))
            .collect(),
        properties: None,
    }
}

/// Byte strings no conforming broker sends, for [`PeerConnection::send_raw`]
/// and [`PeerConnection::publish`].
pub mod raw {
    use bytes::Bytes;
    use rumqttc::v5::mqttbytes::v5::PublishProperties;

    /// A PUBLISH fixed header whose remaining length runs past the four
    /// bytes MQTT allows: the stream cannot be framed any further.
    pub fn bad_remaining_length() -> Bytes {
        Bytes::from_static(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01])
    }

    /// Properties of a PUBLISH whose empty topic stands for `alias`, an
    /// alias the broker never set (a protocol error).
    pub fn unknown_topic_alias(alias: u16) -> PublishProperties {
        PublishProperties {
            topic_alias: Some(alias),
            ..PublishProperties::default()
        }
    }

    /// Properties that flag the payload as UTF-8 (Payload Format Indicator 1).
    pub fn utf8_flagged(mut props: PublishProperties) -> PublishProperties {
        props.payload_format_indicator = Some(1);
        props
    }
}

/// Plays the broker side of one connection.
async fn serve(
    mut stream: TcpStream,
    mut script: Script,
    events: mpsc::UnboundedSender<Seen>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut silent = false;
    let why = loop {
        tokio::select! {
            cmd = commands.recv() => match cmd {
                // The test dropped the connection.
                None => return,
                Some(Command::Send(b)) => {
                    if let Err(e) = stream.write_all(&b).await {
                        break format!("write failed: {e}");
                    }
                }
                Some(Command::Script(s)) => script = s,
                Some(Command::Silence) => silent = true,
                Some(Command::Close) => {
                    let _ = stream.shutdown().await;
                    break "closed by the test".to_owned();
                }
            },
            r = stream.read_buf(&mut buf), if !silent => match r {
                Ok(0) => break "closed by the client".to_owned(),
                Err(e) => break format!("read failed: {e}"),
                Ok(_) => match answer_all(&mut buf, &script, &events) {
                    Ok(out) => {
                        let done = out.close;
                        if !out.bytes.is_empty() && stream.write_all(&out.bytes).await.is_err() {
                            break "write failed".to_owned();
                        }
                        if done {
                            let _ = stream.shutdown().await;
                            break "closed by the peer's script".to_owned();
                        }
                    }
                    Err(why) => break why,
                },
            },
        }
    };
    let _ = events.send(Seen::Closed(why));
    // Keep the socket until the test lets go of the connection, so a
    // half-closed stream is not turned into a reset by an early drop.
    while commands.recv().await.is_some() {}
}

/// What answering the packets read so far produced.
struct Answers {
    bytes: BytesMut,
    close: bool,
}

/// Decodes every whole packet in `buf`, reports it, and encodes the
/// script's answers.
fn answer_all(
    buf: &mut BytesMut,
    script: &Script,
    events: &mpsc::UnboundedSender<Seen>,
) -> Result<Answers, String> {
    let mut out = Answers {
        bytes: BytesMut::new(),
        close: false,
    };
    loop {
        let packet = match Packet::read(buf, None) {
            Ok(p) => p,
            Err(CodecError::InsufficientBytes(_)) => return Ok(out),
            Err(e) => return Err(format!("undecodable packet: {e}")),
        };
        let answer = match &packet {
            Packet::Connect(..) => script.connack.map(|code| {
                out.close = code != ConnectReturnCode::Success;
                Packet::ConnAck(ConnAck {
                    session_present: false,
                    code,
                    properties: None,
                })
            }),
            Packet::Subscribe(s) if script.suback => Some(Packet::SubAck(grant(s))),
            Packet::PingReq(_) if script.pingresp => Some(Packet::PingResp(PingResp)),
            Packet::Publish(p) if script.puback => match p.qos {
                QoS::AtMostOnce => None,
                QoS::AtLeastOnce => Some(Packet::PubAck(PubAck::new(p.pkid, None))),
                QoS::ExactlyOnce => Some(Packet::PubRec(PubRec::new(p.pkid, None))),
            },
            Packet::PubRel(r) => Some(Packet::PubComp(PubComp::new(r.pkid, None))),
            Packet::Disconnect(_) => {
                out.close = true;
                None
            }
            _ => None,
        };
        if let Some(a) = answer {
            a.write(&mut out.bytes, None)
                .map_err(|e| format!("cannot encode {a:?}: {e}"))?;
        }
        let _ = events.send(Seen::Packet(Box::new(packet)));
        if out.close {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests;
