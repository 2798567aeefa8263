//! `grpc.health.v1.Health` as tonic-health serves it, except that its
//! `Watch` streams end when the gateway stops. They never end by
//! themselves, so an open one would otherwise hold the HTTP server's
//! graceful shutdown until its deadline.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use thingcall_proto::v1::device_gateway_server::DeviceGatewayServer;
use tokio::sync::watch;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_health::server::{HealthReporter, HealthService};

/// The health service; its statuses are set through the reporter.
pub struct EndingHealth {
    inner: HealthService,
    closed: watch::Receiver<bool>,
}

/// The health service of `reporter`, whose Watch streams end once `closed`
/// turns true.
pub fn service(
    reporter: &HealthReporter,
    closed: watch::Receiver<bool>,
) -> HealthServer<EndingHealth> {
    HealthServer::new(EndingHealth {
        inner: HealthService::from_health_reporter(reporter.clone()),
        closed,
    })
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Health for EndingHealth {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        self.inner.check(request).await
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let statuses = self.inner.watch(request).await?.into_inner();
        let mut closed = self.closed.clone();
        let end = async move {
            let _ = closed.wait_for(|c| *c).await;
        };
        Ok(Response::new(Box::pin(statuses.take_until(end))))
    }
}

/// Sets the DeviceGateway service's health to SERVING while the MQTT
/// session is up and the gateway is not draining, NOT_SERVING otherwise,
/// and reports each status set on `shown`.
pub async fn track_readiness(
    health: HealthReporter,
    mut connected: watch::Receiver<bool>,
    mut draining: watch::Receiver<bool>,
    shown: watch::Sender<bool>,
) {
    loop {
        let ready = *connected.borrow_and_update() && !*draining.borrow();
        if ready {
            health
                .set_serving::<DeviceGatewayServer<crate::api::grpc::GrpcApi>>()
                .await;
        } else {
            health
                .set_not_serving::<DeviceGatewayServer<crate::api::grpc::GrpcApi>>()
                .await;
        }
        // After the status is set: who waits on this sees it in health too.
        shown.send_replace(ready);
        tokio::select! {
            changed = connected.changed() => if changed.is_err() { return },
            // (the Ref `wait_for` gives must not live across the await below)
            _ = async { draining.wait_for(|d| *d).await.is_ok() } => {
                health.set_not_serving::<DeviceGatewayServer<crate::api::grpc::GrpcApi>>().await;
                return;
            }
        }
    }
}
