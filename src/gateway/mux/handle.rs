//! The handle callers hold to a child's shared channel: requests, notifications,
//! answers to the child's questions, cancellation, and what the probe learnt.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{Semaphore, broadcast, mpsc, oneshot};

use super::{CallOptions, Gone, Op, Pin, SERVER_REQUEST_PREFIX, millis};
use crate::wire::era::{self, Era};

/// A handle to a child's shared stdio channel.
#[derive(Clone)]
pub struct Upstream {
    pub(super) ops: mpsc::Sender<Op>,
    /// The child's answer to the gateway's probe: `initialize` (legacy) or
    /// `server/discover` (modern).
    pub init: Arc<Value>,
    /// Which protocol the child speaks, settled by the probe.
    pub era: Era,
    /// Requests of session-less (modern) clients in flight here, for balancing them.
    pub(super) in_flight: Arc<AtomicUsize>,
    /// Client sessions pinned to this child (for least-loaded placement).
    pub(super) sessions: Arc<AtomicUsize>,
    /// Held by a call that could cause a server request, so that a server request
    /// always has exactly one call it can belong to.
    pub ask_lock: Arc<Semaphore>,
    /// The child's notifications that no call owns (list changes, resource updates,
    /// log messages), for the sessions to filter.
    pub(super) notifications: broadcast::Sender<Value>,
    /// Resource URIs subscribed by sessions, with how many: the child is subscribed
    /// while at least one session is.
    pub(super) subscriptions: Arc<std::sync::Mutex<HashMap<String, usize>>>,
    /// `call_timeout` in milliseconds; changed in place by [`Upstream::set_call_timeout`].
    pub(super) call_timeout_ms: Arc<AtomicU64>,
    /// Calls in flight other than pings and listens: the child has work.
    pub(super) busy: Arc<AtomicUsize>,
    /// The child asked for roots outside any call (see [`Upstream::asked_roots_unprompted`]).
    pub(super) unprompted_roots: Arc<std::sync::atomic::AtomicBool>,
    /// When the child last wrote a line.
    pub(super) heard: Arc<AtomicU64>,
    /// The scope of the child's loop (the daemon's instances, an endpoint): tasks that
    /// work for this child (its listen stream's reader) go there too.
    pub tasks: crate::gateway::owned::Scope,
}

impl Upstream {
    /// Forwards a request; the receiver yields the child's response (`result` or `error`).
    pub async fn start_request(
        &self,
        method: &str,
        params: Option<Value>,
        options: CallOptions,
    ) -> Result<oneshot::Receiver<Value>, Gone> {
        let (reply, answer) = oneshot::channel();
        let op = Op::Call {
            method: method.to_string(),
            params,
            reply,
            options,
        };
        self.ops.send(op).await.map_err(|_| Gone)?;
        Ok(answer)
    }

    /// Forwards a request and waits for the response.
    pub async fn request(&self, method: &str, params: Option<Value>) -> Result<Value, Gone> {
        self.start_request(method, params, CallOptions::default())
            .await?
            .await
            .map_err(|_| Gone)
    }

    /// Calls in flight other than pings and listens. A child that serves one request at
    /// a time cannot answer a ping while it works on one: that is not a dead child.
    pub fn busy(&self) -> usize {
        self.busy.load(Ordering::Relaxed)
    }

    /// Calls in flight while the child has written nothing for `quiet`: stuck (stopped,
    /// wedged) or busy with a long call; either way not the one to give new work.
    pub fn seems_stuck(&self, quiet: Duration) -> bool {
        let heard = self.heard.load(Ordering::Relaxed);
        self.busy() > 0
            && super::since_start().saturating_sub(heard)
                > u64::try_from(quiet.as_millis()).unwrap_or(u64::MAX)
    }

    /// Applies a new `call_timeout` to calls made from now on.
    pub fn set_call_timeout(&self, timeout: Duration) {
        self.call_timeout_ms
            .store(millis(timeout), Ordering::Relaxed);
    }

    /// Resolves once the mux has ended: the child's stdout closed or its stdin broke.
    /// Every call in flight then fails with [`Gone`].
    pub async fn closed(&self) {
        self.ops.closed().await;
    }

    /// Whether the child asked for `roots/list` with no call in flight (at start, say):
    /// it was told there are none, since a client's roots can reach it only during
    /// one of that client's calls.
    pub fn asked_roots_unprompted(&self) -> bool {
        self.unprompted_roots.load(Ordering::Relaxed)
    }

    /// Whether the mux has ended (see [`Upstream::closed`]).
    pub fn is_closed(&self) -> bool {
        self.ops.is_closed()
    }

    pub async fn notify(&self, method: &str, params: Option<Value>) -> Result<(), Gone> {
        let op = Op::Notify {
            method: method.to_string(),
            params,
        };
        self.ops.send(op).await.map_err(|_| Gone)
    }

    /// Hands a client's response to a server request (id `mcpctl-srv-N`) to the child.
    /// `false` when the id is not one of ours.
    /// `from` names the answering client: a prefix of the `cancel_key` of the call the
    /// question went to (its session's `"SESSION "`, or the whole key); an answer from
    /// anyone else is dropped.
    pub async fn answer(&self, id: &Value, response: Value, from: &str) -> bool {
        let Some(id) = id.as_str().filter(|i| i.starts_with(SERVER_REQUEST_PREFIX)) else {
            return false;
        };
        let op = Op::Answer {
            id: id.to_string(),
            response,
            from: from.to_string(),
        };
        self.ops.send(op).await.is_ok()
    }

    /// The same channel, with the child's era and its answer to the probe recorded.
    pub fn initialized(&self, init: Value, era: Era) -> Self {
        Self {
            init: Arc::new(init),
            era,
            ..self.clone()
        }
    }

    /// The child's `initialize` result, translated when it speaks 2026-07-28.
    pub fn initialize_result(&self) -> Value {
        match self.era {
            Era::Legacy => (*self.init).clone(),
            Era::Modern => era::initialize_from_discover(&self.init),
        }
    }

    /// The child's `server/discover` result, synthesized when it is legacy.
    pub fn discover_result(&self) -> Value {
        match self.era {
            Era::Legacy => era::discover_from_initialize(&self.init),
            Era::Modern => (*self.init).clone(),
        }
    }

    /// The revision the child speaks: 2026-07-28, or what it answered `initialize` with.
    pub fn protocol(&self) -> String {
        let version = match self.era {
            Era::Modern => Some(era::MODERN_VERSIONS[0]),
            Era::Legacy => self.init.get("protocolVersion").and_then(Value::as_str),
        };
        version.unwrap_or("unknown").to_string()
    }

    /// Who the child says it is.
    pub fn server_info(&self) -> Value {
        match self.era {
            Era::Legacy => self.init.get("serverInfo").cloned().unwrap_or(Value::Null),
            Era::Modern => era::meta(&json!({"params": &*self.init}), era::META_SERVER_INFO)
                .cloned()
                .unwrap_or(Value::Null),
        }
    }

    /// Stateless requests in flight here.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts one stateless request here until the returned guard drops.
    pub fn claim(&self) -> Pin {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Pin(Arc::clone(&self.in_flight))
    }

    /// Hands a notification of the child to every session that wants it.
    pub fn publish(&self, msg: Value) {
        let _ = self.notifications.send(msg);
    }

    pub fn notifications(&self) -> broadcast::Receiver<Value> {
        self.notifications.subscribe()
    }

    /// Counts a session's subscription to `uri`; the first one subscribes the child.
    pub async fn subscribe(&self, uri: &str) {
        let first = self.subscriptions.lock().map(|mut s| {
            let n = s.entry(uri.to_string()).or_default();
            *n += 1;
            *n == 1
        });
        if first.unwrap_or(false) {
            let _ = self
                .request("resources/subscribe", Some(json!({"uri": uri})))
                .await;
        }
    }

    /// The last session's unsubscribe unsubscribes the child.
    pub async fn unsubscribe(&self, uri: &str) {
        let last = self.subscriptions.lock().map(|mut s| match s.get_mut(uri) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => s.remove(uri).is_some(),
            None => false,
        });
        if last.unwrap_or(false) {
            let _ = self
                .request("resources/unsubscribe", Some(json!({"uri": uri})))
                .await;
        }
    }

    /// Cancels the call made with `cancel_key = key`: the child is told, the caller
    /// gets a cancellation error instead of a result.
    pub async fn cancel(&self, key: String, reason: Option<Value>) {
        let _ = self.ops.send(Op::Cancel { key, reason }).await;
    }

    /// Cancels every call whose `cancel_key` starts with `prefix`, as
    /// [`Upstream::cancel`] does for one.
    pub async fn cancel_all(&self, prefix: String, reason: &str) {
        let reason = reason.to_string();
        let _ = self.ops.send(Op::CancelAll { prefix, reason }).await;
    }

    /// Sessions currently pinned here.
    pub fn load(&self) -> usize {
        self.sessions.load(Ordering::Relaxed)
    }

    /// Pins one more session here until the returned guard drops.
    pub fn pin(&self) -> Pin {
        self.sessions.fetch_add(1, Ordering::Relaxed);
        Pin(Arc::clone(&self.sessions))
    }
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Upstream")
    }
}
