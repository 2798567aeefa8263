#![forbid(unsafe_code)]
#![warn(missing_docs)]
//! Client side of thingcall: a typed [`Client`] for the gateway's
//! `DeviceGateway` gRPC API, and the error model ([`CallError`]) that the
//! `thingcall` binary (crate `thingcall-cli`) turns into exit codes. No
//! MQTT client is in this crate's tree: callers speak gRPC only.
//!
//! ```no_run
//! # async fn demo() -> Result<(), thingcall_client::CallError> {
//! use thingcall_client::{Client, proto::InvokeRequest};
//! let mut client = Client::connect("http://127.0.0.1:8080").await?;
//! let reply = client
//!     .invoke(InvokeRequest {
//!         target: "demo-1".into(),
//!         method: "echo".into(),
//!         payload: b"hi".to_vec().into(),
//!         ..Default::default()
//!     })
//!     .await?;
//! assert_eq!(reply.status, 200);
//! # Ok(()) }
//! ```
//!
//! Exit codes of `thingcall` (see [`exit`]): 0 ok; 1 the device answered
//! with a status outside 200..=299; 2 usage error; 3 `INVALID_ARGUMENT` or
//! `PAYLOAD_TOO_LARGE`; 4 `DEVICE_OFFLINE`; 5 `DEVICE_TIMEOUT`;
//! 6 `DEVICE_DISCONNECTED`; 7 `METHOD_NOT_SUPPORTED`; 8 `BROKER_UNAVAILABLE`;
//! 9 `OVERLOADED`; 10 `SHUTTING_DOWN`; 11 `UNAUTHENTICATED` or
//! `PERMISSION_DENIED`; 69 gateway unreachable (transport error); 70
//! anything else.

mod client;
mod direct;
mod error;
mod transport;
mod unary;

pub use client::{endpoint, endpoint_with, Client, TlsOptions, GATEWAY_CONNECT_TIMEOUT};
pub use direct::Direct;
pub use error::{code_name, exit, reason, CallError, EXIT_CODES_HELP};
pub use transport::{Transport, TransportFuture};

/// The generated API types (`InvokeRequest`, `DeviceEvent`, ...), re-exported
/// so users of [`Client`] need no direct dependency on `thingcall-proto`.
pub use thingcall_proto::v1 as proto;
