//! Publishing on one MQTT connection with a way to learn when the broker
//! has the message.
//!
//! rumqttc tells its user only "publish with packet id N went out" and "N
//! was acknowledged", never which of the user's publishes N was. Its request
//! channel is FIFO and the event loop turns each queued publish into exactly
//! one `Outgoing::Publish(pkid)` event, in order (a packet id collision only
//! delays it). So every publish queued here also queues a waiter, under one
//! lock, and the event loop hands each `Outgoing::Publish` to the oldest
//! waiter. A semaphore sized below the channel's capacity makes the
//! non-blocking `try_publish` always find room, so queueing the waiter and
//! the publish is one atomic step and cancelling a caller can never leave
//! the two queues out of step.

use std::collections::VecDeque;

use bytes::Bytes;
use parking_lot::Mutex;
use rumqttc::v5::mqttbytes::v5::PublishProperties;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::AsyncClient;
use tokio::sync::{oneshot, Semaphore};

/// Publishes one connection may have queued but not yet handed to the
/// network; matches the outgoing in-flight limit.
pub(crate) const PUBLISH_SLOTS: usize = 16;
/// Capacity of rumqttc's request channel: the publish slots plus room for
/// the SUBSCRIBE and DISCONNECT this crate sends outside the outbox.
pub(crate) const CHANNEL_CAPACITY: usize = PUBLISH_SLOTS + 4;

/// Why a publish did not reach the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gone {
    /// The connection ended first.
    Disconnected,
    /// rumqttc refused the topic (for example a ResponseTopic with `+`).
    InvalidTopic,
}

impl std::fmt::Display for Gone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Gone::Disconnected => "connection closed",
            Gone::InvalidTopic => "invalid topic",
        })
    }
}

/// Whether `topic` can be published to: MQTT forbids empty topics and
/// wildcards, and a ResponseTopic comes from the network unchecked.
fn valid_topic(topic: &str) -> bool {
    !topic.is_empty() && !topic.contains(['+', '#', '\0'])
}

/// Resolves once the broker has the publish: PubAck (QoS 1), PubComp
/// (QoS 2), or for QoS 0 once it was written to the socket.
pub(crate) struct Ticket(oneshot::Receiver<()>);

impl Ticket {
    /// Waits for the broker's acknowledgement; `Err` if the connection ended
    /// before it came.
    pub(crate) async fn confirmed(self) -> Result<(), Gone> {
        self.0.await.map_err(|_| Gone::Disconnected)
    }
}

/// Waiters in flight: queued in channel order, then by packet id.
#[derive(Default)]
struct Waiters {
    /// Publishes queued to rumqttc but not yet seen going out, oldest first.
    queued: VecDeque<(QoS, oneshot::Sender<()>)>,
    /// Publishes sent with QoS > 0, waiting for their ack; few (<= slots).
    unacked: Vec<(u16, oneshot::Sender<()>)>,
}

/// The publishing side of one connection (see the module docs).
pub(crate) struct Outbox {
    client: AsyncClient,
    slots: Semaphore,
    waiters: Mutex<Waiters>,
}

impl Outbox {
    /// Wraps the client of a fresh connection whose channel capacity is
    /// [`CHANNEL_CAPACITY`].
    pub(crate) fn new(client: AsyncClient) -> Self {
        Self {
            client,
            slots: Semaphore::new(PUBLISH_SLOTS),
            waiters: Mutex::default(),
        }
    }

    /// The underlying client, for SUBSCRIBE and DISCONNECT.
    pub(crate) fn client(&self) -> &AsyncClient {
        &self.client
    }

    /// Queues a publish, waiting for a free slot when the connection is busy.
    /// Never call this from the task that polls the event loop: slots free
    /// up only when that task runs.
    pub(crate) async fn publish(
        &self,
        topic: String,
        qos: QoS,
        retain: bool,
        payload: Bytes,
        props: PublishProperties,
    ) -> Result<Ticket, Gone> {
        if !valid_topic(&topic) {
            return Err(Gone::InvalidTopic);
        }
        let slot = self.slots.acquire().await.map_err(|_| Gone::Disconnected)?;
        let (tx, rx) = oneshot::channel();
        let mut waiters = self.waiters.lock();
        waiters.queued.push_back((qos, tx));
        // The topic is valid and a slot guarantees room, so this fails only
        // when the event loop is gone.
        match self
            .client
            .try_publish_with_properties(topic, qos, retain, payload, props)
        {
            Ok(()) => {
                // The slot comes back when the event loop takes the publish.
                slot.forget();
                Ok(Ticket(rx))
            }
            Err(_) => {
                // Nothing else can have queued meanwhile: we hold the lock.
                waiters.queued.pop_back();
                Err(Gone::Disconnected)
            }
        }
    }

    /// Ends the outbox: pending and future publishes fail with
    /// [`Gone::Disconnected`].
    pub(crate) fn close(&self) {
        self.slots.close();
        let mut w = self.waiters.lock();
        w.queued.clear();
        w.unacked.clear();
    }

    /// Event loop: a publish with packet id `pkid` went out (0 for QoS 0).
    pub(crate) fn sent(&self, pkid: u16) {
        let mut w = self.waiters.lock();
        let Some((qos, tx)) = w.queued.pop_front() else {
            return;
        };
        self.slots.add_permits(1);
        if qos == QoS::AtMostOnce {
            let _ = tx.send(());
        } else {
            w.unacked.push((pkid, tx));
        }
    }

    /// Event loop: the broker acknowledged packet id `pkid` (PubAck/PubComp).
    pub(crate) fn acked(&self, pkid: u16) {
        let mut w = self.waiters.lock();
        if let Some(i) = w.unacked.iter().position(|(id, _)| *id == pkid) {
            let (_, tx) = w.unacked.swap_remove(i);
            let _ = tx.send(());
        }
    }
}
