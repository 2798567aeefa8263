//! `--mode conn-per-request`: the pattern the gateway replaces. Every call
//! opens a new MQTT 5 connection with a fresh client id, subscribes to its
//! own reply topic, publishes the request, waits for the reply and
//! disconnects.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::{Packet, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop};
use rumqttc::Outgoing;
use thingcall_proto::wire::Topics;

use super::{CallSpec, Done, MqttSetup};
use crate::breakdown::Figures;
use crate::mqtt::{parse_reply, Broker, Reply, Requests};
use crate::tally::Outcome;
use crate::Setup;

/// Requests queued on a per-call connection: subscribe, publish, disconnect.
const CALL_CAPACITY: usize = 8;
/// Longest wait for the DISCONNECT to leave after the reply.
const DISCONNECT_WAIT: Duration = Duration::from_secs(1);

/// What every call shares.
pub struct ConnPerRequest {
    shared: Arc<Shared>,
}

struct Shared {
    broker: Broker,
    topics: Topics,
    /// Prefix of the per-call client ids: `bench-<random>-`.
    id_prefix: String,
    /// High 64 bits of every correlation id: random per run, so a device
    /// that remembers the ids it ran never sees one again.
    nonce: u64,
    next: AtomicU64,
    requests: Requests,
    targets: Vec<String>,
    /// `--breakdown`: read each reply's `exec-us`.
    breakdown: bool,
}

/// A worker's handle.
pub struct Worker {
    shared: Arc<Shared>,
}

impl ConnPerRequest {
    /// Checks with one connection that the broker is reachable.
    pub async fn connect(spec: Arc<CallSpec>, mqtt: MqttSetup) -> Result<ConnPerRequest, Setup> {
        let uuid = uuid::Uuid::new_v4();
        let topics = Topics::new(mqtt.topic_root.clone());
        let shared = Arc::new(Shared {
            id_prefix: format!("{}-", super::run_id(&uuid)),
            nonce: uuid.as_u64_pair().1,
            next: AtomicU64::new(0),
            requests: Requests::new(&topics, &spec, mqtt.qos),
            targets: spec.targets.clone(),
            breakdown: spec.breakdown,
            broker: mqtt.broker,
            topics,
        });
        probe(&shared).await?;
        Ok(ConnPerRequest { shared })
    }

    /// A handle for one worker.
    pub fn worker(&self) -> Worker {
        Worker {
            shared: self.shared.clone(),
        }
    }
}

/// Connects, waits for the ConnAck and disconnects.
async fn probe(s: &Shared) -> Result<(), Setup> {
    let client_id = format!("{}probe", s.id_prefix);
    let (client, mut event_loop) =
        AsyncClient::new(s.broker.options(client_id, CALL_CAPACITY, 4), CALL_CAPACITY);
    let url = &s.broker.url;
    loop {
        match event_loop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => break,
            Ok(_) => {}
            Err(e) => {
                return Err(Setup::Unreachable(format!(
                    "broker {}:{}: {e}",
                    url.host, url.port
                )))
            }
        }
    }
    disconnect(&client, &mut event_loop).await;
    Ok(())
}

impl Worker {
    /// One call on its own connection. A connection that fails or does
    /// not finish subscribing within the timeout is `TRANSPORT`; no reply
    /// within the timeout is `DEVICE_TIMEOUT`.
    pub async fn call(&mut self, target: usize) -> Done {
        let s = &*self.shared;
        let n = s.next.fetch_add(1, Ordering::Relaxed);
        let client_id = format!("{}{n}", s.id_prefix);
        let reply_topic = s.topics.reply(&client_id, &s.targets[target]);
        let opts = s.broker.options(client_id, CALL_CAPACITY, 4);
        let (client, mut event_loop) = AsyncClient::new(opts, CALL_CAPACITY);
        // Queued: the event loop sends it once connected. Only try_ calls
        // here, since this task also polls the event loop.
        if client
            .try_subscribe(reply_topic.clone(), QoS::AtLeastOnce)
            .is_err()
        {
            return Outcome::TRANSPORT.into();
        }
        let correlation = (u128::from(s.nonce) << 64) | u128::from(n);
        let mut stage = Stage::Connecting;
        let mut device = None;
        let exchange = async {
            loop {
                match event_loop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => stage = Stage::Connected,
                    Ok(Event::Incoming(Packet::SubAck(ack))) => {
                        if !ack
                            .return_codes
                            .iter()
                            .all(|c| matches!(c, SubscribeReasonCode::Success(_)))
                        {
                            return Outcome::TRANSPORT;
                        }
                        stage = Stage::Subscribed;
                        let m = s.requests.request(target, reply_topic.clone(), correlation);
                        let sent = client.try_publish_with_properties(
                            m.topic,
                            s.requests.qos,
                            false,
                            m.payload,
                            m.properties,
                        );
                        if sent.is_err() {
                            return Outcome::TRANSPORT;
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => match parse_reply(p) {
                        Some(Reply {
                            correlation: c,
                            status,
                            exec,
                        }) if c == correlation => {
                            if s.breakdown {
                                device = exec;
                            }
                            return status
                                .map_or(Outcome::MALFORMED_REPLY, Outcome::from_device_status);
                        }
                        _ => {}
                    },
                    Ok(_) => {}
                    Err(_) => {
                        stage = Stage::Broken;
                        return Outcome::TRANSPORT;
                    }
                }
            }
        };
        let outcome = tokio::time::timeout(s.requests.timeout, exchange).await;
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(_) if stage == Stage::Subscribed => Outcome::DEVICE_TIMEOUT,
            Err(_) => Outcome::TRANSPORT,
        };
        if matches!(stage, Stage::Connected | Stage::Subscribed) {
            disconnect(&client, &mut event_loop).await;
        }
        Done {
            outcome,
            figures: Figures {
                gateway: None,
                device,
            },
        }
    }
}

/// How far a call's connection got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Connecting,
    Connected,
    Subscribed,
    /// The connection failed; polling again would reconnect.
    Broken,
}

/// Sends DISCONNECT and polls until it has left (or [`DISCONNECT_WAIT`]).
async fn disconnect(client: &AsyncClient, event_loop: &mut EventLoop) {
    if client.try_disconnect().is_err() {
        return;
    }
    let _ = tokio::time::timeout(DISCONNECT_WAIT, async {
        loop {
            match event_loop.poll().await {
                Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
}
