//! An OTLP/gRPC trace receiver: keeps every span it gets, with the
//! `service.name` of the process that sent it, and can print each as a line
//! (`service trace_id span_id parent_span_id kind name`, `-` for no parent)
//! for scripts. The tests and the `otlp-receiver` binary share it.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value::Value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;

/// The receiver's state; clones share it.
#[derive(Clone, Default)]
pub struct Receiver {
    spans: Arc<Mutex<Vec<(String, Span)>>>,
    /// Counts export requests, so a test can wait for the next one.
    exports: Arc<tokio::sync::watch::Sender<u64>>,
    print: bool,
}

impl Receiver {
    /// A receiver that also prints every span to stdout as it arrives.
    pub fn printing() -> Receiver {
        Receiver {
            print: true,
            ..Receiver::default()
        }
    }

    /// Serves a new receiver on a free loopback port, in the background.
    pub async fn start() -> std::io::Result<(Receiver, SocketAddr)> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let receiver = Receiver::default();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(receiver.service())
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        Ok((receiver, addr))
    }

    /// The gRPC service to serve.
    pub fn service(&self) -> TraceServiceServer<Receiver> {
        TraceServiceServer::new(self.clone())
    }

    /// Every span so far, with its sender's `service.name`.
    pub fn spans(&self) -> Vec<(String, Span)> {
        self.spans.lock().unwrap().clone()
    }

    /// Waits until the spans received so far satisfy `done`, looking again
    /// after each export; returns them.
    pub async fn wait_for(
        &self,
        mut done: impl FnMut(&[(String, Span)]) -> bool,
    ) -> Vec<(String, Span)> {
        let mut exports = self.exports.subscribe();
        loop {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            exports
                .changed()
                .await
                .expect("the receiver outlives its waiters");
        }
    }
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut got = self.spans.lock().unwrap();
        let mut out = std::io::stdout().lock();
        for rs in req.into_inner().resource_spans {
            let service = rs
                .resource
                .as_ref()
                .and_then(|r| string_attr(&r.attributes, "service.name"))
                .unwrap_or_else(|| "-".to_owned());
            for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
                if self.print {
                    let _ = writeln!(out, "{}", line(&service, &span));
                }
                got.push((service.clone(), span));
            }
        }
        let _ = out.flush();
        drop(got);
        self.exports.send_modify(|n| *n += 1);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// An attribute's value as text, for strings, integers and booleans.
pub fn string_attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.clone()),
            Value::IntValue(i) => Some(i.to_string()),
            Value::BoolValue(b) => Some(b.to_string()),
            _ => None,
        }
    })
}

/// Bytes as lowercase hex, the way trace and span ids are written.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn line(service: &str, span: &Span) -> String {
    let parent = if span.parent_span_id.is_empty() {
        "-".to_owned()
    } else {
        hex(&span.parent_span_id)
    };
    format!(
        "{service} {} {} {parent} {} {}",
        hex(&span.trace_id),
        hex(&span.span_id),
        span.kind().as_str_name(),
        span.name
    )
}
