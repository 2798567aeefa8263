//! The worker of the two modes that call the generated gRPC client, `grpc`
//! (h2c) and `grpc-web` (tonic-web over HTTP/1.1): only the transport under
//! the client differs.

use std::sync::Arc;

use thingcall_cli::proto::device_gateway_client::DeviceGatewayClient;
use thingcall_cli::proto::{InvokeRequest, InvokeResponse};
use tonic::client::GrpcService;
use tonic::codegen::{Body, Bytes, StdError};

use super::{guarded, status_outcome, CallSpec, Done};
use crate::bench::breakdown::Figures;
use crate::bench::tally::Outcome;
use crate::bench::Setup;

/// One worker's client (clones share the connection or pool under it).
#[derive(Clone)]
pub struct InvokeWorker<T> {
    client: DeviceGatewayClient<T>,
    spec: Arc<CallSpec>,
    timeout: prost_types::Duration,
}

impl<T> InvokeWorker<T>
where
    T: GrpcService<tonic::body::Body>,
    T::Error: Into<StdError>,
    T::ResponseBody: Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as Body>::Error: Into<StdError> + Send,
{
    /// A worker calling through `client`; fails on a `--timeout` that
    /// protobuf cannot carry.
    pub fn new(client: DeviceGatewayClient<T>, spec: Arc<CallSpec>) -> Result<Self, Setup> {
        let timeout = prost_types::Duration::try_from(spec.timeout)
            .map_err(|_| Setup::Usage("--timeout is out of range".to_owned()))?;
        Ok(InvokeWorker {
            client,
            spec,
            timeout,
        })
    }

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

/// The Invoke request of one call to target number `target`.
pub fn invoke_request(
    spec: &CallSpec,
    target: usize,
    timeout: prost_types::Duration,
) -> InvokeRequest {
    InvokeRequest {
        target: spec.targets[target].clone(),
        method: spec.method.clone(),
        payload: spec.payload.clone(),
        timeout: Some(timeout),
        ..Default::default()
    }
}

/// The outcome of an Invoke, with the reply's `elapsed` and `device_time`
/// when `breakdown` asks for them.
pub fn invoke_done(
    result: Result<tonic::Response<InvokeResponse>, tonic::Status>,
    breakdown: bool,
) -> Done {
    match result {
        Ok(reply) => {
            let reply = reply.get_ref();
            let outcome = Outcome::from_device_status(reply.status);
            if !breakdown {
                return outcome.into();
            }
            // A negative (invalid) duration is no figure.
            let std = |d: Option<prost_types::Duration>| d.and_then(|d| d.try_into().ok());
            Done {
                outcome,
                figures: Figures {
                    gateway: std(reply.elapsed),
                    device: std(reply.device_time),
                },
            }
        }
        Err(status) => status_outcome(status).into(),
    }
}
