//! Building and queueing a call's MQTT request, in either contract.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rumqttc::v5::mqttbytes::v5::PublishProperties;
use thingcall_proto::v1::{Contract, InvokeRequest};
use thingcall_proto::wire::{self, SeedRequest};

use crate::calls::CallId;
use crate::gateway::Gateway;
use crate::telemetry::CallTrace;

impl Gateway {
    /// Queues the request for the session task without waiting: the queue
    /// holds more than the call table admits, so it is full only when the
    /// session is stuck, and then the answer is `BROKER_UNAVAILABLE` now.
    /// Returns whether the request was queued.
    pub(crate) fn publish_request(
        &self,
        req: &InvokeRequest,
        contract: Contract,
        id: CallId,
        deadline: Instant,
        trace: Option<&CallTrace>,
    ) -> bool {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if contract == Contract::Seed {
            return self.publish_seed_request(req, id, remaining);
        }
        let deadline_ms = unix_ms(SystemTime::now() + remaining);
        // Deadline, idempotency key, trace context (two), then metadata.
        let mut user_properties = Vec::with_capacity(4 + req.metadata.len());
        user_properties.push((wire::PROP_DEADLINE.to_owned(), deadline_ms.to_string()));
        if !req.idempotency_key.is_empty() {
            user_properties.push((
                wire::PROP_IDEMPOTENCY_KEY.to_owned(),
                req.idempotency_key.clone(),
            ));
        }
        user_properties.extend(req.metadata.iter().map(|(k, v)| (k.clone(), v.clone())));
        let topic = self.topics.request(&req.target, &req.method);
        if let Some(trace) = trace {
            trace.publish(&topic, &mut user_properties);
        }
        let props = PublishProperties {
            // Rounded up (at least 1 s: some brokers read 0 as "never") so a
            // device never sees a request expire early; the `deadline`
            // property carries the exact instant.
            message_expiry_interval: Some(expiry_secs(remaining)),
            response_topic: Some(self.topics.reply(&self.cfg.gateway_id, &req.target)),
            correlation_data: Some(bytes::Bytes::copy_from_slice(&id.to_bytes())),
            content_type: (!req.content_type.is_empty()).then(|| req.content_type.clone()),
            user_properties,
            ..Default::default()
        };
        self.client
            .try_publish_with_properties(topic, self.cfg.qos, false, req.payload.clone(), props)
            .is_ok()
    }

    /// The AWS sample's request: its topic layout and JSON body, the
    /// correlation id as `m_id`. MQTT 5 brokers still enforce the expiry.
    fn publish_seed_request(&self, req: &InvokeRequest, id: CallId, remaining: Duration) -> bool {
        let m_id = id.to_string();
        let body = SeedRequest {
            timestamp: unix_ms(SystemTime::now()).to_string(),
            // Validated as UTF-8 before the call was admitted.
            request: String::from_utf8_lossy(&req.payload).into_owned(),
            id: m_id.clone(),
        };
        let payload = serde_json::to_vec(&body).expect("seed request serializes");
        let props = PublishProperties {
            message_expiry_interval: Some(expiry_secs(remaining)),
            content_type: Some("application/json".to_owned()),
            ..Default::default()
        };
        self.client
            .try_publish_with_properties(
                self.seed.request(&req.target, &req.method, &m_id),
                self.cfg.qos,
                false,
                payload,
                props,
            )
            .is_ok()
    }
}

/// Milliseconds since the Unix epoch.
fn unix_ms(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()
}

/// MessageExpiryInterval for `remaining`: whole seconds rounded up, at least 1.
fn expiry_secs(remaining: Duration) -> u32 {
    let secs = remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0);
    secs.clamp(1, u64::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_rounds_up_and_is_never_zero() {
        assert_eq!(expiry_secs(Duration::ZERO), 1);
        assert_eq!(expiry_secs(Duration::from_millis(1)), 1);
        assert_eq!(expiry_secs(Duration::from_millis(1000)), 1);
        assert_eq!(expiry_secs(Duration::from_millis(1001)), 2);
        assert_eq!(expiry_secs(Duration::from_secs(300)), 300);
    }
}
