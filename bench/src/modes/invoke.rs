//! The worker of the two modes that call the generated gRPC client, `grpc`
//! (h2c) and `grpc-web` (tonic-web over HTTP/1.1): only the transport under
//! the client differs.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use thingcall_client::proto::device_gateway_client::DeviceGatewayClient;
use thingcall_client::proto::{InvokeRequest, InvokeResponse};
use tonic::client::GrpcService;
use tonic::codegen::{Body, Bytes, StdError};

use super::{guarded, status_outcome, CallSpec, Done};
use crate::breakdown::Figures;
use crate::tally::Outcome;
use crate::Setup;

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
    let idempotency_key = match &spec.keys {
        Some((run, next)) => format!("{run}-{}", next.fetch_add(1, Ordering::Relaxed)),
        None => String::new(),
    };
    InvokeRequest {
        target: spec.targets[target].clone(),
        method: spec.method.clone(),
        payload: spec.payload.clone(),
        timeout: Some(timeout),
        idempotency_key,
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;
    use std::time::Duration;

    use super::*;

    fn spec(keys: Option<(String, AtomicU64)>) -> CallSpec {
        CallSpec {
            targets: vec!["d-1".into()],
            method: "echo".into(),
            payload: Bytes::from_static(b"x"),
            timeout: Duration::from_secs(1),
            breakdown: false,
            keys,
        }
    }

    #[test]
    fn each_request_gets_its_own_key_only_when_asked() {
        let timeout = prost_types::Duration::default();
        let plain = spec(None);
        assert_eq!(invoke_request(&plain, 0, timeout).idempotency_key, "");
        let keyed = spec(Some(("run-a".into(), AtomicU64::new(0))));
        let a = invoke_request(&keyed, 0, timeout).idempotency_key;
        let b = invoke_request(&keyed, 0, timeout).idempotency_key;
        assert_eq!((a.as_str(), b.as_str()), ("run-a-0", "run-a-1"));
    }
}
