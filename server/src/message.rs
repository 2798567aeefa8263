//! What the MQTT session hands the core: every publish on the gateway's
//! subscriptions, decoded into a plain value (see `mqtt::contract`). A
//! leaf, so the core and the session meet here and nowhere else.

use bytes::Bytes;
use thingcall_proto::wire::Presence;

use crate::outcome::{CallId, Reply};

/// One decoded message; device ids and names borrow the packet's topic.
#[derive(Debug)]
pub enum Inbound<'a> {
    /// A final reply (native) or ack (seed) to call `id`, on `device`'s reply topic.
    Reply {
        /// The device named by the topic it came on.
        device: &'a str,
        /// The call it answers.
        id: CallId,
        /// The answer.
        reply: Reply,
    },
    /// The interim `stage=accepted` reply to call `id`.
    Accepted {
        /// The device named by the topic it came on.
        device: &'a str,
        /// The call it is about.
        id: CallId,
    },
    /// A device's retained presence; `None` when it was cleared.
    Presence {
        /// The device.
        device: &'a str,
        /// Its presence document.
        presence: Option<Presence>,
    },
    /// A device event, for watchers.
    Event {
        /// The device.
        device: &'a str,
        /// The event's name (last topic level).
        name: &'a str,
        /// Its payload.
        payload: Bytes,
        /// Its ContentType.
        content_type: Option<String>,
    },
    /// A seed ack naming another call than its topic: trusted for neither.
    Mismatched,
    /// Undecodable: no or wrong CorrelationData, a bad status, bad JSON.
    Malformed,
    /// On a subscription but about nothing the gateway tracks.
    Unrelated,
}
