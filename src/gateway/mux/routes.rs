//! The mux's routing table, with no I/O of its own: it takes the callers' operations and
//! the child's messages, queues the lines for the child in `out`, and answers callers
//! through their reply channels and event queues. Every upstream id is a counter never
//! reused while pending; a progress token gets one of ours and the client's is restored;
//! a request of the child's goes to the one call in flight whose client can answer it.
//! Time comes in as an argument, so the tests drive it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{
    CallOptions, FELL_BEHIND, INTERNAL_ERROR, OnMessage, OnNoise, Op, PROGRESS_PREFIX,
    REQUEST_TIMEOUT, SERVER_REQUEST_PREFIX,
};
use crate::gateway::lines::{self, Line};
use crate::gateway::queue::Outbox;
use crate::wire::era;
use crate::wire::jsonrpc::{self, METHOD_NOT_FOUND, REQUEST_CANCELLED};

/// A question of the child's, put to the client of one call.
struct Asked {
    /// The child's id for it.
    child_id: Value,
    /// The call it went to, and that call's `cancel_key` (who may answer).
    call: u64,
    owner: Option<String>,
}

/// A call in flight.
struct Pending {
    reply: oneshot::Sender<Value>,
    /// A `subscriptions/listen`: long-lived, never the cause of a log message.
    listen: bool,
    options: CallOptions,
    /// Our progress token for this call, if it asked for progress.
    progress_token: Option<String>,
    /// When the call fails unanswered (`None` for a listen, which lives on).
    deadline: Option<Instant>,
    /// Counted in [`Upstream::busy`] (not a ping, not a listen).
    busy: bool,
    /// Its client can answer and its method can cause a server request: a candidate
    /// for the child's questions.
    askable: bool,
}

/// Where every message between the child and the calls goes: the table of calls in
/// flight by upstream id, progress tokens, the child's questions and cancel keys, and
/// the lines waiting for the child. The task feeds it and writes `out`.
pub(super) struct Routes {
    /// Lines for the child not yet written.
    pub(super) out: Vec<u8>,
    pending: HashMap<u64, Pending>,
    /// Our progress token -> (upstream id of its call, the client's token).
    progress: HashMap<String, (u64, Value)>,
    /// Our id for a server request -> the child's id for it.
    asked: HashMap<String, Asked>,
    /// Cancel key -> upstream id of the call.
    cancel_keys: HashMap<String, u64>,
    /// Every pending call's deadline, earliest first.
    deadlines: BTreeSet<(Instant, u64)>,
    call_timeout_ms: Arc<AtomicU64>,
    busy: Arc<AtomicUsize>,
    next_id: u64,
    /// A client's queue is more than half full: let its reader run before going on.
    pub(super) yield_soon: bool,
    /// The child asked for `roots/list` with no call to put it to (at start, say), and
    /// was told there are none: what `status` warns about.
    pub(super) unprompted_roots: Arc<AtomicBool>,
}

impl Routes {
    pub(super) fn new(call_timeout_ms: Arc<AtomicU64>, busy: Arc<AtomicUsize>) -> Self {
        Self {
            out: Vec::new(),
            pending: HashMap::new(),
            progress: HashMap::new(),
            asked: HashMap::new(),
            cancel_keys: HashMap::new(),
            deadlines: BTreeSet::new(),
            call_timeout_ms,
            busy,
            next_id: 1,
            yield_soon: false,
            unprompted_roots: Arc::default(),
        }
    }

    /// When the earliest call in flight times out.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|&(at, _)| at)
    }

    /// Adds one message to the lines written to the child as soon as it reads them;
    /// everything queued in one turn of the loop goes out in one write.
    fn queue(&mut self, msg: &Value) {
        // Serializing a `Value` into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.out, msg);
        self.out.push(b'\n');
    }

    pub(super) fn handle_op(&mut self, op: Op, now: Instant) {
        match op {
            Op::Call {
                method,
                mut params,
                reply,
                options,
            } => {
                let id = self.next_id;
                self.next_id += 1;
                let mut progress_token = None;
                if let Some(token) = params
                    .as_mut()
                    .and_then(|p| p.pointer_mut("/_meta/progressToken"))
                {
                    let ours = format!("{PROGRESS_PREFIX}{id}");
                    self.progress.insert(ours.clone(), (id, token.take()));
                    *token = json!(ours);
                    progress_token = Some(ours);
                }
                let mut msg = json!({"jsonrpc": "2.0", "id": id, "method": method});
                if let Some(params) = params {
                    msg["params"] = params;
                }
                self.queue(&msg);
                if let Some(key) = &options.cancel_key {
                    self.cancel_keys.insert(key.clone(), id);
                }
                let listen = method == "subscriptions/listen";
                let deadline = (!listen).then(|| self.deadline_after(now));
                if let Some(at) = deadline {
                    self.deadlines.insert((at, id));
                }
                let busy = !listen && method != "ping";
                let askable = options.can_answer && jsonrpc::can_cause_server_requests(&method);
                if busy {
                    self.busy.fetch_add(1, Ordering::Relaxed);
                }
                self.pending.insert(
                    id,
                    Pending {
                        reply,
                        listen,
                        options,
                        progress_token,
                        deadline,
                        busy,
                        askable,
                    },
                );
            }
            Op::Notify { method, params } => {
                let mut msg = json!({"jsonrpc": "2.0", "method": method});
                if let Some(params) = params {
                    msg["params"] = params;
                }
                self.queue(&msg);
            }
            Op::Cancel { key, reason } => {
                if let Some(id) = self.cancel_keys.remove(&key)
                    && let Some(call) = self.forget(id)
                {
                    let mut params = json!({"requestId": id});
                    if let Some(reason) = reason {
                        params["reason"] = reason;
                    }
                    self.queue(&json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": params}));
                    let error = json!({"jsonrpc": "2.0", "error": {"code": REQUEST_CANCELLED, "message": "request cancelled"}});
                    let _ = call.reply.send(error);
                }
            }
            Op::CancelAll { prefix, reason } => {
                let ids: Vec<u64> = self
                    .cancel_keys
                    .iter()
                    .filter(|(key, _)| key.starts_with(&prefix))
                    .map(|(_, id)| *id)
                    .collect();
                for id in ids {
                    self.end_call(id, &reason, REQUEST_CANCELLED, "request cancelled");
                }
            }
            Op::Answer {
                id,
                mut response,
                from,
            } => {
                let theirs = self
                    .asked
                    .get(&id)
                    .is_some_and(|a| a.owner.as_deref().is_some_and(|o| o.starts_with(&from)));
                // Another client's guess at the id is dropped: only the one asked answers.
                if theirs && let Some(asked) = self.asked.remove(&id) {
                    response["id"] = asked.child_id;
                    response["jsonrpc"] = json!("2.0");
                    self.queue(&response);
                }
            }
        }
    }

    /// A line over the bound: the call it answers (when its id can be read from the
    /// line's ends) fails with an error saying why; nothing else is affected.
    pub(super) fn on_oversized(&mut self, line: &Line<'_>, on_noise: &OnNoise) {
        let id = oversized_response_id(line.head, line.tail);
        on_noise(&format!(
            "dropped a message of {} bytes from the server (more than {}){}",
            line.len,
            line.head.len(),
            id.map_or(String::new(), |id| format!(", the answer to request {id}"))
        ));
        if let Some(call) = id.and_then(|id| self.forget(id)) {
            let message = format!(
                "the server's answer ({} bytes) is larger than the {} bytes a message may have",
                line.len,
                line.head.len()
            );
            let error =
                json!({"jsonrpc": "2.0", "error": {"code": INTERNAL_ERROR, "message": message}});
            let _ = call.reply.send(error);
        }
    }

    pub(super) fn on_child_message(&mut self, msg: Value, now: Instant, on_message: &OnMessage) {
        let method = msg
            .get("method")
            .and_then(Value::as_str)
            .map(str::to_string);
        match (method.as_deref(), msg.get("id").cloned()) {
            (None, Some(id)) => {
                // A response. A late one to a call nobody waits for is dropped.
                if let Some(call) = our_id(&id).and_then(|id| self.forget(id)) {
                    let _ = call.reply.send(msg);
                }
            }
            (Some("ping"), Some(id)) => {
                self.queue(&json!({"jsonrpc": "2.0", "id": id, "result": {}}));
            }
            (Some(method), Some(child_id)) => self.route_request(method, child_id, msg, now),
            (Some("notifications/progress"), None) => self.route_progress(msg, now, on_message),
            (Some("notifications/message"), None) => {
                if let Some((call, events)) = self.sole_log_listener(&msg) {
                    self.deliver(call, &events, msg.clone());
                }
                on_message(&msg);
            }
            _ => {
                // A modern child tags what it sends on a listen with the listen's id.
                let listen = era::meta(&msg, era::META_SUBSCRIPTION_ID)
                    .and_then(Value::as_u64)
                    .and_then(|id| Some((id, self.pending.get(&id)?.options.events.clone()?)));
                match listen {
                    Some((call, events)) => self.deliver(call, &events, msg),
                    None => on_message(&msg),
                }
            }
        }
    }

    /// A log message carries nothing that ties it to a call: it goes to a call's
    /// stream only when that call is the one in flight, and asked for this level.
    fn sole_log_listener(&self, msg: &Value) -> Option<(u64, Outbox)> {
        let mut calls = self.pending.iter().filter(|(_, p)| !p.listen);
        let (Some((&id, only)), None) = (calls.next(), calls.next()) else {
            return None;
        };
        let level = msg
            .pointer("/params/level")
            .and_then(Value::as_str)
            .unwrap_or("info");
        let wanted = only
            .options
            .log_level
            .is_some_and(|min| era::level_rank(level) >= min);
        let events = only.options.events.clone().filter(|_| wanted)?;
        Some((id, events))
    }

    /// Hands `msg` to call `id`'s client; one that has fallen behind is disconnected
    /// from the call, which is cancelled upstream.
    fn deliver(&mut self, id: u64, events: &Outbox, msg: Value) {
        if events.push(msg).is_ok() {
            self.yield_soon |= events.is_filling();
        } else {
            self.end_call(
                id,
                "the client stopped reading",
                FELL_BEHIND,
                "the client fell behind on this call's stream",
            );
        }
    }

    /// Ends call `id` unanswered: the child is told to stop on it (`reason`), the
    /// caller gets the error `code`.
    fn end_call(&mut self, id: u64, reason: &str, code: i64, message: &str) {
        let Some(call) = self.forget(id) else { return };
        self.queue(
            &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
            "params": {"requestId": id, "reason": reason}}),
        );
        let error = json!({"jsonrpc": "2.0", "error": {"code": code, "message": message}});
        let _ = call.reply.send(error);
    }

    fn deadline_after(&self, now: Instant) -> Instant {
        let timeout = Duration::from_millis(self.call_timeout_ms.load(Ordering::Relaxed));
        now.checked_add(timeout)
            .unwrap_or(now + Duration::from_secs(86_400 * 365))
    }

    /// The call shows signs of life (progress, a question for its client): its wait
    /// starts over.
    fn extend(&mut self, id: u64, now: Instant) {
        let at = self.deadline_after(now);
        if let Some(call) = self.pending.get_mut(&id)
            && let Some(old) = call.deadline.replace(at)
        {
            self.deadlines.remove(&(old, id));
            self.deadlines.insert((at, id));
        }
    }

    /// Fails every call whose deadline has passed, and tells the child to stop on it.
    pub(super) fn expire(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            let Some(call) = self.forget(id) else {
                continue;
            };
            let waited = Duration::from_millis(self.call_timeout_ms.load(Ordering::Relaxed));
            let reason = format!(
                "no answer within {} (call_timeout)",
                humantime::format_duration(waited)
            );
            self.queue(
                &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                "params": {"requestId": id, "reason": reason}}),
            );
            let message = format!("the server did not answer: {reason}");
            let error =
                json!({"jsonrpc": "2.0", "error": {"code": REQUEST_TIMEOUT, "message": message}});
            let _ = call.reply.send(error);
        }
    }

    /// Removes a finished or cancelled call with everything that pointed at it.
    fn forget(&mut self, id: u64) -> Option<Pending> {
        let call = self.pending.remove(&id)?;
        if let Some(at) = call.deadline {
            self.deadlines.remove(&(at, id));
        }
        if call.busy {
            self.busy.fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(token) = &call.progress_token {
            self.progress.remove(token);
        }
        if let Some(key) = &call.options.cancel_key {
            self.cancel_keys.remove(key);
        }
        // Questions put to its client that it never answered: the child hears so.
        let unanswered: Vec<String> = self
            .asked
            .iter()
            .filter(|(_, a)| a.call == id)
            .map(|(ours, _)| ours.clone())
            .collect();
        for ours in unanswered {
            if let Some(a) = self.asked.remove(&ours) {
                let error =
                    json!({"code": INTERNAL_ERROR, "message": "the call that asked has ended"});
                self.queue(&json!({"jsonrpc": "2.0", "id": a.child_id, "error": error}));
            }
        }
        Some(call)
    }

    /// A request from the child goes to the one in-flight call whose client can answer.
    fn route_request(&mut self, method: &str, child_id: Value, mut msg: Value, now: Instant) {
        let mut candidates = self
            .pending
            .iter()
            .filter(|(_, p)| p.askable)
            .filter_map(|(id, p)| Some((*id, p.options.events.clone()?)));
        let only = match (candidates.next(), candidates.next()) {
            (Some(one), None) => Some(one),
            _ => None,
        };
        match only {
            Some((call, events)) => {
                // Waiting for a person to answer is not the server being silent.
                self.extend(call, now);
                let ours = format!("{SERVER_REQUEST_PREFIX}{}", self.next_id);
                self.next_id += 1;
                msg["id"] = json!(ours);
                if events.push(msg).is_ok() {
                    let owner = self
                        .pending
                        .get(&call)
                        .and_then(|p| p.options.cancel_key.clone());
                    let asked = Asked {
                        child_id,
                        call,
                        owner,
                    };
                    self.asked.insert(ours, asked);
                    return;
                }
                self.refuse(child_id, method);
                self.end_call(
                    call,
                    "the client stopped reading",
                    FELL_BEHIND,
                    "the client could not be asked: it fell behind on this call's stream",
                );
            }
            None if method == "roots/list" => {
                // Unprompted: answer from configuration, which declares no roots.
                self.unprompted_roots.store(true, Ordering::Relaxed);
                let reply = json!({"jsonrpc": "2.0", "id": child_id, "result": {"roots": []}});
                self.queue(&reply);
            }
            None => self.refuse(child_id, method),
        }
    }

    fn refuse(&mut self, child_id: Value, method: &str) {
        let error = json!({"code": METHOD_NOT_FOUND, "message": format!("no connected client can answer {method} now")});
        self.queue(&json!({"jsonrpc": "2.0", "id": child_id, "error": error}));
    }

    fn route_progress(&mut self, mut msg: Value, now: Instant, on_message: &OnMessage) {
        let ours = msg
            .pointer("/params/progressToken")
            .and_then(Value::as_str)
            .map(str::to_string);
        let Some((call, theirs)) = ours.as_ref().and_then(|t| self.progress.get(t).cloned()) else {
            // Progress of a call that has ended (a cancelled one may go on for a
            // while) is nobody's news; other tokens are the child's own.
            if !ours.is_some_and(|t| t.starts_with(PROGRESS_PREFIX)) {
                on_message(&msg);
            }
            return;
        };
        msg["params"]["progressToken"] = theirs;
        self.extend(call, now);
        if let Some(events) = self
            .pending
            .get(&call)
            .and_then(|p| p.options.events.clone())
        {
            self.deliver(call, &events, msg);
        }
    }
}

/// Our upstream ids are integers; a child may write one back as `3.0` or `"3"`.
fn our_id(id: &Value) -> Option<u64> {
    match id {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 2f64.powi(53))
                // The filter makes the conversion exact.
                .map(|f| f as u64)
        }),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// The `id` of a response too large to parse, read from its first and last bytes
/// (serializers put `id` before or after the result). `None` for a request or
/// notification of the child's, or when no id can be seen.
fn oversized_response_id(head: &[u8], tail: &[u8]) -> Option<u64> {
    let start = &head[..head.len().min(lines::TAIL)];
    if find(start, b"\"method\"").is_some() {
        return None;
    }
    let id_after = |text: &[u8], at: usize| -> Option<u64> {
        let rest = &text[at + 4..];
        let rest = rest
            .trim_ascii_start()
            .strip_prefix(b":")?
            .trim_ascii_start();
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
    };
    if let Some(at) = find(start, b"\"id\"")
        && find(&start[..at], b"\"result\"").is_none()
        && find(&start[..at], b"\"error\"").is_none()
    {
        return id_after(start, at);
    }
    let at = tail.windows(4).rposition(|w| w == b"\"id\"")?;
    id_after(tail, at)
}

fn find(text: &[u8], needle: &[u8]) -> Option<usize> {
    text.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests;
