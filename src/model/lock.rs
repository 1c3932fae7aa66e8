//! PURE. `mcpctl.lock` (beside the file, committed with it): the digests of the tool
//! definitions as reviewed, per server (`mcpctl tools NAME --pin` writes them).
//!
//! ```toml
//! [github]
//! search_issues = "blake3:..."
//! ```

use std::collections::BTreeMap;

use crate::policy::pin::Pins;

/// Pins by server.
pub type Lock = BTreeMap<String, Pins>;

/// The lock's header.
const HEADER: &str = "# mcpctl.lock: tool definitions as reviewed (`mcpctl tools NAME --pin`).\n# Servers with `pin = true` show and call only the tools pinned here. Commit it.\n";

/// The lock's text read; `Err` says what is wrong.
pub fn parse(text: &str) -> Result<Lock, String> {
    let lock: Lock = toml::from_str(text).map_err(|e| e.message().to_string())?;
    for (server, pins) in &lock {
        for (tool, digest) in pins {
            if crate::model::token::parse_hash(digest).is_none() {
                return Err(format!(
                    "[{server}] {tool}: `{digest}` is not a digest (blake3:<64 hex digits>)"
                ));
            }
        }
    }
    Ok(lock)
}

/// The lock's text.
pub fn render(lock: &Lock) -> String {
    let mut out = String::from(HEADER);
    for (server, pins) in lock {
        out.push_str(&format!("\n[{}]\n", quoted_key(server)));
        for (tool, digest) in pins {
            out.push_str(&format!("{} = \"{digest}\"\n", quoted_key(tool)));
        }
    }
    out
}

/// A TOML key: bare when it can be, else a basic string.
fn quoted_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        key.to_string()
    } else {
        toml::Value::String(key.to_string()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_round_trips_and_a_bad_digest_is_refused() {
        let digest = format!("blake3:{}", "ab".repeat(32));
        let lock = Lock::from([(
            "github".to_string(),
            Pins::from([
                ("search".to_string(), digest.clone()),
                ("odd name.\"x\"".to_string(), digest.clone()),
            ]),
        )]);
        assert_eq!(parse(&render(&lock)).unwrap(), lock);
        assert!(parse("[github]\nsearch = \"sha256:x\"\n").is_err());
        assert!(parse("[github\n").is_err());
    }
}
