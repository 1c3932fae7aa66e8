//! Callers' tokens (`[tokens.*]`) as the ports that take them (`auth = { tokens =
//! true }`) check them: one table for the whole daemon, replaced at every apply, so a
//! token created, revoked or rotated takes effect without a restart. Only hashes are
//! held: a presented token is hashed (BLAKE3) and looked up by its hash, so the time a
//! lookup takes tells nothing about any token (only about hashes no one can invert).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::rate::Buckets;
use crate::model::token::{Rate, TokenSpec};
use crate::policy::caller::{CallerRules, ToolView};

/// The callers' tokens, by hash.
pub struct Callers {
    known: RwLock<Arc<HashMap<[u8; 32], Known>>>,
    /// When each token (by name, of the file's: bounded) last got in.
    used: Mutex<BTreeMap<String, SystemTime>>,
    /// Each rate-limited token's bucket, and how many requests it was refused.
    buckets: Buckets,
}

struct Known {
    name: String,
    expires: Option<u64>,
    rules: CallerRules,
    rate: Option<Rate>,
    /// What it may do on each target asked so far (at most the file's servers and
    /// endpoints): built once, not at every request.
    views: Mutex<HashMap<String, Arc<ToolView>>>,
}

impl Known {
    fn view(&self, target: &str) -> Arc<ToolView> {
        let Ok(mut views) = self.views.lock() else {
            return Arc::new(self.rules.on(target));
        };
        if let Some(view) = views.get(target) {
            return Arc::clone(view);
        }
        let view = Arc::new(self.rules.on(target));
        views.insert(target.to_string(), Arc::clone(&view));
        view
    }
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
    /// Over its `rate`: try again after this many seconds.
    #[error("token `{name}` is over its rate; retry in {retry_after} s")]
    Limited { name: String, retry_after: u64 },
    #[error("token `{0}` expired")]
    Expired(String),
    /// Known, but its patterns name nothing on this target.
    #[error("token `{name}` grants nothing on {target}")]
    NothingHere { name: String, target: String },
}

impl Refused {
    /// The token's name, when the token is one of the file's.
    pub fn caller(&self) -> Option<&str> {
        match self {
            Self::Unknown => None,
            Self::Limited { name, .. } | Self::Expired(name) | Self::NothingHere { name, .. } => {
                Some(name)
            }
        }
    }
}

impl Callers {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            known: RwLock::default(),
            used: Mutex::default(),
            // The file's tokens: as many as it names.
            buckets: Buckets::new(usize::MAX),
        })
    }

    /// The file's tokens, from now on.
    pub fn set(&self, tokens: &BTreeMap<String, TokenSpec>) {
        let known = tokens
            .values()
            .map(|t| {
                let known = Known {
                    name: t.name.clone(),
                    expires: t.expires,
                    rules: t.rules(),
                    rate: t.rate,
                    views: Mutex::default(),
                };
                (t.hash, known)
            })
            .collect();
        if let Ok(mut k) = self.known.write() {
            *k = Arc::new(known);
        }
        if let Ok(mut used) = self.used.lock() {
            used.retain(|name, _| tokens.contains_key(name));
        }
        self.buckets
            .retain(|name| tokens.get(name).is_some_and(|t| t.rate.is_some()));
    }

    /// Keeps only the tokens `keep` says (by name and hash) are still the file's, and
    /// says how many are left: removals taken from a file that is otherwise broken.
    pub fn keep_only(&self, keep: impl Fn(&str, &[u8; 32]) -> bool) -> usize {
        let Ok(mut known) = self.known.write() else {
            return 0;
        };
        let kept: HashMap<[u8; 32], Known> = known
            .iter()
            .filter(|(hash, k)| keep(&k.name, hash))
            .map(|(hash, k)| {
                let copy = Known {
                    name: k.name.clone(),
                    expires: k.expires,
                    rules: k.rules.clone(),
                    rate: k.rate,
                    views: Mutex::default(),
                };
                (*hash, copy)
            })
            .collect();
        let left = kept.len();
        *known = Arc::new(kept);
        left
    }

    /// Requests refused for being over their token's rate, by token.
    pub fn limited(&self) -> BTreeMap<String, u64> {
        self.buckets.limited()
    }

    /// When each token last got in.
    pub fn last_used(&self) -> BTreeMap<String, SystemTime> {
        self.used.lock().map(|u| u.clone()).unwrap_or_default()
    }

    /// The caller `token` is, on `target`.
    pub fn admit(&self, token: &str, target: &str) -> Result<Caller, Refused> {
        let now = SystemTime::now();
        let since_epoch = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let admitted = self.admit_at(token, target, since_epoch, Instant::now());
        if let (Ok(caller), Ok(mut used)) = (&admitted, self.used.lock()) {
            used.insert(caller.name.clone(), now);
        }
        admitted
    }

    fn admit_at(
        &self,
        token: &str,
        target: &str,
        now: u64,
        clock: Instant,
    ) -> Result<Caller, Refused> {
        let presented = blake3::hash(token.as_bytes());
        let known = self
            .known
            .read()
            .map(|k| Arc::clone(&k))
            .unwrap_or_default();
        let k = known.get(presented.as_bytes()).ok_or(Refused::Unknown)?;
        if k.expires.is_some_and(|at| now >= at) {
            return Err(Refused::Expired(k.name.clone()));
        }
        if let Some(rate) = k.rate
            && let Err(retry_after) = self.buckets.take(&k.name, &k.name, rate, clock)
        {
            return Err(Refused::Limited {
                name: k.name.clone(),
                retry_after,
            });
        }
        let view = k.view(target);
        if view.is_empty() {
            return Err(Refused::NothingHere {
                name: k.name.clone(),
                target: target.to_string(),
            });
        }
        Ok(Caller {
            name: k.name.clone(),
            view,
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
            rate: None,
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
        let ci = callers
            .admit_at("t-ci", "alpha", 50, Instant::now())
            .unwrap();
        assert_eq!(ci.name, "ci");
        assert!(ci.view.permits("anything"));
        assert_eq!(
            callers
                .admit_at("t-old", "alpha", 99, Instant::now())
                .unwrap()
                .name,
            "old"
        );
        assert_eq!(
            callers
                .admit_at("t-old", "alpha", 100, Instant::now())
                .unwrap_err(),
            Refused::Expired("old".into())
        );
        assert_eq!(
            callers
                .admit_at("nope", "alpha", 0, Instant::now())
                .unwrap_err(),
            Refused::Unknown
        );
        assert!(matches!(
            callers.admit_at("t-ci", "beta", 0, Instant::now()),
            Err(Refused::NothingHere { .. })
        ));
        // Revoked: the next table lacks it.
        callers.set(&BTreeMap::new());
        assert_eq!(
            callers
                .admit_at("t-ci", "alpha", 0, Instant::now())
                .unwrap_err(),
            Refused::Unknown
        );
    }

    #[test]
    fn a_token_over_its_rate_is_refused_with_when_to_retry_and_refills() {
        let callers = Callers::new();
        let mut ci = spec("ci", "t", &["alpha/*"], None);
        ci.rate = Some(Rate::parse("2/min").unwrap());
        callers.set(&BTreeMap::from([("ci".to_string(), ci)]));
        let start = Instant::now();
        assert!(callers.admit_at("t", "alpha", 0, start).is_ok());
        assert!(callers.admit_at("t", "alpha", 0, start).is_ok());
        let refused = callers.admit_at("t", "alpha", 0, start).unwrap_err();
        assert_eq!(
            refused,
            Refused::Limited {
                name: "ci".into(),
                retry_after: 30
            }
        );
        assert_eq!(callers.limited().get("ci"), Some(&1));
        // Half a minute later one request is back, not two.
        let later = start + std::time::Duration::from_secs(30);
        assert!(callers.admit_at("t", "alpha", 0, later).is_ok());
        assert!(callers.admit_at("t", "alpha", 0, later).is_err());
        for bad in ["0/min", "x/min", "5/day", "5"] {
            assert!(Rate::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Rate::parse("600/min").unwrap(),
            Rate {
                requests: 600,
                per_secs: 60
            }
        );
    }

    /// What a token check costs (run by bench/tokens-bench.sh, release build): p50 of
    /// `admit` with 1 and 1,000 tokens in the file.
    #[test]
    // Ignored: a benchmark, not a check (timing is never asserted); its script runs it
    // in the release build and reports the figures.
    #[ignore = "a benchmark: bench/tokens-bench.sh"]
    #[allow(clippy::print_stdout)] // its lines are the benchmark's figures
    fn bench_admit() {
        for count in [1usize, 1000] {
            let callers = Callers::new();
            let tokens: BTreeMap<String, TokenSpec> = (0..count)
                .map(|i| {
                    let name = format!("t{i}");
                    let spec = spec(
                        &name,
                        &format!("token-{i}"),
                        &["alpha/read_*", "work/*"],
                        None,
                    );
                    (name, spec)
                })
                .collect();
            callers.set(&tokens);
            let token = format!("token-{}", count - 1);
            let mut times: Vec<u128> = (0..20_000)
                .map(|_| {
                    let start = Instant::now();
                    let admitted = callers.admit(&token, "alpha");
                    let took = start.elapsed().as_nanos();
                    assert!(admitted.is_ok());
                    took
                })
                .collect();
            times.sort_unstable();
            let p = |q: f64| times[((times.len() as f64) * q) as usize];
            println!(
                "admit: {count} token(s) in the file: p50 {} ns, p90 {} ns, p99 {} ns",
                p(0.5),
                p(0.9),
                p(0.99)
            );
        }
    }
}
