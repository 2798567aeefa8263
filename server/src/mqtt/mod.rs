//! The gateway's MQTT side: one session owned by one task.

pub mod session;

pub use session::{new_session, spawn_session, Incoming, SessionSettings};
