//! Who may use the dashboard: the owner, who ran `mcpctl ui` (the control socket is
//! theirs alone) and got a one-time login link. Opening it trades the link's token for
//! a session: a cookie (HttpOnly, SameSite=Strict) and a key the page keeps in its own
//! origin's storage and sends in a header with every request. Cookies are not kept
//! apart by port, so another program on 127.0.0.1 the browser visits may see the
//! cookie: without the key it is worth nothing. Tokens, cookies and keys are kept as
//! BLAKE3 hashes, bounded in number and age; the caller supplies the random values and
//! the clock.

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
    key: Hash,
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
    /// `cookie` and `key` together are a session; `None` for a token unknown, used or
    /// expired.
    pub fn redeem(&mut self, token: &str, cookie: &str, key: &str, now: Instant) -> Option<()> {
        self.forget_old(now);
        let wanted = hash(token);
        let at = self.links.iter().position(|(h, _)| *h == wanted)?;
        self.links.remove(at);
        if self.sessions.len() >= MAX_SESSIONS {
            self.sessions.pop_front();
        }
        self.sessions.push_back(Session {
            cookie: hash(cookie),
            key: hash(key),
            used: now,
        });
        Some(())
    }

    /// Whether `cookie` and `key` are one live session (its idle clock restarts).
    pub fn signed_in(&mut self, cookie: &str, key: &str, now: Instant) -> bool {
        self.forget_old(now);
        let (cookie, key) = (hash(cookie), hash(key));
        match self
            .sessions
            .iter_mut()
            .find(|s| s.cookie == cookie && s.key == key)
        {
            Some(session) => {
                session.used = now;
                true
            }
            None => false,
        }
    }

    /// Signs everyone out and forgets every link (the dashboard moved to another port:
    /// whoever takes the old one must find nothing its pages send usable).
    pub fn clear(&mut self) {
        self.links.clear();
        self.sessions.clear();
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
    fn a_link_signs_in_once_and_a_session_is_cookie_and_key() {
        let now = Instant::now();
        let mut logins = Logins::default();
        logins.add_link("t1", now);
        assert!(logins.redeem("wrong", "c0", "k0", now).is_none());
        assert!(logins.redeem("t1", "c1", "k1", now).is_some());
        assert!(logins.redeem("t1", "c2", "k2", now).is_none(), "used twice");
        assert!(logins.signed_in("c1", "k1", now));
        assert!(
            !logins.signed_in("c1", "", now),
            "the cookie alone is no session"
        );
        assert!(!logins.signed_in("c1", "k2", now));
        assert!(!logins.signed_in("c2", "k2", now));
        logins.clear();
        assert!(
            !logins.signed_in("c1", "k1", now),
            "signed out when the port moves"
        );
    }

    #[test]
    fn links_and_sessions_expire_and_are_bounded() {
        let start = Instant::now();
        let mut logins = Logins::default();
        logins.add_link("old", start);
        let later = start + LINK_TTL;
        assert!(logins.redeem("old", "c", "x", later).is_none(), "expired");
        for i in 0..=MAX_LINKS {
            logins.add_link(&format!("t{i}"), start);
        }
        assert!(logins.redeem("t0", "c", "x", start).is_none(), "pushed out");
        assert!(logins.redeem("t1", "c1", "x", start).is_some());
        for i in 0..MAX_SESSIONS {
            logins.add_link(&format!("s{i}"), start);
            let _ = logins.redeem(&format!("s{i}"), &format!("cookie{i}"), "y", start);
        }
        assert!(!logins.signed_in("c1", "x", start), "the oldest signed out");
        assert!(logins.signed_in("cookie0", "y", start));
        assert!(!logins.signed_in("cookie0", "y", start + SESSION_IDLE));
    }

    #[test]
    fn cookies_are_read_by_exact_name() {
        assert_eq!(cookie("a=1; mcpctl_ui=abc; b=2", "mcpctl_ui"), Some("abc"));
        assert_eq!(cookie("xmcpctl_ui=abc", "mcpctl_ui"), None);
        assert_eq!(cookie("", "mcpctl_ui"), None);
        assert!(same_secret("a", "a") && !same_secret("a", "b"));
    }
}
