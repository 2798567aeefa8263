//! `--mode grpc-web`: the same Invoke as a browser makes it, through
//! `tonic_web`'s client layer over a pooled HTTP/1.1 client.

use std::sync::Arc;

use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use thingcall_client::proto::device_gateway_client::DeviceGatewayClient;
use tonic_web::{GrpcWebCall, GrpcWebClientService};

use super::invoke::InvokeWorker;
use super::{probe_gateway, CallSpec};
use crate::Setup;

type HttpClient = Client<HttpConnector, GrpcWebCall<tonic::body::Body>>;

/// A worker's clone of the client (the pool is shared).
pub type Worker = InvokeWorker<GrpcWebClientService<HttpClient>>;

/// The pooled client.
pub struct GrpcWeb {
    template: Worker,
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
        probe_gateway(server).await?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let http: HttpClient = Client::builder(TokioExecutor::new()).build(connector);
        let client = DeviceGatewayClient::with_origin(GrpcWebClientService::new(http), origin);
        Ok(GrpcWeb {
            template: InvokeWorker::new(client, spec)?,
        })
    }

    /// A handle for one worker.
    pub fn worker(&self) -> Worker {
        self.template.clone()
    }
}
