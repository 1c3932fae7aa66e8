//! Callers' tokens (`[tokens.*]`) as the ports that take them (`auth = { tokens =
//! true }`) check them: one table for the whole daemon, replaced at every apply, so a
//! token created, revoked or rotated takes effect without a restart. Only hashes are
//! held; a presented token is hashed and compared in constant time.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::model::token::TokenSpec;
use crate::policy::caller::{CallerRules, ToolView};

/// The callers' tokens, by hash.
#[derive(Default)]
pub struct Callers {
    known: RwLock<Arc<Vec<Known>>>,
    /// When each token (by name, of the file's: bounded) last got in.
    used: Mutex<BTreeMap<String, SystemTime>>,
}

struct Known {
    name: String,
    hash: blake3::Hash,
    expires: Option<u64>,
    rules: CallerRules,
}

/// Who a request comes from, on one port: the token's name and what it may do there.
#[derive(Clone, Debug)]
pub struct Caller {
    pub name: String,
    pub view: Arc<ToolView>,
}

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// No token of the file has this hash (never was, or revoked, or rotated).
    #[error("unknown or revoked token")]
    Unknown,
    #[error("token `{0}` expired")]
    Expired(String),
    /// Known, but its patterns name nothing on this target.
    #[error("token `{name}` grants nothing on {target}")]
    NothingHere { name: String, target: String },
}

impl Callers {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The file's tokens, from now on.
    pub fn set(&self, tokens: &BTreeMap<String, TokenSpec>) {
        let known = tokens
            .values()
            .map(|t| Known {
                name: t.name.clone(),
                hash: blake3::Hash::from_bytes(t.hash),
                expires: t.expires,
                rules: t.rules(),
            })
            .collect();
        if let Ok(mut k) = self.known.write() {
            *k = Arc::new(known);
        }
        if let Ok(mut used) = self.used.lock() {
            used.retain(|name, _| tokens.contains_key(name));
        }
    }

    /// When each token last got in.
    pub fn last_used(&self) -> BTreeMap<String, SystemTime> {
        self.used.lock().map(|u| u.clone()).unwrap_or_default()
    }

    /// The caller `token` is, on `target`.
    pub fn admit(&self, token: &str, target: &str) -> Result<Caller, Refused> {
        let now = SystemTime::now();
        let since_epoch = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let admitted = self.admit_at(token, target, since_epoch);
        if let (Ok(caller), Ok(mut used)) = (&admitted, self.used.lock()) {
            used.insert(caller.name.clone(), now);
        }
        admitted
    }

    fn admit_at(&self, token: &str, target: &str, now: u64) -> Result<Caller, Refused> {
        let presented = blake3::hash(token.as_bytes());
        let known = self
            .known
            .read()
            .map(|k| Arc::clone(&k))
            .unwrap_or_default();
        // `blake3::Hash` compares in constant time; every entry is compared.
        let mut found = None;
        for k in known.iter() {
            if k.hash == presented {
                found = Some(k);
            }
        }
        let k = found.ok_or(Refused::Unknown)?;
        if k.expires.is_some_and(|at| now >= at) {
            return Err(Refused::Expired(k.name.clone()));
        }
        let view = k.rules.on(target);
        if view.is_empty() {
            return Err(Refused::NothingHere {
                name: k.name.clone(),
                target: target.to_string(),
            });
        }
        Ok(Caller {
            name: k.name.clone(),
            view: Arc::new(view),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, token: &str, allow: &[&str], expires: Option<u64>) -> TokenSpec {
        TokenSpec {
            name: name.into(),
            allow: allow.iter().map(|s| s.to_string()).collect(),
            deny: vec![],
            expires,
            hash: *blake3::hash(token.as_bytes()).as_bytes(),
        }
    }

    #[test]
    fn a_token_is_known_by_its_hash_until_it_expires_or_is_gone() {
        let callers = Callers::new();
        let tokens = BTreeMap::from([
            ("ci".to_string(), spec("ci", "t-ci", &["alpha/*"], None)),
            (
                "old".to_string(),
                spec("old", "t-old", &["alpha/*"], Some(100)),
            ),
        ]);
        callers.set(&tokens);
        let ci = callers.admit_at("t-ci", "alpha", 50).unwrap();
        assert_eq!(ci.name, "ci");
        assert!(ci.view.permits("anything"));
        assert_eq!(callers.admit_at("t-old", "alpha", 99).unwrap().name, "old");
        assert_eq!(
            callers.admit_at("t-old", "alpha", 100).unwrap_err(),
            Refused::Expired("old".into())
        );
        assert_eq!(
            callers.admit_at("nope", "alpha", 0).unwrap_err(),
            Refused::Unknown
        );
        assert!(matches!(
            callers.admit_at("t-ci", "beta", 0),
            Err(Refused::NothingHere { .. })
        ));
        // Revoked: the next table lacks it.
        callers.set(&BTreeMap::new());
        assert_eq!(
            callers.admit_at("t-ci", "alpha", 0).unwrap_err(),
            Refused::Unknown
        );
    }
}
