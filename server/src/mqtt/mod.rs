//! The gateway's MQTT side: one session owned by one task ([`session`]),
//! the contract's topics and decoding ([`contract`]), the handle the
//! core publishes through ([`outbox`]), and one to check the link from
//! outside ([`link`]). The only place of the gateway that
//! names rumqttc's types.

pub mod contract;
pub mod link;
pub mod outbox;
pub mod session;

pub use contract::Router;
pub use link::{LinkControl, LinkDown};
pub use outbox::Outbox;
pub use session::{connect, Incoming, Session, SessionSettings};
