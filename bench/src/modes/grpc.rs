//! `--mode grpc`: Invoke through tonic over h2c on thingcall-client's
//! `Direct` transport (the `h2` crate's connection, no task in between), as
//! `Client::connect` does for `http://`; `--mode grpc-channel`: the same
//! over tonic's `Channel`, to compare the two. One HTTP/2 connection per 64
//! workers so high concurrency is not capped by one connection's stream
//! limit.

use std::sync::Arc;

use thingcall_client::proto::device_gateway_client::DeviceGatewayClient;
use thingcall_client::{endpoint, CallError, Direct, Transport};

use super::invoke::InvokeWorker;
use super::CallSpec;
use crate::args::Mode;
use crate::Setup;

/// Workers sharing one HTTP/2 connection.
pub const WORKERS_PER_CONNECTION: usize = 64;

/// A worker's client on its connection.
pub type Worker = InvokeWorker<Transport>;

/// One worker template per connection, made eagerly.
pub struct Grpc {
    connections: Vec<Worker>,
}

impl Grpc {
    /// Opens `ceil(concurrency / 64)` connections to `server`: `Direct`
    /// ones for [`Mode::Grpc`] to an `http://` gateway, `Channel`s for
    /// [`Mode::GrpcChannel`] (and for `https://` or `unix:`, which `Direct`
    /// does not speak).
    pub async fn connect(
        server: &str,
        spec: Arc<CallSpec>,
        concurrency: u16,
        mode: Mode,
    ) -> Result<Grpc, Setup> {
        let n = usize::from(concurrency)
            .div_ceil(WORKERS_PER_CONNECTION)
            .max(1);
        let mut connections = Vec::with_capacity(n);
        for _ in 0..n {
            let endpoint = endpoint(server).map_err(|e| Setup::Usage(e.message))?;
            let transport = if mode == Mode::Grpc && Direct::serves(server) {
                Transport::Direct(Direct::connect(server).await.map_err(Setup::from_call)?)
            } else {
                let channel = endpoint
                    .connect()
                    .await
                    .map_err(|e| Setup::from_call(CallError::from(e)))?;
                Transport::Channel(channel)
            };
            connections.push(InvokeWorker::new(
                DeviceGatewayClient::new(transport),
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
