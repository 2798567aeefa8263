#![forbid(unsafe_code)]
//! What every thingcall component agrees on: the gRPC API (`thingcall.v1`)
//! and the MQTT 5 wire contract between gateway and devices ([`wire`]).

pub mod codec;
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
