//! `--mode grpc`: Invoke through tonic over h2c, on one HTTP/2 connection
//! per 64 workers so high concurrency is not capped by one connection's
//! stream limit.

use std::sync::Arc;

use thingcall_cli::{endpoint, CallError, Client};

use super::{guarded, invoke_done, invoke_request, CallSpec, Done};
use crate::bench::Setup;

/// Workers sharing one HTTP/2 connection.
pub const WORKERS_PER_CONNECTION: usize = 64;

/// The connections, made eagerly.
pub struct Grpc {
    clients: Vec<Client>,
    spec: Arc<CallSpec>,
    timeout: prost_types::Duration,
}

/// One worker's clone of its connection's client.
pub struct Worker {
    client: Client,
    spec: Arc<CallSpec>,
    timeout: prost_types::Duration,
}

impl Grpc {
    /// Opens `ceil(concurrency / 64)` connections to `server`.
    pub async fn connect(
        server: &str,
        spec: Arc<CallSpec>,
        concurrency: u16,
    ) -> Result<Grpc, Setup> {
        let timeout = prost_types::Duration::try_from(spec.timeout)
            .map_err(|_| Setup::Usage("--timeout is out of range".to_owned()))?;
        let n = usize::from(concurrency)
            .div_ceil(WORKERS_PER_CONNECTION)
            .max(1);
        let mut clients = Vec::with_capacity(n);
        for _ in 0..n {
            let channel = endpoint(server)
                .map_err(|e| Setup::Usage(e.message))?
                .connect()
                .await
                .map_err(|e| Setup::from_call(CallError::from(e)))?;
            clients.push(Client::new(channel));
        }
        Ok(Grpc {
            clients,
            spec,
            timeout,
        })
    }

    /// Worker `index` uses connection `index % connections`.
    pub fn worker(&self, index: usize) -> Worker {
        Worker {
            client: self.clients[index % self.clients.len()].clone(),
            spec: self.spec.clone(),
            timeout: self.timeout,
        }
    }
}

impl Worker {
    /// One Invoke.
    pub async fn call(&mut self, target: usize) -> Done {
        let spec = &self.spec;
        let req = invoke_request(spec, target, self.timeout);
        let client = &mut self.client;
        guarded(spec.timeout, async move {
            invoke_done(client.raw().invoke(req).await, spec.breakdown)
        })
        .await
    }
}
