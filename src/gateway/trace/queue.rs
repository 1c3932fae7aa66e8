//! Finished spans waiting for the exporter: a bounded buffer behind a mutex. A call
//! pushes its spans and goes on; it wakes the exporter only when a batch is full (a
//! channel would wake it, and re-arm its timer, for every span: on the daemon's one
//! thread that is work on every call). Otherwise the exporter takes what is there every
//! `delay`. Full: the span is refused, and the caller counts it dropped.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use super::SpanData;

pub(super) struct Queue {
    spans: Mutex<Vec<SpanData>>,
    /// A batch is full, or the queue closed.
    ready: Notify,
    closed: AtomicBool,
    bound: usize,
    batch: usize,
}

impl Queue {
    pub(super) fn new(bound: usize, batch: usize) -> Self {
        Self {
            spans: Mutex::new(Vec::with_capacity(batch)),
            ready: Notify::new(),
            closed: AtomicBool::new(false),
            bound,
            batch,
        }
    }

    /// `false` when the span was refused (full).
    pub(super) fn push(&self, span: SpanData) -> bool {
        let Ok(mut spans) = self.spans.lock() else {
            return false;
        };
        if spans.len() >= self.bound {
            return false;
        }
        spans.push(span);
        let full = spans.len() == self.batch;
        drop(spans);
        if full {
            self.ready.notify_one();
        }
        true
    }

    /// Everything queued, in order.
    pub(super) fn take(&self) -> Vec<SpanData> {
        self.spans
            .lock()
            .map(|mut spans| std::mem::replace(&mut *spans, Vec::with_capacity(self.batch)))
            .unwrap_or_default()
    }

    /// No more spans will come: the exporter sends what is left and ends.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.ready.notify_one();
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Until `delay` has passed, a batch is full or the queue closed.
    pub(super) async fn wait(&self, delay: Duration) {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = self.ready.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::trace::otlp::Kind;

    fn span() -> SpanData {
        SpanData {
            trace_id: [1; 16],
            span_id: [1; 8],
            parent: None,
            tracestate: None,
            name: "ping".into(),
            kind: Kind::Server,
            start_ns: 0,
            end_ns: 0,
            attributes: Vec::new(),
            error: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_wakes_the_exporter_and_the_bound_refuses() {
        let queue = Queue::new(3, 2);
        assert!(queue.push(span()));
        // One span: the exporter waits its delay out.
        let waited = tokio::time::Instant::now();
        queue.wait(Duration::from_secs(1)).await;
        assert_eq!(waited.elapsed(), Duration::from_secs(1));
        assert!(queue.push(span()));
        // A full batch: at once.
        let waited = tokio::time::Instant::now();
        queue.wait(Duration::from_secs(1)).await;
        assert_eq!(waited.elapsed(), Duration::ZERO);
        assert!(queue.push(span()));
        assert!(!queue.push(span()), "past the bound");
        assert_eq!(queue.take().len(), 3);
        assert!(queue.push(span()));
        queue.close();
        queue.wait(Duration::from_secs(1)).await;
        assert!(queue.is_closed());
    }
}
