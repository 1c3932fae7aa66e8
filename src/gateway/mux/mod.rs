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
//!
//! [`handle`] is what callers hold, [`task`] the loop over the child's pipes, and
//! [`routes`] the table that decides where each message goes (no I/O, tested alone).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use tokio::sync::{Semaphore, broadcast, mpsc, oneshot};

use super::lines::BoundedLines;
use super::queue::Outbox;
use crate::wire::era::Era;
use routes::Routes;
use task::Task;

pub use handle::Upstream;

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
pub use crate::wire::jsonrpc::INTERNAL_ERROR;

/// The error of a call that waited longer than its server's `call_timeout` (the code
/// the MCP SDKs use for a request timeout).
pub use crate::wire::jsonrpc::REQUEST_TIMEOUT;

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
    /// A client's answer to a request the child sent: taken only from the client whose
    /// call was asked (`from` starts that call's `cancel_key`).
    Answer {
        id: String,
        response: Value,
        from: String,
    },
    /// A client cancelled the call it named with `cancel_key`.
    Cancel { key: String, reason: Option<Value> },
    /// Every call whose `cancel_key` starts with `prefix` is cancelled (a session ended).
    CancelAll { prefix: String, reason: String },
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

/// Starts the mux over a child's pipes (its stdin, its stdout) in `tasks`; the caller
/// initializes it through it. `max_message` bounds one line of the child's. Its loop
/// ends when the child's output ends, or once every `Upstream` of it is dropped and
/// what they queued is written.
pub fn start<W, R>(
    tasks: &crate::gateway::owned::Scope,
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
    let routes = Routes::new(Arc::clone(&call_timeout_ms), Arc::clone(&busy));
    let unprompted_roots = Arc::clone(&routes.unprompted_roots);
    let heard = Arc::new(AtomicU64::new(since_start()));
    let task = Task {
        stdin,
        routes,
        heard: Arc::clone(&heard),
    };
    tasks.spawn(task.run(lines, rx, on_message, on_noise));
    Upstream {
        tasks: tasks.clone(),
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
        unprompted_roots,
        heard,
    }
}

/// Milliseconds since the process's first call: the clock `heard` is kept in.
pub(super) fn since_start() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    millis(START.get_or_init(std::time::Instant::now).elapsed())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

mod handle;
mod routes;
mod task;
#[cfg(test)]
mod tests;
