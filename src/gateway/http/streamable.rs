//! `/mcp` for 2025-era clients (Streamable HTTP): POST answers with JSON, or with an SSE
//! stream when the call produces progress or a server request before its result; GET is
//! the session's standalone stream; DELETE ends the session.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::dispatch::{
    Handled, envelope_of, finish, gone_reply, handle, initialize_result, parse_message,
};
use super::events::{EventStream, forward_notifications};
use super::session::cancel_key;
use super::{AppState, SESSION_HEADER, SSE_BACKLOG, VERSION_HEADER, modern};
use crate::gateway::accept::Hangup;
use crate::gateway::callers::Caller;
use crate::gateway::guard::header_str;
use crate::gateway::queue;
use crate::gateway::reply::{json_response, rejection_response, rpc_error};
use crate::wire::era::{self, Era};
use crate::wire::jsonrpc::INVALID_REQUEST;

/// A 2026-07-28 client has no stream to GET and no session to DELETE.
pub(super) fn refuse_modern_stream(headers: &HeaderMap) -> Option<Response> {
    let version = header_str(headers, VERSION_HEADER)?;
    if !era::MODERN_VERSIONS.contains(&version) {
        return None;
    }
    let mut response = rpc_error(
        StatusCode::METHOD_NOT_ALLOWED,
        Value::Null,
        INVALID_REQUEST,
        "2026-07-28 clients only POST",
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    Some(response)
}

pub(super) async fn post_mcp(
    State(state): State<Arc<AppState>>,
    hangup: Option<Extension<Hangup>>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let msg = match parse_message(&body) {
        Ok(msg) => msg,
        Err(response) => return *response,
    };
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    let hangup = hangup.map(|Extension(h)| h);
    // Requests are timed until their answer is written (or given up: an error).
    let timing = msg
        .get("method")
        .and_then(Value::as_str)
        .filter(|_| msg.get("id").is_some())
        .map(|method| state.meter.begin(method));
    match era::classify(header_str(&headers, VERSION_HEADER), &msg) {
        Err(rejection) => return rejection_response(&rejection, id),
        Ok(Era::Modern) => {
            let view = caller.as_ref().map(|Extension(c)| Arc::clone(&c.view));
            let response = modern::post(&state, &headers, msg, hangup, view).await;
            // Until its answer starts (a stream's end is not waited for here).
            if let Some(timing) = timing {
                timing.done_with_status(response.status().as_u16());
            }
            return response;
        }
        Ok(Era::Legacy) => {}
    }
    if msg.get("method").and_then(Value::as_str) == Some("initialize") {
        let caller = caller.as_ref().map(|Extension(c)| c);
        let opened = state
            .open(None, envelope_of(&msg), id.clone(), caller)
            .await;
        let (session, upstream) = match opened {
            Ok(opened) => opened,
            Err(response) => return *response,
        };
        let reply =
            json!({"jsonrpc": "2.0", "id": id, "result": initialize_result(&upstream, &msg)});
        if let Some(timing) = timing {
            timing.done(&reply);
        }
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
            INVALID_REQUEST,
            "missing Mcp-Session-Id: initialize first",
        );
    };
    let Some(session) = state.session(&session_id, caller.as_ref().map(|Extension(c)| c)) else {
        return rpc_error(
            StatusCode::NOT_FOUND,
            id,
            INVALID_REQUEST,
            "unknown session: initialize again",
        );
    };
    let working = session.working();
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
        Handled::Reply(reply) => {
            if let Some(timing) = timing {
                timing.done(&reply);
            }
            return json_response(StatusCode::OK, &reply);
        }
        // Its instance ended just now: nothing reached it, and the session is over.
        Handled::Gone(reply) => {
            state.forget(&session_id);
            return json_response(StatusCode::NOT_FOUND, &reply);
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
                Err(_) => (gone_reply(id, &crate::gateway::mux::Gone), true),
            };
            if gone {
                state.forget(&session_id);
            }
            if let Some(timing) = timing {
                timing.done(&body);
            }
            return json_response(StatusCode::OK, &body);
        }
    };
    let (out, rx) = queue::channel(SSE_BACKLOG);
    out.hang_up_on_cut(hangup);
    let upstream = session.upstream.clone();
    let key = cancel_key(&session_id, &id);
    state.tasks.spawn(async move {
        let _permit = permit;
        let _working = working;
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
                    if let Some(timing) = timing {
                        timing.done(&response);
                    }
                    let _ = out.push(response);
                    break;
                }
            }
        }
    });
    Sse::new(EventStream::new(rx)).into_response()
}

/// The session's standalone stream: the child's notifications this client wants.
pub(super) async fn get_mcp(
    State(state): State<Arc<AppState>>,
    hangup: Option<Extension<Hangup>>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = refuse_modern_stream(&headers) {
        return refusal;
    }
    let Some(session_id) = header_str(&headers, SESSION_HEADER).map(str::to_string) else {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            Value::Null,
            INVALID_REQUEST,
            "missing Mcp-Session-Id: initialize first",
        );
    };
    let Some(session) = state.session(&session_id, caller.as_ref().map(|Extension(c)| c)) else {
        return rpc_error(
            StatusCode::NOT_FOUND,
            Value::Null,
            INVALID_REQUEST,
            "unknown session: initialize again",
        );
    };
    let slot = match state.stream_slot() {
        Ok(slot) => slot,
        Err(full) => return *full,
    };
    let (tx, rx) = queue::channel(SSE_BACKLOG);
    tx.hang_up_on_cut(hangup.map(|Extension(h)| h));
    let stream = tx.clone();
    state.with_session(&session_id, |s| s.stream = Some(stream));
    forward_notifications(Arc::clone(&state), session_id, &session.upstream, tx);
    Sse::new(EventStream {
        rx,
        first: None,
        on_drop: None,
        _slot: Some(slot),
    })
    .keep_alive(KeepAlive::default())
    .into_response()
}

pub(super) async fn delete_mcp(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = refuse_modern_stream(&headers) {
        return refusal;
    }
    let caller = caller.as_ref().map(|Extension(c)| c);
    match header_str(&headers, SESSION_HEADER) {
        None => StatusCode::BAD_REQUEST.into_response(),
        // Only its own caller ends a session.
        Some(id) if state.forget_for(id, caller) => StatusCode::NO_CONTENT.into_response(),
        Some(_) => StatusCode::NOT_FOUND.into_response(),
    }
}
