#![forbid(unsafe_code)]
//! thingcall gateway: cloud callers run methods on MQTT 5 devices
//! synchronously. One MQTT session per process carries every call; a
//! correlation table matches replies to callers.
//!
//! Layout: [`gateway`] is the core every API adapter calls; [`calls`],
//! [`presence`] and [`idempotency`] are its state (no I/O); [`outcome`] and
//! [`message`] are the values the layers share; [`mqtt`] owns the
//! connection and the contract's codec; [`api`] holds the thin protocol
//! adapters; [`server`] wires it together.

pub mod api;
pub mod auth;
/// The embedded MQTT 5 broker (crate `thingcall-broker`).
#[cfg(feature = "embedded-broker")]
pub use thingcall_broker as broker;
pub mod calls;
pub mod config;
pub mod error;
pub mod fanout;
/// Entry points of the fuzz targets: not an API (see the module).
#[doc(hidden)]
pub mod fuzzing;
pub mod gateway;
pub mod idempotency;
pub mod listener;
pub mod message;
pub mod metrics;
pub mod mqtt;
pub mod outcome;
pub mod presence;
pub mod server;
pub mod telemetry;
pub mod validate;
pub mod watch;

pub use config::Config;
pub use error::Error;
pub use gateway::Gateway;
pub use server::{run, start, Running, StopReport};
#[cfg(feature = "embedded-broker")]
pub use server::{start_local_demo, start_local_demo_with};
