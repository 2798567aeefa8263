//! A fleet that is only presence: retained online documents for many
//! device ids published over one MQTT connection, so a gateway can be
//! measured tracking a million devices without a million connections
//! (`thingcall-fleet`). The devices do not exist: calls to them time out.
//!
//! The messages go out at QoS 0 as fast as the connection takes them; one
//! QoS 1 publish follows, and since a broker handles one client's packets
//! in order, its PUBACK says every retained document before it is stored.

use std::time::{Duration, Instant};

use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event};
use thingcall_proto::wire::{validate_id, BrokerUrl, Presence, Topics};

/// Requests rumqttc queues between this task and its event loop.
const QUEUE: usize = 16 * 1024;

/// What to load.
#[derive(Debug, Clone)]
pub struct FleetPlan {
    /// The broker (mqtt:// or mqtts://).
    pub broker: BrokerUrl,
    /// Devices are `{prefix}1` ..= `{prefix}{count}`.
    pub prefix: String,
    /// How many device ids.
    pub count: u64,
    /// Topic root shared with the gateway.
    pub topic_root: String,
    /// Methods each presence document lists.
    pub methods: Vec<String>,
    /// Clear the documents (empty retained messages) instead of loading.
    pub clear: bool,
}

/// What a load did.
#[derive(Debug, Clone, Copy)]
pub struct Loaded {
    /// Retained messages published (and stored: the broker acknowledged
    /// the QoS 1 publish that followed them).
    pub published: u64,
    /// From CONNACK to that acknowledgement.
    pub took: Duration,
}

impl FleetPlan {
    /// Checks the ids the plan makes (the first and the longest) and the
    /// methods against the wire contract, so nothing invalid is published.
    pub fn validate(&self) -> Result<(), String> {
        if self.count == 0 {
            return Err("--devices must be at least 1".into());
        }
        validate_id("device id", &format!("{}{}", self.prefix, self.count))
            .map_err(|e| e.to_string())?;
        for m in &self.methods {
            validate_id("method", m).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// The id of device `n` (1-based).
    pub fn device(&self, n: u64) -> String {
        format!("{}{n}", self.prefix)
    }
}

/// Publishes the plan's documents; `progress` is called about once a
/// second with the number published so far.
pub async fn load(plan: &FleetPlan, mut progress: impl FnMut(u64)) -> Result<Loaded, String> {
    plan.validate()?;
    let client_id = format!("thingcall-fleet-{}", uuid::Uuid::new_v4().simple());
    let mut opts = thingcall_proto::wire::endpoint::mqtt_options(client_id, &plan.broker, None)?;
    opts.set_keep_alive(Duration::from_secs(30))
        .set_clean_start(true);
    let mut net = rumqttc::NetworkOptions::new();
    net.set_tcp_nodelay(true);
    opts.set_network_options(net);
    let (client, mut eventloop) = AsyncClient::new(opts, QUEUE);

    // The event loop runs beside the publisher; it ends with the PUBACK of
    // the final QoS 1 publish, or with the first connection error.
    let (connected_tx, connected) = tokio::sync::oneshot::channel();
    let goodbye = client.clone();
    let driver = tokio::spawn(async move {
        let mut connected_tx = Some(connected_tx);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    if let Some(tx) = connected_tx.take() {
                        let _ = tx.send(Instant::now());
                    }
                }
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    // Stored; say goodbye (best effort) and stop.
                    if goodbye.try_disconnect().is_ok() {
                        while let Ok(ev) = eventloop.poll().await {
                            if matches!(ev, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                                break;
                            }
                        }
                    }
                    return Ok(());
                }
                Ok(_) => {}
                Err(e) => return Err(format!("broker connection: {e}")),
            }
        }
    });

    let topics = Topics::new(&plan.topic_root);
    let body = || -> Vec<u8> {
        if plan.clear {
            Vec::new()
        } else {
            Presence {
                online: true,
                session: uuid::Uuid::new_v4().to_string(),
                methods: plan.methods.clone(),
            }
            .to_json()
        }
    };
    let start = match tokio::time::timeout(Duration::from_secs(10), connected).await {
        Ok(Ok(t)) => t,
        _ => {
            return Err(match driver.await {
                Ok(Err(e)) => e,
                _ => "no CONNACK from the broker within 10 s".into(),
            })
        }
    };
    let mut last_report = Instant::now();
    for n in 1..=plan.count {
        let topic = topics.presence(&plan.device(n));
        if client
            .publish(topic, QoS::AtMostOnce, true, body())
            .await
            .is_err()
        {
            break;
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            last_report = Instant::now();
            progress(n);
        }
    }
    // The marker: not retained, on a topic no gateway subscribes to.
    let marker = format!("{}/fleet-loader/done", plan.topic_root);
    let _ = client
        .publish(marker, QoS::AtLeastOnce, false, Vec::new())
        .await;
    match driver.await {
        Ok(Ok(())) => Ok(Loaded {
            published: plan.count,
            took: start.elapsed(),
        }),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(format!("the MQTT task failed: {e}")),
    }
}
