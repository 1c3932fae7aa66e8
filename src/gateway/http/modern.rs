//! 2026-07-28 clients on `/mcp`, and the bridge between the eras.
//!
//! A modern client has no session: every POST is validated on its own (the request
//! ladder in [`era`]), sent to the instance with the fewest requests in flight, and
//! answered with JSON or with an SSE stream of its own. Closing that stream (or the
//! connection) cancels the call upstream.
//!
//! - Modern child: the request and its result pass through; an `input_required`
//!   result and the retry's `requestState` are the child's business, untouched.
//! - Legacy child: the envelope is stripped and the result completed. When the child
//!   asks something during the call (sampling, elicitation, roots), the call is parked
//!   here and the client gets `input_required` with a sealed `requestState`; its retry
//!   answers the child and picks the call up again.
//! - Legacy client, modern child ([`super::rounds`]): the envelope comes from
//!   the session, and the gateway drives `input_required` for the client, asking each
//!   question as a server request on the client's stream and retrying upstream.

use crate::policy::caller::ToolView;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::Sse;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::dispatch::ask_turn;
use super::events::EventStream;
use super::listen::listen;
use super::parking::{Call, Parking, STATE_PREFIX, invalid};
use super::{AppState, SSE_BACKLOG, VERSION_HEADER};
use crate::gateway::Upstream;
use crate::gateway::accept::Hangup;
use crate::gateway::guard::header_str;
use crate::gateway::mux::{CallOptions, Pin};
use crate::gateway::queue::{self, Outbox};
use crate::gateway::reply::{error_message, json_response, rejection_response, rpc_error};
use crate::wire::era::{self, Era, Rejection};
use crate::wire::jsonrpc::{INTERNAL_ERROR, INVALID_PARAMS};

pub(super) const METHOD_HEADER: &str = "mcp-method";

pub(super) const NAME_HEADER: &str = "mcp-name";

/// Cancels the call upstream when dropped armed: the client went away first.
pub(super) struct CancelGuard {
    pub(super) armed: Option<(Upstream, String)>,
}

impl CancelGuard {
    pub(super) fn new(call: &Call) -> Self {
        Self {
            armed: Some((call.upstream.clone(), call.cancel_key.clone())),
        }
    }

    pub(super) fn disarm(&mut self) {
        self.armed = None;
    }
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if let Some((upstream, key)) = self.armed.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move { upstream.cancel(key, None).await });
        }
    }
}

/// Who is asking: a digest of the credentials presented, so a `requestState` works
/// only for the client it was issued to.
pub(super) fn principal(parking: &Parking, headers: &HeaderMap) -> String {
    header_str(headers, "authorization")
        .map(|credentials| parking.sealer.principal(credentials))
        .unwrap_or_default()
}

/// A POST from a 2026-07-28 client.
/// `hangup` closes the connection when the client falls behind on a stream.
pub(super) async fn post(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    msg: Value,
    hangup: Option<Hangup>,
    caller: Option<Arc<ToolView>>,
) -> Response {
    let Some(id) = msg.get("id").cloned() else {
        // Over HTTP a modern client cancels by closing its stream; it sends no
        // notifications that need an answer.
        return StatusCode::ACCEPTED.into_response();
    };
    let routing = era::RoutingHeaders {
        version: header_str(headers, VERSION_HEADER),
        method: header_str(headers, METHOD_HEADER),
        name: header_str(headers, NAME_HEADER),
    };
    if let Err(rejection) = era::validate_modern(routing, &msg) {
        return rejection_response(&rejection, id);
    }
    let method = msg
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let principal = principal(&state.parked, headers);
    let ours = msg
        .pointer("/params/requestState")
        .and_then(Value::as_str)
        .and_then(|s| s.strip_prefix(STATE_PREFIX));
    let call = if let Some(sealed) = ours {
        state.parked.resume(sealed, &msg, &method, &principal).await
    } else {
        let mut picked = state.instances.pick_request();
        if picked.is_none() {
            state.instances.until_ready().await;
            picked = state.instances.pick_request();
        }
        let Some((upstream, claim)) = picked else {
            return rpc_error(
                StatusCode::SERVICE_UNAVAILABLE,
                id,
                INTERNAL_ERROR,
                "no instance of the server is ready",
            );
        };
        match method.as_str() {
            "server/discover" => {
                let reply =
                    json!({"jsonrpc": "2.0", "id": id, "result": upstream.discover_result()});
                return json_response(StatusCode::OK, &reply);
            }
            "subscriptions/listen" => {
                return listen(state, upstream, id, &msg, state.meter.open_stream(), hangup).await;
            }
            _ => {
                let caller = caller.as_deref();
                start(
                    &state.tools,
                    upstream,
                    claim,
                    &msg,
                    method,
                    principal,
                    caller,
                )
                .await
            }
        }
    };
    let call = match call {
        Ok(call) => call,
        Err(rejection) => return rejection_response(&rejection, id),
    };
    let wants_stream = header_str(headers, "accept")
        .is_some_and(|a| a.contains("text/event-stream"))
        && (era::meta(&msg, "progressToken").is_some()
            || era::meta(&msg, era::META_LOG_LEVEL).is_some());
    if !wants_stream {
        let response = drive(&state.parked, call, id.clone(), None)
            .await
            .unwrap_or_else(|| {
                error_message(id, INTERNAL_ERROR, "the call ended without an answer")
            });
        return json_response(StatusCode::OK, &response);
    }
    let (out, rx) = queue::channel(SSE_BACKLOG);
    out.hang_up_on_cut(hangup);
    let state = Arc::clone(state);
    let tasks = state.tasks.clone();
    tasks.spawn(async move {
        if let Some(response) = drive(&state.parked, call, id, Some(&out)).await {
            let _ = out.push(response);
        }
    });
    Sse::new(EventStream::new(rx)).into_response()
}

/// Sends a modern client's request to `upstream`, translated for its era.
pub(super) async fn start(
    tools: &Arc<crate::gateway::tool_gate::ToolGate>,
    upstream: Upstream,
    claim: Pin,
    msg: &Value,
    method: String,
    principal: String,
    caller: Option<&ToolView>,
) -> Result<Call, Rejection> {
    let mut params = msg.get("params").cloned().unwrap_or_else(|| json!({}));
    if params.get("requestState").is_some() && upstream.era == Era::Legacy {
        return Err(invalid("requestState is not one this gateway issued"));
    }
    if let Err(error) = tools.check(&upstream, &method, Some(&params), caller).await {
        return Err(Rejection {
            status: 200,
            code: error["code"].as_i64().unwrap_or(INVALID_PARAMS),
            message: error["message"].as_str().unwrap_or_default().to_string(),
            data: None,
        });
    }
    let legacy = upstream.era == Era::Legacy;
    let can_answer = legacy && era::can_answer(&era::client_capabilities(msg));
    if legacy {
        era::strip_envelope(&mut params);
    }
    let (permit, can_answer) = ask_turn(&upstream, can_answer, &method).await;
    let cancel_key = format!("stateless {}", NEXT_CALL.fetch_add(1, Ordering::Relaxed));
    let (events_tx, events) = queue::channel(SSE_BACKLOG);
    let options = CallOptions {
        events: Some(events_tx),
        can_answer,
        cancel_key: Some(cancel_key.clone()),
        log_level: era::meta(msg, era::META_LOG_LEVEL)
            .and_then(Value::as_str)
            .map(era::level_rank),
    };
    let reply = upstream
        .start_request(&method, Some(params), options)
        .await
        .map_err(|gone| Rejection {
            status: 503,
            code: INTERNAL_ERROR,
            message: gone.to_string(),
            data: None,
        })?;
    Ok(Call {
        upstream,
        reply: tools.filter(&method, reply, caller.map(|c| Arc::new(c.clone()))),
        events,
        _permit: permit,
        cancel_key,
        _claim: claim,
        name: era::request_name(msg),
        method,
        principal,
    })
}

pub(super) static NEXT_CALL: AtomicU64 = AtomicU64::new(1);

pub(super) enum Step {
    Event(Option<Value>),
    Reply(Result<Value, oneshot::error::RecvError>),
    ClientGone,
}

pub(super) async fn closed(out: Option<&Outbox>) {
    match out {
        Some(out) => out.closed().await,
        None => std::future::pending().await,
    }
}

/// Waits for the call's result, passing its progress to `out`. A question from a
/// legacy child parks the call and answers `input_required`. `None` when the client
/// left first (the call is then cancelled upstream).
pub(super) async fn drive(
    parking: &Parking,
    mut call: Call,
    client_id: Value,
    out: Option<&Outbox>,
) -> Option<Value> {
    let mut guard = CancelGuard::new(&call);
    let mut events_open = true;
    loop {
        let step = tokio::select! {
            biased;
            event = call.events.recv(), if events_open => Step::Event(event),
            reply = &mut call.reply => Step::Reply(reply),
            () = closed(out) => Step::ClientGone,
        };
        match step {
            Step::Event(None) => events_open = false,
            Step::Event(Some(event)) if event.get("id").is_some() => {
                guard.disarm();
                return Some(parking.park(call, client_id, event));
            }
            Step::Event(Some(event)) => {
                // A client that falls behind leaves the call (cancelled upstream).
                if let Some(out) = out
                    && out.push(event).is_err()
                {
                    return None;
                }
            }
            Step::Reply(reply) => {
                guard.disarm();
                let Ok(mut response) = reply else {
                    return Some(error_message(
                        client_id,
                        INTERNAL_ERROR,
                        "the server ended before it answered",
                    ));
                };
                response["id"] = client_id;
                if call.upstream.era == Era::Legacy {
                    era::modernize_response(
                        &call.method,
                        &mut response,
                        &call.upstream.server_info(),
                    );
                }
                return Some(response);
            }
            Step::ClientGone => return None,
        }
    }
}
