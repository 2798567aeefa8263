//! Protocol adapters: thin translations between a wire API and the core.

pub mod grpc;
pub mod status;
