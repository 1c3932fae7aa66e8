//! The client-facing transports of one server:
//! - `/mcp`: 2025-era Streamable HTTP (POST with JSON responses, DELETE);
//! - `/sse` + `/messages?sessionId=`: the legacy HTTP+SSE transport.
//!
//! Both end in [`dispatch`]: the gateway answers `initialize` and `ping` itself (from
//! the child's cached answer, at the version the client asked for when supported)
//! and forwards everything else through the child's shared channel. Session ids are
//! 128 random bits and never count as authentication.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use age::secrecy::{ExposeSecret, SecretString};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::Stream;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{Instances, SUPPORTED_VERSIONS, Upstream, origin};

/// Requests larger than this are refused with 413.
const MAX_BODY: usize = 4 * 1024 * 1024;
/// Messages waiting for a slow SSE client before it is disconnected.
const SSE_BACKLOG: usize = 256;
const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";

struct Session {
    upstream: Upstream,
    _pin: super::mux::Pin,
    /// Legacy SSE sessions: where replies and notifications go.
    events: Option<mpsc::Sender<Value>>,
}

struct AppState {
    instances: Arc<dyn Instances>,
    sessions: Mutex<HashMap<String, Session>>,
    loopback: bool,
    bearer: Option<SecretString>,
}

impl AppState {
    fn session(&self, id: &str) -> Option<(Upstream, Option<mpsc::Sender<Value>>)> {
        let sessions = self.sessions.lock().ok()?;
        sessions
            .get(id)
            .map(|s| (s.upstream.clone(), s.events.clone()))
    }

    fn forget(&self, id: &str) -> bool {
        self.sessions
            .lock()
            .ok()
            .and_then(|mut s| s.remove(id))
            .is_some()
    }

    /// A new session on a ready instance; `None` when none is running.
    fn open(&self, events: Option<mpsc::Sender<Value>>) -> Option<(String, Upstream)> {
        let upstream = self.instances.pick()?;
        let id = new_session_id();
        let mut sessions = self.sessions.lock().ok()?;
        let session = Session {
            _pin: upstream.pin(),
            upstream: upstream.clone(),
            events,
        };
        sessions.insert(id.clone(), session);
        Some((id, upstream))
    }
}

pub(super) fn router(
    instances: Arc<dyn Instances>,
    loopback: bool,
    bearer: Option<SecretString>,
) -> Router {
    let state = Arc::new(AppState {
        instances,
        sessions: Mutex::new(HashMap::new()),
        loopback,
        bearer,
    });
    Router::new()
        .route("/mcp", post(post_mcp).get(get_mcp).delete(delete_mcp))
        .route("/sse", get(get_sse))
        .route("/messages", post(post_messages))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn error_message(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

fn rpc_error(status: StatusCode, id: Value, code: i64, message: &str) -> Response {
    json_response(status, &error_message(id, code, message))
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Origin, Host and bearer checks for every route; `Some` is the refusal. A session id
/// is never taken as proof of anything.
fn refuse(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    let ok = origin::origin_allowed(header_str(headers, "origin"))
        && origin::host_allowed(header_str(headers, "host"), state.loopback);
    if !ok {
        return Some(rpc_error(
            StatusCode::FORBIDDEN,
            Value::Null,
            -32600,
            "forbidden origin or host",
        ));
    }
    let expected = state.bearer.as_ref()?;
    let given = header_str(headers, "authorization").and_then(|v| v.strip_prefix("Bearer "));
    if given.is_some_and(|g| constant_time_eq(g.as_bytes(), expected.expose_secret().as_bytes())) {
        return None;
    }
    let mut response = rpc_error(
        StatusCode::UNAUTHORIZED,
        Value::Null,
        -32600,
        "missing or wrong bearer token",
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"mcpctl\""),
    );
    Some(response)
}

/// Compares without stopping at the first difference, so timing does not reveal
/// how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The body as one JSON-RPC message, or the 400 response for it.
fn parse_message(body: &[u8]) -> Result<Value, Box<Response>> {
    let refuse = |code, message| {
        Box::new(rpc_error(
            StatusCode::BAD_REQUEST,
            Value::Null,
            code,
            message,
        ))
    };
    match serde_json::from_slice::<Value>(body) {
        Ok(msg) if msg.is_object() => Ok(msg),
        Ok(_) => Err(refuse(
            -32600,
            "expected one JSON-RPC message (batches are not supported)",
        )),
        Err(_) => Err(refuse(-32700, "parse error: the body is not JSON")),
    }
}

/// The answer to a client message.
enum Answer {
    /// Notifications, and responses to server requests (not routed yet).
    None,
    Reply(Value),
    /// The instance behind the session ended: the session is over.
    Gone(Value),
}

/// Answers `msg`, with the client's own id.
async fn dispatch(upstream: &Upstream, msg: &Value) -> Answer {
    let (Some(id), Some(method)) = (
        msg.get("id").cloned(),
        msg.get("method").and_then(Value::as_str),
    ) else {
        return Answer::None;
    };
    match method {
        "initialize" => Answer::Reply(
            json!({"jsonrpc": "2.0", "id": id, "result": initialize_result(upstream, msg)}),
        ),
        "ping" => Answer::Reply(json!({"jsonrpc": "2.0", "id": id, "result": {}})),
        _ => match upstream.request(method, msg.get("params").cloned()).await {
            Ok(mut response) => {
                response["id"] = id;
                Answer::Reply(response)
            }
            Err(gone) => Answer::Gone(error_message(
                id,
                -32603,
                &format!("{gone}; initialize again"),
            )),
        },
    }
}

fn initialize_result(upstream: &Upstream, msg: &Value) -> Value {
    let asked = msg
        .pointer("/params/protocolVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let version = if SUPPORTED_VERSIONS.contains(&asked) {
        asked
    } else {
        SUPPORTED_VERSIONS[0]
    };
    let mut result = (*upstream.init).clone();
    result["protocolVersion"] = json!(version);
    result
}

async fn post_mcp(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(refusal) = refuse(&state, &headers) {
        return refusal;
    }
    let msg = match parse_message(&body) {
        Ok(msg) => msg,
        Err(response) => return *response,
    };
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    if let Some(version) = header_str(&headers, VERSION_HEADER)
        && !SUPPORTED_VERSIONS.contains(&version)
    {
        let message = format!(
            "unsupported MCP-Protocol-Version {version}; supported: {}",
            SUPPORTED_VERSIONS.join(", ")
        );
        return rpc_error(StatusCode::BAD_REQUEST, id, -32600, &message);
    }
    if msg.get("method").and_then(Value::as_str) == Some("initialize") {
        let Some((session, upstream)) = state.open(None) else {
            return rpc_error(
                StatusCode::SERVICE_UNAVAILABLE,
                id,
                -32603,
                "the server is not running",
            );
        };
        let reply = match dispatch(&upstream, &msg).await {
            Answer::Reply(r) | Answer::Gone(r) => r,
            Answer::None => Value::Null,
        };
        let mut response = json_response(StatusCode::OK, &reply);
        if let Ok(value) = HeaderValue::from_str(&session) {
            response.headers_mut().insert(SESSION_HEADER, value);
        }
        return response;
    }
    let Some(session) = header_str(&headers, SESSION_HEADER) else {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            id,
            -32600,
            "missing Mcp-Session-Id: initialize first",
        );
    };
    let Some((upstream, _)) = state.session(session) else {
        return rpc_error(
            StatusCode::NOT_FOUND,
            id,
            -32600,
            "unknown session: initialize again",
        );
    };
    match dispatch(&upstream, &msg).await {
        Answer::Reply(reply) => json_response(StatusCode::OK, &reply),
        Answer::Gone(reply) => {
            state.forget(session);
            json_response(StatusCode::OK, &reply)
        }
        Answer::None => StatusCode::ACCEPTED.into_response(),
    }
}

async fn get_mcp(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(refusal) = refuse(&state, &headers) {
        return refusal;
    }
    // No server-to-client stream on /mcp yet.
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, "POST, DELETE")],
    )
        .into_response()
}

async fn delete_mcp(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(refusal) = refuse(&state, &headers) {
        return refusal;
    }
    match header_str(&headers, SESSION_HEADER) {
        None => StatusCode::BAD_REQUEST.into_response(),
        Some(id) if state.forget(id) => StatusCode::NO_CONTENT.into_response(),
        Some(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Legacy SSE: an `endpoint` event naming where to POST, then every reply as a
/// `message` event. The session ends when the client goes away.
async fn get_sse(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(refusal) = refuse(&state, &headers) {
        return refusal;
    }
    let (tx, rx) = mpsc::channel(SSE_BACKLOG);
    let Some((session, _)) = state.open(Some(tx)) else {
        return rpc_error(
            StatusCode::SERVICE_UNAVAILABLE,
            Value::Null,
            -32603,
            "the server is not running",
        );
    };
    let endpoint = Event::default()
        .event("endpoint")
        .data(format!("/messages?sessionId={session}"));
    let stream = SessionStream {
        rx,
        first: Some(endpoint),
        state: Arc::clone(&state),
        session,
    };
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// The event stream of one SSE session; dropping it (the client left) ends the session.
struct SessionStream {
    rx: mpsc::Receiver<Value>,
    first: Option<Event>,
    state: Arc<AppState>,
    session: String,
}

impl Stream for SessionStream {
    type Item = Result<Event, Infallible>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        if let Some(first) = self.first.take() {
            return std::task::Poll::Ready(Some(Ok(first)));
        }
        self.rx
            .poll_recv(cx)
            .map(|msg| msg.map(|m| Ok(Event::default().event("message").data(m.to_string()))))
    }
}

impl Drop for SessionStream {
    fn drop(&mut self) {
        self.state.forget(&self.session);
    }
}

#[derive(serde::Deserialize)]
struct MessagesQuery {
    #[serde(rename = "sessionId")]
    session_id: Option<String>,
}

async fn post_messages(
    State(state): State<Arc<AppState>>,
    Query(query): Query<MessagesQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refusal) = refuse(&state, &headers) {
        return refusal;
    }
    let Some(session) = query.session_id else {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            Value::Null,
            -32600,
            "missing sessionId",
        );
    };
    let Some((upstream, Some(events))) = state.session(&session) else {
        return rpc_error(
            StatusCode::NOT_FOUND,
            Value::Null,
            -32600,
            "unknown session: open /sse again",
        );
    };
    let msg = match parse_message(&body) {
        Ok(msg) => msg,
        Err(response) => return *response,
    };
    // Answered on the event stream; this request only acknowledges.
    tokio::spawn(async move {
        match dispatch(&upstream, &msg).await {
            Answer::Reply(reply) | Answer::Gone(reply) => {
                let _ = events.send(reply).await;
            }
            Answer::None => {}
        }
    });
    StatusCode::ACCEPTED.into_response()
}

/// 128 random bits, hex.
fn new_session_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No randomness means no safe session ids: fall back to a hash of fresh state.
        let seed = format!(
            "{:?}{:?}",
            std::time::SystemTime::now(),
            std::thread::current().id()
        );
        bytes.copy_from_slice(&blake3::hash(seed.as_bytes()).as_bytes()[..16]);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
