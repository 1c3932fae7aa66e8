//! Who may use the dashboard: the owner, who ran `mcpctl ui` (the control socket is
//! theirs alone) and got a one-time login link. Opening it trades the link's token for
//! a session cookie (HttpOnly, SameSite=Strict) and a CSRF token the page sends back
//! on every POST. Tokens and cookies are kept as BLAKE3 hashes, bounded in number and
//! age; the caller supplies the random values and the clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Login links not used yet, at most (older ones are forgotten first).
pub const MAX_LINKS: usize = 16;
/// How long a login link works.
pub const LINK_TTL: Duration = Duration::from_secs(10 * 60);
/// Browser sessions at once, at most (the oldest is signed out first).
pub const MAX_SESSIONS: usize = 32;
/// A session unused this long is signed out.
pub const SESSION_IDLE: Duration = Duration::from_secs(12 * 60 * 60);

type Hash = [u8; 32];

fn hash(secret: &str) -> Hash {
    *blake3::hash(secret.as_bytes()).as_bytes()
}

struct Session {
    cookie: Hash,
    csrf: String,
    used: Instant,
}

#[derive(Default)]
pub struct Logins {
    links: VecDeque<(Hash, Instant)>,
    sessions: VecDeque<Session>,
}

impl Logins {
    /// Remembers a new login link's `token` (made at `now`).
    pub fn add_link(&mut self, token: &str, now: Instant) {
        self.forget_old(now);
        if self.links.len() >= MAX_LINKS {
            self.links.pop_front();
        }
        self.links.push_back((hash(token), now));
    }

    /// Uses up the link's `token`: `Some(())` once if it is known and fresh, after which
    /// `cookie` is a session with `csrf`; `None` for a token unknown, used or expired.
    pub fn redeem(&mut self, token: &str, cookie: &str, csrf: String, now: Instant) -> Option<()> {
        self.forget_old(now);
        let wanted = hash(token);
        let at = self.links.iter().position(|(h, _)| *h == wanted)?;
        self.links.remove(at);
        if self.sessions.len() >= MAX_SESSIONS {
            self.sessions.pop_front();
        }
        self.sessions.push_back(Session {
            cookie: hash(cookie),
            csrf,
            used: now,
        });
        Some(())
    }

    /// The CSRF token of the session `cookie` names, if it is signed in (its idle
    /// clock restarts).
    pub fn session(&mut self, cookie: &str, now: Instant) -> Option<&str> {
        self.forget_old(now);
        let wanted = hash(cookie);
        let session = self.sessions.iter_mut().find(|s| s.cookie == wanted)?;
        session.used = now;
        Some(&session.csrf)
    }

    fn forget_old(&mut self, now: Instant) {
        self.links
            .retain(|(_, made)| now.saturating_duration_since(*made) < LINK_TTL);
        self.sessions
            .retain(|s| now.saturating_duration_since(s.used) < SESSION_IDLE);
    }
}

/// The value of the cookie `name` in a `Cookie` header.
pub fn cookie<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then_some(value)
    })
}

/// Whether two secrets are equal, in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    hash(a) == hash(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_signs_in_once() {
        let now = Instant::now();
        let mut logins = Logins::default();
        logins.add_link("t1", now);
        assert!(logins.redeem("wrong", "c0", "x".into(), now).is_none());
        assert!(logins.redeem("t1", "c1", "csrf1".into(), now).is_some());
        assert!(
            logins.redeem("t1", "c2", "csrf2".into(), now).is_none(),
            "used twice"
        );
        assert_eq!(logins.session("c1", now), Some("csrf1"));
        assert_eq!(logins.session("c2", now), None);
    }

    #[test]
    fn links_and_sessions_expire_and_are_bounded() {
        let start = Instant::now();
        let mut logins = Logins::default();
        logins.add_link("old", start);
        let later = start + LINK_TTL;
        assert!(
            logins.redeem("old", "c", "x".into(), later).is_none(),
            "expired"
        );
        for i in 0..=MAX_LINKS {
            logins.add_link(&format!("t{i}"), start);
        }
        assert!(
            logins.redeem("t0", "c", "x".into(), start).is_none(),
            "pushed out"
        );
        assert!(logins.redeem("t1", "c1", "x".into(), start).is_some());
        for i in 0..MAX_SESSIONS {
            logins.add_link(&format!("s{i}"), start);
            let _ = logins.redeem(&format!("s{i}"), &format!("cookie{i}"), "y".into(), start);
        }
        assert!(
            logins.session("c1", start).is_none(),
            "the oldest signed out"
        );
        assert!(logins.session("cookie0", start).is_some());
        assert!(logins.session("cookie0", start + SESSION_IDLE).is_none());
    }

    #[test]
    fn cookies_are_read_by_exact_name() {
        assert_eq!(cookie("a=1; mcpctl_ui=abc; b=2", "mcpctl_ui"), Some("abc"));
        assert_eq!(cookie("xmcpctl_ui=abc", "mcpctl_ui"), None);
        assert_eq!(cookie("", "mcpctl_ui"), None);
        assert!(same_secret("a", "a") && !same_secret("a", "b"));
    }
}
