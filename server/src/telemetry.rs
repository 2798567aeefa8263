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

/// How a call's server span is named and described: each adapter declares
/// its own (route, RPC name, protocol), so the core knows no adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Surface {
    /// The server span's name, e.g. `POST /v1/devices/{target}/methods/{method}`.
    pub span_name: &'static str,
    /// Attributes of the server span besides the call's own.
    pub attributes: &'static [(&'static str, &'static str)],
}

impl Surface {
    /// A call made in-process, through no adapter.
    pub const IN_PROCESS: Surface = Surface {
        span_name: "invoke",
        attributes: &[],
    };
}

impl Default for Surface {
    fn default() -> Self {
        Surface::IN_PROCESS
    }
}

/// What the core knows of a call's caller besides the request.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The caller's own deadline (gRPC `grpc-timeout`).
    pub deadline: Option<std::time::Instant>,
    /// The caller's trace context; read from its headers only when tracing.
    pub parent: Option<Context>,
    /// Where the call came in, as its adapter describes it.
    pub surface: Surface,
    /// What the caller may do (from its credentials and the policy).
    pub access: crate::auth::Access,
}

impl Caller {
    /// The caller of a request with `headers`, arriving on `surface`. The
    /// headers are read only when `tracing`, for the caller's trace context.
    pub fn from_headers(
        tracing: bool,
        headers: &http::HeaderMap,
        surface: Surface,
        deadline: Option<std::time::Instant>,
    ) -> Caller {
        Caller {
            deadline,
            parent: tracing.then(|| thingcall_proto::trace::from_headers(headers)),
            surface,
            access: crate::auth::Access::All,
        }
    }

    /// The same caller with `access`.
    pub fn with_access(self, access: crate::auth::Access) -> Caller {
        Caller { access, ..self }
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
            KeyValue::new("thingcall.request_id", id.to_string()),
        ];
        let surface = caller.surface;
        attrs.extend(
            surface
                .attributes
                .iter()
                .map(|(k, v)| KeyValue::new(*k, *v)),
        );
        let span = tracer
            .span_builder(surface.span_name)
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

    /// The call's trace id when its trace is sampled, for the exemplar of
    /// its duration bucket: an unsampled trace is exported nowhere, so an
    /// exemplar of it would link to nothing.
    pub fn sampled_trace_id(&self) -> Option<opentelemetry::trace::TraceId> {
        let span = self.cx.span();
        let cx = span.span_context();
        cx.is_sampled().then(|| cx.trace_id())
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
                span.set_attribute(KeyValue::new("thingcall.outcome", e.reason().name()));
                span.set_status(Status::error(format!("{}: {e}", e.reason())));
            }
        }
        span.end();
    }
}
