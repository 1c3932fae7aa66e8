//! What flows to a client's SSE stream: JSON-RPC messages as `message` events, and the
//! child's notifications the session asked for.

use std::convert::Infallible;
use std::sync::Arc;

use axum::response::sse::Event;
use futures_util::Stream;
use serde_json::Value;
use tokio::sync::broadcast::{self, error::RecvError};

use super::AppState;
use crate::gateway::Upstream;
use crate::gateway::queue::{Inbox, Outbox};
use crate::wire::jsonrpc;

/// JSON-RPC messages as SSE `message` events; `on_drop` runs when the client leaves.
pub(super) struct EventStream {
    pub(super) rx: Inbox,
    pub(super) first: Option<Event>,
    pub(super) on_drop: Option<Box<dyn FnOnce() + Send>>,
    /// A long-lived stream's share of the port (see `AppState::stream_slot`).
    pub(super) _slot: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl EventStream {
    pub(super) fn new(rx: Inbox) -> Self {
        Self {
            rx,
            first: None,
            on_drop: None,
            _slot: None,
        }
    }
}

impl Stream for EventStream {
    type Item = Result<Event, Infallible>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        if let Some(first) = self.first.take() {
            return std::task::Poll::Ready(Some(Ok(first)));
        }
        self.rx.poll_recv(cx).map(|msg| {
            msg.map(|m| Ok(Event::default().event("message").data(jsonrpc::to_text(&m))))
        })
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        if let Some(f) = self.on_drop.take() {
            f();
        }
    }
}

/// What [`next_notification`] found.
#[derive(Debug, PartialEq)]
pub(super) enum Next {
    Message(Value),
    /// The stream ended, or the child is gone.
    Ended,
    /// Notifications were missed: the stream is cut (its client disconnected), never
    /// left with a silent gap.
    Lagged,
}

/// The child's next notification for `out`.
pub(super) async fn next_notification(
    notifications: &mut broadcast::Receiver<Value>,
    out: &Outbox,
) -> Next {
    let msg = tokio::select! {
        msg = notifications.recv() => msg,
        () = out.closed() => return Next::Ended,
    };
    match msg {
        Ok(msg) => Next::Message(msg),
        Err(RecvError::Lagged(_)) => {
            out.cut();
            Next::Lagged
        }
        Err(RecvError::Closed) => Next::Ended,
    }
}

/// Sends the child's notifications that session `id` wants to `out`, until the
/// session or its stream ends. A client that falls behind on its stream (or whose
/// notifications were missed) is disconnected: the session ends.
pub(super) fn forward_notifications(
    state: Arc<AppState>,
    id: String,
    upstream: &Upstream,
    out: Outbox,
) {
    let mut notifications = upstream.notifications();
    let tasks = state.tasks.clone();
    tasks.spawn(async move {
        loop {
            let msg = match next_notification(&mut notifications, &out).await {
                Next::Message(msg) => msg,
                Next::Ended => break,
                Next::Lagged => {
                    state.forget(&id);
                    break;
                }
            };
            match state.wants(&id, &msg) {
                None => break,
                Some(false) => {}
                Some(true) => {
                    if out.push(msg).is_err() {
                        state.forget(&id);
                        break;
                    }
                    if out.is_filling() {
                        tokio::task::yield_now().await;
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::queue;
    use serde_json::json;

    #[tokio::test]
    async fn missed_notifications_cut_the_stream_instead_of_skipping() {
        let (child, mut notifications) = broadcast::channel(2);
        let (out, mut inbox) = queue::channel(8);
        for n in 0..2 {
            child.send(json!(n)).ok();
        }
        assert_eq!(
            next_notification(&mut notifications, &out).await,
            Next::Message(json!(0))
        );
        // Three more while one of the two was still unread: one is lost.
        for n in 2..5 {
            child.send(json!(n)).ok();
        }
        assert_eq!(
            next_notification(&mut notifications, &out).await,
            Next::Lagged
        );
        assert!(out.is_closed());
        assert_eq!(inbox.recv().await, None, "the stream ended");
    }
}
