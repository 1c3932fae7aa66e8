//! The identity of a spec for change detection: a blake3 hash of a canonical
//! encoding of the attributes whose change forces a restart.
//!
//! It is computed from resolved values, so key order, formatting, comments and the
//! layer a value came from do not matter; only what would run does.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::spec::{Effect, ServerSpec};

/// Domain separation: a hash of something else can never equal a spec hash.
const CONTEXT: &str = "mcpctl 2026-11 server spec identity v1";

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct SpecHash([u8; 32]);

impl SpecHash {
    pub fn of(spec: &ServerSpec) -> Self {
        let restart_attributes: Vec<_> = spec
            .attributes()
            .into_iter()
            .filter(|a| a.effect == Effect::Restart)
            .map(|a| (a.name, a.value))
            .collect();
        // serde_json writes these deterministically: a fixed attribute order and
        // BTreeMap keys in sorted order.
        let canonical = serde_json::to_vec(&restart_attributes).unwrap_or_default();
        let mut hasher = blake3::Hasher::new_derive_key(CONTEXT);
        hasher.update(&canonical);
        Self(*hasher.finalize().as_bytes())
    }

    /// The first 12 hex digits, for humans.
    pub fn short(&self) -> String {
        self.to_string()[..12].to_string()
    }
}

impl fmt::Display for SpecHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for SpecHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpecHash({})", self.short())
    }
}

impl From<SpecHash> for String {
    fn from(h: SpecHash) -> Self {
        h.to_string()
    }
}

impl TryFrom<String> for SpecHash {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        let hash = blake3::Hash::from_hex(&s).map_err(|e| format!("bad spec hash `{s}`: {e}"))?;
        Ok(Self(*hash.as_bytes()))
    }
}
