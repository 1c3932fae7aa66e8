//! The spans of one port: a middleware inside the guard, the same for every transport
//! and backend (`/mcp` of both eras, `/sse`'s messages, a proxied HTTP server, an
//! endpoint), so that a request is traced once, where it enters.
//!
//! A POSTed JSON-RPC request is peeked at ([`crate::wire::trace`]); the client's
//! context is read from the `traceparent` header, else from `params._meta`; when the
//! trace is sampled, the request goes on with the hop span's context in
//! `params._meta.traceparent` and in the `traceparent` header. Both spans end when the
//! answer has been written (a JSON body, or an event stream's end), with `error.type`
//! when it was a JSON-RPC error (its code), a tool's `isError` (`tool_error`) or an
//! HTTP failure (its status). A legacy `/messages` POST is answered `202` and its
//! answer goes on the session's stream: its spans end at the `202`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Limited};
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use super::bounds::{capped, valid_tracestate};
use super::context::SpanContext;
use super::otlp::{AttrValue, Kind, SpanData};
use super::{Tracer, current, span_id, trace_id};
use crate::wire::sse::SseEvents;
use crate::wire::trace::{Failure, Peek, TRACEPARENT, TRACESTATE, failure_of};

/// `(method, tool or prompt name) -> the member it goes to`.
pub type MemberOf = Box<dyn Fn(&str, &str) -> Option<String> + Send + Sync>;

/// What a port serves, for its spans' attributes.
pub enum Role {
    /// One server: its own children over stdio (`pipe`) or an HTTP upstream (`tcp`).
    Server { network: &'static str },
    /// An endpoint: which member a call goes to.
    Endpoint { member_of: MemberOf },
}

/// The port's server or endpoint, and its kind.
pub struct Where {
    pub name: String,
    pub role: Role,
}

/// The most of an answer kept to tell whether it failed (error answers are small).
const WATCHED: usize = 64 * 1024;

pub(in crate::gateway) async fn layer(
    State(at): State<Arc<Where>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(tracer) = current() else {
        return next.run(request).await;
    };
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let started = Instant::now();
    let start_ns = unix_nanos();
    let (mut parts, body) = request.into_parts();
    let body = match Limited::new(body, crate::gateway::guard::MAX_BODY)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return StatusCode::PAYLOAD_TOO_LARGE.into_response(),
    };
    let Some(open) = open(&tracer, &at, &mut parts.headers, &body, start_ns, started) else {
        return next.run(Request::from_parts(parts, Body::from(body))).await;
    };
    let (open, body) = open;
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    watch(response, open).await
}

/// The spans begun for a sampled request and the request's new body; `None` leaves
/// the request as it came (not a request, not sampled).
fn open(
    tracer: &Arc<Tracer>,
    at: &Where,
    headers: &mut HeaderMap,
    body: &Bytes,
    start_ns: u64,
    started: Instant,
) -> Option<(Open, Bytes)> {
    let peek = Peek::request(body)?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (parent, state) = match header(TRACEPARENT).and_then(SpanContext::parse) {
        Some(ctx) => (Some(ctx), header(TRACESTATE)),
        None => {
            let (traceparent, state) = peek.meta_context();
            match traceparent.and_then(SpanContext::parse) {
                Some(ctx) => (Some(ctx), state),
                None => (None, None),
            }
        }
    };
    let trace = parent.map_or_else(trace_id, |p| p.trace_id);
    let sampled = match parent {
        Some(p) => p.sampled,
        None => tracer.sample(u64::from_be_bytes(
            trace[8..].try_into().unwrap_or_default(),
        )),
    };
    if !sampled {
        return None;
    }
    // What the client wrote goes into spans cut to a bound (a span's size, and so the
    // queue's bytes, stay bounded); a `tracestate` beyond W3C's is not passed on.
    let tracestate = state.filter(|s| valid_tracestate(s)).map(str::to_string);
    let method = capped(peek.method());
    let target = peek.target().map(capped);
    let name = match &target {
        Some(target) => format!("{method} {target}"),
        None => method.clone(),
    };
    let mut common = Vec::with_capacity(8);
    // The protocol's own methods are constants; another is the client's text.
    let method_value = match crate::gateway::meter::METHODS
        .iter()
        .find(|m| **m == method)
    {
        Some(known) => AttrValue::Static(known),
        None => AttrValue::Str(method.clone()),
    };
    common.push(("mcp.method.name", method_value));
    common.push((
        "jsonrpc.request.id",
        AttrValue::Str(capped(&peek.id_text())),
    ));
    match (method.as_str(), &target) {
        ("tools/call", Some(tool)) => {
            common.push(("gen_ai.tool.name", AttrValue::Str(tool.clone())));
            common.push(("gen_ai.operation.name", AttrValue::Static("execute_tool")));
        }
        ("prompts/get", Some(prompt)) => {
            common.push(("gen_ai.prompt.name", AttrValue::Str(prompt.clone())));
        }
        _ => {}
    }
    if let Some(uri) = peek.uri() {
        common.push(("mcp.resource.uri", AttrValue::Str(capped(uri))));
    }
    let mut server_attrs = common.clone();
    let mut hop_attrs = common;
    if let Some(session) = header("mcp-session-id") {
        server_attrs.push(("mcp.session.id", AttrValue::Str(session_digest(session))));
    }
    if let Some(version) = header("mcp-protocol-version") {
        server_attrs.push(("mcp.protocol.version", AttrValue::Str(capped(version))));
    }
    server_attrs.push(("network.transport", AttrValue::Static("tcp")));
    server_attrs.push(("network.protocol.name", AttrValue::Static("http")));
    match &at.role {
        Role::Server { network } => {
            server_attrs.push(("mcpctl.server", AttrValue::Str(at.name.clone())));
            hop_attrs.push(("mcpctl.server", AttrValue::Str(at.name.clone())));
            hop_attrs.push(("network.transport", AttrValue::Static(network)));
        }
        Role::Endpoint { member_of } => {
            let member = target.as_deref().and_then(|t| member_of(&method, t));
            for attrs in [&mut server_attrs, &mut hop_attrs] {
                attrs.push(("mcpctl.endpoint", AttrValue::Str(at.name.clone())));
                if let Some(member) = &member {
                    attrs.push(("mcpctl.endpoint.member", AttrValue::Str(member.clone())));
                }
            }
            hop_attrs.push(("network.transport", AttrValue::Static("tcp")));
        }
    }
    let server_id = span_id();
    // What a stdio port or an endpoint answers itself reaches no server: no hop.
    let answered_here = !matches!(at.role, Role::Server { network: "tcp" })
        && matches!(method.as_str(), "initialize" | "ping");
    let hop = SpanContext {
        trace_id: trace,
        span_id: span_id(),
        sampled: true,
    };
    let body = if answered_here {
        body.clone()
    } else {
        pass_on(&hop, tracestate.as_deref(), headers, body)
    };
    let hop_start_ns = start_ns + nanos(started.elapsed());
    let span = |span_id, parent, name, kind, start_ns, attributes| SpanData {
        trace_id: trace,
        span_id,
        parent,
        tracestate: tracestate.clone(),
        name,
        kind,
        start_ns,
        end_ns: 0,
        attributes,
        error: None,
    };
    let open = Open {
        tracer: Arc::clone(tracer),
        started,
        server: span(
            server_id,
            parent.map(|p| p.span_id),
            name.clone(),
            Kind::Server,
            start_ns,
            server_attrs,
        ),
        hop: (!answered_here).then(|| {
            span(
                hop.span_id,
                Some(server_id),
                name,
                Kind::Client,
                hop_start_ns,
                hop_attrs,
            )
        }),
    };
    Some((open, body))
}

/// The request's body with the hop's context in `params._meta`, and the same in the
/// headers (an HTTP upstream is passed them).
fn pass_on(
    hop: &SpanContext,
    tracestate: Option<&str>,
    headers: &mut HeaderMap,
    body: &Bytes,
) -> Bytes {
    let traceparent = hop.traceparent();
    let body = crate::wire::trace::with_context(body, &traceparent, tracestate)
        .map_or_else(|| body.clone(), Bytes::from);
    if let Ok(value) = HeaderValue::from_str(&traceparent) {
        headers.insert(TRACEPARENT, value);
    }
    match tracestate.map(HeaderValue::from_str) {
        Some(Ok(value)) => {
            headers.insert(TRACESTATE, value);
        }
        _ => {
            headers.remove(TRACESTATE);
        }
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    body
}

/// A short digest of a session id: enough to group a session's spans, and no
/// credential in the collector (a 2025 session id lets its holder use the session).
fn session_digest(session: &str) -> String {
    let hash = blake3::hash(session.as_bytes());
    super::context::hex(&hash.as_bytes()[..8])
}

/// Both spans of a request, begun.
struct Open {
    tracer: Arc<Tracer>,
    started: Instant,
    server: SpanData,
    /// None when the gateway answered itself.
    hop: Option<SpanData>,
}

impl Open {
    fn close(mut self, failure: Option<String>) {
        let end_ns = self.server.start_ns + nanos(self.started.elapsed());
        for span in std::iter::once(&mut self.server).chain(self.hop.as_mut()) {
            span.end_ns = end_ns.max(span.start_ns);
            if let Some(kind) = &failure {
                span.attributes
                    .push(("error.type", AttrValue::Str(kind.clone())));
                span.error = Some(kind.clone());
            }
        }
        let Self {
            tracer,
            server,
            hop,
            ..
        } = self;
        if let Some(hop) = hop {
            tracer.finish(hop);
        }
        tracer.finish(server);
    }
}

/// The response, its body watched to the end: the spans close when it has been
/// written (or the client went away).
async fn watch(response: Response, open: Open) -> Response {
    let status = response.status();
    let is_sse = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/event-stream"));
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if !is_sse && !is_json {
        let failure = (status.is_client_error() || status.is_server_error())
            .then(|| status.as_u16().to_string());
        open.close(failure);
        return response;
    }
    let http_failure =
        (status.is_client_error() || status.is_server_error()).then(|| status.as_u16().to_string());
    let (parts, body) = response.into_parts();
    // A small JSON answer (what the gateway's own routes answer: a body already in
    // memory) is read here and handed on whole, as it came: the server writes it with
    // its headers in one go, as it would untraced.
    if is_json
        && body
            .size_hint()
            .exact()
            .is_some_and(|n| n <= WATCHED as u64)
    {
        return match body.collect().await {
            Ok(collected) => {
                let bytes = collected.to_bytes();
                let failure = failure_of(&bytes).map(|f| f.error_type()).or(http_failure);
                open.close(failure);
                Response::from_parts(parts, Body::from(bytes))
            }
            Err(_) => {
                open.close(Some("body".to_string()));
                StatusCode::BAD_GATEWAY.into_response()
            }
        };
    }
    let watching = Watching {
        open: Some(open),
        http_failure,
        failure: None,
        read: if is_sse {
            Read::Events(SseEvents::new(WATCHED))
        } else {
            Read::Json(Vec::new())
        },
    };
    Response::from_parts(
        parts,
        Body::new(Watched {
            inner: body,
            watching,
        }),
    )
}

/// The response's body as it was (frames, size), read on its way out.
struct Watched {
    inner: Body,
    watching: Watching,
}

impl HttpBody for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            this.watching.feed(data);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

enum Read {
    Events(SseEvents),
    /// The answer so far, while it is under [`WATCHED`].
    Json(Vec<u8>),
    /// Too large to be an error answer worth reading.
    Skipped,
}

struct Watching {
    open: Option<Open>,
    http_failure: Option<String>,
    failure: Option<Failure>,
    read: Read,
}

impl Watching {
    fn feed(&mut self, chunk: &[u8]) {
        match &mut self.read {
            Read::Events(events) => {
                for data in events.feed(chunk) {
                    if let Some(failure) = failure_of(&data) {
                        self.failure = Some(failure);
                    }
                }
            }
            Read::Skipped => {}
            Read::Json(so_far) => {
                if so_far.len() + chunk.len() <= WATCHED {
                    so_far.extend_from_slice(chunk);
                } else {
                    self.read = Read::Skipped;
                }
            }
        }
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let Some(open) = self.open.take() else {
            return;
        };
        if let Read::Json(answer) = &self.read
            && !answer.is_empty()
        {
            self.failure = failure_of(answer);
        }
        let failure = self
            .failure
            .as_ref()
            .map(Failure::error_type)
            .or_else(|| self.http_failure.take());
        open.close(failure);
    }
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(nanos)
        .unwrap_or_default()
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracer(capacity: usize) -> (Arc<Tracer>, Arc<super::super::queue::Queue>) {
        let queue = Arc::new(super::super::queue::Queue::new(capacity, capacity));
        let tracer = Tracer {
            settings: super::super::Settings::new("http://127.0.0.1:1", 1.0),
            threshold: u64::MAX,
            queue: Arc::clone(&queue),
        };
        (Arc::new(tracer), queue)
    }

    fn server(name: &str) -> Where {
        Where {
            name: name.into(),
            role: Role::Server { network: "pipe" },
        }
    }

    const CALL: &[u8] = br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}}"#;

    #[test]
    fn a_sampled_call_gets_both_spans_and_the_hop_in_its_meta() {
        let (tracer, spans) = tracer(8);
        let mut headers = HeaderMap::new();
        let (open, body) = open(
            &tracer,
            &server("s"),
            &mut headers,
            &Bytes::from_static(CALL),
            unix_nanos(),
            Instant::now(),
        )
        .unwrap();
        let msg: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let sent = msg["params"]["_meta"]["traceparent"].as_str().unwrap();
        assert_eq!(headers[TRACEPARENT], sent);
        open.close(Some("-32601".into()));
        let mut taken = spans.take().into_iter();
        let (hop, server) = (taken.next().unwrap(), taken.next().unwrap());
        assert_eq!(SpanContext::parse(sent).unwrap().span_id, hop.span_id);
        assert_eq!(hop.parent, Some(server.span_id));
        assert_eq!(server.parent, None);
        assert_eq!(server.name, "tools/call echo");
        assert_eq!(server.error.as_deref(), Some("-32601"));
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let (tracer, _spans) = tracer(1);
        let before = super::super::counts().dropped;
        for _ in 0..3 {
            let (open, _) = open(
                &tracer,
                &server("s"),
                &mut HeaderMap::new(),
                &Bytes::from_static(CALL),
                0,
                Instant::now(),
            )
            .unwrap();
            open.close(None);
        }
        // 6 spans, room for 1.
        assert!(super::super::counts().dropped >= before + 5);
    }

    /// What tracing adds to a call on the request path (peek, ids, the `_meta` rewrite,
    /// both spans, the answer read, the queue):
    /// `cargo test --release --lib bench_traced_call -- --ignored --nocapture`.
    #[test]
    // A benchmark, not a check: bench/otel-bench.sh runs it in the release build.
    #[ignore = "a benchmark: bench/otel-bench.sh"]
    #[allow(clippy::print_stdout)] // its line is the benchmark's figure
    fn bench_traced_call() {
        let (tracer, spans) = tracer(super::super::QUEUE);
        let at = server("echo");
        let answer =
            br#"{"jsonrpc":"2.0","id":2,"result":{"content":[{"type":"text","text":"x"}]}}"#;
        let mut times = Vec::with_capacity(100_000);
        let mut batch = Vec::with_capacity(super::super::MAX_BATCH);
        let resource = super::super::export::resource();
        let mut encoding = std::time::Duration::ZERO;
        for i in 0..110_000 {
            let mut headers = HeaderMap::new();
            headers.insert(
                "mcp-session-id",
                HeaderValue::from_static("0123456789abcdef0123456789abcdef"),
            );
            let began = Instant::now();
            let body = Bytes::from_static(CALL);
            let (open, body) =
                open(&tracer, &at, &mut headers, &body, unix_nanos(), began).unwrap();
            let failure = failure_of(answer).map(|f| f.error_type());
            open.close(failure);
            let took = began.elapsed();
            std::hint::black_box(body);
            if i >= 10_000 {
                times.push(took);
            }
            batch.extend(spans.take());
            if batch.len() >= super::super::MAX_BATCH {
                let began = Instant::now();
                std::hint::black_box(super::super::otlp::encode(&resource, &batch));
                encoding += began.elapsed();
                batch.clear();
            }
        }
        times.sort();
        let at = |q: f64| times[((times.len() as f64) * q) as usize];
        println!(
            "traced call (request path): p50 {:?}, p90 {:?}, p99 {:?}; its two spans encoded (off the call, on the same thread): {:?} a call",
            at(0.5),
            at(0.9),
            at(0.99),
            encoding / 110_000
        );
    }
}
