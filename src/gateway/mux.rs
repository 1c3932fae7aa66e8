//! One stdio MCP server shared by many client sessions. The mux task is the only
//! writer on the child's stdin: it gives every forwarded request an upstream id of its
//! own (a counter, never reused while pending), remembers who asked, and hands each
//! response back to its caller, who restores the client's original id.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use tokio::io::{AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdin, ChildStdout};
use tokio::sync::{mpsc, oneshot};

/// What the mux does with lines that are not responses (logging, for now).
pub type OnMessage = Arc<dyn Fn(&Value) + Send + Sync>;
pub type OnNoise = Arc<dyn Fn(&str) + Send + Sync>;

struct Call {
    method: String,
    params: Option<Value>,
    /// `None` for a notification.
    reply: Option<oneshot::Sender<Value>>,
}

/// A handle to a child's shared stdio channel.
#[derive(Clone)]
pub struct Upstream {
    calls: mpsc::Sender<Call>,
    /// The child's answer to the gateway's own `initialize`.
    pub init: Arc<Value>,
    /// Client sessions pinned to this child (for least-loaded placement).
    sessions: Arc<AtomicUsize>,
}

/// Counts a session against its upstream while it lives.
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
    /// Forwards a request; returns the child's response message (`result` or `error`).
    pub async fn request(&self, method: &str, params: Option<Value>) -> Result<Value, Gone> {
        let (reply, answer) = oneshot::channel();
        let call = Call {
            method: method.to_string(),
            params,
            reply: Some(reply),
        };
        self.calls.send(call).await.map_err(|_| Gone)?;
        answer.await.map_err(|_| Gone)
    }

    pub async fn notify(&self, method: &str, params: Option<Value>) -> Result<(), Gone> {
        let call = Call {
            method: method.to_string(),
            params,
            reply: None,
        };
        self.calls.send(call).await.map_err(|_| Gone)
    }

    /// The same channel, with the child's `initialize` answer recorded.
    pub fn initialized(&self, init: Value) -> Self {
        Self {
            init: Arc::new(init),
            ..self.clone()
        }
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

/// Starts the mux over a child's pipes; the caller initializes it through it.
pub fn start(
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    on_message: OnMessage,
    on_noise: OnNoise,
) -> Upstream {
    let (calls, rx) = mpsc::channel(256);
    tokio::spawn(run(stdin, lines, rx, on_message, on_noise));
    Upstream {
        calls,
        init: Arc::new(Value::Null),
        sessions: Arc::default(),
    }
}

async fn run(
    mut stdin: ChildStdin,
    mut lines: Lines<BufReader<ChildStdout>>,
    mut calls: mpsc::Receiver<Call>,
    on_message: OnMessage,
    on_noise: OnNoise,
) {
    let mut next_id: u64 = 1;
    let mut pending: HashMap<u64, oneshot::Sender<Value>> = HashMap::new();
    loop {
        tokio::select! {
            call = calls.recv() => {
                let Some(call) = call else { break };
                let mut msg = json!({"jsonrpc": "2.0", "method": call.method});
                if let Some(params) = call.params {
                    msg["params"] = params;
                }
                let id = next_id;
                if call.reply.is_some() {
                    msg["id"] = json!(id);
                    next_id += 1;
                }
                if send(&mut stdin, &msg).await.is_err() {
                    break; // the caller sees Gone when its reply sender drops
                }
                if let Some(reply) = call.reply {
                    pending.insert(id, reply);
                }
            }
            line = lines.next_line() => {
                let Ok(Some(line)) = line else { break };
                let Ok(msg) = serde_json::from_str::<Value>(&line) else {
                    on_noise(&line);
                    continue;
                };
                let is_response = msg.get("method").is_none() && (msg.get("result").is_some() || msg.get("error").is_some());
                if is_response {
                    // A late reply to a call nobody waits for any more is dropped.
                    if let Some(reply) = msg.get("id").and_then(Value::as_u64).and_then(|id| pending.remove(&id)) {
                        let _ = reply.send(msg);
                    }
                    continue;
                }
                match (msg.get("method").and_then(Value::as_str), msg.get("id")) {
                    (Some("ping"), Some(id)) => {
                        let _ = send(&mut stdin, &json!({"jsonrpc": "2.0", "id": id, "result": {}})).await;
                    }
                    (Some(method), Some(id)) => {
                        // Server-to-client requests are not routed to sessions yet.
                        let error = json!({"code": -32601, "message": format!("mcpctl cannot route {method} to a client yet")});
                        let _ = send(&mut stdin, &json!({"jsonrpc": "2.0", "id": id, "error": error})).await;
                    }
                    _ => on_message(&msg),
                }
            }
        }
    }
}

async fn send(stdin: &mut ChildStdin, msg: &Value) -> std::io::Result<()> {
    let mut line = msg.to_string();
    line.push('\n');
    stdin.write_all(line.as_bytes()).await?;
    stdin.flush().await
}
