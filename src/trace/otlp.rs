//! Finished spans and their OTLP protobuf form: the `ExportTraceServiceRequest` that an
//! OTLP/HTTP receiver takes at `/v1/traces`, built from the OpenTelemetry project's own
//! generated messages (the `opentelemetry-proto` crate) and encoded with prost, so the wire form
//! follows `trace.proto` by construction rather than by hand-written field numbers.

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span::SpanKind, status::StatusCode, ResourceSpans, ScopeSpans, Span, Status,
};
use prost::Message;

use super::context::SpanContext;

/// An attribute's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `string_value`.
    Str(String),
    /// `int_value`.
    Int(i64),
    /// `bool_value`.
    Bool(bool),
}

/// OTLP `SpanKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `SPAN_KIND_INTERNAL`.
    Internal,
    /// `SPAN_KIND_SERVER`.
    Server,
}

/// One ended span.
#[derive(Debug, Clone)]
pub struct SpanData {
    /// Its trace id, span id and sampled flag.
    pub ctx: SpanContext,
    /// The parent's span id (none for a root span).
    pub parent: Option<[u8; 8]>,
    /// The caller's `tracestate`, kept with the span as OTLP does.
    pub tracestate: Option<String>,
    /// Its name.
    pub name: String,
    /// Server (the invocation) or internal (the task).
    pub kind: Kind,
    /// Start.
    pub start: SystemTime,
    /// End.
    pub end: SystemTime,
    /// Attributes.
    pub attributes: Vec<(&'static str, Value)>,
    /// `Some(message)`: status ERROR with that message; `None`: status UNSET.
    pub error: Option<String>,
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos().min(u128::from(u64::MAX)) as u64)
}

fn key_value(key: &str, value: &Value) -> KeyValue {
    let value = match value {
        Value::Str(s) => any_value::Value::StringValue(s.clone()),
        Value::Bool(b) => any_value::Value::BoolValue(*b),
        Value::Int(i) => any_value::Value::IntValue(*i),
    };
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

/// The `Resource` of these attributes, made once and put in each export.
pub fn resource(attributes: &[(String, String)]) -> Resource {
    Resource {
        attributes: attributes
            .iter()
            .map(|(k, v)| key_value(k, &Value::Str(v.clone())))
            .collect(),
        ..Resource::default()
    }
}

fn span(s: &SpanData) -> Span {
    let kind = match s.kind {
        Kind::Internal => SpanKind::Internal,
        Kind::Server => SpanKind::Server,
    };
    Span {
        trace_id: s.ctx.trace_id.to_vec(),
        span_id: s.ctx.span_id.to_vec(),
        trace_state: s.tracestate.clone().unwrap_or_default(),
        parent_span_id: s.parent.map(|p| p.to_vec()).unwrap_or_default(),
        // The W3C trace flags in the low byte (`SPAN_FLAGS_TRACE_FLAGS_MASK`).
        flags: u32::from(s.ctx.sampled),
        name: s.name.clone(),
        kind: kind as i32,
        start_time_unix_nano: unix_nanos(s.start),
        end_time_unix_nano: unix_nanos(s.end),
        attributes: s.attributes.iter().map(|(k, v)| key_value(k, v)).collect(),
        status: s.error.as_ref().map(|message| Status {
            message: message.clone(),
            code: StatusCode::Error as i32,
        }),
        ..Span::default()
    }
}

/// The encoded `ExportTraceServiceRequest { ResourceSpans { resource, ScopeSpans { scope,
/// spans } } }` of `spans`, under `resource`.
pub fn export_request(resource: &Resource, spans: &[SpanData]) -> Vec<u8> {
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource.clone()),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "agentdispatch-worker".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..InstrumentationScope::default()
                }),
                spans: spans.iter().map(span).collect(),
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    };
    request.encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_decodes_back_with_the_fields_the_worker_sets() {
        let t = UNIX_EPOCH + std::time::Duration::from_nanos(1_700_000_000_123_456_789);
        let data = SpanData {
            ctx: SpanContext {
                trace_id: [7; 16],
                span_id: [9; 8],
                sampled: true,
            },
            parent: Some([3; 8]),
            tracestate: Some("k=v".into()),
            name: "POST /invocations".into(),
            kind: Kind::Server,
            start: t,
            end: t,
            attributes: vec![("n", Value::Int(-1)), ("b", Value::Bool(true))],
            error: Some("boom".into()),
        };
        let body = export_request(&resource(&[("service.name".into(), "w".into())]), &[data]);
        let back = ExportTraceServiceRequest::decode(body.as_slice()).expect("decodes");
        let rs = &back.resource_spans[0];
        let span = &rs.scope_spans[0].spans[0];
        assert_eq!(rs.resource.as_ref().map(|r| r.attributes.len()), Some(1));
        assert_eq!(span.parent_span_id, [3; 8]);
        assert_eq!(span.trace_state, "k=v");
        assert_eq!(span.kind, SpanKind::Server as i32);
        assert_eq!(span.start_time_unix_nano, 1_700_000_000_123_456_789);
        assert_eq!(span.flags, 1);
        assert_eq!(span.attributes[0], key_value("n", &Value::Int(-1)));
        assert_eq!(
            span.status.as_ref().map(|s| s.code),
            Some(StatusCode::Error as i32)
        );
    }
}
