//! The audit trail: every decision about a request on a port with `auth` (who, which
//! server or endpoint, method, tool, allowed or refused and why, how long, how many
//! bytes) as one JSON line of `.mcpctl/audit.log`, rotated like the servers' logs.
//! Never arguments or results, which may hold secrets.
//!
//! Lines go through a bounded queue to a writer thread of their own: a slow disk never
//! holds a request up; a full queue drops lines, and counts them.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Instant, SystemTime};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use futures_util::StreamExt;
use serde_json::Value;

use super::callers::Caller;
use super::tool_gate::ToolGate;
use crate::api::AuditEntry;
use crate::logs::LogWriter;
use crate::secrets::redact::Redactor;

/// Lines waiting for the writer, at most.
const QUEUE: usize = 4096;
/// Lines written together, at most.
const BURST: usize = 256;
/// JSON-RPC requests of one batch that are recorded, at most.
const MAX_BATCH: usize = 100;
/// A method's or tool's name is kept to this many bytes: a client's names must not
/// make lines long enough to rotate the history away.
const MAX_NAME: usize = 128;

/// Where decisions are recorded. Dropping the last handle ends the writer thread.
pub struct Audit {
    lines: mpsc::SyncSender<String>,
    dropped: AtomicU64,
}

impl Audit {
    /// Appends to `path` (made owner-only), from a thread of its own.
    pub fn open(path: &Path) -> std::io::Result<Arc<Self>> {
        let mut writer = LogWriter::open(path, Redactor::new([]))?;
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        let (lines, queued) = mpsc::sync_channel::<String>(QUEUE);
        std::thread::Builder::new()
            .name("mcpctl-audit".into())
            .spawn(move || {
                // Ends when every sender is gone. What has queued up meanwhile is
                // written at once: one write for a burst, not one a request.
                while let Ok(first) = queued.recv() {
                    let mut chunk = first;
                    for _ in 0..BURST {
                        match queued.try_recv() {
                            Ok(line) => {
                                chunk.push('\n');
                                chunk.push_str(&line);
                            }
                            Err(_) => break,
                        }
                    }
                    writer.write_raw(&chunk);
                }
            })?;
        Ok(Arc::new(Self {
            lines,
            dropped: AtomicU64::new(0),
        }))
    }

    pub fn record(&self, entry: &AuditEntry) {
        // Every name a client chose is cut (an OIDC subject too): no client makes lines
        // long enough to rotate the history away.
        let entry = AuditEntry {
            caller: entry.caller.as_deref().map(capped),
            method: entry.method.as_deref().map(capped),
            tool: entry.tool.as_deref().map(capped),
            ..entry.clone()
        };
        let Ok(line) = serde_json::to_string(&entry) else {
            return;
        };
        if self.lines.try_send(line).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Lines dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

pub fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// What the audit layer of one port knows.
#[derive(Clone)]
pub(super) struct Trail {
    pub(super) audit: Arc<Audit>,
    pub(super) target: String,
    pub(super) tools: Arc<ToolGate>,
}

/// The layer inside the guard: each JSON-RPC request of a POST recorded with its
/// caller, the policy's verdict on it, and the answer's status, time and size.
pub(super) async fn record(State(trail): State<Trail>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let caller = request.extensions().get::<Caller>().cloned();
    let (parts, body) = request.into_parts();
    // The guard has read the body already (bounded): it is in memory.
    let bytes = axum::body::to_bytes(body, super::guard::MAX_BODY)
        .await
        .unwrap_or_default();
    let mut asked = requests(&bytes);
    if asked.is_empty() {
        return next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
    }
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    // The verdict as the gate reached it (it may have read the tool list meanwhile).
    for a in &mut asked {
        let Some((method, params)) = a.sent.take() else {
            continue;
        };
        a.refused =
            trail
                .tools
                .why_refused(&method, params.as_ref(), caller.as_ref().map(|c| &*c.view));
    }
    let status = response.status().as_u16();
    let who = caller.map_or_else(|| "owner".to_string(), |c| c.name);
    let (parts, body) = response.into_parts();
    // Written when the answer's body ends (or its client goes), with its size.
    let mut done = Done {
        trail,
        who,
        asked,
        status,
        start,
        bytes: 0,
    };
    // A body of known size (a JSON answer) is passed as it is, its length kept.
    if let Some(size) = hyper::body::Body::size_hint(&body).exact() {
        done.bytes = size;
        drop(done);
        return Response::from_parts(parts, body);
    }
    let stream = body.into_data_stream().map(move |chunk| {
        if let Ok(c) = &chunk {
            done.bytes += c.len() as u64;
        }
        // Keeps `done` alive as long as the stream: its drop writes the lines.
        let _ = &done;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

/// One request of a POST: its method, its tool, and the policy's verdict.
struct Asked {
    method: String,
    tool: Option<String>,
    refused: Option<String>,
    /// The method and a call's params as sent, for the verdict (dropped once it is
    /// reached).
    sent: Option<(String, Option<Value>)>,
}

fn requests(body: &[u8]) -> Vec<Asked> {
    let Ok(parsed) = serde_json::from_slice::<Value>(body) else {
        // Not JSON the gateway reads: recorded too (it is refused, or passed to a
        // server that speaks HTTP without a policy to apply).
        return if body.iter().all(u8::is_ascii_whitespace) {
            Vec::new()
        } else {
            vec![Asked {
                method: "(not JSON)".into(),
                tool: None,
                refused: None,
                sent: None,
            }]
        };
    };
    let messages: Vec<&Value> = match &parsed {
        Value::Array(all) => all.iter().take(MAX_BATCH).collect(),
        one => vec![one],
    };
    messages
        .into_iter()
        .filter(|m| m.get("id").is_some())
        .filter_map(|m| {
            let method = m.get("method")?.as_str()?;
            let tool = (method == "tools/call")
                .then(|| m.get("params")?.get("name")?.as_str())
                .flatten();
            Some(Asked {
                method: capped(method),
                tool: tool.map(capped),
                refused: None,
                sent: Some((method.to_string(), tool.and(m.get("params")).cloned())),
            })
        })
        .collect()
}

/// `name` cut to [`MAX_NAME`] bytes, its length said when cut.
fn capped(name: &str) -> String {
    if name.len() <= MAX_NAME {
        return name.to_string();
    }
    let mut at = MAX_NAME;
    while !name.is_char_boundary(at) {
        at -= 1;
    }
    format!("{}... ({} bytes)", &name[..at], name.len())
}

struct Done {
    trail: Trail,
    who: String,
    asked: Vec<Asked>,
    status: u16,
    start: Instant,
    bytes: u64,
}

impl Drop for Done {
    fn drop(&mut self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        for asked in self.asked.drain(..) {
            let refused = asked.refused.is_some() || self.status >= 400;
            self.trail.audit.record(&AuditEntry {
                at: now(),
                caller: Some(self.who.clone()),
                target: self.trail.target.clone(),
                method: Some(asked.method),
                tool: asked.tool,
                decision: if refused { "refused" } else { "allowed" }.into(),
                why: asked
                    .refused
                    .or_else(|| (self.status >= 400).then(|| format!("HTTP {}", self.status))),
                status: self.status,
                ms,
                bytes: self.bytes,
            });
        }
    }
}
