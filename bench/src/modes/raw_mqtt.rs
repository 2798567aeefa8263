//! `--mode raw-mqtt`: the floor. The wire contract spoken straight to the
//! broker over ONE MQTT 5 connection, no gateway: the correlation work any
//! minimal requester must do (a table from correlation id to waiting call,
//! filled by the event-loop task) and nothing more.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop};
use rumqttc::Outgoing;
use thingcall_proto::wire::Topics;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{CallSpec, Done, MqttSetup};
use crate::breakdown::Figures;
use crate::mqtt::{parse_reply, Reply, Requests};
use crate::tally::Outcome;
use crate::Setup;

/// The floor subscribes to its replies the way the gateway does (QoS 0 on a
/// clean session), so the two legs differ only by the gateway.
const REPLY_QOS: QoS = QoS::AtMostOnce;
/// Longest wait for the broker to connect and confirm the subscription.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(15);

/// What the event loop hands a waiting call: the device's status (`None`:
/// unreadable) and, with `--breakdown`, its execution time.
type Answer = (Option<i32>, Option<Duration>);

/// Calls waiting for their reply, by correlation id.
type Pending = Mutex<HashMap<u128, oneshot::Sender<Answer>>>;

/// The one connection and its correlation table.
pub struct RawMqtt {
    shared: Arc<Shared>,
    event_loop: JoinHandle<()>,
}

struct Shared {
    client: AsyncClient,
    pending: Pending,
    /// High 64 bits of every correlation id: random per run.
    nonce: u64,
    next: AtomicU64,
    requests: Requests,
    /// `{root}/gateways/{bench-id}/replies/{target}` by target index.
    reply_topics: Vec<String>,
    /// `--breakdown`: read each reply's `exec-us`.
    breakdown: bool,
}

/// A worker's handle.
pub struct Worker {
    shared: Arc<Shared>,
}

impl RawMqtt {
    /// Connects as `bench-<random>`, subscribes to its reply topics and
    /// waits for the SubAck; a broker that cannot be reached is
    /// [`Setup::Unreachable`].
    pub async fn connect(
        spec: Arc<CallSpec>,
        mqtt: MqttSetup,
        concurrency: u16,
    ) -> Result<RawMqtt, Setup> {
        let id = uuid::Uuid::new_v4();
        let bench_id = super::run_id(&id);
        let topics = Topics::new(mqtt.topic_root.clone());
        let capacity = usize::from(concurrency) * 2 + 16;
        let opts = mqtt.broker.options(bench_id.clone(), capacity, concurrency);
        let (client, event_loop) = AsyncClient::new(opts, capacity);
        let filter = topics.replies_filter(&bench_id);
        let shared = Arc::new(Shared {
            client: client.clone(),
            pending: Mutex::new(HashMap::new()),
            nonce: id.as_u64_pair().0,
            next: AtomicU64::new(0),
            requests: Requests::new(&topics, &spec, mqtt.qos),
            reply_topics: spec
                .targets
                .iter()
                .map(|t| topics.reply(&bench_id, t))
                .collect(),
            breakdown: spec.breakdown,
        });
        let (ready_tx, ready_rx) = oneshot::channel();
        let task = tokio::spawn(run_event_loop(
            event_loop,
            shared.clone(),
            filter.clone(),
            ready_tx,
        ));
        // Queued now, sent by the event loop once connected.
        client
            .subscribe(filter, REPLY_QOS)
            .await
            .map_err(|e| Setup::Unreachable(format!("MQTT client: {e}")))?;
        let url = &mqtt.broker.url;
        // Connecting is bounded by rumqttc; a SubAck that never comes is not.
        let ready = tokio::time::timeout(SUBSCRIBE_WAIT, ready_rx)
            .await
            .unwrap_or(Ok(Err("no SubAck".to_owned())));
        match ready {
            Ok(Ok(())) => Ok(RawMqtt {
                shared,
                event_loop: task,
            }),
            Ok(Err(why)) => Err(Setup::Unreachable(format!(
                "broker {}:{}: {why}",
                url.host, url.port
            ))),
            Err(_) => Err(Setup::Unreachable(format!(
                "broker {}:{}: event loop ended",
                url.host, url.port
            ))),
        }
    }

    /// A handle for one worker.
    pub fn worker(&self) -> Worker {
        Worker {
            shared: self.shared.clone(),
        }
    }

    /// Disconnects cleanly (waiting at most a second) and stops the loop.
    pub async fn close(self) {
        let _ = self.shared.client.try_disconnect();
        let mut task = self.event_loop;
        if tokio::time::timeout(Duration::from_secs(1), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

impl Worker {
    /// One request and its reply.
    pub async fn call(&mut self, target: usize) -> Done {
        let s = &*self.shared;
        let id = (u128::from(s.nonce) << 64) | u128::from(s.next.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        s.pending.lock().expect("pending lock").insert(id, tx);
        let m = s
            .requests
            .request(target, s.reply_topics[target].clone(), id);
        let published = s
            .client
            .publish_with_properties(m.topic, s.requests.qos, false, m.payload, m.properties)
            .await;
        if published.is_err() {
            s.pending.lock().expect("pending lock").remove(&id);
            return Outcome::TRANSPORT.into();
        }
        match tokio::time::timeout(s.requests.timeout, rx).await {
            Ok(Ok((Some(status), device))) => Done {
                outcome: Outcome::from_device_status(status),
                figures: Figures {
                    gateway: None,
                    device,
                },
            },
            Ok(Ok((None, _))) => Outcome::MALFORMED_REPLY.into(),
            // The connection dropped: the table was cleared.
            Ok(Err(_)) => Outcome::TRANSPORT.into(),
            Err(_) => {
                s.pending.lock().expect("pending lock").remove(&id);
                Outcome::DEVICE_TIMEOUT.into()
            }
        }
    }
}

/// Polls the connection: hands each reply to its waiting call, reports
/// the first SubAck (or failure) on `ready`, re-subscribes after a
/// reconnect, and fails every waiting call when the connection drops.
/// It never awaits a publish or subscribe: only `try_` calls.
async fn run_event_loop(
    mut event_loop: EventLoop,
    shared: Arc<Shared>,
    filter: String,
    ready: oneshot::Sender<Result<(), String>>,
) {
    let mut ready = Some(ready);
    let mut connected_before = false;
    loop {
        match event_loop.poll().await {
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                if let Some(Reply {
                    correlation,
                    status,
                    exec,
                }) = parse_reply(publish)
                {
                    let waiter = shared
                        .pending
                        .lock()
                        .expect("pending lock")
                        .remove(&correlation);
                    if let Some(tx) = waiter {
                        let device = exec.filter(|_| shared.breakdown);
                        let _ = tx.send((status, device));
                    }
                }
            }
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                if connected_before {
                    let _ = shared.client.try_subscribe(filter.clone(), REPLY_QOS);
                }
                connected_before = true;
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                if let Some(tx) = ready.take() {
                    let refused = ack.return_codes.iter().find(|c| {
                        !matches!(
                            c,
                            rumqttc::v5::mqttbytes::v5::SubscribeReasonCode::Success(_)
                        )
                    });
                    let _ = tx.send(match refused {
                        None => Ok(()),
                        Some(code) => Err(format!("subscription to {filter} refused: {code:?}")),
                    });
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(e) => {
                if let Some(tx) = ready.take() {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
                // Dropping the senders fails the waiting calls (TRANSPORT).
                shared.pending.lock().expect("pending lock").clear();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
