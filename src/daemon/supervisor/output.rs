//! A server's output into its log: stderr (and an HTTP server's stdout) line by
//! line, each bounded, and its MCP log messages with their level.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncBufRead;

use crate::gateway::lines::BoundedLines;
use crate::logs::{self, LogWriter, detect_level};

pub(super) type SharedLog = Arc<Mutex<LogWriter>>;

/// Waits (briefly) for the stderr pump to finish, so a dead process's last words are
/// in its log before anyone reads the log to explain the failure; then ends it (a
/// grandchild that kept the pipe does not keep the pump).
pub(super) async fn drain(pump: &mut Option<crate::gateway::owned::Owned<()>>) {
    if let Some(pump) = pump.take() {
        let _ = tokio::time::timeout(Duration::from_secs(1), pump).await;
    }
}

pub(super) fn write_log(log: Option<&SharedLog>, source: &str, message: &str) {
    if let Some(log) = log
        && let Ok(mut w) = log.lock()
    {
        w.write_line(source, message);
    }
}

/// Copies a child's output to its log, line by line, each line bounded.
pub(super) async fn pump_lines<R: AsyncBufRead + Unpin>(
    reader: R,
    log: Option<SharedLog>,
    source: &'static str,
) {
    // Read past the cut by the longest secret: the log redacts, then cuts.
    let bound = log
        .as_ref()
        .and_then(|l| l.lock().ok().map(|w| w.read_bound()))
        .unwrap_or(logs::MAX_LINE);
    let mut lines = BoundedLines::new(reader, bound);
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(log) = &log
            && let Ok(mut w) = log.lock()
        {
            let head = String::from_utf8_lossy(line.head);
            w.write_head(source, &head, line.is_cut().then_some(line.len));
        }
    }
}

/// `notifications/message` goes to the log with its level.
pub(super) fn log_notification(log: Option<&SharedLog>, msg: &Value) {
    if msg.get("method").and_then(Value::as_str) != Some("notifications/message") {
        return;
    }
    let params = msg.get("params");
    let level = params
        .and_then(|p| p.get("level"))
        .and_then(Value::as_str)
        .unwrap_or("info");
    let data = params
        .and_then(|p| p.get("data"))
        .map_or(String::new(), |d| match d {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
    let level = detect_level(level).map_or("INFO".to_string(), |l| format!("{l:?}").to_uppercase());
    write_log(log, "mcp", &format!("{level} {data}"));
}
