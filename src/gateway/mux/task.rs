//! The mux task: the only writer on a child's stdin and the only reader of its stdout,
//! generic over the pipes (the tests use in-memory ones). Each turn it takes callers'
//! operations, the child's lines, the earliest deadline, or a write, and hands them to
//! the [`Routes`] table.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::routes::Routes;
use super::{NOISE_MAX, OnMessage, OnNoise, Op};
use crate::gateway::lines::BoundedLines;

/// Requests waiting for the child to read them, at most (then callers wait).
const MAX_UNWRITTEN: usize = 4 << 20;

pub(super) struct Task<W> {
    pub(super) stdin: W,
    pub(super) routes: Routes,
    /// When the child last wrote a line (see [`super::since_start`]).
    pub(super) heard: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<W: AsyncWrite + Unpin> Task<W> {
    pub(super) async fn run<R: AsyncBufRead + Unpin>(
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
            if std::mem::take(&mut self.routes.yield_soon) {
                tokio::task::yield_now().await;
            }
            let unwritten = !self.routes.out.is_empty();
            let next_deadline = self.routes.next_deadline();
            if next_deadline != armed {
                if let Some(at) = next_deadline {
                    timer.as_mut().reset(at);
                }
                armed = next_deadline;
            }
            tokio::select! {
                () = &mut timer, if armed.is_some() => {
                    self.routes.expire(Instant::now());
                    armed = None;
                }
                // Backpressure: no more requests while a child is not reading.
                op = ops.recv(), if self.routes.out.len() < MAX_UNWRITTEN => {
                    let Some(op) = op else {
                        // Every handle is gone: what was queued still goes out (briefly).
                        let flush = self.stdin.write_all(&self.routes.out);
                        let _ = tokio::time::timeout(Duration::from_secs(1), flush).await;
                        break;
                    };
                    self.routes.handle_op(op, Instant::now());
                    while self.routes.out.len() < MAX_UNWRITTEN
                        && let Ok(op) = ops.try_recv()
                    {
                        self.routes.handle_op(op, Instant::now());
                    }
                }
                line = lines.next_line() => {
                    // Only the end of the stream (or a read error) ends the reader: a
                    // line that is not JSON, not UTF-8 or too long is logged and skipped.
                    let Ok(Some(line)) = line else { break };
                    self.heard
                        .store(super::since_start(), std::sync::atomic::Ordering::Relaxed);
                    if line.is_cut() {
                        self.routes.on_oversized(&line, &on_noise);
                        continue;
                    }
                    match serde_json::from_slice::<Value>(line.head) {
                        Ok(msg) => self.routes.on_child_message(msg, Instant::now(), &on_message),
                        Err(_) => on_noise(&line.to_log_text(NOISE_MAX)),
                    }
                }
                written = self.stdin.write(&self.routes.out), if unwritten => match written {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        self.routes.out.drain(..n);
                    }
                },
            }
        }
    }
}
