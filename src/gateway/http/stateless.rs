//! 2026-07-28 on `/mcp`, and the bridge between the eras.
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
//! - Legacy client, modern child ([`ask_for_modern_child`]): the envelope comes from
//!   the session, and the gateway drives `input_required` for the client, asking each
//!   question as a server request on the client's stream and retrying upstream.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio::sync::{OwnedSemaphorePermit, oneshot};

use super::dispatch::CAN_CAUSE_SERVER_REQUESTS;
use super::events::EventStream;
use super::session::SessionView;
use super::{AppState, Asks, SSE_BACKLOG, VERSION_HEADER};
use crate::gateway::Upstream;
use crate::gateway::era::{self, Era, Rejection, Ticket};
use crate::gateway::guard::header_str;
use crate::gateway::jsonrpc::INTERNAL_ERROR;
use crate::gateway::mux::{CallOptions, Pin};
use crate::gateway::queue::{self, Inbox, Outbox};
use crate::gateway::reply::{error_message, json_response, rejection_response, rpc_error};

const METHOD_HEADER: &str = "mcp-method";
const NAME_HEADER: &str = "mcp-name";
/// How long a parked call waits for its client's retry.
const PARK_TTL: Duration = Duration::from_secs(120);
/// How long a legacy client has to answer a question asked for a modern child.
const ASK_TIMEOUT: Duration = Duration::from_secs(300);
/// Rounds of `input_required` driven for a legacy client before giving up.
const MAX_INPUT_ROUNDS: usize = 10;
/// The one input request a parked call carries.
const INPUT_KEY: &str = "input";
/// Marks a `requestState` this gateway sealed (any other belongs to the child).
const STATE_PREFIX: &str = "mcpctl1.";

/// A call that belongs to one stateless request (and its retries).
pub(super) struct Call {
    upstream: Upstream,
    reply: oneshot::Receiver<Value>,
    events: Inbox,
    /// Held while the child may ask this call's client something.
    _permit: Option<OwnedSemaphorePermit>,
    cancel_key: String,
    _claim: Pin,
    method: String,
    name: Option<String>,
    principal: String,
}

/// A call parked on a question for its client.
pub(super) struct Parked {
    call: Call,
    /// The id the question went to the client with, to answer the child.
    asked_id: Value,
}

/// Calls waiting for an `input_required` retry, and the key that seals their states.
pub(super) struct Parking {
    calls: Arc<Mutex<HashMap<u64, Parked>>>,
    sealer: era::Sealer,
    next: AtomicU64,
}

impl Parking {
    /// Fails when the OS random source does: states sealed with a guessable key could
    /// be forged, so the gateway refuses to start instead.
    pub(super) fn new() -> std::io::Result<Self> {
        let mut key = [0u8; 32];
        crate::gateway::random::fill(&mut key)?;
        Ok(Self {
            calls: Arc::default(),
            sealer: era::Sealer::new(key),
            next: AtomicU64::new(1),
        })
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn invalid(message: impl Into<String>) -> Rejection {
    Rejection {
        status: 400,
        code: era::INVALID_PARAMS,
        message: message.into(),
        data: None,
    }
}

impl Parking {
    fn next(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Parks `call` on the child's question `asked` and tells the client what to answer.
    fn park(&self, call: Call, client_id: Value, asked: Value) -> Value {
        let handle = self.next();
        let ticket = Ticket {
            handle,
            method: call.method.clone(),
            name: call.name.clone(),
            principal: call.principal.clone(),
            expires_ms: now_ms().saturating_add(PARK_TTL.as_millis().try_into().unwrap_or(0)),
        };
        let sealed = format!("{STATE_PREFIX}{}", self.sealer.seal(&ticket));
        let request = json!({
            "method": asked.get("method").cloned().unwrap_or(Value::Null),
            "params": asked.get("params").cloned().unwrap_or_else(|| json!({})),
        });
        let server_info = call.upstream.server_info();
        let asked_id = asked.get("id").cloned().unwrap_or(Value::Null);
        if let Ok(mut calls) = self.calls.lock() {
            calls.insert(handle, Parked { call, asked_id });
        }
        expire_later(Arc::downgrade(&self.calls), handle);
        json!({"jsonrpc": "2.0", "id": client_id, "result": {
            "resultType": "input_required",
            "inputRequests": {INPUT_KEY: request},
            "requestState": sealed,
            "_meta": {era::META_SERVER_INFO: server_info},
        }})
    }

    /// The parked call a retry names, with the client's answer handed to the child.
    /// The state must be ours, unexpired, and bound to this very request and client.
    async fn resume(
        &self,
        sealed: &str,
        msg: &Value,
        method: &str,
        principal: &str,
    ) -> Result<Call, Rejection> {
        let ticket = self
            .sealer
            .open(sealed, now_ms())
            .map_err(|e| invalid(e.to_string()))?;
        if ticket.method != method
            || ticket.name != era::request_name(msg)
            || ticket.principal != principal
        {
            return Err(invalid("requestState belongs to another request"));
        }
        let parked = self
            .calls
            .lock()
            .ok()
            .and_then(|mut c| c.remove(&ticket.handle))
            .ok_or_else(|| invalid("requestState was already used or has expired"))?;
        let answer = match msg.pointer(&format!("/params/inputResponses/{INPUT_KEY}")) {
            Some(result) => json!({"result": result}),
            None => {
                json!({"error": {"code": INTERNAL_ERROR, "message": "the client gave no answer"}})
            }
        };
        parked.call.upstream.answer(&parked.asked_id, answer).await;
        Ok(parked.call)
    }
}

/// A parked call whose client never retries is failed towards the child and cancelled.
fn expire_later(calls: Weak<Mutex<HashMap<u64, Parked>>>, handle: u64) {
    tokio::spawn(async move {
        tokio::time::sleep(PARK_TTL).await;
        let parked = calls
            .upgrade()
            .and_then(|c| c.lock().ok().and_then(|mut c| c.remove(&handle)));
        if let Some(parked) = parked {
            let error = json!({"error": {"code": INTERNAL_ERROR, "message": "the client did not answer in time"}});
            let upstream = parked.call.upstream.clone();
            upstream.answer(&parked.asked_id, error).await;
            upstream.cancel(parked.call.cancel_key.clone(), None).await;
        }
    });
}

/// Cancels the call upstream when dropped armed: the client went away first.
struct CancelGuard {
    armed: Option<(Upstream, String)>,
}

impl CancelGuard {
    fn new(call: &Call) -> Self {
        Self {
            armed: Some((call.upstream.clone(), call.cancel_key.clone())),
        }
    }

    fn disarm(&mut self) {
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
fn principal(parking: &Parking, headers: &HeaderMap) -> String {
    header_str(headers, "authorization")
        .map(|credentials| parking.sealer.principal(credentials))
        .unwrap_or_default()
}

/// A POST from a 2026-07-28 client.
pub(super) async fn post(state: &Arc<AppState>, headers: &HeaderMap, msg: Value) -> Response {
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
            "subscriptions/listen" => return listen(upstream, id, &msg).await,
            _ => start(upstream, claim, &msg, method, principal).await,
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
    let state = Arc::clone(state);
    tokio::spawn(async move {
        if let Some(response) = drive(&state.parked, call, id, Some(&out)).await {
            let _ = out.push(response);
        }
    });
    Sse::new(EventStream::new(rx)).into_response()
}

/// Sends a modern client's request to `upstream`, translated for its era.
async fn start(
    upstream: Upstream,
    claim: Pin,
    msg: &Value,
    method: String,
    principal: String,
) -> Result<Call, Rejection> {
    let mut params = msg.get("params").cloned().unwrap_or_else(|| json!({}));
    if params.get("requestState").is_some() && upstream.era == Era::Legacy {
        return Err(invalid("requestState is not one this gateway issued"));
    }
    let legacy = upstream.era == Era::Legacy;
    let can_answer = legacy && era::can_answer(&era::client_capabilities(msg));
    if legacy {
        era::strip_envelope(&mut params);
    }
    let permit = if can_answer && CAN_CAUSE_SERVER_REQUESTS.contains(&method.as_str()) {
        Arc::clone(&upstream.ask_lock).acquire_owned().await.ok()
    } else {
        None
    };
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
        reply,
        events,
        _permit: permit,
        cancel_key,
        _claim: claim,
        name: era::request_name(msg),
        method,
        principal,
    })
}

static NEXT_CALL: AtomicU64 = AtomicU64::new(1);

enum Step {
    Event(Option<Value>),
    Reply(Result<Value, oneshot::error::RecvError>),
    ClientGone,
}

async fn closed(out: Option<&Outbox>) {
    match out {
        Some(out) => out.closed().await,
        None => std::future::pending().await,
    }
}

/// Waits for the call's result, passing its progress to `out`. A question from a
/// legacy child parks the call and answers `input_required`. `None` when the client
/// left first (the call is then cancelled upstream).
async fn drive(
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

/// `subscriptions/listen`: the child's change notifications the client asked for, on
/// a stream of its own, each stamped with the listen's id.
async fn listen(upstream: Upstream, id: Value, msg: &Value) -> Response {
    let asked = msg
        .pointer("/params/notifications")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let flag = |name: &str| asked.get(name).and_then(Value::as_bool) == Some(true);
    let mut honored = Map::new();
    for name in [
        "toolsListChanged",
        "promptsListChanged",
        "resourcesListChanged",
    ] {
        if flag(name) {
            honored.insert(name.into(), json!(true));
        }
    }
    // Resource subscriptions are the legacy child's `resources/subscribe`.
    let uris: Vec<String> = if upstream.era == Era::Legacy {
        asked
            .get("resourceSubscriptions")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    if !uris.is_empty() {
        honored.insert("resourceSubscriptions".into(), json!(uris));
    }
    for uri in &uris {
        upstream.subscribe(uri).await;
    }
    let subscribed = uris.clone();
    let stamp = json!({era::META_SUBSCRIPTION_ID: id});
    let acknowledged = json!({"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged",
                              "params": {"notifications": honored, "_meta": stamp}});
    let wanted = move |msg: &Value| match msg.get("method").and_then(Value::as_str) {
        Some("notifications/tools/list_changed") => flag_of(&honored, "toolsListChanged"),
        Some("notifications/prompts/list_changed") => flag_of(&honored, "promptsListChanged"),
        Some("notifications/resources/list_changed") => flag_of(&honored, "resourcesListChanged"),
        Some("notifications/resources/updated") => msg
            .pointer("/params/uri")
            .and_then(Value::as_str)
            .is_some_and(|u| uris.iter().any(|w| w == u)),
        _ => false,
    };
    let (out, rx) = queue::channel(SSE_BACKLOG);
    let mut notifications = upstream.notifications();
    tokio::spawn(async move {
        let _ = out.push(acknowledged);
        loop {
            let msg = tokio::select! {
                msg = notifications.recv() => msg,
                () = out.closed() => break,
            };
            let mut msg = match msg {
                Ok(msg) => msg,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => break,
            };
            if !wanted(&msg) {
                continue;
            }
            if let Some(params) = msg.get_mut("params").and_then(Value::as_object_mut) {
                let meta = params.entry("_meta").or_insert_with(|| json!({}));
                meta[era::META_SUBSCRIPTION_ID] = stamp[era::META_SUBSCRIPTION_ID].clone();
            } else {
                msg["params"] = json!({"_meta": stamp.clone()});
            }
            // A listener that falls behind is disconnected: its stream ends.
            if out.push(msg).is_err() {
                break;
            }
        }
        for uri in subscribed {
            upstream.unsubscribe(&uri).await;
        }
    });
    Sse::new(EventStream::new(rx))
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn flag_of(honored: &Map<String, Value>, name: &str) -> bool {
    honored.get(name).and_then(Value::as_bool) == Some(true)
}

static NEXT_ASK: AtomicU64 = AtomicU64::new(1);

/// A legacy client's request to a modern child: sent with the session's envelope,
/// `input_required` driven for the client (each question asked on its stream, the
/// call retried with the answers). The receiver yields the response, or closes when
/// the child ended first.
pub(super) fn ask_for_modern_child(
    asks: Asks,
    session_id: &str,
    session: &SessionView,
    method: &str,
    params: Option<Value>,
    events: Option<Outbox>,
    cancel_key: String,
) -> oneshot::Receiver<Value> {
    let (reply, answer) = oneshot::channel();
    let rounds = InputRounds {
        asks,
        session_id: session_id.to_string(),
        upstream: session.upstream.clone(),
        method: method.to_string(),
        events,
        cancel_key,
    };
    let params = era::add_envelope(params, &session.envelope);
    tokio::spawn(async move {
        if let Some(response) = rounds.run(params).await {
            let _ = reply.send(response);
        }
    });
    answer
}

struct InputRounds {
    asks: Asks,
    session_id: String,
    upstream: Upstream,
    method: String,
    events: Option<Outbox>,
    cancel_key: String,
}

impl InputRounds {
    async fn run(self, mut params: Value) -> Option<Value> {
        for _ in 0..MAX_INPUT_ROUNDS {
            let options = CallOptions {
                events: self.events.clone(),
                cancel_key: Some(self.cancel_key.clone()),
                ..CallOptions::default()
            };
            let asked = self
                .upstream
                .start_request(&self.method, Some(params.clone()), options)
                .await
                .ok()?;
            let mut response = asked.await.ok()?;
            let result = response.get("result");
            if result.and_then(|r| r.get("resultType")) != Some(&json!("input_required")) {
                era::legacy_result(&mut response);
                return Some(response);
            }
            let requests = result
                .and_then(|r| r.get("inputRequests"))
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let mut answers = Map::new();
            for (key, request) in requests {
                match self.ask(&request).await {
                    Ok(answer) => {
                        answers.insert(key, answer);
                    }
                    Err(message) => {
                        return Some(error_message(Value::Null, INTERNAL_ERROR, &message));
                    }
                }
            }
            let p = params.as_object_mut()?;
            p.insert("inputResponses".into(), Value::Object(answers));
            match result.and_then(|r| r.get("requestState")) {
                Some(state) => p.insert("requestState".into(), state.clone()),
                None => p.remove("requestState"),
            };
        }
        Some(error_message(
            Value::Null,
            INTERNAL_ERROR,
            "the server asked for input too many times",
        ))
    }

    /// Puts one of the child's input requests to the client as a server request.
    async fn ask(&self, request: &Value) -> Result<Value, String> {
        let method = request.get("method").and_then(Value::as_str).unwrap_or("?");
        let Some(events) = &self.events else {
            return Err(format!(
                "the server needs the client to answer {method}; send Accept: text/event-stream to receive the question"
            ));
        };
        let id = format!("mcpctl-ask-{}", NEXT_ASK.fetch_add(1, Ordering::Relaxed));
        let key = (self.session_id.clone(), id.clone());
        let (tx, rx) = oneshot::channel();
        if let Ok(mut asks) = self.asks.lock() {
            asks.insert(key.clone(), tx);
        }
        let question = json!({"jsonrpc": "2.0", "id": id, "method": method,
                              "params": request.get("params").cloned().unwrap_or_else(|| json!({}))});
        let answer = if events.push(question).is_ok() {
            tokio::time::timeout(ASK_TIMEOUT, rx)
                .await
                .ok()
                .and_then(Result::ok)
        } else {
            None
        };
        if let Ok(mut asks) = self.asks.lock() {
            asks.remove(&key);
        }
        match answer {
            Some(answer) => answer.get("result").cloned().ok_or_else(|| {
                format!(
                    "the client refused {method}: {}",
                    answer.get("error").unwrap_or(&Value::Null)
                )
            }),
            None => Err(format!("the client did not answer {method}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry_of(state: &str) -> Value {
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "deploy", "requestState": state, "inputResponses": {INPUT_KEY: {"action": "accept"}}}})
    }

    #[tokio::test]
    async fn an_expired_or_misbound_state_is_refused_before_any_call_is_touched() {
        let parking = Parking::new().unwrap();
        let ticket = |expires_ms, principal: &str| Ticket {
            handle: 1,
            method: "tools/call".into(),
            name: Some("deploy".into()),
            principal: principal.into(),
            expires_ms,
        };
        let expired = parking.sealer.seal(&ticket(1, ""));
        let refused = parking
            .resume(&expired, &retry_of(&expired), "tools/call", "")
            .await
            .err()
            .map(|r| r.message);
        assert_eq!(refused.as_deref(), Some("requestState has expired"));

        let someone_elses = parking.sealer.seal(&ticket(u64::MAX, "alice"));
        let refused = parking
            .resume(
                &someone_elses,
                &retry_of(&someone_elses),
                "tools/call",
                "bob",
            )
            .await
            .err()
            .map(|r| r.message);
        assert_eq!(
            refused.as_deref(),
            Some("requestState belongs to another request")
        );

        // Sealed here and due, but no call waits for it (already answered).
        let orphan = parking.sealer.seal(&ticket(u64::MAX, ""));
        let refused = parking
            .resume(&orphan, &retry_of(&orphan), "tools/call", "")
            .await
            .err()
            .map(|r| r.message);
        assert_eq!(
            refused.as_deref(),
            Some("requestState was already used or has expired")
        );
    }
}
