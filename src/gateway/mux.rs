//! One stdio MCP server shared by many client sessions.
//!
//! The mux task is the only writer on the child's stdin. Every forwarded request gets
//! an upstream id of its own (a counter, never reused while pending) and, when it
//! carries a progress token, an upstream token of its own; responses and progress go
//! back to the call that caused them, with the client's values restored by the
//! caller. A request the child sends (sampling, elicitation, roots) is routed to the
//! one in-flight call whose client can answer it; callers make sure there is at most
//! one such call at a time ([`Upstream::ask_lock`]). An unprompted `roots/list` is
//! answered here (no roots are configured), and so is the child's `ping`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::era::{self, Era};
use super::lines::{self, BoundedLines, Line};
use super::queue::Outbox;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{Semaphore, broadcast, mpsc, oneshot};

/// What the mux does with notifications no call owns (logging, for now).
pub type OnMessage = Arc<dyn Fn(&Value) + Send + Sync>;
pub type OnNoise = Arc<dyn Fn(&str) + Send + Sync>;

/// Prefix of the ids the gateway gives the child's requests towards clients.
const SERVER_REQUEST_PREFIX: &str = "mcpctl-srv-";
/// Prefix of the progress tokens the gateway gives forwarded calls.
const PROGRESS_PREFIX: &str = "mcpctl-progress-";

/// The largest message a child may send (`MCPCTL_MAX_MESSAGE_BYTES` in the daemon's
/// environment changes it): a longer line is dropped and, when it names a call, that
/// call fails; the child and its other calls go on.
pub const MAX_MESSAGE: usize = 16 << 20;

/// The most of a non-protocol line of the child's that is handed on to its log.
const NOISE_MAX: usize = 16 << 10;

/// JSON-RPC's "internal error", for a call whose answer was too large to take.
pub use super::jsonrpc::INTERNAL_ERROR;
/// The error of a call that waited longer than its server's `call_timeout` (the code
/// the MCP SDKs use for a request timeout).
pub use super::jsonrpc::REQUEST_TIMEOUT;
/// The error of a call whose client stopped reading what the call sent it.
pub const FELL_BEHIND: i64 = -32000;

/// The bounds of one child's channel.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The longest line (message) the child may send.
    pub max_message: usize,
    /// How long a call waits for its answer; progress starts the wait over.
    pub call_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message: MAX_MESSAGE,
            call_timeout: Duration::from_secs(300),
        }
    }
}

/// A forwarded request's way back.
#[derive(Default)]
pub struct CallOptions {
    /// Progress and server requests for this call, in order. When its client falls
    /// behind (the queue is full), the call is cancelled upstream and ends with
    /// [`FELL_BEHIND`]: the mux never waits for a client.
    pub events: Option<Outbox>,
    /// The client declared sampling, elicitation or roots: it can answer server requests.
    pub can_answer: bool,
    /// Names the call for `notifications/cancelled` (session and client id).
    pub cancel_key: Option<String>,
    /// The least severe log message this call's client wants on its stream (a
    /// 2026-07-28 client's `logLevel`, as [`era::level_rank`]).
    pub log_level: Option<u8>,
}

enum Op {
    Call {
        method: String,
        params: Option<Value>,
        reply: oneshot::Sender<Value>,
        options: CallOptions,
    },
    Notify {
        method: String,
        params: Option<Value>,
    },
    /// A client's answer to a request the child sent.
    Answer { id: String, response: Value },
    /// A client cancelled the call it named with `cancel_key`.
    Cancel { key: String, reason: Option<Value> },
    /// Every call whose `cancel_key` starts with `prefix` is cancelled (a session ended).
    CancelAll { prefix: String, reason: String },
}

/// A handle to a child's shared stdio channel.
#[derive(Clone)]
pub struct Upstream {
    ops: mpsc::Sender<Op>,
    /// The child's answer to the gateway's probe: `initialize` (legacy) or
    /// `server/discover` (modern).
    pub init: Arc<Value>,
    /// Which protocol the child speaks, settled by the probe.
    pub era: Era,
    /// Requests of session-less (modern) clients in flight here, for balancing them.
    in_flight: Arc<AtomicUsize>,
    /// Client sessions pinned to this child (for least-loaded placement).
    sessions: Arc<AtomicUsize>,
    /// Held by a call that could cause a server request, so that a server request
    /// always has exactly one call it can belong to.
    pub ask_lock: Arc<Semaphore>,
    /// The child's notifications that no call owns (list changes, resource updates,
    /// log messages), for the sessions to filter.
    notifications: broadcast::Sender<Value>,
    /// Resource URIs subscribed by sessions, with how many: the child is subscribed
    /// while at least one session is.
    subscriptions: Arc<std::sync::Mutex<HashMap<String, usize>>>,
    /// `call_timeout` in milliseconds; changed in place by [`Upstream::set_call_timeout`].
    call_timeout_ms: Arc<AtomicU64>,
    /// Calls in flight other than pings and listens: the child has work.
    busy: Arc<AtomicUsize>,
}

/// Counts a session (or one stateless request) against its upstream while it lives.
pub struct Pin(Arc<AtomicUsize>);

impl Drop for Pin {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the server ended before it answered")]
pub struct Gone;

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

    pub async fn notify(&self, method: &str, params: Option<Value>) -> Result<(), Gone> {
        let op = Op::Notify {
            method: method.to_string(),
            params,
        };
        self.ops.send(op).await.map_err(|_| Gone)
    }

    /// Hands a client's response to a server request (id `mcpctl-srv-N`) to the child.
    /// `false` when the id is not one of ours.
    pub async fn answer(&self, id: &Value, response: Value) -> bool {
        let Some(id) = id.as_str().filter(|i| i.starts_with(SERVER_REQUEST_PREFIX)) else {
            return false;
        };
        let op = Op::Answer {
            id: id.to_string(),
            response,
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

/// Starts the mux over a child's pipes (its stdin, its stdout); the caller
/// initializes it through it. `max_message` bounds one line of the child's.
pub fn start<W, R>(
    stdin: W,
    stdout: R,
    limits: Limits,
    on_message: OnMessage,
    on_noise: OnNoise,
) -> Upstream
where
    W: AsyncWrite + Unpin + Send + 'static,
    R: AsyncRead + Unpin + Send + 'static,
{
    let lines = BoundedLines::new(
        BufReader::with_capacity(64 << 10, stdout),
        limits.max_message,
    );
    let call_timeout_ms = Arc::new(AtomicU64::new(millis(limits.call_timeout)));
    let busy = Arc::new(AtomicUsize::new(0));
    let (ops, rx) = mpsc::channel(256);
    let (notifications, _) = broadcast::channel(256);
    let on_message: OnMessage = {
        let notifications = notifications.clone();
        Arc::new(move |msg: &Value| {
            on_message(msg);
            let _ = notifications.send(msg.clone());
        })
    };
    let state = Mux {
        stdin,
        out: Vec::new(),
        pending: HashMap::new(),
        progress: HashMap::new(),
        asked: HashMap::new(),
        cancel_keys: HashMap::new(),
        deadlines: BTreeSet::new(),
        call_timeout_ms: Arc::clone(&call_timeout_ms),
        busy: Arc::clone(&busy),
        next_id: 1,
        yield_soon: false,
    };
    tokio::spawn(state.run(lines, rx, on_message, on_noise));
    Upstream {
        ops,
        init: Arc::new(Value::Null),
        era: Era::Legacy,
        in_flight: Arc::default(),
        sessions: Arc::default(),
        ask_lock: Arc::new(Semaphore::new(1)),
        notifications,
        subscriptions: Arc::default(),
        call_timeout_ms,
        busy,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

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
}

/// Requests waiting for the child to read them, at most (then callers wait).
const MAX_UNWRITTEN: usize = 4 << 20;

struct Mux<W> {
    stdin: W,
    /// Lines for the child not yet written.
    out: Vec<u8>,
    pending: HashMap<u64, Pending>,
    /// Our progress token -> (upstream id of its call, the client's token).
    progress: HashMap<String, (u64, Value)>,
    /// Our id for a server request -> the child's id for it.
    asked: HashMap<String, Value>,
    /// Cancel key -> upstream id of the call.
    cancel_keys: HashMap<String, u64>,
    /// Every pending call's deadline, earliest first.
    deadlines: BTreeSet<(Instant, u64)>,
    call_timeout_ms: Arc<AtomicU64>,
    busy: Arc<AtomicUsize>,
    next_id: u64,
    /// A client's queue is more than half full: let its reader run before going on.
    yield_soon: bool,
}

impl<W: AsyncWrite + Unpin> Mux<W> {
    async fn run<R: tokio::io::AsyncBufRead + Unpin>(
        mut self,
        mut lines: BoundedLines<R>,
        mut ops: mpsc::Receiver<Op>,
        on_message: OnMessage,
        on_noise: OnNoise,
    ) {
        // Writing the child's stdin is one branch beside reading its stdout, never a wait
        // of its own: a child that answers before it reads on would otherwise block on a
        // full stdout while we block on its full stdin. Breaking ends every call: their
        // reply senders drop and callers see Gone.
        // One timer for the earliest deadline, moved only when that changes (a timer made
        // anew on every turn would cost each message a timer-wheel insert and removal).
        let timer = tokio::time::sleep(Duration::from_secs(3600));
        tokio::pin!(timer);
        let mut armed: Option<Instant> = None;
        loop {
            if std::mem::take(&mut self.yield_soon) {
                tokio::task::yield_now().await;
            }
            let unwritten = !self.out.is_empty();
            let next_deadline = self.deadlines.first().map(|&(at, _)| at);
            if next_deadline != armed {
                if let Some(at) = next_deadline {
                    timer.as_mut().reset(at);
                }
                armed = next_deadline;
            }
            tokio::select! {
                () = &mut timer, if armed.is_some() => {
                    self.expire(Instant::now());
                    armed = None;
                }
                // Backpressure: no more requests while a child is not reading.
                op = ops.recv(), if self.out.len() < MAX_UNWRITTEN => {
                    let Some(op) = op else {
                        // Every handle is gone: what was queued still goes out (briefly).
                        let flush = self.stdin.write_all(&self.out);
                        let _ = tokio::time::timeout(Duration::from_secs(1), flush).await;
                        break;
                    };
                    self.handle_op(op);
                    while self.out.len() < MAX_UNWRITTEN
                        && let Ok(op) = ops.try_recv()
                    {
                        self.handle_op(op);
                    }
                }
                line = lines.next_line() => {
                    // Only the end of the stream (or a read error) ends the reader: a
                    // line that is not JSON, not UTF-8 or too long is logged and skipped.
                    let Ok(Some(line)) = line else { break };
                    if line.is_cut() {
                        self.on_oversized(&line, &on_noise);
                        continue;
                    }
                    match serde_json::from_slice::<Value>(line.head) {
                        Ok(msg) => self.on_child_message(msg, &on_message),
                        Err(_) => on_noise(&line.to_log_text(NOISE_MAX)),
                    }
                }
                written = self.stdin.write(&self.out), if unwritten => match written {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        self.out.drain(..n);
                    }
                },
            }
        }
    }

    /// Adds one message to the lines written to the child as soon as it reads them;
    /// everything queued in one turn of the loop goes out in one write.
    fn queue(&mut self, msg: &Value) {
        // Serializing a `Value` into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.out, msg);
        self.out.push(b'\n');
    }

    fn handle_op(&mut self, op: Op) {
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
                let deadline = (!listen).then(|| self.deadline_from_now());
                if let Some(at) = deadline {
                    self.deadlines.insert((at, id));
                }
                let busy = !listen && method != "ping";
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
                    let error = json!({"jsonrpc": "2.0", "error": {"code": -32800, "message": "request cancelled"}});
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
                    self.end_call(id, &reason, -32800, "request cancelled");
                }
            }
            Op::Answer { id, mut response } => {
                if let Some(child_id) = self.asked.remove(&id) {
                    response["id"] = child_id;
                    response["jsonrpc"] = json!("2.0");
                    self.queue(&response);
                }
            }
        }
    }

    /// A line over the bound: the call it answers (when its id can be read from the
    /// line's ends) fails with an error saying why; nothing else is affected.
    fn on_oversized(&mut self, line: &Line<'_>, on_noise: &OnNoise) {
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

    fn on_child_message(&mut self, msg: Value, on_message: &OnMessage) {
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
            (Some(method), Some(child_id)) => self.route_request(method, child_id, msg),
            (Some("notifications/progress"), None) => self.route_progress(msg, on_message),
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

    fn deadline_from_now(&self) -> Instant {
        let timeout = Duration::from_millis(self.call_timeout_ms.load(Ordering::Relaxed));
        let now = Instant::now();
        now.checked_add(timeout)
            .unwrap_or(now + Duration::from_secs(86_400 * 365))
    }

    /// The call shows signs of life (progress, a question for its client): its wait
    /// starts over.
    fn extend(&mut self, id: u64) {
        let at = self.deadline_from_now();
        if let Some(call) = self.pending.get_mut(&id)
            && let Some(old) = call.deadline.replace(at)
        {
            self.deadlines.remove(&(old, id));
            self.deadlines.insert((at, id));
        }
    }

    /// Fails every call whose deadline has passed, and tells the child to stop on it.
    fn expire(&mut self, now: Instant) {
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
        Some(call)
    }

    /// A request from the child goes to the one in-flight call whose client can answer.
    fn route_request(&mut self, method: &str, child_id: Value, mut msg: Value) {
        let mut candidates = self
            .pending
            .iter()
            .filter(|(_, p)| p.options.can_answer)
            .filter_map(|(id, p)| Some((*id, p.options.events.clone()?)));
        let only = match (candidates.next(), candidates.next()) {
            (Some(one), None) => Some(one),
            _ => None,
        };
        match only {
            Some((call, events)) => {
                // Waiting for a person to answer is not the server being silent.
                self.extend(call);
                let ours = format!("{SERVER_REQUEST_PREFIX}{}", self.next_id);
                self.next_id += 1;
                msg["id"] = json!(ours);
                if events.push(msg).is_ok() {
                    self.asked.insert(ours, child_id);
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
                let reply = json!({"jsonrpc": "2.0", "id": child_id, "result": {"roots": []}});
                self.queue(&reply);
            }
            None => self.refuse(child_id, method),
        }
    }

    fn refuse(&mut self, child_id: Value, method: &str) {
        let error = json!({"code": super::jsonrpc::METHOD_NOT_FOUND, "message": format!("no connected client can answer {method} now")});
        self.queue(&json!({"jsonrpc": "2.0", "id": child_id, "error": error}));
    }

    fn route_progress(&mut self, mut msg: Value, on_message: &OnMessage) {
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
        self.extend(call);
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
