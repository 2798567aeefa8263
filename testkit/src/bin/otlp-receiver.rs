#![forbid(unsafe_code)]
//! `otlp-receiver ADDR`: an OTLP/gRPC trace receiver that prints one line
//! per span it gets, so a script can check what processes exported:
//!
//! `service trace_id span_id parent_span_id kind name`
//!
//! (`-` for an empty parent). Used by `.ci/smoke.sh` to follow one curl call
//! across the gateway and simulator binaries; it stops on SIGTERM.

use std::io::Write;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;

struct Print;

#[tonic::async_trait]
impl TraceService for Print {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut out = std::io::stdout().lock();
        for rs in req.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    Value::StringValue(s) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| "-".to_owned());
            for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
                let parent = if span.parent_span_id.is_empty() {
                    "-".to_owned()
                } else {
                    hex(&span.parent_span_id)
                };
                let _ = writeln!(
                    out,
                    "{service} {} {} {parent} {} {}",
                    hex(&span.trace_id),
                    hex(&span.span_id),
                    span.kind().as_str_name(),
                    span.name
                );
            }
        }
        let _ = out.flush();
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let Some(addr) = std::env::args().nth(1) else {
        eprintln!("usage: otlp-receiver ADDR");
        std::process::exit(64);
    };
    let addr = addr.parse().unwrap_or_else(|e| {
        eprintln!("otlp-receiver: bad address {addr}: {e}");
        std::process::exit(64);
    });
    let stop = async {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            term.recv().await;
        }
    };
    if let Err(e) = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(Print))
        .serve_with_shutdown(addr, stop)
        .await
    {
        eprintln!("otlp-receiver: {e}");
        std::process::exit(1);
    }
}
