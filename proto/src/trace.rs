//! W3C trace context where thingcall carries it (HTTP headers and gRPC
//! metadata in, MQTT 5 user properties to the device), and the OTLP tracer
//! provider every thingcall process builds from the standard environment.
//!
//! Shared by the gateway and the device library so that both ends of the
//! MQTT hop agree on the property names and on what turns tracing on.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;

use crate::wire::{PROP_TRACEPARENT, PROP_TRACESTATE};

/// The caller's context from HTTP headers (gRPC metadata are headers too);
/// an empty context when there is none or it is malformed.
pub fn from_headers(headers: &http::HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&Headers(headers))
}

/// The sender's context from an MQTT message's user properties.
pub fn from_user_properties(props: &[(String, String)]) -> Context {
    TraceContextPropagator::new().extract(&UserProperties(props))
}

/// Appends `traceparent` (and `tracestate` when not empty) for `cx` to an
/// MQTT message's user properties. Nothing is added for an invalid context.
pub fn inject_user_properties(cx: &Context, props: &mut Vec<(String, String)>) {
    TraceContextPropagator::new().inject_context(cx, &mut Append(props));
}

/// Whether the environment asks for traces: an OTLP endpoint is set
/// (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
/// and `OTEL_SDK_DISABLED` is not `true`. Without it nothing is built and
/// tracing costs nothing.
pub fn enabled_by_env() -> bool {
    let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.trim().is_empty());
    let disabled =
        std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.trim().eq_ignore_ascii_case("true"));
    !disabled && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

/// A tracer provider exporting OTLP over gRPC in batches, configured by the
/// standard `OTEL_*` variables (endpoint, `OTEL_SERVICE_NAME`,
/// `OTEL_TRACES_SAMPLER[_ARG]`, `OTEL_RESOURCE_ATTRIBUTES`), or `None` when
/// [`enabled_by_env`] says no. `default_service` names the process when
/// `OTEL_SERVICE_NAME` is unset. Call inside a Tokio runtime (the exporter's
/// gRPC channel lives on it), and `shutdown` the provider on exit to flush.
pub fn provider_from_env(default_service: &str) -> Result<Option<SdkTracerProvider>, String> {
    if !enabled_by_env() {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(|e| format!("OTLP exporter: {e}"))?;
    let mut resource = Resource::builder();
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name(default_service.to_owned());
    }
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build(),
    ))
}

struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct UserProperties<'a>(&'a [(String, String)]);

impl Extractor for UserProperties<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_str()).collect()
    }
}

struct Append<'a>(&'a mut Vec<(String, String)>);

impl Injector for Append<'_> {
    fn set(&mut self, key: &str, value: String) {
        debug_assert!(key == PROP_TRACEPARENT || key == PROP_TRACESTATE);
        self.0.push((key.to_owned(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TraceContextExt;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn context_crosses_headers_then_user_properties() {
        let mut h = http::HeaderMap::new();
        h.insert("traceparent", PARENT.parse().unwrap());
        h.insert("tracestate", "vendor=1".parse().unwrap());
        let cx = from_headers(&h);
        assert!(cx.span().span_context().is_valid());

        let mut props = vec![("deadline".to_owned(), "1".to_owned())];
        inject_user_properties(&cx, &mut props);
        assert!(props.contains(&(PROP_TRACEPARENT.to_owned(), PARENT.to_owned())));
        assert!(props.contains(&(PROP_TRACESTATE.to_owned(), "vendor=1".to_owned())));

        let back = from_user_properties(&props);
        assert_eq!(
            back.span().span_context().trace_id(),
            cx.span().span_context().trace_id()
        );
    }

    #[test]
    fn garbage_gives_an_empty_context_and_injects_nothing() {
        let props = vec![(PROP_TRACEPARENT.to_owned(), "nonsense".to_owned())];
        let cx = from_user_properties(&props);
        assert!(!cx.span().span_context().is_valid());
        let mut out = Vec::new();
        inject_user_properties(&cx, &mut out);
        assert!(out.is_empty());
    }
}
