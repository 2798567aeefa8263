//! `--mode grpc-web`: the same Invoke as a browser makes it, through
//! `tonic_web`'s client layer over a pooled HTTP/1.1 client.

use std::sync::Arc;

use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use thingcall_cli::proto::device_gateway_client::DeviceGatewayClient;
use tonic_web::{GrpcWebCall, GrpcWebClientService};

use super::{guarded, invoke_done, invoke_request, probe_gateway, CallSpec, Done};
use crate::bench::Setup;

type HttpClient = Client<HttpConnector, GrpcWebCall<tonic::body::Body>>;
type WebClient = DeviceGatewayClient<GrpcWebClientService<HttpClient>>;

/// The pooled client.
pub struct GrpcWeb {
    client: WebClient,
    spec: Arc<CallSpec>,
    timeout: prost_types::Duration,
}

/// A worker's clone of the client (the pool is shared).
pub struct Worker {
    client: WebClient,
    spec: Arc<CallSpec>,
    timeout: prost_types::Duration,
}

impl GrpcWeb {
    /// Checks that the gateway answers and builds the client.
    pub async fn connect(server: &str, spec: Arc<CallSpec>) -> Result<GrpcWeb, Setup> {
        let origin: Uri = server
            .parse()
            .map_err(|e| Setup::Usage(format!("--server {server}: {e}")))?;
        if origin.scheme_str() != Some("http") {
            return Err(Setup::Usage(format!(
                "--mode grpc-web needs an http:// server, got {server}"
            )));
        }
        let timeout = prost_types::Duration::try_from(spec.timeout)
            .map_err(|_| Setup::Usage("--timeout is out of range".to_owned()))?;
        probe_gateway(server).await?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let http: HttpClient = Client::builder(TokioExecutor::new()).build(connector);
        let client = DeviceGatewayClient::with_origin(GrpcWebClientService::new(http), origin);
        Ok(GrpcWeb {
            client,
            spec,
            timeout,
        })
    }

    /// A handle for one worker.
    pub fn worker(&self) -> Worker {
        Worker {
            client: self.client.clone(),
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
            invoke_done(client.invoke(req).await, spec.breakdown)
        })
        .await
    }
}
