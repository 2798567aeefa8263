//! [`Transport`]: the connection under a [`Client`](crate::Client), tonic's
//! `Channel` or the [`Direct`] h2c connection, behind one type so that
//! `Client` and its methods are the same for both.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use tonic::body::Body;
use tonic::transport::channel::ResponseFuture as ChannelFuture;
use tonic::transport::Channel;
use tower_service::Service;

use crate::direct::{BoxError, Direct, ResponseFuture as DirectFuture};

/// The gRPC transport of a [`Client`](crate::Client). A tower service, so
/// the generated `DeviceGatewayClient<Transport>` works over either.
#[derive(Debug, Clone)]
pub enum Transport {
    /// tonic's `Channel`: `https://` (TLS), `unix:` sockets, lazy
    /// connections and every `Endpoint` setting.
    Channel(Channel),
    /// One h2c connection without `Channel`'s buffer task, for `http://`
    /// gateways: less latency and CPU per call (see [`Direct`]).
    Direct(Direct),
}

impl From<Channel> for Transport {
    fn from(channel: Channel) -> Self {
        Transport::Channel(channel)
    }
}

impl From<Direct> for Transport {
    fn from(direct: Direct) -> Self {
        Transport::Direct(direct)
    }
}

/// The future of one call on a [`Transport`].
pub enum TransportFuture {
    /// See [`Transport::Channel`].
    Channel(ChannelFuture),
    /// See [`Transport::Direct`].
    Direct(DirectFuture),
}

impl Future for TransportFuture {
    type Output = Result<Response<Body>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            TransportFuture::Channel(f) => Pin::new(f).poll(cx).map_err(Into::into),
            TransportFuture::Direct(f) => f.as_mut().poll(cx),
        }
    }
}

impl Service<Request<Body>> for Transport {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = TransportFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            Transport::Channel(c) => Service::poll_ready(c, cx).map_err(Into::into),
            Transport::Direct(d) => d.poll_ready(cx),
        }
    }

    fn call(&mut self, req: Request<Body>) -> TransportFuture {
        match self {
            Transport::Channel(c) => TransportFuture::Channel(Service::call(c, req)),
            Transport::Direct(d) => TransportFuture::Direct(d.call(req)),
        }
    }
}
