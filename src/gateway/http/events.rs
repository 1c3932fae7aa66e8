//! What flows to a client's SSE stream: JSON-RPC messages as `message` events, and the
//! child's notifications the session asked for.

use std::convert::Infallible;
use std::sync::Arc;

use axum::response::sse::Event;
use futures_util::Stream;

use super::AppState;
use crate::gateway::Upstream;
use crate::gateway::jsonrpc;
use crate::gateway::queue::{Inbox, Outbox};

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

/// Sends the child's notifications that session `id` wants to `out`, until the
/// session or its stream ends. A client that falls behind on its stream is
/// disconnected: the session ends.
pub(super) fn forward_notifications(
    state: Arc<AppState>,
    id: String,
    upstream: &Upstream,
    out: Outbox,
) {
    let mut notifications = upstream.notifications();
    tokio::spawn(async move {
        loop {
            let msg = tokio::select! {
                msg = notifications.recv() => msg,
                () = out.closed() => break,
            };
            let msg = match msg {
                Ok(msg) => msg,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => break,
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
