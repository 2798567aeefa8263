//! A raw MQTT 5 peer for the tests that play a device themselves: every
//! packet the broker sends reaches the test in order, and the connection is
//! never silently redone, so a test can assert what the broker refused,
//! granted and delivered.

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{
    Packet, PubAckReason, Publish, PublishProperties, SubscribeReasonCode,
};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use thingcall_proto::wire::tls::TlsFiles;
use thingcall_testkit::Mosquitto;
use tokio::sync::mpsc;

use super::soon;

/// A raw MQTT 5 client the test drives packet by packet, for example an
/// honest device whose every answer the test times, or a misbehaving one.
pub struct Peer {
    pub client: AsyncClient,
    packets: mpsc::UnboundedReceiver<Result<Packet, String>>,
    poll: tokio::task::JoinHandle<()>,
}

impl Peer {
    /// Connects to `broker`'s TLS listener with a client certificate of
    /// common name `cn`, claiming client id `client_id`.
    pub fn over_tls(broker: &Mosquitto, cn: &str, client_id: &str) -> Self {
        let (cert, key) = broker.client_cert(cn);
        let tls = TlsFiles {
            ca: Some(broker.ca_path()),
            client: Some((cert, key)),
            alpn: Vec::new(),
        }
        .load()
        .expect("TLS files");
        let port = broker.tls_addr().expect("TLS").port();
        let mut opts = MqttOptions::new(client_id, "127.0.0.1", port);
        opts.set_transport(rumqttc::Transport::tls_with_config(tls));
        Self::connect(opts)
    }

    /// Connects to `broker`'s plain listener with a login, claiming the
    /// username as client id.
    pub fn with_password(broker: &Mosquitto, username: &str, password: &str) -> Self {
        let mut opts = MqttOptions::new(username, "127.0.0.1", broker.port());
        opts.set_credentials(username, password);
        Self::connect(opts)
    }

    /// Connects with `opts` (raised packet size; rumqttc's default is 10 KiB).
    pub fn connect(mut opts: MqttOptions) -> Self {
        opts.set_max_packet_size(Some(1 << 20));
        let (client, mut eventloop) = AsyncClient::new(opts, 16);
        let (tx, packets) = mpsc::unbounded_channel();
        // Forwards what the broker sends; ends on the first error, so a
        // dropped connection is seen by the test and never silently redone.
        let poll = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(p)) => {
                        if tx.send(Ok(p)).is_err() {
                            return;
                        }
                    }
                    Ok(Event::Outgoing(_)) => {}
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                }
            }
        });
        Self {
            client,
            packets,
            poll,
        }
    }

    /// The error that ended the connection, failing the test on any packet.
    pub async fn refused(&mut self) -> String {
        match soon("the broker's verdict", self.packets.recv()).await {
            Some(Err(e)) => e,
            other => panic!("expected a refused connection, got {other:?}"),
        }
    }

    /// Reads packets until `pick` takes one. Fails the test on a lost
    /// connection and on any publish that `pick` does not take: a peer
    /// receives nothing the test does not expect.
    pub async fn until<T>(&mut self, what: &str, mut pick: impl FnMut(&Packet) -> Option<T>) -> T {
        soon(what, async {
            loop {
                let packet = self
                    .packets
                    .recv()
                    .await
                    .expect("poll task alive")
                    .unwrap_or_else(|e| panic!("{what}: connection lost: {e}"));
                if let Some(t) = pick(&packet) {
                    return t;
                }
                if let Packet::Publish(p) = packet {
                    panic!("{what}: unexpected publish on {:?}", topic_of(&p));
                }
            }
        })
        .await
    }

    /// Subscribes to `filters` (QoS 1) and returns the broker's SUBACK codes.
    pub async fn subscribe(&mut self, filters: &[String]) -> Vec<SubscribeReasonCode> {
        for f in filters {
            self.client
                .subscribe(f.clone(), QoS::AtLeastOnce)
                .await
                .expect("queue subscribe");
        }
        let mut codes = Vec::new();
        while codes.len() < filters.len() {
            let acked = self
                .until("SUBACK", |p| match p {
                    Packet::SubAck(a) => Some(a.return_codes.clone()),
                    _ => None,
                })
                .await;
            codes.extend(acked);
        }
        codes
    }

    /// The next publish the broker delivers.
    pub async fn request(&mut self, what: &str) -> Publish {
        self.until(what, |p| match p {
            Packet::Publish(p) => Some(p.clone()),
            _ => None,
        })
        .await
    }

    /// Publishes `payload` at QoS 1 and returns the broker's PUBACK reason.
    pub async fn publish(
        &mut self,
        topic: &str,
        props: PublishProperties,
        payload: &'static str,
    ) -> PubAckReason {
        self.client
            .publish_with_properties(topic, QoS::AtLeastOnce, false, payload, props)
            .await
            .expect("queue publish");
        self.until("PUBACK", |p| match p {
            Packet::PubAck(a) => Some(a.reason),
            _ => None,
        })
        .await
    }

    /// Publishes `payload` as a reply with `correlation`; the PUBACK reason.
    pub async fn reply(
        &mut self,
        topic: &str,
        correlation: Bytes,
        payload: &'static str,
    ) -> PubAckReason {
        let props = PublishProperties {
            correlation_data: Some(correlation),
            ..Default::default()
        };
        self.publish(topic, props, payload).await
    }

    /// Answers `request` on its ResponseTopic with its CorrelationData.
    pub async fn answer(&mut self, request: &Publish, payload: &'static str) -> PubAckReason {
        let (topic, correlation) = reply_address(request);
        self.reply(&topic, correlation, payload).await
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.poll.abort();
    }
}

/// A publish's topic as text.
pub fn topic_of(p: &Publish) -> String {
    String::from_utf8_lossy(&p.topic).into_owned()
}

/// A request's ResponseTopic and CorrelationData.
pub fn reply_address(request: &Publish) -> (String, Bytes) {
    let props = request.properties.as_ref().expect("request properties");
    (
        props.response_topic.clone().expect("ResponseTopic"),
        props.correlation_data.clone().expect("CorrelationData"),
    )
}
