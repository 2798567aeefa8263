#![forbid(unsafe_code)]
//! What every thingcall component agrees on: the gRPC API (`thingcall.v1`)
//! the MQTT 5 wire contract between gateway and devices ([`wire`]), and the
//! error table every surface shares ([`reason::Reason`]).

#[cfg(feature = "aws")]
pub mod aws;
pub mod codec;
pub mod deadline;
pub mod reason;
pub mod size;
#[cfg(feature = "otel")]
pub mod trace;
pub mod wire;

/// Generated gRPC types and the `DeviceGateway` client and server.
pub mod v1 {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("thingcall.v1");
}

/// Encoded `FileDescriptorSet` of the API, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/thingcall_descriptor.bin"));

pub use reason::Reason;
