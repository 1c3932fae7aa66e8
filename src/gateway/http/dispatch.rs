//! One client message of a 2025-era session: answered here (`initialize`, `ping`,
//! logging and subscriptions), or forwarded to the session's instance.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, oneshot};

use super::session::{SessionView, calls_of, cancel_key};
use super::{AppState, rounds};
use crate::gateway::mux::CallOptions;
use crate::gateway::queue::Outbox;
use crate::gateway::reply::{error_message, rpc_error};
use crate::gateway::{SUPPORTED_VERSIONS, Upstream};
use crate::wire::era::{self, Era};
use crate::wire::jsonrpc::{self, INTERNAL_ERROR};

/// The body as one JSON-RPC message (request, notification or response, its ids as
/// sent: [`jsonrpc`]), or the 400 response for it.
pub(super) fn parse_message(body: &[u8]) -> Result<Value, Box<Response>> {
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
pub(super) fn envelope_of(initialize: &Value) -> era::Envelope {
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

pub(super) fn initialize_result(upstream: &Upstream, msg: &Value) -> Value {
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

/// What became of a client message.
pub(super) enum Handled {
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
pub(super) async fn handle(
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
                upstream
                    .answer(&id, msg.clone(), &calls_of(session_id))
                    .await;
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
    let caller = session.caller.as_deref();
    if let Err(error) = state
        .tools
        .check(upstream, &method, params.as_ref(), caller)
        .await
    {
        return Handled::Reply(json!({"jsonrpc": "2.0", "id": id, "error": error}));
    }
    if upstream.era == Era::Modern {
        let reply = rounds::ask_for_modern_child(
            state,
            session_id,
            session,
            &method,
            params,
            events,
            cancel_key(session_id, &id),
        );
        return Handled::Forwarded {
            id,
            reply: state.tools.filter(&method, reply, session.caller.clone()),
            permit: None,
        };
    }
    let (permit, can_answer) =
        ask_turn(upstream, session.can_answer && events.is_some(), &method).await;
    let options = CallOptions {
        events,
        can_answer,
        cancel_key: Some(cancel_key(session_id, &id)),
        log_level: None,
    };
    match upstream.start_request(&method, params, options).await {
        Ok(reply) => Handled::Forwarded {
            id,
            reply: state.tools.filter(&method, reply, session.caller.clone()),
            permit,
        },
        Err(gone) => Handled::Gone(gone_reply(id, &gone)),
    }
}

/// How long a call that could be asked something waits for its turn before it runs as
/// one whose client cannot answer (a question then gets "no connected client can
/// answer"): one client sitting on a dialog must not stall every other client's calls.
const ASK_TURN_WAIT: Duration = Duration::from_secs(5);

/// The turn to be asked things, for a call whose client `can_answer`: calls that could
/// cause a server request run one at a time, so that a request has a single possible
/// origin instead of a guess. The permit (held until the call ends), and whether the
/// call may be asked.
pub(super) async fn ask_turn(
    upstream: &Upstream,
    can_answer: bool,
    method: &str,
) -> (Option<OwnedSemaphorePermit>, bool) {
    // A call that cannot cause a server request is never asked, whatever its client
    // could answer: counted as askable it would make another call's question ambiguous.
    if !can_answer || !jsonrpc::can_cause_server_requests(method) {
        return (None, false);
    }
    let turn = Arc::clone(&upstream.ask_lock).acquire_owned();
    match tokio::time::timeout(ASK_TURN_WAIT, turn).await {
        Ok(Ok(permit)) => (Some(permit), true),
        _ => (None, false),
    }
}

pub(super) fn gone_reply(id: Value, gone: &crate::gateway::mux::Gone) -> Value {
    error_message(id, INTERNAL_ERROR, &format!("{gone}; initialize again"))
}

/// The child's response with the client's id, or the error when it ended first.
pub(super) async fn finish(id: Value, reply: oneshot::Receiver<Value>) -> (Value, bool) {
    match reply.await {
        Ok(mut response) => {
            response["id"] = id;
            (response, false)
        }
        Err(_) => (gone_reply(id, &crate::gateway::mux::Gone), true),
    }
}
