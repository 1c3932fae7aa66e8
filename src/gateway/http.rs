//! The client-facing transports of one server:
//! - `/mcp`: 2025-era Streamable HTTP. POST answers with JSON, or with an SSE stream
//!   when the call produces progress or a server request before its result; DELETE
//!   ends a session.
//! - `/sse` + `/messages?sessionId=`: the legacy HTTP+SSE transport.
//!
//! The gateway answers `initialize` and `ping` itself (from the child's cached answer,
//! at the version the client asked for when supported) and forwards everything else
//! through the child's shared channel ([`super::mux`]). Session ids are 128 random
//! bits and never count as authentication.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
use tokio::sync::{OwnedSemaphorePermit, oneshot};

use super::era::{self, Era};
use super::jsonrpc;
use super::mux::{CallOptions, Pin};
use super::queue::{self, Inbox, Outbox};
use super::sessions::{Full, Idle, Sessions};
use super::{Instances, SUPPORTED_VERSIONS, Upstream, origin};

mod stateless;

/// Requests larger than this are refused with 413.
const MAX_BODY: usize = 4 * 1024 * 1024;
/// Messages waiting for a slow SSE client before it is disconnected (its queue is
/// cut: [`queue`]).
const SSE_BACKLOG: usize = 256;
const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
/// Calls during which a server may ask its client something.
const CAN_CAUSE_SERVER_REQUESTS: [&str; 3] = ["tools/call", "prompts/get", "resources/read"];

struct Session {
    upstream: Upstream,
    _pin: Pin,
    /// A per-session instance, stopped when the session ends.
    _lease: Option<super::Lease>,
    /// Legacy SSE sessions: where replies and everything else for the client go.
    events: Option<Outbox>,
    /// The client declared sampling, elicitation or roots.
    can_answer: bool,
    /// What a 2026-07-28 child is told about this client on each request.
    envelope: Arc<era::Envelope>,
    /// `logging/setLevel`: the least severe log message this client wants.
    log_level: Option<u8>,
    /// `resources/subscribe`: the URIs whose updates this client wants.
    subscriptions: std::collections::HashSet<String>,
    /// The `GET /mcp` stream, while open.
    stream: Option<Outbox>,
    /// Last request of this session, for idle expiry.
    last_seen: Instant,
}

/// A session that ends ends its streams (and with them the tasks that feed them).
impl Drop for Session {
    fn drop(&mut self) {
        for stream in [&self.events, &self.stream].into_iter().flatten() {
            stream.cut();
        }
    }
}

impl Idle for Session {
    fn last_seen(&self) -> Instant {
        self.last_seen
    }

    fn has_open_stream(&self) -> bool {
        [&self.events, &self.stream]
            .into_iter()
            .flatten()
            .any(|s| !s.is_closed())
    }
}

/// Sessions idle this long (and with no open stream) are forgotten: clients that
/// never DELETE must not grow the gateway forever. They get 404 and re-initialize.
pub(super) const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
const SESSION_SWEEP: Duration = Duration::from_secs(60);

/// The sessions to forget at `now`: idle past `ttl` and without an open stream.
fn expired<'a>(
    sessions: impl Iterator<Item = (&'a str, Instant, bool)>,
    now: Instant,
    ttl: Duration,
) -> Vec<String> {
    sessions
        .filter(|(_, last_seen, streaming)| {
            !streaming && now.saturating_duration_since(*last_seen) > ttl
        })
        .map(|(id, ..)| id.to_string())
        .collect()
}

/// Forgets idle sessions every [`SESSION_SWEEP`] until the gateway is gone.
fn spawn_janitor(state: &Arc<AppState>) {
    let state = Arc::downgrade(state);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(SESSION_SWEEP).await;
            let Some(state) = state.upgrade() else { break };
            let Ok(mut sessions) = state.sessions.lock() else {
                break;
            };
            let now = Instant::now();
            let gone = expired(
                sessions
                    .iter()
                    .map(|(id, s)| (id.as_str(), s.last_seen, s.has_open_stream())),
                now,
                SESSION_IDLE,
            );
            for id in gone {
                if let Some(session) = sessions.remove(&id) {
                    cancel_calls(&session, &id);
                }
            }
        }
    });
}

#[derive(Clone)]
struct SessionView {
    upstream: Upstream,
    events: Option<Outbox>,
    can_answer: bool,
    envelope: Arc<era::Envelope>,
}

/// Questions the gateway put to legacy clients on behalf of a modern child, by
/// session and request id, waiting for the answer.
type Asks = Arc<Mutex<HashMap<(String, String), oneshot::Sender<Value>>>>;

struct AppState {
    instances: Arc<dyn Instances>,
    sessions: Mutex<Sessions<Session>>,
    /// The server's `max_sessions`, changed in place.
    max_sessions: Arc<AtomicUsize>,
    loopback: bool,
    bearer: Option<SecretString>,
    asks: Asks,
    /// Modern clients' calls waiting for their `input_required` retry.
    parked: stateless::Parking,
}

impl AppState {
    fn session(&self, id: &str) -> Option<SessionView> {
        let mut sessions = self.sessions.lock().ok()?;
        let session = sessions.get_mut(id)?;
        if session.events.as_ref().is_some_and(Outbox::is_closed) {
            // An SSE session whose stream has ended (cut, or the client gone).
            let session = sessions.remove(id)?;
            cancel_calls(&session, id);
            return None;
        }
        session.last_seen = Instant::now();
        let s = session;
        Some(SessionView {
            upstream: s.upstream.clone(),
            events: s.events.clone(),
            can_answer: s.can_answer,
            envelope: s.envelope.clone(),
        })
    }

    /// Ends session `id`: its streams end and its calls are cancelled upstream.
    fn forget(&self, id: &str) -> bool {
        let session = self.sessions.lock().ok().and_then(|mut s| s.remove(id));
        match session {
            Some(session) => {
                cancel_calls(&session, id);
                true
            }
            None => false,
        }
    }

    /// A new session on the least-loaded ready instance: `Err` is the answer when
    /// none runs or there is no room for one more session.
    async fn open(
        &self,
        events: Option<Outbox>,
        envelope: era::Envelope,
        id: Value,
    ) -> Result<(String, Upstream), Box<Response>> {
        let max = self.max_sessions.load(Ordering::Relaxed);
        let room = self.sessions.lock().is_ok_and(|s| s.has_room(max));
        if !room {
            return Err(Box::new(sessions_full(id)));
        }
        let not_running = || {
            Box::new(rpc_error(
                StatusCode::SERVICE_UNAVAILABLE,
                id.clone(),
                -32603,
                "the server is not running",
            ))
        };
        let (upstream, lease) = self.instances.open().await.ok_or_else(not_running)?;
        let session_id = new_session_id().ok_or_else(not_running)?;
        let id = session_id;
        let session = Session {
            _lease: lease,
            _pin: upstream.pin(),
            upstream: upstream.clone(),
            events,
            can_answer: era::can_answer(&envelope.capabilities),
            envelope: Arc::new(envelope),
            log_level: None,
            subscriptions: Default::default(),
            stream: None,
            last_seen: Instant::now(),
        };
        let Ok(mut sessions) = self.sessions.lock() else {
            return Err(Box::new(StatusCode::INTERNAL_SERVER_ERROR.into_response()));
        };
        match sessions.insert(id.clone(), session, max) {
            Ok(evicted) => {
                for (evicted_id, session) in evicted {
                    cancel_calls(&session, &evicted_id);
                }
                Ok((id, upstream))
            }
            Err((Full, _)) => Err(Box::new(sessions_full(Value::Null))),
        }
    }

    fn with_session(&self, id: &str, f: impl FnOnce(&mut Session)) {
        if let Some(s) = self
            .sessions
            .lock()
            .ok()
            .as_mut()
            .and_then(|s| s.get_mut(id))
        {
            f(s);
        }
    }

    /// Whether session `id` wants this notification of its child; `None` once the
    /// session is gone.
    fn wants(&self, id: &str, msg: &Value) -> Option<bool> {
        let sessions = self.sessions.lock().ok()?;
        let session = sessions.get(id)?;
        let method = msg
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let param = |name: &str| {
            msg.pointer(&format!("/params/{name}"))
                .and_then(Value::as_str)
        };
        Some(match method {
            "notifications/message" => session
                .log_level
                .is_some_and(|min| era::level_rank(param("level").unwrap_or("info")) >= min),
            "notifications/resources/updated" => {
                param("uri").is_some_and(|u| session.subscriptions.contains(u))
            }
            m => m.ends_with("/list_changed"),
        })
    }
}

/// 503 for a session beyond `max_sessions` while every session has an open stream.
fn sessions_full(id: Value) -> Response {
    let mut response = rpc_error(
        StatusCode::SERVICE_UNAVAILABLE,
        id,
        -32603,
        "too many sessions with open streams: try again later",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

/// Ends every session of a router (see [`router`]).
pub(super) type Closer = Box<dyn FnOnce() + Send + Sync>;

/// The routes of a stdio server, and what ends all its sessions.
pub(super) fn router(
    instances: Arc<dyn Instances>,
    loopback: bool,
    bearer: Option<SecretString>,
    max_sessions: Arc<AtomicUsize>,
) -> std::io::Result<(Router, Closer)> {
    let state = Arc::new(AppState {
        instances,
        sessions: Mutex::new(Sessions::new()),
        max_sessions,
        loopback,
        bearer,
        asks: Asks::default(),
        parked: stateless::Parking::new()?,
    });
    spawn_janitor(&state);
    let weak = Arc::downgrade(&state);
    let close: Closer = Box::new(move || {
        let Some(state) = weak.upgrade() else { return };
        let ended: Vec<(String, Session)> = match state.sessions.lock() {
            Ok(mut sessions) => {
                let ids: Vec<String> = sessions.iter().map(|(id, _)| id.clone()).collect();
                ids.into_iter()
                    .filter_map(|id| sessions.remove(&id).map(|s| (id, s)))
                    .collect()
            }
            Err(_) => Vec::new(),
        };
        // Dropped outside the lock: a session's end stops its own child.
        for (id, session) in ended {
            cancel_calls(&session, &id);
        }
    });
    let app = Router::new()
        .route("/mcp", post(post_mcp).get(get_mcp).delete(delete_mcp))
        .route("/sse", get(get_sse))
        .route("/messages", post(post_messages))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state);
    Ok((app, close))
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        jsonrpc::to_text(body),
    )
        .into_response()
}

fn error_message(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

pub(super) fn rpc_error(status: StatusCode, id: Value, code: i64, message: &str) -> Response {
    json_response(status, &error_message(id, code, message))
}

fn rejection_response(rejection: &era::Rejection, id: Value) -> Response {
    let status = StatusCode::from_u16(rejection.status).unwrap_or(StatusCode::BAD_REQUEST);
    let body = json!({"jsonrpc": "2.0", "id": id, "error": rejection.error()});
    json_response(status, &body)
}

/// A 2026-07-28 client has no stream to GET and no session to DELETE.
fn refuse_modern_stream(headers: &HeaderMap) -> Option<Response> {
    let version = header_str(headers, VERSION_HEADER)?;
    if !era::MODERN_VERSIONS.contains(&version) {
        return None;
    }
    let mut response = rpc_error(
        StatusCode::METHOD_NOT_ALLOWED,
        Value::Null,
        -32600,
        "2026-07-28 clients only POST",
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    Some(response)
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Origin, Host and bearer checks for every route; `Some` is the refusal. A session id
/// is never taken as proof of anything.
fn refuse(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    check_request(state.loopback, state.bearer.as_ref(), headers)
}

/// The checks every route of every gateway makes (stdio-backed or proxying).
pub(super) fn check_request(
    loopback: bool,
    bearer: Option<&SecretString>,
    headers: &HeaderMap,
) -> Option<Response> {
    let ok = origin::origin_allowed(header_str(headers, "origin"))
        && origin::host_allowed(header_str(headers, "host"), loopback);
    if !ok {
        return Some(rpc_error(
            StatusCode::FORBIDDEN,
            Value::Null,
            -32600,
            "forbidden origin or host",
        ));
    }
    let expected = bearer?;
    let given = header_str(headers, "authorization").and_then(bearer_token);
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

/// The token of an `Authorization: Bearer <token>` value. The scheme is
/// case-insensitive and followed by one or more spaces (RFC 9110, 11.1 and 11.4).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim_start_matches(' ');
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Compares without stopping at the first difference, so timing does not reveal
/// how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The body as one JSON-RPC message (request, notification or response, its ids as
/// sent: [`jsonrpc`]), or the 400 response for it.
fn parse_message(body: &[u8]) -> Result<Value, Box<Response>> {
    jsonrpc::parse(body).map(|(msg, _)| msg).map_err(|refusal| {
        Box::new(rpc_error(
            StatusCode::BAD_REQUEST,
            refusal.id,
            refusal.code,
            refusal.message,
        ))
    })
}

/// What a legacy client's `initialize` says about it, for a modern child's envelope.
fn envelope_of(initialize: &Value) -> era::Envelope {
    let mut capabilities = initialize
        .pointer("/params/capabilities")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let Some(c) = capabilities.as_object_mut() {
        // Only what the gateway can carry between the eras.
        c.retain(|k, _| ["sampling", "elicitation", "roots"].contains(&k.as_str()));
    }
    era::Envelope {
        capabilities,
        client_info: initialize.pointer("/params/clientInfo").cloned(),
        log_level: None,
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
    let mut result = upstream.initialize_result();
    result["protocolVersion"] = json!(version);
    result
}

/// Sends the child's notifications that session `id` wants to `out`, until the
/// session or its stream ends. A client that falls behind on its stream is
/// disconnected: the session ends.
fn forward_notifications(state: Arc<AppState>, id: String, upstream: &Upstream, out: Outbox) {
    let mut notifications = upstream.notifications();
    tokio::spawn(async move {
        loop {
            let msg = tokio::select! {
                msg = notifications.recv() => msg,
                () = out.closed() => break,
            };
            let msg = match msg {
                Ok(msg) => msg,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => break,
            };
            match state.wants(&id, &msg) {
                None => break,
                Some(false) => {}
                Some(true) => {
                    if out.push(msg).is_err() {
                        state.forget(&id);
                        break;
                    }
                    if out.is_filling() {
                        tokio::task::yield_now().await;
                    }
                }
            }
        }
    });
}

/// Cancels upstream the calls a session that ended still had in flight.
fn cancel_calls(session: &Session, id: &str) {
    let upstream = session.upstream.clone();
    // Every key of the session's calls: see [`cancel_key`].
    let prefix = format!("{id} ");
    tokio::spawn(async move {
        upstream.cancel_all(prefix, "the session ended").await;
    });
}

/// Names a client's call across sessions (ids are only unique within one).
fn cancel_key(session_id: &str, id: &Value) -> String {
    format!("{session_id} {id}")
}

/// What became of a client message.
enum Handled {
    /// Notifications and answers to server requests: nothing to send back.
    Accepted,
    /// Answered here (`initialize`, `ping`, errors).
    Reply(Value),
    /// The session's instance ended: this error is its last answer.
    Gone(Value),
    /// Forwarded: the child's response comes on `reply`; the permit, when held,
    /// keeps other answering calls waiting until it does.
    Forwarded {
        id: Value,
        reply: oneshot::Receiver<Value>,
        permit: Option<OwnedSemaphorePermit>,
    },
}

/// Handles one message of a session; `events` is where this call's progress and
/// server requests go (none: the client cannot receive them).
async fn handle(
    state: &AppState,
    session_id: &str,
    session: &SessionView,
    mut msg: Value,
    events: Option<Outbox>,
) -> Handled {
    let upstream = &session.upstream;
    let Some(id) = msg.get("id").cloned() else {
        if msg.get("method").and_then(Value::as_str) == Some("notifications/cancelled")
            && let Some(request) = msg.pointer("/params/requestId")
        {
            upstream
                .cancel(
                    cancel_key(session_id, request),
                    msg.pointer("/params/reason").cloned(),
                )
                .await;
        }
        return Handled::Accepted;
    };
    let Some(method) = msg.get("method").and_then(Value::as_str) else {
        // An answer to a question the gateway asked for a modern child, or to a
        // request the child sent through us.
        let asked = id.as_str().and_then(|i| {
            let key = (session_id.to_string(), i.to_string());
            state.asks.lock().ok()?.remove(&key)
        });
        match asked {
            Some(waiting) => {
                let _ = waiting.send(msg.clone());
            }
            None => {
                upstream.answer(&id, msg.clone()).await;
            }
        }
        return Handled::Accepted;
    };
    match method {
        "initialize" => {
            return Handled::Reply(
                json!({"jsonrpc": "2.0", "id": id, "result": initialize_result(upstream, &msg)}),
            );
        }
        "ping" => return Handled::Reply(json!({"jsonrpc": "2.0", "id": id, "result": {}})),
        "logging/setLevel" => {
            let name = msg.pointer("/params/level").and_then(Value::as_str);
            state.with_session(session_id, |s| {
                s.log_level = name.map(era::level_rank);
                Arc::make_mut(&mut s.envelope).log_level = name.map(str::to_string);
            });
            return Handled::Reply(json!({"jsonrpc": "2.0", "id": id, "result": {}}));
        }
        "resources/subscribe" | "resources/unsubscribe" => {
            let uri = msg
                .pointer("/params/uri")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let subscribe = method == "resources/subscribe";
            let mut changed = false;
            state.with_session(session_id, |s| {
                changed = if subscribe {
                    s.subscriptions.insert(uri.clone())
                } else {
                    s.subscriptions.remove(&uri)
                };
            });
            if changed && subscribe {
                upstream.subscribe(&uri).await;
            } else if changed {
                upstream.unsubscribe(&uri).await;
            }
            return Handled::Reply(json!({"jsonrpc": "2.0", "id": id, "result": {}}));
        }
        _ => {}
    }
    let method = method.to_string();
    // Moved, not copied: the message is this call's alone from here.
    let params = msg.as_object_mut().and_then(|m| m.remove("params"));
    if upstream.era == Era::Modern {
        let reply = stateless::ask_for_modern_child(
            Arc::clone(&state.asks),
            session_id,
            session,
            &method,
            params,
            events,
            cancel_key(session_id, &id),
        );
        return Handled::Forwarded {
            id,
            reply,
            permit: None,
        };
    }
    let can_answer = session.can_answer && events.is_some();
    // Serialise the calls that could cause a server request, so that one has a single
    // possible origin instead of a guess.
    let permit = if can_answer && CAN_CAUSE_SERVER_REQUESTS.contains(&method.as_str()) {
        Arc::clone(&upstream.ask_lock).acquire_owned().await.ok()
    } else {
        None
    };
    let options = CallOptions {
        events,
        can_answer,
        cancel_key: Some(cancel_key(session_id, &id)),
        log_level: None,
    };
    match upstream.start_request(&method, params, options).await {
        Ok(reply) => Handled::Forwarded { id, reply, permit },
        Err(gone) => Handled::Gone(gone_reply(id, &gone)),
    }
}

fn gone_reply(id: Value, gone: &super::mux::Gone) -> Value {
    error_message(id, -32603, &format!("{gone}; initialize again"))
}

/// The child's response with the client's id, or the error when it ended first.
async fn finish(id: Value, reply: oneshot::Receiver<Value>) -> (Value, bool) {
    match reply.await {
        Ok(mut response) => {
            response["id"] = id;
            (response, false)
        }
        Err(_) => (gone_reply(id, &super::mux::Gone), true),
    }
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
    match era::classify(header_str(&headers, VERSION_HEADER), &msg) {
        Err(rejection) => return rejection_response(&rejection, id),
        Ok(Era::Modern) => return stateless::post(&state, &headers, msg).await,
        Ok(Era::Legacy) => {}
    }
    if msg.get("method").and_then(Value::as_str) == Some("initialize") {
        let opened = state.open(None, envelope_of(&msg), id.clone()).await;
        let (session, upstream) = match opened {
            Ok(opened) => opened,
            Err(response) => return *response,
        };
        let reply =
            json!({"jsonrpc": "2.0", "id": id, "result": initialize_result(&upstream, &msg)});
        let mut response = json_response(StatusCode::OK, &reply);
        if let Ok(value) = HeaderValue::from_str(&session) {
            response.headers_mut().insert(SESSION_HEADER, value);
        }
        return response;
    }
    let Some(session_id) = header_str(&headers, SESSION_HEADER).map(str::to_string) else {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            id,
            -32600,
            "missing Mcp-Session-Id: initialize first",
        );
    };
    let Some(session) = state.session(&session_id) else {
        return rpc_error(
            StatusCode::NOT_FOUND,
            id,
            -32600,
            "unknown session: initialize again",
        );
    };
    let streams = header_str(&headers, "accept").is_some_and(|a| a.contains("text/event-stream"));
    let (events_tx, mut events) = queue::channel(SSE_BACKLOG);
    let handled = handle(
        &state,
        &session_id,
        &session,
        msg,
        streams.then_some(events_tx),
    )
    .await;
    let (id, mut reply, permit) = match handled {
        Handled::Accepted => return StatusCode::ACCEPTED.into_response(),
        Handled::Reply(reply) => return json_response(StatusCode::OK, &reply),
        Handled::Gone(reply) => {
            state.forget(&session_id);
            return json_response(StatusCode::OK, &reply);
        }
        Handled::Forwarded { id, reply, permit } => (id, reply, permit),
    };
    // JSON unless something for this call arrives before its result; what the child
    // sent before its result is queued before the result, so `biased` sees it first.
    let first = tokio::select! {
        biased;
        Some(event) = events.recv() => event,
        response = &mut reply => {
            let (body, gone) = match response {
                Ok(mut r) => { r["id"] = id; (r, false) }
                Err(_) => (gone_reply(id, &super::mux::Gone), true),
            };
            if gone {
                state.forget(&session_id);
            }
            return json_response(StatusCode::OK, &body);
        }
    };
    let (out, rx) = queue::channel(SSE_BACKLOG);
    let upstream = session.upstream.clone();
    let key = cancel_key(&session_id, &id);
    tokio::spawn(async move {
        let _permit = permit;
        let mut reply = Box::pin(finish(id, reply));
        let mut next = Some(first);
        loop {
            // A client that stops reading (or hangs up) leaves the call: it is
            // cancelled upstream, and the child and other sessions go on.
            if let Some(event) = next.take() {
                if out.push(event).is_err() {
                    let reason = json!("the client fell behind or went away");
                    upstream.cancel(key, Some(reason)).await;
                    break;
                }
                if out.is_filling() {
                    tokio::task::yield_now().await;
                }
            }
            tokio::select! {
                biased;
                Some(event) = events.recv() => next = Some(event),
                (response, _) = &mut reply => {
                    while let Some(event) = events.try_recv() {
                        let _ = out.push(event);
                    }
                    let _ = out.push(response);
                    break;
                }
            }
        }
    });
    Sse::new(EventStream {
        rx,
        first: None,
        on_drop: None,
    })
    .into_response()
}

/// The session's standalone stream: the child's notifications this client wants.
async fn get_mcp(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(refusal) = refuse(&state, &headers).or_else(|| refuse_modern_stream(&headers)) {
        return refusal;
    }
    let Some(session_id) = header_str(&headers, SESSION_HEADER).map(str::to_string) else {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            Value::Null,
            -32600,
            "missing Mcp-Session-Id: initialize first",
        );
    };
    let Some(session) = state.session(&session_id) else {
        return rpc_error(
            StatusCode::NOT_FOUND,
            Value::Null,
            -32600,
            "unknown session: initialize again",
        );
    };
    let (tx, rx) = queue::channel(SSE_BACKLOG);
    let stream = tx.clone();
    state.with_session(&session_id, |s| s.stream = Some(stream));
    forward_notifications(Arc::clone(&state), session_id, &session.upstream, tx);
    Sse::new(EventStream {
        rx,
        first: None,
        on_drop: None,
    })
    .keep_alive(KeepAlive::default())
    .into_response()
}

async fn delete_mcp(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(refusal) = refuse(&state, &headers).or_else(|| refuse_modern_stream(&headers)) {
        return refusal;
    }
    match header_str(&headers, SESSION_HEADER) {
        None => StatusCode::BAD_REQUEST.into_response(),
        Some(id) if state.forget(id) => StatusCode::NO_CONTENT.into_response(),
        Some(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Legacy SSE: an `endpoint` event naming where to POST, then every message for the
/// client as a `message` event. The session ends when the client goes away.
async fn get_sse(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(refusal) = refuse(&state, &headers) {
        return refusal;
    }
    let (tx, rx) = queue::channel(SSE_BACKLOG);
    let opened = state
        .open(Some(tx.clone()), era::Envelope::default(), Value::Null)
        .await;
    let (session, upstream) = match opened {
        Ok(opened) => opened,
        Err(response) => return *response,
    };
    forward_notifications(Arc::clone(&state), session.clone(), &upstream, tx);
    let endpoint = Event::default()
        .event("endpoint")
        .data(format!("/messages?sessionId={session}"));
    let on_drop = Box::new(move || {
        state.forget(&session);
    });
    let stream = EventStream {
        rx,
        first: Some(endpoint),
        on_drop: Some(on_drop),
    };
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// JSON-RPC messages as SSE `message` events; `on_drop` runs when the client leaves.
struct EventStream {
    rx: Inbox,
    first: Option<Event>,
    on_drop: Option<Box<dyn FnOnce() + Send>>,
}

impl EventStream {
    fn new(rx: Inbox) -> Self {
        Self {
            rx,
            first: None,
            on_drop: None,
        }
    }
}

impl Stream for EventStream {
    type Item = Result<Event, Infallible>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        if let Some(first) = self.first.take() {
            return std::task::Poll::Ready(Some(Ok(first)));
        }
        self.rx.poll_recv(cx).map(|msg| {
            msg.map(|m| Ok(Event::default().event("message").data(jsonrpc::to_text(&m))))
        })
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        if let Some(f) = self.on_drop.take() {
            f();
        }
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
    let Some(session_id) = query.session_id else {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            Value::Null,
            -32600,
            "missing sessionId",
        );
    };
    let Some(mut session) = state.session(&session_id) else {
        return rpc_error(
            StatusCode::NOT_FOUND,
            Value::Null,
            -32600,
            "unknown session: open /sse again",
        );
    };
    let Some(events) = session.events.clone() else {
        return rpc_error(
            StatusCode::NOT_FOUND,
            Value::Null,
            -32600,
            "not an SSE session",
        );
    };
    let msg = match parse_message(&body) {
        Ok(msg) => msg,
        Err(response) => return *response,
    };
    if msg.get("method").and_then(Value::as_str) == Some("initialize") {
        let envelope = Arc::new(envelope_of(&msg));
        session.can_answer = era::can_answer(&envelope.capabilities);
        session.envelope = envelope.clone();
        let can_answer = session.can_answer;
        state.with_session(&session_id, |s| {
            s.can_answer = can_answer;
            s.envelope = envelope;
        });
    }
    // Answered on the event stream; this request only acknowledges.
    let (answered, on_answer) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let reply = match handle(&state, &session_id, &session, msg, Some(events.clone())).await {
            Handled::Accepted => return,
            Handled::Reply(reply) | Handled::Gone(reply) => reply,
            Handled::Forwarded { id, reply, permit } => {
                let (response, _) = finish(id, reply).await;
                drop(permit);
                response
            }
        };
        if events.push(reply).is_err() {
            state.forget(&session_id);
        }
        let _ = answered.send(());
    });
    // A call answered within `ack_hold` is acknowledged after its answer is on the
    // stream, so the client reads both in one wake-up instead of waking for the 202
    // while the child works; a slower one (or one asking the client something, whose
    // answer may wait for this POST) is acknowledged when that has passed.
    // Notifications and answers drop `answered` at once.
    let _ = tokio::time::timeout(ack_hold(), on_answer).await;
    StatusCode::ACCEPTED.into_response()
}

/// How long a legacy `POST /messages` waits for its call's answer before it is
/// acknowledged anyway: 1 ms (the timer's resolution makes it 1 to 2 ms), or
/// `MCPCTL_SSE_ACK_HOLD_MS` milliseconds.
fn ack_hold() -> Duration {
    static HOLD: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *HOLD.get_or_init(|| {
        std::env::var("MCPCTL_SSE_ACK_HOLD_MS")
            .ok()
            .and_then(|ms| ms.trim().parse().ok())
            .map_or(Duration::from_millis(1), Duration::from_millis)
    })
}

/// 128 random bits, hex.
/// 128 random bits in hex; `None` when the OS random source fails (a guessable id
/// would let another client into the session, so none is minted).
fn new_session_id() -> Option<String> {
    let mut bytes = [0u8; 16];
    super::random::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in ["Bearer t0k", "bearer t0k", "BEARER t0k", "bEaReR   t0k"] {
            assert_eq!(bearer_token(value), Some("t0k"), "{value}");
        }
        for value in [
            "Basic t0k",
            "Bearer",
            "Bearer ",
            "Bearert0k",
            "Bearer\tt0k",
            "",
        ] {
            assert_eq!(bearer_token(value), None, "{value}");
        }
    }

    #[test]
    fn idle_sessions_without_streams_expire() {
        let now = Instant::now();
        let old = now - Duration::from_secs(3600);
        let recent = now - Duration::from_secs(5);
        let sessions = [
            ("idle", old, false),
            ("streaming", old, true),
            ("busy", recent, false),
        ];
        let gone = expired(sessions.iter().copied(), now, SESSION_IDLE);
        assert_eq!(gone, vec!["idle".to_string()]);
    }
}
