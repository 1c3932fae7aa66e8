//! A client's bounded queue: what the gateway has for one client stream (an SSE
//! response, a session's `GET /mcp` or `/sse` stream), waiting to be written to it.
//!
//! Pushing never waits. The one task that feeds many clients (the mux, reading a
//! child's stdout) must not be held up by a client that stops reading, so a queue that
//! is full when something is pushed is cut: the push fails, the stream ends at once
//! (what was queued is dropped) and whoever pushed disconnects that client (cancels
//! its calls upstream, forgets its session). The child and every other client go on.
//!
//! Full is counted in messages and in bytes (an estimate of what each message holds,
//! [`size_of`], taken once at push):
//! - at most [`STREAM_BYTES`] per queue, but one message bigger than that still goes
//!   into an empty queue, so a big answer reaches a reader that keeps up;
//! - at most [`PROCESS_BYTES`] queued in all the process's queues: a push beyond it
//!   cuts the queue pushed to when that queue already has a backlog. A reader that
//!   keeps up has an empty queue, so someone else's backlog never cuts it.
//!
//! A cut also fires the stream's [`Hangup`], when one is attached: the connection is
//! closed, since a client that stopped reading would otherwise hold it (and what the
//! HTTP server buffered for it) for as long as it likes.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use serde_json::Value;
use tokio::sync::{Notify, mpsc};

use super::accept::Hangup;

/// Bytes one client stream may have queued (see the module's comment).
pub const STREAM_BYTES: usize = 8 << 20;

/// Bytes all the queues of the process may hold together (see the module's comment).
pub const PROCESS_BYTES: usize = 256 << 20;

/// The bytes queued in every queue of the process, against [`PROCESS_BYTES`].
static PROCESS: Budget = Budget::new(PROCESS_BYTES);

/// Bytes shared by many queues.
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    used: AtomicUsize,
}

impl Budget {
    pub const fn new(limit: usize) -> Self {
        Self {
            limit,
            used: AtomicUsize::new(0),
        }
    }

    /// Bytes queued now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn would_exceed(&self, size: usize) -> bool {
        self.used().saturating_add(size) > self.limit
    }
}

/// What bounds a queue.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub messages: usize,
    pub bytes: usize,
    pub budget: &'static Budget,
}

/// An estimate of the bytes `msg` holds in memory: every node's size plus its
/// strings' (keys included). A walk without allocating: cheaper than serializing,
/// which walks the same nodes and writes every byte besides. Recursion is as deep as
/// the message, which serde_json's parser bounds (128).
pub fn size_of(msg: &Value) -> usize {
    const NODE: usize = std::mem::size_of::<Value>();
    match msg {
        Value::String(s) => NODE + s.len(),
        Value::Array(items) => items.iter().map(size_of).fold(NODE, usize::saturating_add),
        Value::Object(members) => members
            .iter()
            .map(|(k, v)| NODE + k.len() + size_of(v))
            .fold(NODE, usize::saturating_add),
        Value::Null | Value::Bool(_) | Value::Number(_) => NODE,
    }
}

/// A message and its [`size_of`], counted while it is queued.
#[derive(Debug)]
struct Queued {
    msg: Value,
    size: usize,
}

/// The pushing end; clones share one queue.
#[derive(Clone, Debug)]
pub struct Outbox {
    tx: mpsc::Sender<Queued>,
    shared: Arc<Shared>,
}

/// The stream's end: yields what was pushed until every [`Outbox`] is gone or the
/// queue is cut.
#[derive(Debug)]
pub struct Inbox {
    rx: mpsc::Receiver<Queued>,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    done: AtomicBool,
    /// The stream's reader, to wake when the queue is cut.
    reader: Mutex<Option<Waker>>,
    /// Those waiting in [`Outbox::closed`].
    closed: Notify,
    /// Bytes queued now, against `cap`.
    bytes: AtomicUsize,
    cap: usize,
    budget: &'static Budget,
    /// The connection to close when the queue is cut.
    hangup: Mutex<Option<Hangup>>,
}

impl Shared {
    fn is_cut(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    fn take(&self, size: usize) {
        self.bytes.fetch_add(size, Ordering::AcqRel);
        self.budget.used.fetch_add(size, Ordering::Relaxed);
    }

    fn release(&self, size: usize) {
        self.bytes.fetch_sub(size, Ordering::AcqRel);
        self.budget.used.fetch_sub(size, Ordering::Relaxed);
    }
}

/// Why a push failed: the client fell behind (its queue was full and is now cut) or
/// has gone.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    FellBehind,
    Gone,
}

/// A queue of at most `capacity` messages and [`STREAM_BYTES`], in the process's
/// [`PROCESS_BYTES`].
pub fn channel(capacity: usize) -> (Outbox, Inbox) {
    bounded(Bounds {
        messages: capacity,
        bytes: STREAM_BYTES,
        budget: &PROCESS,
    })
}

/// A queue with the bounds given.
pub fn bounded(bounds: Bounds) -> (Outbox, Inbox) {
    let (tx, rx) = mpsc::channel(bounds.messages.max(1));
    let shared = Arc::new(Shared {
        done: AtomicBool::new(false),
        reader: Mutex::new(None),
        closed: Notify::new(),
        bytes: AtomicUsize::new(0),
        cap: bounds.bytes,
        budget: bounds.budget,
        hangup: Mutex::new(None),
    });
    (
        Outbox {
            tx,
            shared: Arc::clone(&shared),
        },
        Inbox { rx, shared },
    )
}

impl Outbox {
    /// Queues `msg` without waiting; a full queue is cut (see the module's comment).
    pub fn push(&self, msg: Value) -> Result<(), Refused> {
        if self.is_cut() {
            return Err(Refused::FellBehind);
        }
        let size = size_of(&msg);
        let shared = &self.shared;
        let queued = shared.bytes.load(Ordering::Acquire);
        // An empty queue takes any one message: its reader has kept up.
        if queued > 0
            && (queued.saturating_add(size) > shared.cap || shared.budget.would_exceed(size))
        {
            self.cut();
            return Err(Refused::FellBehind);
        }
        shared.take(size);
        match self.tx.try_send(Queued { msg, size }) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                shared.release(size);
                self.cut();
                Err(Refused::FellBehind)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                shared.release(size);
                Err(Refused::Gone)
            }
        }
    }

    /// More than half full, in messages or bytes: the pusher should let the reader run
    /// (yield) before it pushes more, so that a reader that keeps up is never cut by a
    /// burst that came while it had no chance to run.
    pub fn is_filling(&self) -> bool {
        self.tx.capacity() * 2 < self.tx.max_capacity()
            || self.shared.bytes.load(Ordering::Relaxed) > self.shared.cap / 2
    }

    /// Closes `hangup`'s connection when the queue is cut (at once if it already is).
    pub fn hang_up_on_cut(&self, hangup: Option<Hangup>) {
        let Some(hangup) = hangup else { return };
        if let Ok(mut slot) = self.shared.hangup.lock() {
            *slot = Some(hangup);
        }
        if self.is_cut() {
            self.fire_hangup();
        }
    }

    fn fire_hangup(&self) {
        let hangup = self.shared.hangup.lock().ok().and_then(|mut h| h.take());
        if let Some(hangup) = hangup {
            hangup.fire();
        }
    }

    /// Ends the stream now, whatever is queued, and closes its connection.
    pub fn cut(&self) {
        self.shared.done.store(true, Ordering::Release);
        if let Some(waker) = self.shared.reader.lock().ok().and_then(|mut w| w.take()) {
            waker.wake();
        }
        self.shared.closed.notify_waiters();
        self.fire_hangup();
    }

    fn is_cut(&self) -> bool {
        self.shared.is_cut()
    }

    /// The stream has ended: cut, or its reader gone.
    pub fn is_closed(&self) -> bool {
        self.is_cut() || self.tx.is_closed()
    }

    /// Resolves once the stream has ended.
    pub async fn closed(&self) {
        let notified = self.shared.closed.notified();
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
        if self.shared.is_cut() {
            self.drain();
            return Poll::Ready(None);
        }
        if let Ok(mut reader) = self.shared.reader.lock() {
            match reader.as_ref() {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *reader = Some(cx.waker().clone()),
            }
        }
        // Cut between the check and storing the waker: the cut found no waker to wake.
        if self.shared.is_cut() {
            self.drain();
            return Poll::Ready(None);
        }
        self.rx.poll_recv(cx).map(|queued| {
            queued.map(|q| {
                self.shared.release(q.size);
                q.msg
            })
        })
    }

    pub async fn recv(&mut self) -> Option<Value> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// A message already queued, without waiting.
    pub fn try_recv(&mut self) -> Option<Value> {
        if self.shared.is_cut() {
            self.drain();
            return None;
        }
        let queued = self.rx.try_recv().ok()?;
        self.shared.release(queued.size);
        Some(queued.msg)
    }

    /// Drops what is queued, giving its bytes back.
    fn drain(&mut self) {
        while let Ok(queued) = self.rx.try_recv() {
            self.shared.release(queued.size);
        }
    }
}

/// What was never read gives its bytes back to the process's budget.
impl Drop for Inbox {
    fn drop(&mut self) {
        // Closed first: nothing pushed after the drain is left counted.
        self.rx.close();
        self.drain();
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
        let reader = crate::gateway::owned::owned(async move { inbox.recv().await });
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

    /// A queue of many messages and `bytes`, in a budget of its own.
    fn bytes_only(bytes: usize, budget: &'static Budget) -> (Outbox, Inbox) {
        bounded(Bounds {
            messages: 1024,
            bytes,
            budget,
        })
    }

    fn leaked(limit: usize) -> &'static Budget {
        Box::leak(Box::new(Budget::new(limit)))
    }

    /// A message of about `n` bytes.
    fn text(n: usize) -> Value {
        json!("x".repeat(n))
    }

    #[tokio::test]
    async fn a_queue_over_its_bytes_is_cut_though_it_has_room_for_messages() {
        let budget = leaked(usize::MAX);
        let (out, mut inbox) = bytes_only(10_000, budget);
        assert_eq!(out.push(text(4_000)), Ok(()));
        assert_eq!(out.push(text(4_000)), Ok(()));
        assert!(out.is_filling(), "more than half its bytes");
        assert_eq!(out.push(text(4_000)), Err(Refused::FellBehind));
        assert_eq!(inbox.recv().await, None);
        // What was queued was given back.
        assert_eq!(budget.used(), 0);
    }

    #[tokio::test]
    async fn one_message_bigger_than_the_cap_reaches_a_reader_that_keeps_up() {
        let budget = leaked(usize::MAX);
        let (out, mut inbox) = bytes_only(1_000, budget);
        for _ in 0..3 {
            assert_eq!(out.push(text(5_000)), Ok(()));
            let got = inbox.recv().await;
            assert_eq!(
                got.as_ref().and_then(Value::as_str).map(str::len),
                Some(5_000)
            );
        }
        assert_eq!(budget.used(), 0);
        // Behind it, even a small one is too much.
        assert_eq!(out.push(text(5_000)), Ok(()));
        assert_eq!(out.push(json!(1)), Err(Refused::FellBehind));
    }

    #[tokio::test]
    async fn the_process_budget_cuts_a_queue_with_a_backlog_never_an_empty_one() {
        let budget = leaked(10_000);
        let (slow, mut slow_inbox) = bytes_only(1 << 20, budget);
        let (keeps_up, mut keeps_up_inbox) = bytes_only(1 << 20, budget);
        assert_eq!(slow.push(text(6_000)), Ok(()));
        assert_eq!(slow.push(text(3_000)), Ok(()));
        // The budget is spent by the slow one, yet one that has caught up gets its
        // message, and gets it again after reading it.
        for _ in 0..2 {
            assert_eq!(keeps_up.push(text(3_000)), Ok(()));
            assert!(keeps_up_inbox.recv().await.is_some());
        }
        // The slow one, with its backlog, is cut by its next push.
        assert_eq!(slow.push(text(3_000)), Err(Refused::FellBehind));
        assert_eq!(slow_inbox.recv().await, None);
        assert_eq!(budget.used(), 0);
        // An empty queue over the budget still takes one; then it has a backlog.
        let (other, _other_inbox) = bytes_only(1 << 20, budget);
        assert_eq!(other.push(text(20_000)), Ok(()));
        assert_eq!(other.push(text(10)), Err(Refused::FellBehind));
    }

    #[tokio::test]
    async fn dropping_the_reader_gives_back_what_it_never_read() {
        let budget = leaked(usize::MAX);
        let (out, inbox) = bytes_only(1 << 20, budget);
        assert_eq!(out.push(text(5_000)), Ok(()));
        assert!(budget.used() > 5_000);
        drop(inbox);
        assert_eq!(budget.used(), 0);
        assert_eq!(out.push(text(5_000)), Err(Refused::Gone));
        assert_eq!(budget.used(), 0);
    }

    #[tokio::test]
    async fn a_cut_fires_the_hangup_of_the_connection() {
        let (out, _inbox) = channel(4);
        let hangup = Hangup::default();
        out.hang_up_on_cut(Some(hangup.clone()));
        out.cut();
        // Fired before anyone waited: the permit is kept for the connection.
        tokio::time::timeout(std::time::Duration::from_secs(5), hangup.fired())
            .await
            .expect("the hangup fired");
    }

    #[test]
    fn the_size_counts_strings_and_nodes() {
        let node = std::mem::size_of::<Value>();
        assert_eq!(size_of(&json!(null)), node);
        assert_eq!(size_of(&json!("abc")), node + 3);
        assert_eq!(size_of(&json!([1, "ab"])), 3 * node + 2);
        assert_eq!(size_of(&json!({"k": "vv"})), 3 * node + 3);
    }
}
