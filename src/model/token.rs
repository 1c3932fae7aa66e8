//! PURE. `[tokens.NAME]`: callers' tokens, resolved and checked (names, patterns that
//! compile and name a server or endpoint of the file, an expiry that is a date, a hash
//! of the right shape). The file holds a hash of each token, never the token.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::locate::{Locator, key_path};
use super::raw::RawConfig;
use crate::diag::Diagnostic;
use crate::policy::caller::Grant;

/// How a token's hash is written: `blake3:` and 64 hex digits.
pub const HASH_PREFIX: &str = "blake3:";

/// A caller's token as the daemon checks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenSpec {
    pub name: String,
    pub allow: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
    /// Seconds since the Unix epoch after which it is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
    /// At most this many requests per period (a burst of as many).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
    /// The 32 bytes of its BLAKE3 hash.
    pub hash: [u8; 32],
}

impl TokenSpec {
    /// The caller's patterns, compiled (they were checked when the file was read).
    pub fn rules(&self) -> crate::policy::caller::CallerRules {
        crate::policy::caller::CallerRules::new(&self.allow, &self.deny).unwrap_or_default()
    }
}

/// `rate = "600/min"`: requests per period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    pub requests: u32,
    pub per_secs: u32,
}

impl Rate {
    /// `N/sec`, `N/min`, `N/hour` (N at least 1).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (count, unit) = text
            .split_once('/')
            .ok_or_else(|| format!("`{text}` is not N/sec, N/min or N/hour"))?;
        let requests: u32 = count
            .trim()
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("`{count}` is not a count of requests (1 or more)"))?;
        let per_secs = match unit.trim() {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            other => return Err(format!("`{other}` is not sec, min or hour")),
        };
        Ok(Self { requests, per_secs })
    }
}

/// The hash the file keeps of `token`.
pub fn hash_text(token: &str) -> String {
    format!("{HASH_PREFIX}{}", blake3::hash(token.as_bytes()).to_hex())
}

/// `blake3:HEX` as bytes.
pub fn parse_hash(text: &str) -> Option<[u8; 32]> {
    let hex = text.strip_prefix(HASH_PREFIX)?;
    blake3::Hash::from_hex(hex).ok().map(|h| *h.as_bytes())
}

/// Every `[tokens.*]`, checked against the targets (servers and endpoints) of the file.
pub(super) fn resolve_tokens(
    raw: &RawConfig,
    loc: &Locator<'_>,
    diags: &mut Vec<Diagnostic>,
) -> BTreeMap<String, TokenSpec> {
    let targets: Vec<&str> = raw
        .servers
        .keys()
        .chain(raw.endpoints.keys())
        .map(String::as_str)
        .collect();
    let mut out = BTreeMap::new();
    let mut hashes: BTreeMap<[u8; 32], &str> = BTreeMap::new();
    for (name, token) in &raw.tokens {
        let before = diags.len();
        let at = |field: &str| key_path(&["tokens", name, field]);
        if let Err(why) = super::names::check_name(name) {
            diags.push(
                Diagnostic::new(format!("invalid token name `{name}`"))
                    .at(loc.key(&key_path(&["tokens", name])), why)
                    .hint("names are lowercase letters, digits, `-` and `_`"),
            );
        }
        if token.allow.is_empty() {
            diags.push(
                Diagnostic::new(format!("token `{name}` allows nothing"))
                    .at(loc.value(&at("allow")), "an empty list")
                    .hint("`allow = [\"SERVER/*\"]`: TARGET/TOOL patterns"),
            );
        }
        let deny = token.deny.clone().unwrap_or_default();
        for (field, patterns) in [("allow", &token.allow), ("deny", &deny)] {
            for pattern in patterns {
                let problem = match Grant::new(pattern) {
                    Err(why) => Some(why),
                    Ok(grant) if !targets.iter().any(|t| grant.names(t)) => Some(format!(
                        "`{pattern}` names no server or endpoint of this file"
                    )),
                    Ok(_) => None,
                };
                if let Some(why) = problem {
                    diags.push(
                        Diagnostic::new(format!("token `{name}`: {why}"))
                            .at(loc.value(&at(field)), "here")
                            .hint(format!(
                                "TARGET/TOOL, TARGET one of: {}",
                                if targets.is_empty() {
                                    "(none yet)".to_string()
                                } else {
                                    targets.join(", ")
                                }
                            )),
                    );
                }
            }
        }
        let expires = match &token.expires {
            None => None,
            Some(text) => match humantime::parse_rfc3339(text) {
                Ok(when) => when
                    .duration_since(std::time::UNIX_EPOCH)
                    .ok()
                    .map(|d| d.as_secs()),
                Err(_) => {
                    diags.push(
                        Diagnostic::new(format!("token `{name}`: `expires` is not a date"))
                            .at(loc.value(&at("expires")), "not RFC 3339")
                            .hint("e.g. `expires = \"2027-01-31T00:00:00Z\"`"),
                    );
                    None
                }
            },
        };
        let rate = match &token.rate {
            None => None,
            Some(text) => match Rate::parse(text) {
                Ok(rate) => Some(rate),
                Err(why) => {
                    diags.push(
                        Diagnostic::new(format!("token `{name}`: bad `rate`: {why}"))
                            .at(loc.value(&at("rate")), "here")
                            .hint("e.g. `rate = \"600/min\"`"),
                    );
                    None
                }
            },
        };
        let hash = parse_hash(&token.hash);
        if hash.is_none() {
            diags.push(
                Diagnostic::new(format!("token `{name}`: `hash` is not a token's hash"))
                    .at(loc.value(&at("hash")), "not blake3:<64 hex digits>")
                    .hint(format!(
                        "make tokens with `mcpctl token create {name} --allow ...` (it writes the hash)"
                    )),
            );
        }
        if let Some(first) = hash.and_then(|h| hashes.insert(h, name).map(|f| f.to_string())) {
            // One token would be two callers: whichever the daemon met last.
            diags.push(
                Diagnostic::new(format!(
                    "tokens `{first}` and `{name}` have the same hash: one token for two callers"
                ))
                .at(loc.value(&at("hash")), "the same as another's")
                .hint(format!(
                    "`mcpctl token rotate {name}` gives it a token of its own"
                )),
            );
        }
        let (Some(hash), true) = (hash, diags.len() == before) else {
            continue;
        };
        out.insert(
            name.clone(),
            TokenSpec {
                name: name.clone(),
                allow: token.allow.clone(),
                deny,
                expires,
                rate,
                hash,
            },
        );
    }
    out
}
