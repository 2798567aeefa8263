//! A call's request, in either contract, as the plain value the outbox
//! encodes and queues.

use std::time::{Duration, Instant, SystemTime};

use thingcall_proto::v1::{Contract, InvokeRequest};
use thingcall_proto::wire::{self, NativeRequest, SeedRequest, SeedRequestMessage};

use super::Gateway;
use crate::outcome::CallId;
use crate::telemetry::CallTrace;

impl Gateway {
    /// Queues the request for the session task without waiting: the queue
    /// holds more than the call table admits, so it is full only when the
    /// session is stuck, and then the answer is `BROKER_UNAVAILABLE` now.
    /// Returns whether the request was queued.
    pub(super) fn publish_request(
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
        // Idempotency key, trace context (two), then metadata; room for the
        // `deadline` the codec puts first.
        let mut user_properties = Vec::with_capacity(4 + req.metadata.len());
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
        self.outbox.send_native(NativeRequest {
            topic,
            response_topic: self.topics.reply(&self.cfg.gateway_id, &req.target),
            correlation: id.to_bytes(),
            payload: req.payload.clone(),
            deadline: SystemTime::now() + remaining,
            content_type: (!req.content_type.is_empty()).then(|| req.content_type.clone()),
            user_properties,
        })
    }

    /// The AWS sample's request: its topic layout and JSON body, the
    /// correlation id as `m_id`.
    fn publish_seed_request(&self, req: &InvokeRequest, id: CallId, remaining: Duration) -> bool {
        let m_id = id.to_string();
        let body = SeedRequest {
            timestamp: wire::unix_ms(SystemTime::now()).to_string(),
            // Validated as UTF-8 before the call was admitted.
            request: String::from_utf8_lossy(&req.payload).into_owned(),
            id: m_id.clone(),
        };
        self.outbox.send_seed(SeedRequestMessage {
            topic: self.seed.request(&req.target, &req.method, &m_id),
            body,
            remaining,
        })
    }
}
