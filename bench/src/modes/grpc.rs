//! `--mode grpc`: Invoke through tonic over h2c, on one HTTP/2 connection
//! per 64 workers so high concurrency is not capped by one connection's
//! stream limit.

use std::sync::Arc;

use thingcall_client::proto::device_gateway_client::DeviceGatewayClient;
use thingcall_client::{endpoint, CallError};
use tonic::transport::Channel;

use super::invoke::InvokeWorker;
use super::CallSpec;
use crate::Setup;

/// Workers sharing one HTTP/2 connection.
pub const WORKERS_PER_CONNECTION: usize = 64;

/// A worker's client on its connection.
pub type Worker = InvokeWorker<Channel>;

/// One worker template per connection, made eagerly.
pub struct Grpc {
    connections: Vec<Worker>,
}

impl Grpc {
    /// Opens `ceil(concurrency / 64)` connections to `server`.
    pub async fn connect(
        server: &str,
        spec: Arc<CallSpec>,
        concurrency: u16,
    ) -> Result<Grpc, Setup> {
        let n = usize::from(concurrency)
            .div_ceil(WORKERS_PER_CONNECTION)
            .max(1);
        let mut connections = Vec::with_capacity(n);
        for _ in 0..n {
            let channel = endpoint(server)
                .map_err(|e| Setup::Usage(e.message))?
                .connect()
                .await
                .map_err(|e| Setup::from_call(CallError::from(e)))?;
            connections.push(InvokeWorker::new(
                DeviceGatewayClient::new(channel),
                spec.clone(),
            )?);
        }
        Ok(Grpc { connections })
    }

    /// Worker `index` uses connection `index % connections`.
    pub fn worker(&self, index: usize) -> Worker {
        self.connections[index % self.connections.len()].clone()
    }
}
