//! Protocol adapters: thin translations between a wire API and the core.

pub mod app;
pub mod console;
pub mod cors;
pub mod grpc;
pub mod grpc_frames;
pub mod health;
pub mod http;
pub mod seed;
pub mod status;
pub mod unary;
