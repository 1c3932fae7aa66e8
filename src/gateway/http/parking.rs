//! Calls parked on a question for their 2026-07-28 client: a legacy child asked
//! something (sampling, elicitation, roots) during a stateless call, the client got
//! `input_required` with a sealed `requestState`, and its retry, checked against the
//! seal, answers the child and picks the call up again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, oneshot};

use crate::gateway::Upstream;
use crate::gateway::mux::Pin;
use crate::gateway::queue::Inbox;
use crate::wire::era::{self, Rejection, Ticket};
use crate::wire::jsonrpc::INTERNAL_ERROR;

/// How long a parked call waits for its client's retry.
pub(super) const PARK_TTL: Duration = Duration::from_secs(120);

/// The one input request a parked call carries.
pub(super) const INPUT_KEY: &str = "input";

/// Marks a `requestState` this gateway sealed (any other belongs to the child).
pub(crate) const STATE_PREFIX: &str = "mcpctl1.";

/// A call that belongs to one stateless request (and its retries).
pub(super) struct Call {
    pub(super) upstream: Upstream,
    pub(super) reply: oneshot::Receiver<Value>,
    pub(super) events: Inbox,
    /// Held while the child may ask this call's client something.
    pub(super) _permit: Option<OwnedSemaphorePermit>,
    pub(super) cancel_key: String,
    pub(super) _claim: Pin,
    pub(super) method: String,
    pub(super) name: Option<String>,
    pub(super) principal: String,
}

/// A call parked on a question for its client.
pub(super) struct Parked {
    pub(super) call: Call,
    /// The id the question went to the client with, to answer the child.
    pub(super) asked_id: Value,
}

/// Calls waiting for an `input_required` retry, and the key that seals their states.
pub(super) struct Parking {
    pub(super) calls: Arc<Mutex<HashMap<u64, Parked>>>,
    pub(super) sealer: era::Sealer,
    pub(super) next: AtomicU64,
    /// Replicas: a state is tagged with this one's sealed name, so that a retry sent to
    /// another replica is forwarded here, where the call is parked.
    pub(super) replicas: Option<Arc<crate::gateway::replicas::Replicas>>,
    /// The port's tasks: a parked call's expiry is one.
    pub(super) tasks: crate::gateway::owned::Scope,
}

impl Parking {
    /// Fails when the OS random source does: states sealed with a guessable key could
    /// be forged, so the gateway refuses to start instead.
    pub(super) fn new(
        replicas: Option<Arc<crate::gateway::replicas::Replicas>>,
        tasks: crate::gateway::owned::Scope,
    ) -> std::io::Result<Self> {
        let mut key = [0u8; 32];
        crate::gateway::random::fill(&mut key)?;
        Ok(Self {
            calls: Arc::default(),
            sealer: era::Sealer::new(key),
            next: AtomicU64::new(1),
            replicas,
            tasks,
        })
    }
}

impl Parking {
    pub(super) fn next(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Parks `call` on the child's question `asked` and tells the client what to answer.
    pub(super) fn park(&self, call: Call, client_id: Value, asked: Value) -> Value {
        let handle = self.next();
        let ticket = Ticket {
            handle,
            method: call.method.clone(),
            name: call.name.clone(),
            principal: call.principal.clone(),
            expires_ms: now_ms().saturating_add(PARK_TTL.as_millis().try_into().unwrap_or(0)),
        };
        let inner = self.sealer.seal(&ticket);
        let sealed = match self.replicas.as_ref().and_then(|r| r.mint()) {
            Some(tag) => format!("{STATE_PREFIX}{tag}~{inner}"),
            None => format!("{STATE_PREFIX}{inner}"),
        };
        let request = json!({
            "method": asked.get("method").cloned().unwrap_or(Value::Null),
            "params": asked.get("params").cloned().unwrap_or_else(|| json!({})),
        });
        let server_info = call.upstream.server_info();
        let asked_id = asked.get("id").cloned().unwrap_or(Value::Null);
        if let Ok(mut calls) = self.calls.lock() {
            calls.insert(handle, Parked { call, asked_id });
        }
        expire_later(&self.tasks, Arc::downgrade(&self.calls), handle);
        json!({"jsonrpc": "2.0", "id": client_id, "result": {
            "resultType": "input_required",
            "inputRequests": {INPUT_KEY: request},
            "requestState": sealed,
            "_meta": {era::META_SERVER_INFO: server_info},
        }})
    }

    /// The parked call a retry names, with the client's answer handed to the child.
    /// The state must be ours, unexpired, and bound to this very request and client.
    pub(super) async fn resume(
        &self,
        sealed: &str,
        msg: &Value,
        method: &str,
        principal: &str,
    ) -> Result<Call, Rejection> {
        // A replica's tag routed the retry here; the state itself follows it.
        let sealed = sealed.split_once('~').map_or(sealed, |(_, state)| state);
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
        let call = &parked.call;
        call.upstream
            .answer(&parked.asked_id, answer, &call.cancel_key)
            .await;
        Ok(parked.call)
    }
}

pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub(super) fn invalid(message: impl Into<String>) -> Rejection {
    Rejection {
        status: 400,
        code: era::INVALID_PARAMS,
        message: message.into(),
        data: None,
    }
}

/// A parked call whose client never retries is failed towards the child and cancelled.
pub(super) fn expire_later(
    tasks: &crate::gateway::owned::Scope,
    calls: Weak<Mutex<HashMap<u64, Parked>>>,
    handle: u64,
) {
    tasks.spawn(async move {
        tokio::time::sleep(PARK_TTL).await;
        let parked = calls
            .upgrade()
            .and_then(|c| c.lock().ok().and_then(|mut c| c.remove(&handle)));
        if let Some(parked) = parked {
            let error = json!({"error": {"code": INTERNAL_ERROR, "message": "the client did not answer in time"}});
            let upstream = parked.call.upstream.clone();
            upstream
                .answer(&parked.asked_id, error, &parked.call.cancel_key)
                .await;
            upstream.cancel(parked.call.cancel_key.clone(), None).await;
        }
    });
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
        let parking = Parking::new(None, crate::gateway::owned::Scope::new()).unwrap();
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
