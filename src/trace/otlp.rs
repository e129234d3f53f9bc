//! Finished spans and their OTLP protobuf form: the `ExportTraceServiceRequest` that an
//! OTLP/HTTP receiver takes at `/v1/traces` (opentelemetry-proto's `trace/v1/trace.proto`,
//! `collector/trace/v1/trace_service.proto`). Only the fields the worker's spans use are written.

use std::time::{SystemTime, UNIX_EPOCH};

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
    Internal = 1,
    /// `SPAN_KIND_SERVER`.
    Server = 2,
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

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn tag(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, u64::from(field) << 3 | u64::from(wire));
}

fn bytes_field(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    tag(out, field, 2);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn str_field(out: &mut Vec<u8>, field: u32, s: &str) {
    if !s.is_empty() {
        bytes_field(out, field, s.as_bytes());
    }
}

fn fixed64(out: &mut Vec<u8>, field: u32, v: u64) {
    tag(out, field, 1);
    out.extend_from_slice(&v.to_le_bytes());
}

fn varint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    tag(out, field, 0);
    varint(out, v);
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos().min(u128::from(u64::MAX)) as u64)
}

/// `KeyValue { key = 1; AnyValue value = 2 }`, `AnyValue { string 1 | bool 2 | int64 3 }`.
fn key_value(out: &mut Vec<u8>, field: u32, key: &str, value: &Value) {
    let mut any = Vec::new();
    match value {
        Value::Str(s) => bytes_field(&mut any, 1, s.as_bytes()),
        Value::Bool(b) => varint_field(&mut any, 2, u64::from(*b)),
        // int64 is a two's-complement varint.
        Value::Int(i) => varint_field(&mut any, 3, *i as u64),
    }
    let mut kv = Vec::new();
    str_field(&mut kv, 1, key);
    bytes_field(&mut kv, 2, &any);
    bytes_field(out, field, &kv);
}

/// The `Resource` message of these attributes (`attributes = 1`).
pub fn resource(attributes: &[(String, String)]) -> Vec<u8> {
    let mut r = Vec::new();
    for (k, v) in attributes {
        key_value(&mut r, 1, k, &Value::Str(v.clone()));
    }
    r
}

/// One `Span` message.
fn span(out: &mut Vec<u8>, s: &SpanData) {
    let mut m = Vec::new();
    bytes_field(&mut m, 1, &s.ctx.trace_id);
    bytes_field(&mut m, 2, &s.ctx.span_id);
    if let Some(state) = &s.tracestate {
        str_field(&mut m, 3, state);
    }
    if let Some(parent) = &s.parent {
        bytes_field(&mut m, 4, parent);
    }
    str_field(&mut m, 5, &s.name);
    varint_field(&mut m, 6, s.kind as u64);
    fixed64(&mut m, 7, unix_nanos(s.start));
    fixed64(&mut m, 8, unix_nanos(s.end));
    for (k, v) in &s.attributes {
        key_value(&mut m, 9, k, v);
    }
    if let Some(message) = &s.error {
        // Status { message = 2; code = 3 (STATUS_CODE_ERROR = 2) }.
        let mut status = Vec::new();
        str_field(&mut status, 2, message);
        varint_field(&mut status, 3, 2);
        bytes_field(&mut m, 15, &status);
    }
    // flags = 16 (fixed32): the W3C trace flags in the low byte.
    tag(&mut m, 16, 5);
    m.extend_from_slice(&u32::from(s.ctx.sampled).to_le_bytes());
    bytes_field(out, 2, &m);
}

/// `ExportTraceServiceRequest { ResourceSpans { resource, ScopeSpans { scope, spans } } }`
/// of `spans`, under the encoded `resource`.
pub fn export_request(resource: &[u8], spans: &[SpanData]) -> Vec<u8> {
    let mut scope = Vec::new();
    str_field(&mut scope, 1, "agentdispatch-worker");
    str_field(&mut scope, 2, env!("CARGO_PKG_VERSION"));
    let mut scope_spans = Vec::new();
    bytes_field(&mut scope_spans, 1, &scope);
    for s in spans {
        span(&mut scope_spans, s);
    }
    let mut resource_spans = Vec::new();
    bytes_field(&mut resource_spans, 1, resource);
    bytes_field(&mut resource_spans, 2, &scope_spans);
    let mut request = Vec::with_capacity(resource_spans.len() + 8);
    bytes_field(&mut request, 1, &resource_spans);
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_little_endian_base_128() {
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        out.clear();
        varint(&mut out, (-1i64) as u64);
        assert_eq!(out.len(), 10);
    }

    #[test]
    fn a_key_value_is_a_nested_message() {
        let mut out = Vec::new();
        key_value(&mut out, 1, "a", &Value::Str("b".into()));
        // field 1 (len 8): key "a", value AnyValue { string_value "b" }.
        assert_eq!(out, [0x0a, 8, 0x0a, 1, b'a', 0x12, 3, 0x0a, 1, b'b']);
    }
}
