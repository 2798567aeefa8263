//! The one router of the gateway's port: gRPC (h2c) and gRPC-web on the
//! gRPC routes (tonic-web answers 400 to other HTTP/1.1 requests there),
//! then HTTP/JSON, the seed `/invoke`, and a JSON 404 for anything else;
//! authentication in front of all of it when configured, inside CORS. The
//! browser console's static files sit outside authentication (the page must
//! load before its user can type a token).

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderName, Method};
use axum::Router;
use thingcall_proto::v1::device_gateway_server::DeviceGatewayServer;
use tonic_health::pb::health_server::HealthServer;
use tonic_web::GrpcWebLayer;
use tower::Layer;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

use crate::api::grpc::GrpcApi;
use crate::api::grpc_frames::{max_message, CheckFrames};
use crate::gateway::Gateway;

/// Every API over `gateway`, behind `auth` when set.
pub fn router(
    gateway: Arc<Gateway>,
    auth: Option<Arc<crate::auth::Auth>>,
    health_service: HealthServer<crate::api::health::EndingHealth>,
    cors_origins: &[String],
) -> Router {
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(thingcall_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let web = GrpcWebLayer::new();
    // Framing checks under tonic-web, so gRPC and gRPC-web share them.
    let max_payload = gateway.config().max_payload;
    let device_gateway = DeviceGatewayServer::new(GrpcApi::new(gateway.clone()))
        .max_decoding_message_size(max_message(max_payload));
    let grpc = tonic::service::Routes::builder()
        .add_service(web.layer(CheckFrames::new(device_gateway, max_payload)))
        .add_service(web.layer(health_service))
        .add_service(web.layer(reflection().build_v1().expect("descriptor sets are valid")))
        .add_service(
            web.layer(
                reflection()
                    .build_v1alpha()
                    .expect("descriptor sets are valid"),
            ),
        )
        .clone()
        .routes()
        .prepare()
        .into_axum_router();
    let mut app = grpc
        .merge(crate::api::http::router(gateway.clone()))
        .merge(crate::api::seed::router(gateway))
        .fallback(crate::api::http::not_found);
    if let Some(auth) = auth {
        // Inside CORS: a browser's preflight carries no credentials.
        app = app.layer(axum::middleware::from_fn_with_state(
            auth,
            crate::auth::layer::authenticate,
        ));
    }
    // Merged after the auth layer, so it does not wrap these routes.
    app.merge(crate::api::console::router())
        .layer(crate::api::cors::BrowserCorsLayer(cors(cors_origins)))
}

/// CORS for browsers on the configured origins; exposes the gRPC status
/// headers so gRPC-web clients can read errors.
fn cors(origins: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| o.parse().ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers([
            HeaderName::from_static("grpc-status"),
            HeaderName::from_static("grpc-message"),
            HeaderName::from_static("grpc-status-details-bin"),
            HeaderName::from_static("retry-after"),
        ])
        .max_age(Duration::from_secs(600))
}
