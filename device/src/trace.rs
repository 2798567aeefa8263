//! The device's span for one request: a child of the gateway's publish span
//! (from the request's `traceparent` user property), covering the method's
//! execution, exported by whatever tracer provider the process installed
//! globally (`thingcall-sim` installs one from the `OTEL_*` environment; a
//! library user may install their own, or none: then a traced request costs
//! a no-op span and no attributes).

use opentelemetry::global::{self, BoxedSpan};
use opentelemetry::trace::{Span as _, SpanKind, Status, Tracer};
use opentelemetry::KeyValue;
use thingcall_proto::trace::from_user_properties;

/// A request's span while its method runs.
pub(crate) type Span = BoxedSpan;

/// Starts the span of `method` on `device`, received on `topic`.
pub(crate) fn start(topic: &str, device: &str, method: &str, props: &[(String, String)]) -> Span {
    let parent = from_user_properties(props);
    let tracer = global::tracer("thingcall-device");
    let mut span = tracer
        .span_builder(format!("execute {method}"))
        .with_kind(SpanKind::Consumer)
        .start_with_context(&tracer, &parent);
    // Attributes only when the span goes somewhere: their strings are copies.
    if span.is_recording() {
        span.set_attributes([
            KeyValue::new("messaging.system", "mqtt"),
            KeyValue::new("messaging.operation.type", "process"),
            KeyValue::new("messaging.destination.name", topic.to_owned()),
            KeyValue::new("thingcall.device", device.to_owned()),
            KeyValue::new("thingcall.method", method.to_owned()),
        ]);
    }
    span
}

/// Ends the span with the reply's status; 5xx marks it as an error.
pub(crate) fn finish(mut span: Span, status: i32) {
    span.set_attribute(KeyValue::new("thingcall.status", i64::from(status)));
    if status >= 500 {
        span.set_status(Status::error(format!("device answered {status}")));
    }
    span.end();
}
