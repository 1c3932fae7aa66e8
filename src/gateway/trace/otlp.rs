//! PURE. Finished spans as OTLP/HTTP's protobuf body: an `ExportTraceServiceRequest`
//! of `opentelemetry/proto/collector/trace/v1` (one resource, one scope), written by
//! hand with the field numbers of the proto definitions. The tests decode it with the
//! generated types of those definitions (`opentelemetry-proto`), so a wrong number
//! fails there.

/// A span's kind, as numbered in `Span.SpanKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Server = 2,
    Client = 3,
}

/// An attribute's value.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    Str(String),
    /// A constant (`tcp`, `execute_tool`, a protocol method): no allocation per span.
    Static(&'static str),
    Int(i64),
}

/// One finished span.
#[derive(Debug, Clone)]
pub struct SpanData {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent: Option<[u8; 8]>,
    pub tracestate: Option<String>,
    pub name: String,
    pub kind: Kind,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attributes: Vec<(&'static str, AttrValue)>,
    /// The status is `ERROR` with this description; `UNSET` without.
    pub error: Option<String>,
}

/// Who exports: `service.name` and the other resource attributes.
#[derive(Debug, Clone)]
pub struct Resource {
    pub attributes: Vec<(&'static str, AttrValue)>,
}

/// The instrumentation scope's name.
pub const SCOPE: &str = "mcpctl";

/// The body of `POST /v1/traces` (`application/x-protobuf`).
pub fn encode(resource: &Resource, spans: &[SpanData]) -> Vec<u8> {
    let mut resource_msg = Vec::new();
    for (key, value) in &resource.attributes {
        message(&mut resource_msg, 1, &key_value(key, value));
    }
    let mut scope = Vec::new();
    string(&mut scope, 1, SCOPE);
    string(&mut scope, 2, env!("CARGO_PKG_VERSION"));
    let mut scope_spans = Vec::new();
    message(&mut scope_spans, 1, &scope);
    for span in spans {
        message(&mut scope_spans, 2, &span_message(span));
    }
    let mut resource_spans = Vec::new();
    message(&mut resource_spans, 1, &resource_msg);
    message(&mut resource_spans, 2, &scope_spans);
    let mut out = Vec::with_capacity(resource_spans.len() + 8);
    message(&mut out, 1, &resource_spans);
    out
}

fn span_message(span: &SpanData) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    bytes(&mut out, 1, &span.trace_id);
    bytes(&mut out, 2, &span.span_id);
    if let Some(state) = &span.tracestate {
        string(&mut out, 3, state);
    }
    if let Some(parent) = &span.parent {
        bytes(&mut out, 4, parent);
    }
    string(&mut out, 5, &span.name);
    varint_field(&mut out, 6, span.kind as u64);
    fixed64(&mut out, 7, span.start_ns);
    fixed64(&mut out, 8, span.end_ns);
    for (key, value) in &span.attributes {
        message(&mut out, 9, &key_value(key, value));
    }
    if let Some(description) = &span.error {
        let mut status = Vec::new();
        string(&mut status, 2, description);
        varint_field(&mut status, 3, 2); // STATUS_CODE_ERROR
        message(&mut out, 15, &status);
    }
    // Flags: the sampled bit, and that the parent's remoteness is known (bit 8) and
    // whether it is remote (bit 9: the server span's parent is the client's).
    let remote = span.kind == Kind::Server && span.parent.is_some();
    let flags = 0x01 | 0x100 | if remote { 0x200 } else { 0 };
    tag(&mut out, 16, 5);
    out.extend_from_slice(&u32::to_le_bytes(flags));
    out
}

fn key_value(key: &str, value: &AttrValue) -> Vec<u8> {
    let mut any = Vec::new();
    match value {
        AttrValue::Str(text) => string(&mut any, 1, text),
        AttrValue::Static(text) => string(&mut any, 1, text),
        // int64 on the wire is the two's complement as a varint.
        AttrValue::Int(n) => varint_field(&mut any, 3, *n as u64),
    }
    let mut out = Vec::with_capacity(key.len() + any.len() + 4);
    string(&mut out, 1, key);
    message(&mut out, 2, &any);
    out
}

fn tag(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire_type));
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn varint_field(out: &mut Vec<u8>, field: u32, n: u64) {
    tag(out, field, 0);
    varint(out, n);
}

fn fixed64(out: &mut Vec<u8>, field: u32, n: u64) {
    tag(out, field, 1);
    out.extend_from_slice(&n.to_le_bytes());
}

fn bytes(out: &mut Vec<u8>, field: u32, data: &[u8]) {
    tag(out, field, 2);
    varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

fn string(out: &mut Vec<u8>, field: u32, text: &str) {
    bytes(out, field, text.as_bytes());
}

fn message(out: &mut Vec<u8>, field: u32, encoded: &[u8]) {
    bytes(out, field, encoded);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_little_endian_groups_of_seven() {
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        out.clear();
        varint(&mut out, (-1i64) as u64);
        assert_eq!(out.len(), 10);
    }

    #[test]
    fn a_span_is_framed_with_its_fields() {
        let span = SpanData {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent: None,
            tracestate: None,
            name: "ping".into(),
            kind: Kind::Server,
            start_ns: 1,
            end_ns: 2,
            attributes: vec![("mcp.method.name", AttrValue::Str("ping".into()))],
            error: None,
        };
        let body = encode(&Resource { attributes: vec![] }, &[span]);
        // resource_spans (field 1, length-delimited) opens the body.
        assert_eq!(body[0], 0x0a);
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("mcp.method.name"));
        assert!(text.contains(SCOPE));
    }
}
