//! gRPC adapter: `thingcall.v1.DeviceGateway` over the core.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use thingcall_proto::v1::device_gateway_server::DeviceGateway;
use thingcall_proto::v1::{
    Device, DeviceEvent, GetDeviceRequest, InvokeManyEvent, InvokeManyRequest, InvokeRequest,
    InvokeResponse, ListDevicesRequest, ListDevicesResponse, WatchDeviceRequest,
};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::auth::layer::grpc_access;
use crate::auth::Access;
use crate::gateway::Gateway;
use crate::telemetry::{Caller, Surface};

/// How an Invoke over gRPC names its span.
pub const INVOKE: Surface = Surface {
    span_name: "thingcall.v1.DeviceGateway/Invoke",
    attributes: &[
        ("rpc.system", "grpc"),
        ("rpc.service", "thingcall.v1.DeviceGateway"),
        ("rpc.method", "Invoke"),
    ],
};

/// How an Invoke over gRPC-web names its span.
pub const INVOKE_WEB: Surface = Surface {
    span_name: "thingcall.v1.DeviceGateway/Invoke",
    attributes: &[
        ("rpc.system", "grpc"),
        ("rpc.service", "thingcall.v1.DeviceGateway"),
        ("rpc.method", "Invoke"),
        ("thingcall.protocol", "grpc-web"),
    ],
};

/// How each call of an InvokeMany over gRPC (or gRPC-web) names its span.
pub const INVOKE_MANY: Surface = Surface {
    span_name: "thingcall.v1.DeviceGateway/InvokeMany",
    attributes: &[
        ("rpc.system", "grpc"),
        ("rpc.service", "thingcall.v1.DeviceGateway"),
        ("rpc.method", "InvokeMany"),
    ],
};

/// The service implementation; cheap to clone.
#[derive(Clone)]
pub struct GrpcApi {
    core: Arc<Gateway>,
}

impl GrpcApi {
    /// Serves `core`.
    pub fn new(core: Arc<Gateway>) -> Self {
        Self { core }
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<DeviceEvent, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl DeviceGateway for GrpcApi {
    // Written out rather than as an `async fn`: async_trait's future would
    // hold the whole `Request` (headers included) and a second copy of it
    // for as long as the call lives. Here the request is taken apart first
    // and the boxed future holds only the core's call.
    fn invoke<'life0, 'async_trait>(
        &'life0 self,
        request: Request<InvokeRequest>,
    ) -> Pin<Box<dyn Future<Output = Result<Response<InvokeResponse>, Status>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        let caller = invoke_caller(
            &self.core,
            request.metadata().as_ref(),
            grpc_access(&request),
        );
        let call = self.core.invoke(request.into_inner(), caller);
        // `map`, not an async block: awaiting a captured future would keep
        // it twice, once captured and once being awaited.
        Box::pin(call.map(|result| Ok(Response::new(result?.into_response()))))
    }

    type InvokeManyStream =
        Pin<Box<dyn Stream<Item = Result<InvokeManyEvent, Status>> + Send + 'static>>;

    async fn invoke_many(
        &self,
        request: Request<InvokeManyRequest>,
    ) -> Result<Response<Self::InvokeManyStream>, Status> {
        let caller = Caller::from_headers(
            self.core.tracing(),
            request.metadata().as_ref(),
            INVOKE_MANY,
            grpc_timeout(request.metadata().as_ref()).map(|t| Instant::now() + t),
        )
        .with_access(grpc_access(&request));
        let events = self.core.invoke_many(request.into_inner(), caller)?;
        Ok(Response::new(Box::pin(events.map(Ok))))
    }

    type WatchDeviceStream = EventStream;

    async fn watch_device(
        &self,
        request: Request<WatchDeviceRequest>,
    ) -> Result<Response<Self::WatchDeviceStream>, Status> {
        let access = grpc_access(&request);
        let req = request.into_inner();
        let stream = self.core.watch(&access, &req.target, req.include_events)?;
        Ok(Response::new(Box::pin(
            stream.map(|ev| Ok(DeviceEvent::clone(&ev))),
        )))
    }

    async fn get_device(
        &self,
        request: Request<GetDeviceRequest>,
    ) -> Result<Response<Device>, Status> {
        let access = grpc_access(&request);
        Ok(Response::new(
            self.core
                .get_device(&access, &request.into_inner().target)?,
        ))
    }

    async fn list_devices(
        &self,
        request: Request<ListDevicesRequest>,
    ) -> Result<Response<ListDevicesResponse>, Status> {
        let access = grpc_access(&request);
        let r = request.into_inner();
        Ok(Response::new(self.core.list_devices(
            &access,
            &r.target,
            r.page_size,
            &r.page_token,
        )?))
    }
}

/// The caller of an Invoke with `headers` (gRPC or gRPC-web, told apart
/// by the content type), which may do what `access` grants; shared with
/// the unary route ([`crate::api::unary`]).
pub(crate) fn invoke_caller(core: &Gateway, headers: &http::HeaderMap, access: Access) -> Caller {
    let tracing = core.tracing();
    let web = tracing
        && headers
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc-web"));
    let deadline = grpc_timeout(headers).map(|t| Instant::now() + t);
    Caller::from_headers(
        tracing,
        headers,
        if web { INVOKE_WEB } else { INVOKE },
        deadline,
    )
    .with_access(access)
}

/// Parses the `grpc-timeout` header (`<= 8 digits><H|M|S|m|u|n>`).
fn grpc_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    thingcall_proto::deadline::parse_grpc_timeout(headers.get("grpc-timeout")?.to_str().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_grpc_timeout_from_metadata() {
        let mut m = tonic::metadata::MetadataMap::new();
        assert_eq!(grpc_timeout(m.as_ref()), None);
        m.insert("grpc-timeout", "250m".parse().unwrap());
        assert_eq!(grpc_timeout(m.as_ref()), Some(Duration::from_millis(250)));
        m.insert("grpc-timeout", "10x".parse().unwrap());
        assert_eq!(grpc_timeout(m.as_ref()), None);
    }
}
