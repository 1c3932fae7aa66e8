//! PURE. What `client link` wrote, per client file: each entry's digest, whether it
//! made the file or the section, and the foreign entries `--force` replaced, so
//! `unlink` can take exactly that away again and put back what was there.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::jsonedit::digest;

/// Every link of one mcpctl config (`.mcpctl/clients.json`).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Records {
    /// By `CLIENT:SCOPE`.
    #[serde(default)]
    pub links: BTreeMap<String, Link>,
}

/// One client file and mcpctl's entries in it.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Link {
    pub path: String,
    #[serde(default)]
    pub created_file: bool,
    #[serde(default)]
    pub created_section: bool,
    /// Entry name -> digest of what was written.
    #[serde(default)]
    pub entries: BTreeMap<String, String>,
    /// Entry name -> the foreign entry `link --force` replaced, as the file had it
    /// (`unlink` puts it back).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub replaced: BTreeMap<String, String>,
}

/// How an entry of the client's file stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// mcpctl wrote it and it is as written.
    InSync,
    /// mcpctl wrote it and it was edited since.
    Drifted,
    /// mcpctl wrote it and it is gone.
    Missing,
    /// Not mcpctl's.
    Foreign,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::InSync => "in-sync",
            State::Drifted => "drifted",
            State::Missing => "missing",
            State::Foreign => "foreign",
        }
    }
}

/// The state of entry `name`, whose value in the file is `current` (if any); `None`
/// for an entry that is neither in the file nor in the record.
pub fn state(link: Option<&Link>, name: &str, current: Option<&str>) -> Option<State> {
    let recorded = link.and_then(|l| l.entries.get(name));
    match (recorded, current) {
        (Some(d), Some(text)) if *d == digest(text) => Some(State::InSync),
        (Some(_), Some(_)) => Some(State::Drifted),
        (Some(_), None) => Some(State::Missing),
        (None, Some(_)) => Some(State::Foreign),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_sync_drifted_missing_foreign() {
        let mut link = Link::default();
        link.entries.insert("a".into(), digest(r#"{"url": "u"}"#));
        assert_eq!(
            state(Some(&link), "a", Some("{\n \"url\":\"u\"}")),
            Some(State::InSync)
        );
        assert_eq!(
            state(Some(&link), "a", Some(r#"{"url": "v"}"#)),
            Some(State::Drifted)
        );
        assert_eq!(state(Some(&link), "a", None), Some(State::Missing));
        assert_eq!(state(Some(&link), "b", Some("{}")), Some(State::Foreign));
        assert_eq!(state(None, "b", None), None);
    }
}
