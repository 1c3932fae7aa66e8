//! Servers that speak HTTP themselves, reached at a URL (`mode = "remote"`, or a local
//! server on its inner port): the gateway checks the client (Origin, Host, bearer) as
//! for any server, then forwards `/mcp` to the upstream URL; for a legacy-SSE upstream,
//! `/sse` to its URL and every other path (where its `endpoint` event sends the client
//! to post) to the same path upstream. The client's own `Authorization` (its credential for
//! this gateway) and hop-by-hop headers are never passed on; configured headers are
//! added. Responses, SSE streams included, are passed through as they come.

use crate::policy::caller::ToolView;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use age::secrecy::{ExposeSecret, SecretString};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;

use super::reply::rpc_error;
use super::sessions::SESSION_IDLE;
use crate::wire::jsonrpc::INTERNAL_ERROR;

/// How long connecting to an upstream (or another replica) may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Never forwarded: the client's credential and connection-level headers.
const DROPPED: [&str; 10] = [
    "authorization",
    "host",
    "connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The instances of a local server that speaks HTTP: where each running one listens.
pub trait HttpPool: Send + Sync {
    /// Inner ports of the running instances.
    fn ports(&self) -> Vec<u16>;
}

/// Where and how to reach an HTTP upstream.
pub struct HttpUpstream {
    /// The upstream's endpoint, e.g. `http://127.0.0.1:9000/mcp` (Streamable HTTP) or
    /// `http://127.0.0.1:9000/sse` (legacy SSE).
    pub url: Uri,
    /// Added to every forwarded request (values may hold secrets).
    pub headers: Vec<(HeaderName, SecretString)>,
    /// The upstream speaks the legacy HTTP+SSE transport.
    pub legacy_sse: bool,
    /// Local instances, each on its own port (the `url`'s port is then a placeholder):
    /// a new session goes to the one with the fewest, and stays there.
    pub pool: Option<Arc<dyn HttpPool>>,
}

/// `Mcp-Session-Id` -> the inner port of the instance that minted it, and when the
/// session was last used: a client that never DELETEs is forgotten after
/// [`SESSION_IDLE`] (its next request goes to the least-loaded instance, which answers
/// 404 if it is not the session's, and the client re-initializes).
#[derive(Default)]
struct Pins(HashMap<String, (u16, Instant)>);

impl Pins {
    /// The instance for a request among the running `ports`: the session's own, or else
    /// the one with the fewest sessions. Only that (rare) second case sweeps the map.
    fn route(&mut self, session: Option<&str>, ports: &[u16], now: Instant) -> Option<u16> {
        if let Some((port, seen)) = session.and_then(|s| self.0.get_mut(s))
            && ports.contains(port)
        {
            *seen = now;
            return Some(*port);
        }
        self.0.retain(|_, (port, seen)| {
            ports.contains(port) && now.saturating_duration_since(*seen) <= SESSION_IDLE
        });
        ports
            .iter()
            .min_by_key(|p| self.0.values().filter(|(s, _)| s == *p).count())
            .copied()
    }

    fn pin(&mut self, session: &str, port: u16, now: Instant) {
        self.0.insert(session.to_string(), (port, now));
    }

    fn forget(&mut self, session: &str) {
        self.0.remove(session);
    }
}

/// Plain TCP, except to the inner port of a server in a network namespace of its own,
/// which is reached through that namespace ([`super::dial`]).
#[derive(Clone)]
pub(super) struct Connector {
    http: HttpConnector,
}

type Connecting = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = Result<
                    TokioIo<tokio::net::TcpStream>,
                    Box<dyn std::error::Error + Send + Sync>,
                >,
            > + Send,
    >,
>;

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<tokio::net::TcpStream>;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = Connecting;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        tower_service::Service::<Uri>::poll_ready(&mut self.http, cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        if let Some((namespace, port)) = super::dial::namespace_for(uri.host(), uri.port_u16()) {
            return Box::pin(async move {
                let connected = tokio::time::timeout(CONNECT_TIMEOUT, namespace.connect(port))
                    .await
                    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
                connected.set_nodelay(true)?;
                Ok(TokioIo::new(connected))
            });
        }
        let connecting = tower_service::Service::<Uri>::call(&mut self.http, uri);
        Box::pin(async move { connecting.await.map_err(Into::into) })
    }
}

struct ProxyState {
    upstream: HttpUpstream,
    /// The server's tool policy, held on this port too.
    tools: Arc<super::tool_gate::ToolGate>,
    sessions: std::sync::Mutex<Pins>,
    /// Which caller opened each session (see `owners.rs`).
    owners: std::sync::Mutex<super::owners::Owners>,
    client: Client<HttpsConnector<Connector>, Full<bytes::Bytes>>,
}

/// A client for `http://` upstreams and, verified against the system's roots (or
/// `SSL_CERT_FILE`), `https://` ones.
pub(super) fn client() -> std::io::Result<Client<HttpsConnector<Connector>, Full<bytes::Bytes>>> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    // An address that never answers (a dead pod, a dropped route) fails in seconds,
    // not after the kernel's minutes of SYN retries.
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(provider)?
        .https_or_http()
        .enable_http1()
        .wrap_connector(Connector { http });
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

pub(super) fn router(
    upstream: HttpUpstream,
    tools: Arc<super::tool_gate::ToolGate>,
) -> std::io::Result<Router> {
    let client = client()?;
    let state = Arc::new(ProxyState {
        upstream,
        tools,
        sessions: std::sync::Mutex::default(),
        owners: std::sync::Mutex::default(),
        client,
    });
    Ok(if state.upstream.legacy_sse {
        Router::new()
            .route("/sse", axum::routing::get(forward))
            .fallback(forward_path)
            .with_state(state)
    } else {
        Router::new()
            .route("/mcp", axum::routing::any(forward))
            .with_state(state)
    })
}

/// To the upstream's endpoint.
async fn forward(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    let target = state.upstream.url.clone();
    relay(&state, request, target).await
}

/// To the same path and query on the upstream's host (an SSE server's message path).
async fn forward_path(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    let mut target = state.upstream.url.clone().into_parts();
    target.path_and_query = request.uri().path_and_query().cloned();
    match Uri::from_parts(target) {
        Ok(target) => relay(&state, request, target).await,
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Which instance of a pool serves a request: the session's own, or else the one
/// with the fewest sessions. `Err` is the answer when none can.
fn pick_port(
    state: &ProxyState,
    pool: &dyn HttpPool,
    session: Option<&str>,
) -> Result<u16, Box<Response>> {
    let ports = pool.ports();
    let Ok(mut sessions) = state.sessions.lock() else {
        return Err(Box::new(StatusCode::INTERNAL_SERVER_ERROR.into_response()));
    };
    // A session we do not know goes to some instance, which answers it as it would
    // without us.
    sessions
        .route(session, &ports, Instant::now())
        .ok_or_else(|| {
            Box::new(rpc_error(
                StatusCode::SERVICE_UNAVAILABLE,
                Value::Null,
                INTERNAL_ERROR,
                "no instance of the server is ready",
            ))
        })
}

/// The tool policy on a request to the upstream: `Err` is the answer to a call of a
/// hidden tool (it never reaches the server); `Ok` gives back the request (its body
/// read, at most `MAX_BODY`) and whether its answer is a `tools/list` to filter.
async fn police(
    state: &ProxyState,
    request: Request,
    caller: Option<&ToolView>,
) -> Result<(Request, bool), Box<Response>> {
    if (state.tools.is_open() && caller.is_none()) || request.method() != axum::http::Method::POST {
        return Ok((request, false));
    }
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, super::guard::MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Err(Box::new(StatusCode::PAYLOAD_TOO_LARGE.into_response())),
    };
    // Decided on as read here, passed on as sent: what the server reads must be what
    // was decided on, or it is not passed on at all.
    let encoded = parts
        .headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|e| e.as_bytes() != b"identity");
    let parsed = match crate::wire::strict::parse(&body) {
        Ok(parsed) if !encoded => parsed,
        Ok(_) => {
            return Err(Box::new(rpc_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Value::Null,
                crate::wire::jsonrpc::INVALID_REQUEST,
                "an encoded body cannot be checked against the tool policy",
            )));
        }
        Err(why) => {
            return Err(Box::new(rpc_error(
                StatusCode::BAD_REQUEST,
                Value::Null,
                crate::wire::jsonrpc::PARSE_ERROR,
                &format!("a body the gateway cannot check against the tool policy: {why}"),
            )));
        }
    };
    let messages: Vec<&Value> = match &parsed {
        Value::Array(all) => all.iter().collect(),
        one => vec![one],
    };
    if let Some(key) = messages
        .iter()
        .find_map(|m| crate::wire::strict::odd_case_member(m))
    {
        return Err(Box::new(rpc_error(
            StatusCode::BAD_REQUEST,
            Value::Null,
            crate::wire::jsonrpc::INVALID_REQUEST,
            &format!(
                "the member {key:?} is spelled in another case than JSON-RPC's: a server could read it where the gateway does not"
            ),
        )));
    }
    let mut lists = false;
    for msg in messages {
        let method = msg
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default();
        lists |= method == "tools/list";
        if let Err(error) = state.tools.check_known(method, msg.get("params"), caller) {
            let id = msg.get("id").cloned().unwrap_or(Value::Null);
            let answer = serde_json::json!({"jsonrpc": "2.0", "id": id, "error": error});
            return Err(Box::new(super::reply::json_response(
                StatusCode::OK,
                &answer,
            )));
        }
    }
    Ok((Request::from_parts(parts, Body::from(body)), lists))
}

/// A `tools/list` answer with the policy applied: a JSON body filtered whole (bounded),
/// an event stream event by event.
async fn filtered(
    tools: Arc<super::tool_gate::ToolGate>,
    parts: &axum::http::response::Parts,
    body: hyper::body::Incoming,
    caller: Option<Arc<ToolView>>,
) -> Body {
    let is_sse = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/event-stream"));
    if !is_sse {
        let Ok(collected) = Limited::new(body, MAX_LIST_ANSWER).collect().await else {
            return Body::from("an answer too large to filter");
        };
        let bytes = collected.to_bytes();
        let Ok(mut answer) = serde_json::from_slice::<Value>(&bytes) else {
            return Body::from(bytes);
        };
        tools.filter_answer(&mut answer, caller.as_deref());
        return Body::from(answer.to_string());
    }
    let events = crate::wire::sse::SseEvents::new(MAX_LIST_ANSWER);
    let stream = futures_util::stream::unfold(
        (body, events, tools, caller),
        |(mut body, mut events, tools, caller)| async move {
            use http_body_util::BodyExt as _;
            loop {
                let frame = match body.frame().await? {
                    Ok(frame) => frame,
                    Err(e) => {
                        return Some((
                            Err(std::io::Error::other(e.to_string())),
                            (body, events, tools, caller),
                        ));
                    }
                };
                let Some(chunk) = frame.data_ref() else {
                    continue;
                };
                let out = filter_events(&tools, events.feed(chunk), caller.as_deref());
                if !out.is_empty() {
                    return Some((Ok(bytes::Bytes::from(out)), (body, events, tools, caller)));
                }
            }
        },
    );
    Body::from_stream(stream)
}

/// Events (their `data`) as `message` events again, each answer filtered.
fn filter_events(
    tools: &super::tool_gate::ToolGate,
    events: Vec<Vec<u8>>,
    caller: Option<&ToolView>,
) -> String {
    let mut out = String::new();
    for data in events {
        let text = match serde_json::from_slice::<Value>(&data) {
            Ok(mut msg) => {
                tools.filter_answer(&mut msg, caller);
                msg.to_string()
            }
            Err(_) => String::from_utf8_lossy(&data).into_owned(),
        };
        // A multi-line data field stays one event.
        for line in text.lines() {
            out.push_str("data: ");
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

/// The largest `tools/list` answer (or one event of it) a policy filters.
const MAX_LIST_ANSWER: usize = 16 << 20;

async fn relay(state: &ProxyState, request: Request, target: Uri) -> Response {
    // Each request's own caller (an HTTP server's sessions are its own: the policy
    // holds per request).
    let who = request
        .extensions()
        .get::<super::callers::Caller>()
        .map(|c| c.name.clone());
    let caller = request
        .extensions()
        .get::<super::callers::Caller>()
        .map(|c| Arc::clone(&c.view));
    let session = request
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // Another caller's session is unknown to this one (it cannot use or end it).
    if let Some(id) = &session
        && !state
            .owners
            .lock()
            .is_ok_and(|o| o.allows(id, who.as_deref()))
    {
        return rpc_error(
            StatusCode::NOT_FOUND,
            Value::Null,
            crate::wire::jsonrpc::INVALID_REQUEST,
            "unknown session: initialize again",
        );
    }
    let (request, lists) = match police(state, request, caller.as_deref()).await {
        Ok(policed) => policed,
        Err(answer) => return *answer,
    };
    let mut target = target;
    let mut port = None;
    if let Some(pool) = &state.upstream.pool {
        let chosen = match pick_port(state, pool.as_ref(), session.as_deref()) {
            Ok(chosen) => chosen,
            Err(response) => return *response,
        };
        let mut parts = target.into_parts();
        parts.authority = format!("127.0.0.1:{chosen}").parse().ok();
        match Uri::from_parts(parts) {
            Ok(uri) => target = uri,
            Err(_) => return StatusCode::BAD_GATEWAY.into_response(),
        }
        port = Some(chosen);
    }
    let ending = request.method() == axum::http::Method::DELETE;
    // A legacy SSE stream: its `endpoint` event may name the upstream's own address.
    let event_stream = state.upstream.legacy_sse
        && request.method() == axum::http::Method::GET
        && target.path() == state.upstream.url.path();
    let authority = event_stream
        .then(|| target.authority().map(|a| a.to_string()))
        .flatten()
        .unwrap_or_default();
    let added: Vec<(HeaderName, HeaderValue)> = state
        .upstream
        .headers
        .iter()
        .filter_map(|(name, value)| {
            Some((
                name.clone(),
                HeaderValue::from_str(value.expose_secret()).ok()?,
            ))
        })
        .collect();
    match pass_on(&state.client, request, target, &DROPPED, &added).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            if let Some(port) = port {
                remember_session(state, &parts, port, session.as_deref(), ending);
            }
            if let Ok(mut owners) = state.owners.lock() {
                if ending && parts.status.is_success() {
                    session.iter().for_each(|id| owners.ended(id));
                } else if let Some(opened) = parts
                    .headers
                    .get("mcp-session-id")
                    .and_then(|v| v.to_str().ok())
                    .filter(|id| session.as_deref() != Some(*id))
                {
                    owners.opened(opened, who.as_deref());
                }
            }
            if event_stream && parts.status.is_success() {
                parts.headers.remove(header::CONTENT_LENGTH);
                return Response::from_parts(parts, relative_endpoint(body, authority));
            }
            if lists && parts.status.is_success() {
                parts.headers.remove(header::CONTENT_LENGTH);
                let body = filtered(Arc::clone(&state.tools), &parts, body, caller).await;
                return Response::from_parts(parts, body);
            }
            Response::from_parts(parts, Body::new(body))
        }
        Err(response) => *response,
    }
}

/// Sends `request` (its body read, at most `MAX_BODY`) to `target` without the
/// headers named in `dropped` (and connection-level ones), with `added`; the answer
/// comes back without connection-level headers, its body still streaming.
pub(super) async fn pass_on(
    client: &Client<HttpsConnector<Connector>, Full<bytes::Bytes>>,
    request: Request,
    target: Uri,
    dropped: &[&str],
    added: &[(HeaderName, HeaderValue)],
) -> Result<hyper::Response<hyper::body::Incoming>, Box<Response>> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, super::guard::MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Err(Box::new(StatusCode::PAYLOAD_TOO_LARGE.into_response())),
    };
    let mut upstream = hyper::Request::builder().method(parts.method).uri(target);
    for (name, value) in &parts.headers {
        let hop = DROPPED.contains(&name.as_str()) && name != header::AUTHORIZATION;
        if !hop && !dropped.contains(&name.as_str()) && name != header::CONTENT_LENGTH {
            upstream = upstream.header(name, value);
        }
    }
    for (name, value) in added {
        upstream = upstream.header(name, value);
    }
    let Ok(upstream) = upstream.body(Full::new(body)) else {
        return Err(Box::new(rpc_error(
            StatusCode::BAD_GATEWAY,
            Value::Null,
            INTERNAL_ERROR,
            "cannot build the upstream request",
        )));
    };
    match client.request(upstream).await {
        Ok(mut response) => {
            for name in DROPPED {
                response.headers_mut().remove(name);
            }
            Ok(response)
        }
        Err(e) => Err(Box::new(rpc_error(
            StatusCode::BAD_GATEWAY,
            Value::Null,
            INTERNAL_ERROR,
            &format!("upstream unreachable: {e}"),
        ))),
    }
}

/// Learns which instance minted a session (its `Mcp-Session-Id`), and forgets one
/// that the client ended.
fn remember_session(
    state: &ProxyState,
    parts: &axum::http::response::Parts,
    port: u16,
    asked: Option<&str>,
    ending: bool,
) {
    let Ok(mut sessions) = state.sessions.lock() else {
        return;
    };
    if ending && parts.status.is_success() {
        if let Some(id) = asked {
            sessions.forget(id);
        }
        return;
    }
    if let Some(id) = parts
        .headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
    {
        sessions.pin(id, port, Instant::now());
    }
}

/// A legacy SSE stream whose first `endpoint` event, if it names a URL on the upstream's
/// own address, names just its path instead: clients then post through the gateway (and
/// its checks), not around it. Everything after that event passes through as it came.
fn relative_endpoint(body: hyper::body::Incoming, authority: String) -> Body {
    let stream = futures_util::stream::unfold(
        (body, EndpointRewrite::new(authority)),
        |(mut body, mut rewrite)| async move {
            loop {
                let data = match body.frame().await? {
                    Ok(frame) => match frame.into_data() {
                        Ok(data) => data,
                        Err(_) => continue, // trailers
                    },
                    Err(e) => return Some((Err(e), (body, rewrite))),
                };
                let out = if rewrite.done {
                    data
                } else {
                    bytes::Bytes::from(rewrite.feed(&data))
                };
                if !out.is_empty() {
                    return Some((Ok(out), (body, rewrite)));
                }
            }
        },
    );
    Body::from_stream(stream)
}

/// The line-by-line state of [`relative_endpoint`] until the endpoint event is through.
struct EndpointRewrite {
    authority: String,
    /// An incomplete line.
    partial: Vec<u8>,
    in_endpoint: bool,
    done: bool,
}

/// A stream that has not ended its first lines within this much is passed on as is.
const MAX_EVENT_LINE: usize = 64 << 10;

impl EndpointRewrite {
    fn new(authority: String) -> Self {
        Self {
            authority,
            partial: Vec::new(),
            in_endpoint: false,
            done: false,
        }
    }

    /// Upstream bytes in, client bytes out (complete lines, rewritten where needed).
    fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.partial.extend_from_slice(chunk);
        let mut out = Vec::with_capacity(self.partial.len());
        while !self.done
            && let Some(end) = self.partial.iter().position(|&b| b == b'\n')
        {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line);
            let bare = text.trim_end_matches(['\r', '\n']);
            if bare.is_empty() {
                // The end of an event: after the endpoint's, nothing more to look at.
                self.done = self.in_endpoint;
                self.in_endpoint = false;
            } else if let Some(event) = sse_field(bare, "event") {
                self.in_endpoint = event == "endpoint";
            } else if self.in_endpoint
                && let Some(path) = sse_field(bare, "data").and_then(|d| self.own_path(d))
            {
                out.extend_from_slice(format!("data: {path}").as_bytes());
                out.extend_from_slice(&line[bare.len()..]);
                continue;
            }
            out.extend_from_slice(&line);
        }
        if self.done || self.partial.len() > MAX_EVENT_LINE {
            self.done = true;
            out.append(&mut self.partial);
        }
        out
    }

    /// `url`'s path and query, when it is an absolute URL on the upstream's address.
    fn own_path(&self, url: &str) -> Option<String> {
        let uri: Uri = url.trim().parse().ok()?;
        uri.scheme()?;
        let theirs = uri.authority()?;
        let ours: axum::http::uri::Authority = self.authority.parse().ok()?;
        let loopback = |host: &str| matches!(host, "localhost" | "127.0.0.1" | "[::1]");
        let same_host = theirs.host().eq_ignore_ascii_case(ours.host())
            || (loopback(theirs.host()) && loopback(ours.host()));
        (same_host && theirs.port_u16() == ours.port_u16())
            .then(|| uri.path_and_query().map_or("/", |p| p.as_str()).to_string())
    }
}

/// The value of an SSE line `NAME: value` (one space after the colon is optional).
fn sse_field<'l>(line: &'l str, name: &str) -> Option<&'l str> {
    let value = line.strip_prefix(name)?.strip_prefix(':')?;
    Some(value.strip_prefix(' ').unwrap_or(value))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_streamed_tools_list_is_filtered_event_by_event() {
        let rules = crate::policy::Rules::new(&[], &["crash".into()], false).unwrap();
        let gate = crate::gateway::tool_gate::ToolGate::new(rules);
        let answer = serde_json::json!({"jsonrpc": "2.0", "id": 1,
            "result": {"tools": [{"name": "echo"}, {"name": "crash"}]}});
        let progress = serde_json::json!({"jsonrpc": "2.0", "method": "notifications/progress"});
        let out = filter_events(
            &gate,
            vec![
                progress.to_string().into_bytes(),
                answer.to_string().into_bytes(),
            ],
            None,
        );
        let mut events = crate::wire::sse::SseEvents::new(1 << 20);
        let seen: Vec<serde_json::Value> = events
            .feed(out.as_bytes())
            .iter()
            .map(|e| serde_json::from_slice(e).unwrap())
            .collect();
        assert_eq!(seen[0], progress);
        assert_eq!(
            seen[1]["result"]["tools"],
            serde_json::json!([{"name": "echo"}])
        );
    }

    fn rewritten(chunks: &[&str]) -> String {
        let mut rewrite = EndpointRewrite::new("127.0.0.1:9000".into());
        let mut out = Vec::new();
        for chunk in chunks {
            if rewrite.done {
                out.extend_from_slice(chunk.as_bytes());
            } else {
                out.extend(rewrite.feed(chunk.as_bytes()));
            }
        }
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn an_endpoint_on_the_upstreams_address_becomes_a_path() {
        let stream = "event: endpoint\r\ndata: http://localhost:9000/messages/?session_id=1\r\n\r\nevent: message\ndata: http://127.0.0.1:9000/kept\n\n";
        let want = "event: endpoint\r\ndata: /messages/?session_id=1\r\n\r\nevent: message\ndata: http://127.0.0.1:9000/kept\n\n";
        assert_eq!(rewritten(&[stream]), want);
        // Split anywhere, the same.
        for at in 1..stream.len() {
            assert_eq!(
                rewritten(&[&stream[..at], &stream[at..]]),
                want,
                "split at {at}"
            );
        }
    }

    #[test]
    fn other_endpoints_pass_unchanged() {
        for stream in [
            "event: endpoint\ndata: /messages?sessionId=1\n\n",
            "event: endpoint\ndata: http://127.0.0.1:9001/messages\n\n",
            "event: endpoint\ndata: https://elsewhere.example/messages\n\n",
            "event: message\ndata: http://127.0.0.1:9000/x\n\n",
            ": comment\n\nevent:endpoint\ndata:not a url\n\n",
        ] {
            assert_eq!(rewritten(&[stream]), stream);
        }
    }

    #[test]
    fn a_session_stays_on_its_instance_while_it_runs() {
        let (mut pins, now) = (Pins::default(), Instant::now());
        pins.pin("a", 9001, now);
        assert_eq!(pins.route(Some("a"), &[9000, 9001], now), Some(9001));
        // A new session goes to the instance with fewer sessions.
        assert_eq!(pins.route(None, &[9000, 9001], now), Some(9000));
        // Its instance gone, the session is forgotten and routed like a new one.
        assert_eq!(pins.route(Some("a"), &[9000, 9002], now), Some(9000));
        assert!(pins.0.is_empty());
    }

    #[test]
    fn sessions_idle_past_the_limit_are_forgotten() {
        let (mut pins, start) = (Pins::default(), Instant::now());
        pins.pin("idle", 9000, start);
        pins.pin("busy", 9000, start);
        let later = start + SESSION_IDLE + Duration::from_secs(1);
        let used = start + SESSION_IDLE - Duration::from_secs(1);
        assert_eq!(pins.route(Some("busy"), &[9000, 9001], used), Some(9000));
        // A new session sweeps: "idle" is gone, "busy" (used recently) stays.
        assert_eq!(pins.route(None, &[9000, 9001], later), Some(9001));
        assert_eq!(pins.0.keys().collect::<Vec<_>>(), vec!["busy"]);
        pins.forget("busy");
        assert!(pins.0.is_empty());
    }
}
