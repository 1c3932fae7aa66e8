//! The legacy HTTP+SSE transport: `GET /sse` opens a session and its event stream (an
//! `endpoint` event first), `POST /messages?sessionId=` carries the client's messages,
//! answered on the stream.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, oneshot};

use super::dispatch::{Handled, envelope_of, finish, handle, parse_message};
use super::events::{EventStream, forward_notifications};
use super::session::SessionView;
use super::{AppState, SSE_BACKLOG};
use crate::gateway::accept::Hangup;
use crate::gateway::callers::Caller;
use crate::gateway::queue;
use crate::gateway::reply::rpc_error;
use crate::wire::era;
use crate::wire::jsonrpc::{INTERNAL_ERROR, INVALID_REQUEST};

/// Legacy SSE: an `endpoint` event naming where to POST, then every message for the
/// client as a `message` event. The session ends when the client goes away.
pub(super) async fn get_sse(
    State(state): State<Arc<AppState>>,
    hangup: Option<Extension<Hangup>>,
    caller: Option<Extension<Caller>>,
    _headers: HeaderMap,
) -> Response {
    let slot = match state.stream_slot() {
        Ok(slot) => slot,
        Err(full) => return *full,
    };
    let (tx, rx) = queue::channel(SSE_BACKLOG);
    // The session's end (a cut queue, DELETE, expiry) closes the connection too.
    tx.hang_up_on_cut(hangup.map(|Extension(h)| h));
    let opened = state
        .open(
            Some(tx.clone()),
            era::Envelope::default(),
            Value::Null,
            caller.as_ref().map(|Extension(c)| c),
        )
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
        first: Some(endpoint),
        on_drop: Some(on_drop),
        _slot: Some(slot),
        rx,
    };
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[derive(serde::Deserialize)]
pub(super) struct MessagesQuery {
    #[serde(rename = "sessionId")]
    pub(super) session_id: Option<String>,
}

pub(super) async fn post_messages(
    State(state): State<Arc<AppState>>,
    Query(query): Query<MessagesQuery>,
    caller: Option<Extension<Caller>>,
    _headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(session_id) = query.session_id else {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            Value::Null,
            INVALID_REQUEST,
            "missing sessionId",
        );
    };
    let Some(mut session) = state.session(&session_id, caller.as_ref().map(|Extension(c)| c))
    else {
        return rpc_error(
            StatusCode::NOT_FOUND,
            Value::Null,
            INVALID_REQUEST,
            "unknown session: open /sse again",
        );
    };
    let Some(events) = session.events.clone() else {
        return rpc_error(
            StatusCode::NOT_FOUND,
            Value::Null,
            INVALID_REQUEST,
            "not an SSE session",
        );
    };
    let msg = match parse_message(&body) {
        Ok(msg) => msg,
        Err(response) => return *response,
    };
    // Not held while waiting for a slot: the message has it all.
    drop(body);
    // Requests wait for a slot; answers and notifications never do: a call in flight
    // may be waiting for exactly that answer (sampling), and would never end.
    let slot = if msg.get("method").is_some() && msg.get("id").is_some() {
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        match call_slot(&session, &events, id).await {
            Ok(slot) => Some(slot),
            Err(response) => return *response,
        }
    } else {
        None
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
    let timing = msg
        .get("method")
        .and_then(Value::as_str)
        .filter(|_| msg.get("id").is_some())
        .map(|method| state.meter.begin(method));
    let working = session.working();
    let tasks = state.tasks.clone();
    tasks.spawn(async move {
        let _working = working;
        // Held until the answer is on the stream (or the call is given up).
        let _slot = slot;
        let reply = match handle(&state, &session_id, &session, msg, Some(events.clone())).await {
            Handled::Accepted => return,
            Handled::Reply(reply) | Handled::Gone(reply) => reply,
            Handled::Forwarded { id, reply, permit } => {
                let (response, _) = finish(id, reply).await;
                drop(permit);
                response
            }
        };
        if let Some(timing) = timing {
            timing.done(&reply);
        }
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

/// How long a `POST /messages` request waits for a slot before it gets 503.
const SLOT_WAIT: Duration = Duration::from_secs(30);

/// One of the session's `SSE_CALLS_IN_FLIGHT` slots for request `id`, waited for at
/// most [`SLOT_WAIT`]; 404 when the session ends meanwhile.
async fn call_slot(
    session: &SessionView,
    events: &queue::Outbox,
    id: Value,
) -> Result<OwnedSemaphorePermit, Box<Response>> {
    let gone = || {
        Box::new(rpc_error(
            StatusCode::NOT_FOUND,
            Value::Null,
            INVALID_REQUEST,
            "unknown session: open /sse again",
        ))
    };
    tokio::select! {
        slot = Arc::clone(&session.slots).acquire_owned() => slot.map_err(|_| gone()),
        () = events.closed() => Err(gone()),
        () = tokio::time::sleep(SLOT_WAIT) => {
            let mut response = Box::new(rpc_error(
                StatusCode::SERVICE_UNAVAILABLE,
                id,
                INTERNAL_ERROR,
                "too many calls of this session in flight: try again later",
            ));
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            Err(response)
        }
    }
}

/// How long a legacy `POST /messages` waits for its call's answer before it is
/// acknowledged anyway: 1 ms (the timer's resolution makes it 1 to 2 ms), or
/// `MCPCTL_SSE_ACK_HOLD_MS` milliseconds.
pub(super) fn ack_hold() -> Duration {
    static HOLD: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *HOLD.get_or_init(|| {
        std::env::var("MCPCTL_SSE_ACK_HOLD_MS")
            .ok()
            .and_then(|ms| ms.trim().parse().ok())
            .map_or(Duration::from_millis(1), Duration::from_millis)
    })
}
