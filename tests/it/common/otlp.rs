//! An OTLP/HTTP receiver on 127.0.0.1 for the tracing tests (tests/it/otel.rs):
//! `POST /v1/traces`, the protobuf decoded with the OpenTelemetry proto definitions
//! (`opentelemetry-proto`'s prost types), the spans kept for the test to wait on.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message as _;

use super::wait_for;

/// How the receiver answers an export.
#[derive(Clone, Copy, PartialEq)]
pub enum Answer {
    Ok,
    /// Reads the request, never answers.
    Hang,
}

/// An OTLP/HTTP receiver: `POST /v1/traces`, protobuf, decoded.
pub struct Collector {
    pub url: String,
    spans: Arc<Mutex<Vec<Span>>>,
    /// `service.name` of each export.
    pub services: Arc<Mutex<Vec<String>>>,
    pub connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    port: u16,
}

impl Collector {
    pub fn start(answer: Answer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let services = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (spans, services) = (spans.clone(), services.clone());
            let (connections, stop) = (connections.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    connections.fetch_add(1, Ordering::SeqCst);
                    let (spans, services) = (spans.clone(), services.clone());
                    std::thread::spawn(move || serve(stream, answer, &spans, &services));
                }
            });
        }
        Self {
            url: format!("http://127.0.0.1:{port}"),
            spans,
            services,
            connections,
            stop,
            port,
        }
    }

    pub fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }

    /// Waits for a span named `name` of `kind` in trace `trace` (any trace: none).
    pub fn span(&self, name: &str, kind: SpanKind, trace: Option<&[u8]>) -> Span {
        wait_for(&format!("a {kind:?} span {name:?}"), 20, || {
            let spans = self.spans();
            spans
                .iter()
                .find(|s| {
                    s.name == name && s.kind == kind as i32 && trace.is_none_or(|t| s.trace_id == t)
                })
                .cloned()
                .ok_or_else(|| format!("{:?}", names(&spans)))
        })
    }

    /// The CLIENT span whose parent is `server`.
    pub fn hop_of(&self, server: &Span) -> Span {
        wait_for("the hop span", 20, || {
            let spans = self.spans();
            spans
                .iter()
                .find(|s| s.parent_span_id == server.span_id && s.kind == SpanKind::Client as i32)
                .cloned()
                .ok_or_else(|| format!("{:?}", names(&spans)))
        })
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

pub fn names(spans: &[Span]) -> Vec<String> {
    spans.iter().map(|s| s.name.clone()).collect()
}

/// One connection: requests read (keep-alive), each export decoded and answered.
fn serve(
    mut stream: TcpStream,
    answer: Answer,
    spans: &Mutex<Vec<Span>>,
    services: &Mutex<Vec<String>>,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut buf = Vec::new();
    loop {
        let Some(head_end) = read_until_head(&mut stream, &mut buf) else {
            return;
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + 4 + length {
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Vec<u8> = buf
            .drain(..head_end + 4 + length)
            .skip(head_end + 4)
            .collect();
        assert!(head.starts_with("post /v1/traces "), "{head}");
        assert!(
            head.contains("content-type: application/x-protobuf"),
            "{head}"
        );
        if answer == Answer::Hang {
            std::thread::sleep(Duration::from_secs(60));
            return;
        }
        let request = ExportTraceServiceRequest::decode(body.as_slice()).expect("OTLP protobuf");
        for resource in request.resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| text(a.value.as_ref()?.value.as_ref()?));
            services.lock().unwrap().extend(service);
            for scope in resource.scope_spans {
                assert_eq!(scope.scope.map(|s| s.name).as_deref(), Some("mcpctl"));
                spans.lock().unwrap().extend(scope.spans);
            }
        }
        let _ = stream.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
        );
    }
}

fn read_until_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(i);
        }
        let mut chunk = [0u8; 8192];
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn text(value: &Any) -> Option<String> {
    match value {
        Any::StringValue(s) => Some(s.clone()),
        Any::IntValue(n) => Some(n.to_string()),
        _ => None,
    }
}

pub fn attrs(span: &Span) -> HashMap<String, String> {
    span.attributes
        .iter()
        .filter_map(|a| Some((a.key.clone(), text(a.value.as_ref()?.value.as_ref()?)?)))
        .collect()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn hex_to_bytes(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}
