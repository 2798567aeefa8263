#![forbid(unsafe_code)]
#![warn(missing_docs)]
//! The device side of thingcall: serve methods to a thingcall gateway over
//! MQTT 5, for one real device or thousands of simulated ones.
//!
//! A device registers [`Handlers`], is started with [`spawn_device`] and
//! then follows the wire contract of `thingcall_proto::wire` by itself:
//!
//! - it connects with its id as client id, clean start, and a Last Will
//!   holding the retained offline presence of a fresh session id, so the
//!   broker announces a device that vanishes;
//! - it subscribes to `{root}/devices/{id}/methods/+`, then publishes its
//!   retained online presence (with its method names) and counts as online
//!   once the broker acknowledged it;
//! - each request runs in its own task; requests without a ResponseTopic,
//!   past their `deadline`, or with a correlation id already run are
//!   dropped; the reply goes to the ResponseTopic with the CorrelationData
//!   echoed and the `status` and `exec-us` user properties;
//! - lost connections come back with capped, jittered exponential backoff.
//!
//! With [`Contract::Seed`] a device speaks the AWS sample's contract instead
//! (`thingcall_proto::wire::SeedTopics`), so a gateway can be tried against
//! devices built for the sample:
//!
//! - no Last Will and no presence: it counts as online once subscribed to
//!   `{id}/#`, and a clean stop is just a DISCONNECT;
//! - a request on `{id}/{method}/{client_prefix}/{m_id}` carries
//!   `{"timestamp":..,"request":"<string>","id":"<m_id>"}`; malformed ones
//!   and message ids already run are dropped;
//! - the handler for `method` gets the `request` string as its payload; a
//!   method without a handler gets the sample's answer ([`seed_response`]);
//! - the ack goes to `{client_prefix}/{m_id}/{id}/{method}/ack` as
//!   `{"id":"<m_id>","response":R}`, R being the reply payload if it is JSON
//!   and the payload as a JSON string otherwise (statuses are not sent, and
//!   `ack` is ignored: the contract has no interim replies).
//!
//! ```no_run
//! # async fn demo() {
//! use thingcall_device::{spawn_device, standard_methods, DeviceOptions, Reply};
//!
//! let handlers = standard_methods().method("hello", |req| async move {
//!     Reply::ok(format!("hello from {}", req.device))
//! });
//! let device = spawn_device(DeviceOptions::new("pump-7", "127.0.0.1", 1883), handlers);
//! device.wait_online().await;
//! // ... serve until asked to stop, then:
//! device.shutdown().await;
//! # }
//! ```

pub mod broker_args;
mod device;
pub mod fds;
pub mod fleet;
mod handlers;
mod methods;
mod outbox;
mod seed;
mod seen;
mod serve;
mod session;
mod trace;
mod url;

/// Payload type of requests and replies (re-exported so callers need not
/// depend on `bytes` themselves).
pub use bytes::Bytes;
pub use device::{
    spawn_device, Contract, DeviceHandle, DeviceOptions, DeviceStats, DEFAULT_MAX_PACKET,
};
pub use handlers::{Handlers, Reply, Request};
pub use methods::{standard_methods, MAX_BIG_BYTES};
pub use seed::seed_response;
pub use url::parse_mqtt_url;
