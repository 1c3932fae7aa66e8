//! A 2025-era client's call to a 2026-07-28 child: the envelope comes from the session,
//! and the gateway drives `input_required` for the client, asking each question as a
//! server request on the client's stream and retrying upstream with the answers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::oneshot;

use super::Asks;
use super::session::SessionView;
use crate::gateway::Upstream;
use crate::gateway::mux::CallOptions;
use crate::gateway::queue::Outbox;
use crate::gateway::reply::error_message;
use crate::wire::era;
use crate::wire::jsonrpc::INTERNAL_ERROR;

/// How long a legacy client has to answer a question asked for a modern child.
pub(super) const ASK_TIMEOUT: Duration = Duration::from_secs(300);

/// Rounds of `input_required` driven for a legacy client before giving up.
pub(super) const MAX_INPUT_ROUNDS: usize = 10;

pub(super) static NEXT_ASK: AtomicU64 = AtomicU64::new(1);

/// A legacy client's request to a modern child: sent with the session's envelope,
/// `input_required` driven for the client (each question asked on its stream, the
/// call retried with the answers). The receiver yields the response, or closes when
/// the child ended first.
pub(super) fn ask_for_modern_child(
    state: &super::AppState,
    session_id: &str,
    session: &SessionView,
    method: &str,
    params: Option<Value>,
    events: Option<Outbox>,
    cancel_key: String,
) -> oneshot::Receiver<Value> {
    let (reply, answer) = oneshot::channel();
    let rounds = InputRounds {
        asks: std::sync::Arc::clone(&state.asks),
        session_id: session_id.to_string(),
        upstream: session.upstream.clone(),
        method: method.to_string(),
        events,
        cancel_key,
    };
    let params = era::add_envelope(params, &session.envelope);
    state.tasks.spawn(async move {
        if let Some(response) = rounds.run(params).await {
            let _ = reply.send(response);
        }
    });
    answer
}

pub(super) struct InputRounds {
    pub(super) asks: Asks,
    pub(super) session_id: String,
    pub(super) upstream: Upstream,
    pub(super) method: String,
    pub(super) events: Option<Outbox>,
    pub(super) cancel_key: String,
}

impl InputRounds {
    pub(super) async fn run(self, mut params: Value) -> Option<Value> {
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
                    Err(why) => {
                        return Some(error_message(Value::Null, INTERNAL_ERROR, &why.to_string()));
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
    pub(super) async fn ask(&self, request: &Value) -> Result<Value, AskError> {
        let method = request
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        let Some(events) = &self.events else {
            return Err(AskError::NoStream(method));
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
            Some(answer) => answer
                .get("result")
                .cloned()
                .ok_or_else(|| AskError::Refused {
                    error: answer
                        .get("error")
                        .cloned()
                        .unwrap_or(Value::Null)
                        .to_string(),
                    method,
                }),
            None => Err(AskError::NoAnswer(method)),
        }
    }
}

/// Why a child's question to the client got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum AskError {
    #[error(
        "the server needs the client to answer {0}; send Accept: text/event-stream to receive the question"
    )]
    NoStream(String),
    #[error("the client refused {method}: {error}")]
    Refused { method: String, error: String },
    #[error("the client did not answer {0}")]
    NoAnswer(String),
}
