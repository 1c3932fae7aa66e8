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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::gateway::callers::Caller;
use crate::gateway::guard;
use crate::gateway::meter::Meter;
use crate::gateway::queue::Outbox;
use crate::gateway::reply::rpc_error;
use crate::gateway::sessions::{Full, Sessions};
use crate::gateway::{Instances, Upstream};
use crate::wire::era;
use crate::wire::jsonrpc::INTERNAL_ERROR;

mod dispatch;
mod events;
mod listen;
mod modern;
mod parking;
mod rounds;
mod session;
mod sse;
mod streamable;

use session::{Session, SessionView, cancel_calls, new_session_id, spawn_janitor};

/// Messages waiting for a slow SSE client before it is disconnected (its queue is
/// cut: [`queue`], which also bounds the bytes).
const SSE_BACKLOG: usize = 256;
/// Calls of one legacy SSE session in flight at once: a further `POST /messages`
/// request waits for one to end before it is acknowledged, so a client posting faster
/// than its calls are answered is slowed down instead of piling up calls and bodies.
const SSE_CALLS_IN_FLIGHT: usize = 16;
const SESSION_HEADER: &str = "mcp-session-id";
pub(crate) use parking::STATE_PREFIX;
const VERSION_HEADER: &str = "mcp-protocol-version";

/// Questions the gateway put to legacy clients on behalf of a modern child, by
/// session and request id, waiting for the answer.
type Asks = Arc<Mutex<HashMap<(String, String), oneshot::Sender<Value>>>>;

struct AppState {
    instances: Arc<dyn Instances>,
    /// The server's tool policy.
    tools: Arc<crate::gateway::tool_gate::ToolGate>,
    sessions: Mutex<Sessions<Session>>,
    /// The server's `max_sessions`, changed in place.
    max_sessions: Arc<AtomicUsize>,
    /// The server's `session_idle` in milliseconds, changed in place.
    session_idle: Arc<std::sync::atomic::AtomicU64>,
    asks: Asks,
    /// What the port counts: requests are timed where they are answered.
    meter: Arc<Meter>,
    /// Long-lived streams (`GET /mcp`, `/sse`) open at once: fewer than the port's
    /// connections, so that clients holding streams never leave none for requests.
    streams: Arc<tokio::sync::Semaphore>,
    /// Modern clients' calls waiting for their `input_required` retry.
    parked: parking::Parking,
    /// Replicas sharing sessions: ids are minted sealed, naming this one.
    replicas: Option<Arc<crate::gateway::replicas::Replicas>>,
    /// The port's tasks (calls' streams, notifications, the janitor): they end with it.
    tasks: crate::gateway::owned::Scope,
}

impl AppState {
    /// Session `id`, when `caller` is the one that opened it (another caller's session
    /// is unknown to it, as if it did not exist).
    fn session(&self, id: &str, caller: Option<&Caller>) -> Option<SessionView> {
        let mut sessions = self.sessions.lock().ok()?;
        let session = sessions.get_mut(id)?;
        if session.caller.as_deref() != caller.map(|c| c.name.as_str()) {
            return None;
        }
        // An SSE session whose stream has ended (cut, or the client gone), or one whose
        // instance has ended (drained by a scale-down, or dead): unknown from now on,
        // so the client initializes again at once instead of getting an error first.
        if session.events.as_ref().is_some_and(Outbox::is_closed) || session.upstream.is_closed() {
            let session = sessions.remove(id)?;
            cancel_calls(self, &session, id);
            return None;
        }
        session.last_seen = Instant::now();
        let s = session;
        Some(SessionView {
            upstream: s.upstream.clone(),
            events: s.events.clone(),
            can_answer: s.can_answer,
            envelope: s.envelope.clone(),
            calls: Arc::clone(&s.calls),
            slots: Arc::clone(&s.slots),
            caller: caller.map(|c| Arc::clone(&c.view)),
        })
    }

    /// Ends session `id` when `caller` opened it (a `DELETE`).
    fn forget_for(&self, id: &str, caller: Option<&Caller>) -> bool {
        let theirs = self.sessions.lock().is_ok_and(|mut s| {
            s.get_mut(id)
                .is_some_and(|s| s.caller.as_deref() == caller.map(|c| c.name.as_str()))
        });
        theirs && self.forget(id)
    }

    /// Ends session `id`: its streams end and its calls are cancelled upstream.
    fn forget(&self, id: &str) -> bool {
        let session = self.sessions.lock().ok().and_then(|mut s| s.remove(id));
        match session {
            Some(session) => {
                cancel_calls(self, &session, id);
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
        caller: Option<&Caller>,
    ) -> Result<(String, Upstream), Box<Response>> {
        let max = self.max_sessions.load(Ordering::Relaxed);
        let room = self.sessions.lock().is_ok_and(|s| s.has_room(max));
        if !room {
            return Err(Box::new(sessions_full(id)));
        }
        let unavailable = |why: &str| {
            let mut response = rpc_error(
                StatusCode::SERVICE_UNAVAILABLE,
                id.clone(),
                INTERNAL_ERROR,
                why,
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            Box::new(response)
        };
        let (upstream, lease) = self.instances.open().await.ok_or_else(|| {
            unavailable("no instance can take a session: the server is not running, or its own instance for this session could not start")
        })?;
        let minted = match &self.replicas {
            Some(replicas) => replicas.mint(),
            None => new_session_id(),
        };
        let session_id = minted.ok_or_else(|| {
            unavailable("the OS random source failed: no session id can be minted")
        })?;
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
            calls: Arc::default(),
            slots: Arc::new(tokio::sync::Semaphore::new(SSE_CALLS_IN_FLIGHT)),
            caller: caller.map(|c| c.name.clone()),
        };
        let Ok(mut sessions) = self.sessions.lock() else {
            return Err(Box::new(StatusCode::INTERNAL_SERVER_ERROR.into_response()));
        };
        match sessions.insert(id.clone(), session, max) {
            Ok(evicted) => {
                for (evicted_id, session) in evicted {
                    cancel_calls(self, &session, &evicted_id);
                }
                Ok((id, upstream))
            }
            Err((Full, _)) => Err(Box::new(sessions_full(Value::Null))),
        }
    }

    /// A long-lived stream's share of the port, or the 503 when they are all taken.
    fn stream_slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Box<Response>> {
        Arc::clone(&self.streams).try_acquire_owned().map_err(|_| {
            let mut response = rpc_error(
                StatusCode::SERVICE_UNAVAILABLE,
                Value::Null,
                INTERNAL_ERROR,
                "too many open streams on this port: try again later",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            Box::new(response)
        })
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
        INTERNAL_ERROR,
        "too many sessions with open streams: try again later",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

/// How long a closing port's tasks may take to finish before they are ended.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Ends every session of a router (see [`router`]).
pub(super) type Closer = Box<dyn FnOnce() + Send + Sync>;

/// Counts a router's sessions in use or seen within a time (see `Sessions::recent`).
pub(super) type Recent = Box<dyn Fn(std::time::Duration) -> usize + Send + Sync>;

/// The routes of a stdio server, and what ends all its sessions.
pub(super) fn router(
    instances: Arc<dyn Instances>,
    tools: Arc<crate::gateway::tool_gate::ToolGate>,
    max_sessions: Arc<AtomicUsize>,
    session_idle: Arc<std::sync::atomic::AtomicU64>,
    meter: Arc<Meter>,
    max_connections: usize,
    replicas: Option<Arc<crate::gateway::replicas::Replicas>>,
) -> std::io::Result<(Router, Closer, Recent)> {
    let tasks = crate::gateway::owned::Scope::new();
    let state = Arc::new(AppState {
        instances,
        tools,
        sessions: Mutex::new(Sessions::counted(Arc::clone(&meter))),
        meter,
        // A quarter of the connections (at least one) stays for requests.
        streams: Arc::new(tokio::sync::Semaphore::new(
            (max_connections - max_connections / 4).max(1),
        )),
        max_sessions,
        session_idle,
        asks: Asks::default(),
        parked: parking::Parking::new(replicas.clone(), tasks.clone())?,
        replicas,
        tasks,
    });
    spawn_janitor(&state);
    let weak = Arc::downgrade(&state);
    let recent: Recent = {
        let weak = weak.clone();
        Box::new(move |within| {
            weak.upgrade()
                .and_then(|state| {
                    let sessions = state.sessions.lock().ok()?;
                    Some(sessions.recent(Instant::now(), within))
                })
                .unwrap_or(0)
        })
    };
    let close: Closer = Box::new(move || {
        let Some(state) = weak.upgrade() else { return };
        let ended = match state.sessions.lock() {
            Ok(mut sessions) => sessions.drain(),
            Err(_) => Vec::new(),
        };
        // Dropped outside the lock: a session's end stops its own child.
        for (id, session) in ended {
            cancel_calls(&state, &session, &id);
        }
        // What is still to say upstream (those cancellations) gets a moment; then
        // every task of the port ends.
        state.tasks.end_within(CLOSE_GRACE);
    });
    let app = Router::new()
        .route(
            "/mcp",
            post(streamable::post_mcp)
                .get(streamable::get_mcp)
                .delete(streamable::delete_mcp),
        )
        .route("/sse", get(sse::get_sse))
        .route("/messages", post(sse::post_messages))
        .layer(DefaultBodyLimit::max(guard::MAX_BODY))
        .with_state(state);
    Ok((app, close, recent))
}
