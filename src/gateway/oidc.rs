//! An OIDC issuer's tokens, as a port that takes them (`auth.oidc`) checks them: the
//! issuer's keys found through its discovery document and cached; fetched again when
//! a token names a key not held (rotation; for such tokens at most once per
//! [`MIN_REFETCH`]), and every [`KEYS_TTL`]. Every fetch is bounded in time and size. The checks themselves
//! are [`crate::policy::jwt`]'s.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Uri;
use jsonwebtoken::jwk::JwkSet;
use serde_json::{Value, json};

use super::callers::Caller;
use super::rate::Buckets;
use crate::model::oidc::{OidcSpec, check_issuer};
use crate::policy::jwt::{self, Expect, JwtRefused, Verified};

/// A token naming a key not held fetches the keys again at most this often: a flood
/// of made-up key ids costs the issuer one request per this.
pub const MIN_REFETCH: Duration = Duration::from_secs(10);
/// Keys are fetched again after this, keeping the old ones if that fails.
pub const KEYS_TTL: Duration = Duration::from_secs(3600);
/// One fetch (discovery or keys) may take this long.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// A discovery document or JWKS larger than this is refused.
const MAX_DOCUMENT: usize = 256 * 1024;
/// Keys kept of a JWKS.
const MAX_KEYS: usize = 64;
/// Tokens remembered as checked (by hash): a signature check costs tens of
/// microseconds, and a client sends the same token with every request.
const MAX_REMEMBERED: usize = 4096;
/// A token is checked again after this, even when it has not expired.
const REMEMBER_FOR: u64 = 300;

type HttpClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<super::proxy::Connector>,
    Full<Bytes>,
>;

/// Why a bearer is not let in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcRefused {
    #[error("token refused: {0}")]
    Jwt(#[from] JwtRefused),
    /// The issuer's keys could not be read (none held yet).
    #[error("the issuer's keys cannot be read: {0}")]
    NoKeys(String),
    #[error("subject `{subject}` is over its rate; retry in {retry_after} s")]
    Limited { subject: String, retry_after: u64 },
    /// Valid, but its scopes grant no tool here.
    #[error("the token's scopes grant nothing here")]
    NoScope { subject: String },
}

impl OidcRefused {
    /// The subject, when the token was valid.
    pub fn caller(&self) -> Option<String> {
        match self {
            Self::Limited { subject, .. } | Self::NoScope { subject } => Some(caller_name(subject)),
            _ => None,
        }
    }
}

/// How an OIDC subject's name begins (in the audit and in `Caller`); a token's
/// name never has a `:`.
pub const OIDC_PREFIX: &str = "oidc:";

fn caller_name(subject: &str) -> String {
    format!("{OIDC_PREFIX}{subject}")
}

/// Why the issuer's keys could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: {why}")]
    Failed { url: String, why: String },
}

/// A token that passed: its subject, the caller it is here, and until when (seconds
/// since the epoch) it may be taken without a check.
#[derive(Clone)]
struct Passed {
    subject: String,
    caller: Caller,
    until: u64,
}

#[derive(Default)]
struct Fetched {
    /// The last attempt, good or not.
    tried: Option<Instant>,
    /// The last good one.
    got: Option<Instant>,
    /// The last one a token's unknown key id asked for.
    forced: Option<Instant>,
    jwks_uri: Option<String>,
}

/// One port's issuer.
pub struct Oidc {
    spec: OidcSpec,
    expect: Expect,
    client: HttpClient,
    keys: RwLock<Arc<JwkSet>>,
    fetched: tokio::sync::Mutex<Fetched>,
    /// Tokens that passed, by BLAKE3 hash: who, and until when (seconds since the
    /// epoch). Forgotten when the keys change.
    passed: Mutex<HashMap<[u8; 32], Passed>>,
    /// Shared by the daemon's ports; counted under the port's target.
    buckets: Arc<Buckets>,
}

impl Oidc {
    pub fn new(spec: &OidcSpec, buckets: Arc<Buckets>) -> std::io::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            expect: spec.expect(),
            spec: spec.clone(),
            client: super::proxy::client()?,
            keys: RwLock::new(Arc::new(JwkSet { keys: Vec::new() })),
            fetched: tokio::sync::Mutex::default(),
            passed: Mutex::default(),
            buckets,
        }))
    }

    pub fn issuer(&self) -> &str {
        &self.spec.issuer
    }

    /// The caller `token` is on `target`.
    pub async fn admit(&self, token: &str, target: &str) -> Result<Caller, OidcRefused> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let hash = *blake3::hash(token.as_bytes()).as_bytes();
        let passed = match self.remembered(&hash, now) {
            Some(passed) => passed,
            None => {
                let keys = self.keys(false).await?;
                let verified = match jwt::verify(token, &keys, &self.expect, now) {
                    Err(refused) if refused.keys_may_have_rotated() => {
                        let keys = self.keys(true).await?;
                        jwt::verify(token, &keys, &self.expect, now)?
                    }
                    other => other?,
                };
                self.remember(hash, &verified, now)
            }
        };
        if let Some(rate) = self.spec.rate
            && let Err(retry_after) = self.buckets.take(
                &format!("{target}\n{}", passed.caller.name),
                target,
                rate,
                Instant::now(),
            )
        {
            return Err(OidcRefused::Limited {
                subject: passed.subject,
                retry_after,
            });
        }
        if passed.caller.view.is_empty() {
            return Err(OidcRefused::NoScope {
                subject: passed.subject,
            });
        }
        Ok(passed.caller)
    }

    /// A token that passed lately, still within its `exp`.
    fn remembered(&self, hash: &[u8; 32], now: u64) -> Option<Passed> {
        let passed = self.passed.lock().ok()?;
        passed.get(hash).filter(|p| now < p.until).cloned()
    }

    /// A token that passed, as the caller it is here (its view built once).
    fn remember(&self, hash: [u8; 32], verified: &Verified, now: u64) -> Passed {
        let until = verified
            .expires
            .saturating_add(jwt::SKEW_SECS)
            .min(now.saturating_add(REMEMBER_FOR));
        let passed = Passed {
            subject: verified.subject.clone(),
            caller: Caller {
                name: caller_name(&verified.subject),
                view: Arc::new(self.expect.view(&verified.scopes)),
            },
            until,
        };
        if let Ok(mut table) = self.passed.lock() {
            if table.len() >= MAX_REMEMBERED {
                table.retain(|_, p| now < p.until);
                if table.len() >= MAX_REMEMBERED {
                    table.clear();
                }
            }
            table.insert(hash, passed.clone());
        }
        passed
    }

    /// The scopes that would let a caller call `tool` here.
    pub fn scopes_for(&self, tool: &str) -> Vec<&str> {
        self.expect.scopes_for(tool)
    }

    /// Every scope the file names (a 403 for a caller with none of them says these).
    pub fn all_scopes(&self) -> String {
        self.spec
            .scopes
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// This resource's identifier: the audience when it is a URL (RFC 8707's
    /// resource indicator), else the port's `/mcp` URL as the client named the host.
    fn resource(&self, host: Option<&str>, https: bool) -> String {
        let audience = &self.spec.audience;
        if audience.starts_with("https://") || audience.starts_with("http://") {
            return self.spec.audience.clone();
        }
        let scheme = if https { "https" } else { "http" };
        // Only a plain host[:port] is said back (the Host header is the client's).
        let host = host
            .filter(|h| {
                !h.is_empty()
                    && h.chars()
                        .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
            })
            .unwrap_or("localhost");
        format!("{scheme}://{host}/mcp")
    }

    /// Where RFC 9728's metadata of this resource is: the well-known path inserted
    /// between its origin and its path.
    pub fn metadata_url(&self, host: Option<&str>, https: bool) -> String {
        let resource = self.resource(host, https);
        let after_scheme = resource.find("://").map_or(0, |i| i + 3);
        let (origin, path) = match resource[after_scheme..].find('/') {
            Some(p) => resource.split_at(after_scheme + p),
            None => (resource.as_str(), ""),
        };
        format!(
            "{origin}{}{}",
            super::guard::METADATA_PATH,
            path.trim_end_matches('/')
        )
    }

    /// RFC 9728's protected resource metadata of this port.
    pub fn metadata(&self, host: Option<&str>, https: bool) -> Value {
        let mut doc = json!({
            "resource": self.resource(host, https),
            "authorization_servers": [self.spec.issuer],
            "bearer_methods_supported": ["header"],
            "resource_name": "mcpctl",
        });
        if !self.spec.scopes.is_empty() {
            doc["scopes_supported"] = json!(self.spec.scopes.keys().collect::<Vec<_>>());
        }
        doc
    }

    /// The keys to check with: those held, unless none are, they are old, or `again`
    /// (a token named a key not held) and the last fetch is not too recent. While one
    /// request fetches, the others check with the keys held (they wait only when
    /// none are).
    async fn keys(&self, again: bool) -> Result<Arc<JwkSet>, OidcRefused> {
        let held = || {
            self.keys
                .read()
                .map(|k| Arc::clone(&k))
                .unwrap_or_else(|_| Arc::new(JwkSet { keys: Vec::new() }))
        };
        let none_yet = || OidcRefused::NoKeys("the last fetch failed; trying again shortly".into());
        let mut fetched = match self.fetched.try_lock() {
            Ok(fetched) => fetched,
            Err(_) => {
                let keys = held();
                if !keys.keys.is_empty() {
                    return Ok(keys);
                }
                drop(self.fetched.lock().await);
                let keys = held();
                return if keys.keys.is_empty() {
                    Err(none_yet())
                } else {
                    Ok(keys)
                };
            }
        };
        let lately = |at: Option<Instant>| at.is_some_and(|at| at.elapsed() < MIN_REFETCH);
        let stale = fetched.got.is_none_or(|at| at.elapsed() >= KEYS_TTL);
        // Keys just read are fetched again for a key id they lack (the issuer may have
        // just rotated), but not twice within MIN_REFETCH for unknown ids.
        let wanted = (stale && !lately(fetched.tried)) || (again && !lately(fetched.forced));
        if !wanted {
            let keys = held();
            return if keys.keys.is_empty() {
                Err(none_yet())
            } else {
                Ok(keys)
            };
        }
        fetched.tried = Some(Instant::now());
        if again {
            fetched.forced = fetched.tried;
        }
        match self.fetch(&mut fetched).await {
            Ok(set) => {
                fetched.got = Some(Instant::now());
                let set = Arc::new(set);
                let changed = match self.keys.write() {
                    Ok(mut keys) => {
                        let changed = **keys != *set;
                        *keys = Arc::clone(&set);
                        changed
                    }
                    Err(_) => true,
                };
                // A key gone from the set must not keep its tokens in.
                if changed && let Ok(mut passed) = self.passed.lock() {
                    passed.clear();
                }
                Ok(set)
            }
            Err(e) => {
                tracing::warn!("oidc {}: {e}", self.spec.issuer);
                // The keys may have moved: discover them again next time.
                fetched.jwks_uri = None;
                let keys = held();
                if keys.keys.is_empty() {
                    return Err(OidcRefused::NoKeys(e.to_string()));
                }
                Ok(keys)
            }
        }
    }

    /// The issuer's JWKS, through its discovery document (OpenID Connect's, else RFC
    /// 8414's), whose `issuer` must be the one configured.
    async fn fetch(&self, fetched: &mut Fetched) -> Result<JwkSet, FetchError> {
        let jwks_uri = match &fetched.jwks_uri {
            Some(uri) => uri.clone(),
            None => {
                let uri = self.discover().await?;
                fetched.jwks_uri = Some(uri.clone());
                uri
            }
        };
        let doc = self.get_json(&jwks_uri).await?;
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| failed(&jwks_uri, "not a JWKS (no `keys`)"))?;
        // Keys of kinds not understood are skipped, not fatal: issuers publish many.
        let mut keys = keys
            .iter()
            .filter_map(|k| serde_json::from_value(k.clone()).ok())
            .filter(|k| !jwt::algorithms_of(k).is_empty())
            .collect::<Vec<_>>();
        if keys.len() > MAX_KEYS {
            tracing::warn!(
                "oidc {}: its JWKS has {} signing keys; the first {MAX_KEYS} are used",
                self.spec.issuer,
                keys.len()
            );
            keys.truncate(MAX_KEYS);
        }
        if keys.is_empty() {
            return Err(failed(&jwks_uri, "no signing key this port can use"));
        }
        Ok(JwkSet { keys })
    }

    async fn discover(&self) -> Result<String, FetchError> {
        let issuer = self.spec.issuer.trim_end_matches('/');
        let (origin, path) = match issuer.find("://").map(|i| i + 3) {
            Some(i) => match issuer[i..].find('/') {
                Some(p) => issuer.split_at(i + p),
                None => (issuer, ""),
            },
            None => (issuer, ""),
        };
        let places = [
            format!("{issuer}/.well-known/openid-configuration"),
            format!("{origin}/.well-known/oauth-authorization-server{path}"),
        ];
        let mut last = failed(issuer, "no discovery document");
        for place in places {
            let doc = match self.get_json(&place).await {
                Ok(doc) => doc,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            if doc.get("issuer").and_then(Value::as_str) != Some(self.spec.issuer.as_str()) {
                return Err(failed(&place, "its `issuer` is not the one configured"));
            }
            let uri = doc
                .get("jwks_uri")
                .and_then(Value::as_str)
                .ok_or_else(|| failed(&place, "no `jwks_uri`"))?;
            check_issuer(uri).map_err(|why| failed(&place, &format!("`jwks_uri`: {why}")))?;
            return Ok(uri.to_string());
        }
        Err(last)
    }

    async fn get_json(&self, url: &str) -> Result<Value, FetchError> {
        let uri: Uri = url.parse().map_err(|_| failed(url, "not a URL"))?;
        let request = hyper::Request::get(uri)
            .header(hyper::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|_| failed(url, "not a URL"))?;
        let get = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| failed(url, &format!("unreachable ({e})")))?;
            if !response.status().is_success() {
                return Err(failed(url, &format!("answered {}", response.status())));
            }
            let body = Limited::new(response.into_body(), MAX_DOCUMENT)
                .collect()
                .await
                .map_err(|_| failed(url, "larger than 256 KiB or cut"))?
                .to_bytes();
            serde_json::from_slice(&body).map_err(|_| failed(url, "not JSON"))
        };
        tokio::time::timeout(FETCH_TIMEOUT, get)
            .await
            .map_err(|_| failed(url, "no answer within 5 s"))?
    }
}

fn failed(url: &str, why: &str) -> FetchError {
    FetchError::Failed {
        url: url.to_string(),
        why: why.to_string(),
    }
}
