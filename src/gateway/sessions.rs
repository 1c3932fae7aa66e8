//! The live sessions of one server, with a cap: clients that initialize and never come
//! back must not grow the gateway without bound.
//!
//! At the cap (`max_sessions`), a new session takes the place of the longest-idle
//! session that has no open stream (that one is forgotten: 404, re-initialize); when
//! every session has an open stream, the new one is refused (503 with `Retry-After`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::meter::Meter;

/// Sessions idle this long (and with no open stream) are forgotten: clients that
/// never DELETE must not grow the gateway forever. They get 404 and re-initialize.
pub(super) const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);

/// What the store needs to know of a session to choose one to evict.
pub(super) trait Idle {
    /// The session's last request.
    fn last_seen(&self) -> Instant;
    /// A session with an open stream or a call in flight is in use however long ago
    /// its last request came.
    fn in_use(&self) -> bool;
}

/// Sessions by id.
pub(super) struct Sessions<S> {
    map: HashMap<String, S>,
    /// Told the count after every change (the port's meter).
    gauge: Option<Arc<Meter>>,
}

/// Every session has an open stream: none can make room.
#[derive(Debug)]
pub(super) struct Full;

impl<S: Idle> Sessions<S> {
    #[cfg(test)]
    pub(super) fn new() -> Self {
        Self {
            map: HashMap::new(),
            gauge: None,
        }
    }

    /// The same store, telling `meter` how many sessions live after each change.
    pub(super) fn counted(meter: Arc<Meter>) -> Self {
        Self {
            map: HashMap::new(),
            gauge: Some(meter),
        }
    }

    fn counted_now(&self) {
        if let Some(meter) = &self.gauge {
            meter.set_sessions(self.map.len());
        }
    }

    /// Sessions in use (a stream open, a call in flight) or seen within `within`: those
    /// that keep a server from scaling to zero.
    pub(super) fn recent(&self, now: Instant, within: Duration) -> usize {
        self.map
            .values()
            .filter(|s| s.in_use() || now.saturating_duration_since(s.last_seen()) < within)
            .count()
    }

    /// Whether a new session could be let in under `max` now (by evicting one).
    pub(super) fn has_room(&self, max: usize) -> bool {
        self.map.len() < max || self.map.values().any(|s| !s.in_use())
    }

    /// Adds `session` as `id`; at `max`, first evicts the longest-idle session without
    /// an open stream, and returns it (for its calls to be cancelled). `Err` gives the
    /// session back when there was no room.
    pub(super) fn insert(
        &mut self,
        id: String,
        session: S,
        max: usize,
    ) -> Result<Vec<(String, S)>, (Full, S)> {
        let mut evicted = Vec::new();
        while self.map.len() >= max.max(1) {
            let victim = self
                .map
                .iter()
                .filter(|(_, s)| !s.in_use())
                .min_by_key(|(_, s)| s.last_seen())
                .map(|(id, _)| id.clone());
            let Some(victim) = victim else {
                return Err((Full, session));
            };
            if let Some(s) = self.map.remove(&victim) {
                evicted.push((victim, s));
            }
        }
        self.map.insert(id, session);
        self.counted_now();
        Ok(evicted)
    }

    pub(super) fn get(&self, id: &str) -> Option<&S> {
        self.map.get(id)
    }

    pub(super) fn get_mut(&mut self, id: &str) -> Option<&mut S> {
        self.map.get_mut(id)
    }

    pub(super) fn remove(&mut self, id: &str) -> Option<S> {
        let removed = self.map.remove(id);
        self.counted_now();
        removed
    }

    /// Forgets the sessions idle past `ttl` at `now` that have no open stream, and
    /// returns them (for their calls to be cancelled).
    pub(super) fn sweep(&mut self, now: Instant, ttl: Duration) -> Vec<(String, S)> {
        let gone: Vec<String> = self
            .map
            .iter()
            .filter(|(_, s)| !s.in_use() && now.saturating_duration_since(s.last_seen()) > ttl)
            .map(|(id, _)| id.clone())
            .collect();
        let gone = gone
            .into_iter()
            .filter_map(|id| self.map.remove(&id).map(|s| (id, s)))
            .collect();
        self.counted_now();
        gone
    }

    /// Forgets every session (the server stops), and returns them.
    pub(super) fn drain(&mut self) -> Vec<(String, S)> {
        let all = self.map.drain().collect();
        self.counted_now();
        all
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    struct Fake(Instant, bool);

    impl Idle for Fake {
        fn last_seen(&self) -> Instant {
            self.0
        }
        fn in_use(&self) -> bool {
            self.1
        }
    }

    #[test]
    fn at_the_cap_the_longest_idle_session_without_a_stream_makes_room() {
        let now = Instant::now();
        let ago = |s| now - Duration::from_secs(s);
        let mut sessions = Sessions::new();
        for (id, session) in [
            ("streaming-oldest", Fake(ago(100), true)),
            ("idle-old", Fake(ago(50), false)),
            ("idle-recent", Fake(ago(5), false)),
        ] {
            assert!(sessions.insert(id.into(), session, 3).is_ok());
        }
        let evicted = sessions.insert("new".into(), Fake(now, false), 3).ok();
        let evicted: Vec<_> = evicted
            .unwrap_or_default()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(evicted, ["idle-old"]);
        assert_eq!(sessions.len(), 3);
        assert!(sessions.get("streaming-oldest").is_some());
    }

    #[test]
    fn idle_sessions_without_streams_are_swept() {
        let now = Instant::now();
        let mut sessions = Sessions::new();
        for (id, session) in [
            ("idle", Fake(now - Duration::from_secs(3600), false)),
            ("streaming", Fake(now - Duration::from_secs(3600), true)),
            ("busy", Fake(now - Duration::from_secs(5), false)),
        ] {
            assert!(sessions.insert(id.into(), session, 10).is_ok());
        }
        let gone: Vec<_> = sessions
            .sweep(now, SESSION_IDLE)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(gone, ["idle"]);
        assert_eq!(sessions.len(), 2);
        assert_eq!(sessions.drain().len(), 2);
        assert_eq!(sessions.len(), 0);
    }

    #[test]
    fn when_every_session_streams_a_new_one_is_refused() {
        let now = Instant::now();
        let mut sessions = Sessions::new();
        assert!(sessions.insert("a".into(), Fake(now, true), 1).is_ok());
        assert!(!sessions.has_room(1));
        assert!(sessions.insert("b".into(), Fake(now, false), 1).is_err());
        assert!(sessions.get("a").is_some());
        assert!(sessions.has_room(2));
    }
}
