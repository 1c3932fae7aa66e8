//! A client session of a stdio server, what ends with it, and the janitor that forgets
//! sessions left idle.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Semaphore;

use super::AppState;
use crate::gateway::Upstream;
use crate::gateway::mux::Pin;
use crate::gateway::queue::Outbox;
use crate::gateway::sessions::{Idle, Sessions};
use crate::wire::era;

pub(super) struct Session {
    pub(super) upstream: Upstream,
    pub(super) _pin: Pin,
    /// A per-session instance, stopped when the session ends.
    pub(super) _lease: Option<crate::gateway::Lease>,
    /// Legacy SSE sessions: where replies and everything else for the client go.
    pub(super) events: Option<Outbox>,
    /// The client declared sampling, elicitation or roots.
    pub(super) can_answer: bool,
    /// What a 2026-07-28 child is told about this client on each request.
    pub(super) envelope: Arc<era::Envelope>,
    /// `logging/setLevel`: the least severe log message this client wants.
    pub(super) log_level: Option<u8>,
    /// `resources/subscribe`: the URIs whose updates this client wants.
    pub(super) subscriptions: std::collections::HashSet<String>,
    /// The `GET /mcp` stream, while open.
    pub(super) stream: Option<Outbox>,
    /// Last request of this session, for idle expiry.
    pub(super) last_seen: Instant,
    /// Its calls being answered now (see [`Working`]).
    pub(super) calls: Arc<AtomicUsize>,
    /// Legacy SSE sessions: their calls in flight (`SSE_CALLS_IN_FLIGHT`).
    pub(super) slots: Arc<Semaphore>,
    /// The caller's token that opened it (`None`: the owner, or an open port); only
    /// that caller may use it.
    pub(super) caller: Option<String>,
}

/// A session that ends ends its streams (and with them the tasks that feed them).
impl Drop for Session {
    fn drop(&mut self) {
        for stream in [&self.events, &self.stream].into_iter().flatten() {
            stream.cut();
        }
    }
}

impl Idle for Session {
    fn last_seen(&self) -> Instant {
        self.last_seen
    }

    fn in_use(&self) -> bool {
        self.calls.load(Ordering::Relaxed) > 0
            || [&self.events, &self.stream]
                .into_iter()
                .flatten()
                .any(|s| !s.is_closed())
    }
}

pub(super) const SESSION_SWEEP: Duration = Duration::from_secs(60);

/// The server's `session_idle` now.
fn idle_of(state: &AppState) -> Duration {
    Duration::from_millis(state.session_idle.load(Ordering::Relaxed))
}

/// Forgets sessions idle past the server's `session_idle`, looking every
/// [`SESSION_SWEEP`] (or every half of a shorter idle) until the gateway is gone.
pub(super) fn spawn_janitor(state: &Arc<AppState>) {
    let tasks = state.tasks.clone();
    let state = Arc::downgrade(state);
    tasks.spawn(async move {
        // Read each time: `session_idle` changes in place.
        while let Some(every) = state.upgrade().map(|s| {
            SESSION_SWEEP
                .min(idle_of(&s) / 2)
                .max(Duration::from_millis(100))
        }) {
            tokio::time::sleep(every).await;
            let Some(state) = state.upgrade() else { break };
            let gone = sweep(&state.sessions, Instant::now(), idle_of(&state));
            // Dropped outside the lock: a session's end stops its own child.
            for (id, session) in gone {
                cancel_calls(&state, &session, &id);
            }
        }
    });
}

/// The sessions idle past `idle`, taken out of `sessions`. A lock poisoned
/// by a panic elsewhere is taken back and cleared: every change to the store is one map
/// operation, so its data is whole, and ending the janitor (or leaving the lock
/// poisoned for every request) would let idle sessions pile up for good.
fn sweep<S: Idle>(sessions: &Mutex<Sessions<S>>, now: Instant, idle: Duration) -> Vec<(String, S)> {
    let mut store = sessions.lock().unwrap_or_else(|poisoned| {
        sessions.clear_poison();
        poisoned.into_inner()
    });
    store.sweep(now, idle)
}

#[derive(Clone)]
pub(super) struct SessionView {
    pub(super) upstream: Upstream,
    pub(super) events: Option<Outbox>,
    pub(super) can_answer: bool,
    pub(super) envelope: Arc<era::Envelope>,
    pub(super) calls: Arc<AtomicUsize>,
    pub(super) slots: Arc<Semaphore>,
    /// What this request's caller may call here (as its token says now).
    pub(super) caller: Option<Arc<crate::policy::caller::ToolView>>,
}

impl SessionView {
    /// Counts a call of this session as in flight until the guard drops: a session
    /// waiting for an answer is not idle, and is not the one evicted at the cap.
    pub(super) fn working(&self) -> Working {
        self.calls.fetch_add(1, Ordering::Relaxed);
        Working(Arc::clone(&self.calls))
    }
}

pub(super) struct Working(Arc<AtomicUsize>);

impl Drop for Working {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Cancels upstream the calls a session that ended still had in flight.
pub(super) fn cancel_calls(state: &AppState, session: &Session, id: &str) {
    let upstream = session.upstream.clone();
    let prefix = calls_of(id);
    state.tasks.spawn(async move {
        upstream.cancel_all(prefix, "the session ended").await;
    });
}

/// Names a client's call across sessions (ids are only unique within one).
pub(super) fn cancel_key(session_id: &str, id: &Value) -> String {
    format!("{session_id} {id}")
}

/// What every [`cancel_key`] of session `session_id`'s calls starts with.
pub(super) fn calls_of(session_id: &str) -> String {
    format!("{session_id} ")
}

/// 128 random bits in hex; `None` when the OS random source fails (a guessable id
/// would let another client into the session, so none is minted).
pub(super) fn new_session_id() -> Option<String> {
    let mut bytes = [0u8; 16];
    crate::gateway::random::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake(Instant);

    impl Idle for Fake {
        fn last_seen(&self) -> Instant {
            self.0
        }
        fn in_use(&self) -> bool {
            false
        }
    }

    #[test]
    fn the_sweep_takes_back_a_poisoned_lock_and_clears_it() {
        let now = Instant::now();
        let idle = Duration::from_secs(60);
        let sessions = Arc::new(Mutex::new(Sessions::new()));
        if let Ok(mut store) = sessions.lock() {
            let stale = now.checked_sub(idle * 2).unwrap_or(now);
            assert!(store.insert("old".into(), Fake(stale), 10).is_ok());
            assert!(store.insert("new".into(), Fake(now), 10).is_ok());
        }
        let poisoner = Arc::clone(&sessions);
        let panicked = std::thread::spawn(move || {
            let _held = poisoner.lock();
            panic!("a panic while the store is locked");
        })
        .join();
        assert!(panicked.is_err());
        assert!(sessions.is_poisoned());
        let gone: Vec<String> = sweep(&sessions, now, idle)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(gone, ["old"]);
        assert!(
            !sessions.is_poisoned(),
            "every other user of the lock works again"
        );
        assert!(sweep(&sessions, now, idle).is_empty());
    }
}
