//! One call's trace in the gateway: a server span for the call (child of
//! the caller's `traceparent`, when it sent one) and a producer span for the
//! MQTT publish, whose context travels to the device in the request's user
//! properties. Built only when the process was started with an OTLP endpoint
//! (see [`thingcall_proto::trace::provider_from_env`]); otherwise the core
//! holds no tracer and calls skip all of this.

use opentelemetry::trace::{Span, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;

use crate::calls::{CallId, Reply};
use crate::error::Error;

/// The API surface a call came in on: names its span and its attributes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Surface {
    /// gRPC (HTTP/2).
    #[default]
    Grpc,
    /// gRPC-web (browsers).
    GrpcWeb,
    /// `POST /v1/devices/{target}/methods/{method}`.
    Http,
    /// The AWS sample's `GET /invoke`.
    Seed,
}

/// What the core knows of a call's caller besides the request.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The caller's own deadline (gRPC `grpc-timeout`).
    pub deadline: Option<std::time::Instant>,
    /// The caller's trace context; read from its headers only when tracing.
    pub parent: Option<Context>,
    /// Where the call came in.
    pub surface: Surface,
}

impl Caller {
    /// The caller of a request with `headers`, arriving on `surface`. The
    /// headers are read only when `tracing`: for the caller's trace context,
    /// and to tell gRPC-web from gRPC (they share the gRPC routes).
    pub fn from_headers(
        tracing: bool,
        headers: &http::HeaderMap,
        surface: Surface,
        deadline: Option<std::time::Instant>,
    ) -> Caller {
        if !tracing {
            return Caller {
                deadline,
                parent: None,
                surface,
            };
        }
        let web = surface == Surface::Grpc
            && headers
                .get(http::header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc-web"));
        Caller {
            deadline,
            parent: Some(thingcall_proto::trace::from_headers(headers)),
            surface: if web { Surface::GrpcWeb } else { surface },
        }
    }
}

/// The spans of one call.
pub struct CallTrace {
    cx: Context,
    tracer: SdkTracer,
}

impl CallTrace {
    /// Starts the call's server span.
    pub fn start(
        tracer: &SdkTracer,
        caller: &Caller,
        target: &str,
        method: &str,
        id: CallId,
    ) -> Self {
        let parent = caller.parent.clone().unwrap_or_default();
        let mut attrs = vec![
            KeyValue::new("thingcall.target", target.to_owned()),
            KeyValue::new("thingcall.method", method.to_owned()),
            KeyValue::new(
                "thingcall.request_id",
                uuid::Uuid::from_u128(id).to_string(),
            ),
        ];
        let name = match caller.surface {
            Surface::Grpc | Surface::GrpcWeb => {
                attrs.extend([
                    KeyValue::new("rpc.system", "grpc"),
                    KeyValue::new("rpc.service", "thingcall.v1.DeviceGateway"),
                    KeyValue::new("rpc.method", "Invoke"),
                ]);
                if caller.surface == Surface::GrpcWeb {
                    attrs.push(KeyValue::new("thingcall.protocol", "grpc-web"));
                }
                "thingcall.v1.DeviceGateway/Invoke"
            }
            Surface::Http => {
                let route = "/v1/devices/{target}/methods/{method}";
                attrs.extend([
                    KeyValue::new("http.request.method", "POST"),
                    KeyValue::new("http.route", route),
                ]);
                "POST /v1/devices/{target}/methods/{method}"
            }
            Surface::Seed => {
                attrs.extend([
                    KeyValue::new("http.request.method", "GET"),
                    KeyValue::new("http.route", "/invoke"),
                ]);
                "GET /invoke"
            }
        };
        let span = tracer
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .with_attributes(attrs)
            .start_with_context(tracer, &parent);
        CallTrace {
            cx: parent.with_span(span),
            tracer: tracer.clone(),
        }
    }

    /// The call's trace id, for its log lines.
    pub fn trace_id(&self) -> opentelemetry::trace::TraceId {
        self.cx.span().span_context().trace_id()
    }

    /// A producer span for the request's publish to `topic`, ended at once
    /// (queued is all the gateway knows); its context goes in the request's
    /// user properties so the device's span becomes its child.
    pub fn publish(&self, topic: &str, props: &mut Vec<(String, String)>) {
        let mut span = self
            .tracer
            .span_builder(format!("publish {topic}"))
            .with_kind(SpanKind::Producer)
            .with_attributes([
                KeyValue::new("messaging.system", "mqtt"),
                KeyValue::new("messaging.operation.type", "publish"),
                KeyValue::new("messaging.destination.name", topic.to_owned()),
            ])
            .start_with_context(&self.tracer, &self.cx);
        let cx = self
            .cx
            .with_remote_span_context(span.span_context().clone());
        thingcall_proto::trace::inject_user_properties(&cx, props);
        span.end();
    }

    /// Ends the call's span with its outcome; errors carry their reason,
    /// and a device's 5xx answer marks the span as failed too.
    pub fn finish(self, result: Result<&Reply, &Error>) {
        let span = self.cx.span();
        match result {
            Ok(reply) => {
                if let Some(at) = reply.accepted_at {
                    span.add_event_with_timestamp("accepted", at, vec![]);
                }
                span.add_event("reply received", vec![]);
                span.set_attribute(KeyValue::new("thingcall.outcome", "OK"));
                span.set_attribute(KeyValue::new("thingcall.status", i64::from(reply.status)));
                if reply.status >= 500 {
                    span.set_status(Status::error(format!("device answered {}", reply.status)));
                }
            }
            Err(e) => {
                if let Error::DeviceTimeout { accepted: true, .. } = e {
                    span.set_attribute(KeyValue::new("thingcall.accepted", true));
                }
                span.set_attribute(KeyValue::new("thingcall.outcome", e.reason()));
                span.set_status(Status::error(format!("{}: {e}", e.reason())));
            }
        }
        span.end();
    }
}
