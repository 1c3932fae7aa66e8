//! A client's bounded queue: what the gateway has for one client stream (an SSE
//! response, a session's `GET /mcp` or `/sse` stream), waiting to be written to it.
//!
//! Pushing never waits. The one task that feeds many clients (the mux, reading a
//! child's stdout) must not be held up by a client that stops reading, so a queue that
//! is full when something is pushed is cut: the push fails, the stream ends at once
//! (what was queued is dropped) and whoever pushed disconnects that client (cancels
//! its calls upstream, forgets its session). The child and every other client go on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use serde_json::Value;
use tokio::sync::{Notify, mpsc};

/// The pushing end; clones share one queue.
#[derive(Clone, Debug)]
pub struct Outbox {
    tx: mpsc::Sender<Value>,
    cut: Arc<Cut>,
}

/// The stream's end: yields what was pushed until every [`Outbox`] is gone or the
/// queue is cut.
#[derive(Debug)]
pub struct Inbox {
    rx: mpsc::Receiver<Value>,
    cut: Arc<Cut>,
}

#[derive(Debug, Default)]
struct Cut {
    done: AtomicBool,
    /// The stream's reader, to wake when the queue is cut.
    reader: Mutex<Option<Waker>>,
    /// Those waiting in [`Outbox::closed`].
    closed: Notify,
}

/// Why a push failed: the client fell behind (its queue was full and is now cut) or
/// has gone.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    FellBehind,
    Gone,
}

/// A queue of at most `capacity` messages.
pub fn channel(capacity: usize) -> (Outbox, Inbox) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let cut = Arc::new(Cut::default());
    (
        Outbox {
            tx,
            cut: Arc::clone(&cut),
        },
        Inbox { rx, cut },
    )
}

impl Outbox {
    /// Queues `msg` without waiting; a full queue is cut (see the module's comment).
    pub fn push(&self, msg: Value) -> Result<(), Refused> {
        if self.is_cut() {
            return Err(Refused::FellBehind);
        }
        match self.tx.try_send(msg) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.cut();
                Err(Refused::FellBehind)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Refused::Gone),
        }
    }

    /// More than half full: the pusher should let the reader run (yield) before it
    /// pushes more, so that a reader that keeps up is never cut by a burst that came
    /// while it had no chance to run.
    pub fn is_filling(&self) -> bool {
        self.tx.capacity() * 2 < self.tx.max_capacity()
    }

    /// Ends the stream now, whatever is queued.
    pub fn cut(&self) {
        self.cut.done.store(true, Ordering::Release);
        if let Some(waker) = self.cut.reader.lock().ok().and_then(|mut w| w.take()) {
            waker.wake();
        }
        self.cut.closed.notify_waiters();
    }

    fn is_cut(&self) -> bool {
        self.cut.done.load(Ordering::Acquire)
    }

    /// The stream has ended: cut, or its reader gone.
    pub fn is_closed(&self) -> bool {
        self.is_cut() || self.tx.is_closed()
    }

    /// Resolves once the stream has ended.
    pub async fn closed(&self) {
        let notified = self.cut.closed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.is_cut() {
            return;
        }
        tokio::select! {
            () = notified => {}
            () = self.tx.closed() => {}
        }
    }
}

impl Inbox {
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Value>> {
        if self.cut.done.load(Ordering::Acquire) {
            return Poll::Ready(None);
        }
        if let Ok(mut reader) = self.cut.reader.lock() {
            match reader.as_ref() {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *reader = Some(cx.waker().clone()),
            }
        }
        // Cut between the check and storing the waker: the cut found no waker to wake.
        if self.cut.done.load(Ordering::Acquire) {
            return Poll::Ready(None);
        }
        self.rx.poll_recv(cx)
    }

    pub async fn recv(&mut self) -> Option<Value> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// A message already queued, without waiting.
    pub fn try_recv(&mut self) -> Option<Value> {
        if self.cut.done.load(Ordering::Acquire) {
            return None;
        }
        self.rx.try_recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn a_full_queue_is_cut_and_its_stream_ends() {
        let (out, mut inbox) = channel(2);
        assert_eq!(out.push(json!(1)), Ok(()));
        assert_eq!(out.push(json!(2)), Ok(()));
        assert_eq!(out.push(json!(3)), Err(Refused::FellBehind));
        assert!(out.is_closed());
        // Ended at once: what was queued is dropped with the client.
        assert_eq!(inbox.recv().await, None);
        assert_eq!(out.push(json!(4)), Err(Refused::FellBehind));
        out.closed().await;
    }

    #[tokio::test]
    async fn a_waiting_reader_is_woken_by_the_cut() {
        let (out, mut inbox) = channel(4);
        let reader = tokio::spawn(async move { inbox.recv().await });
        tokio::task::yield_now().await;
        out.cut();
        assert_eq!(reader.await.ok(), Some(None));
    }

    #[tokio::test]
    async fn a_gone_reader_refuses_without_cutting() {
        let (out, inbox) = channel(4);
        drop(inbox);
        assert_eq!(out.push(json!(1)), Err(Refused::Gone));
        out.closed().await;
    }
}
