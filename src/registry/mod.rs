//! The MCP registry as a catalogue: its `server.json` entries ([`entry`]), the
//! strict checks every word of one passes ([`check`]), the translation of one into a
//! server block's fields ([`translate`]) and what `outdated` compares ([`version`]).
//! All pure; [`fetch`] is the one part that talks to a registry (API v0.1), bounded
//! in size, time and pages.
//!
//! Entries are data, never commands: nothing of an entry is run or downloaded when
//! it is added, and anything that could be read as more than a package name, a
//! pinned version or a plain value is refused.

pub mod check;
pub mod entry;
pub mod fetch;
pub mod translate;
pub mod version;

/// The official registry, used unless `--registry`, `MCPCTL_REGISTRY` or
/// `[registry] url` names another.
pub const OFFICIAL: &str = "https://registry.modelcontextprotocol.io";

/// The first line of the comment above a server block `add` wrote; `outdated` and
/// `upgrade` find the entry by it.
pub const MARK: &str = "# from the MCP registry: ";

/// The comment line naming `entry` at `version` (and the registry, when not the
/// official one).
pub fn mark(entry: &str, version: &str, registry: &str) -> String {
    if registry.trim_end_matches('/') == OFFICIAL {
        format!("{MARK}{entry} {version}")
    } else {
        format!("{MARK}{entry} {version} ({registry})")
    }
}

/// The entry and version a block's comment names, from [`mark`]'s line.
pub fn parse_mark(comment: &str) -> Option<(String, String)> {
    comment.lines().find_map(|line| {
        let rest = line.trim().strip_prefix(MARK.trim_end())?.trim();
        let mut words = rest.split_whitespace();
        let entry = words.next()?;
        let version = words.next()?;
        Some((entry.to_string(), version.to_string()))
    })
}

#[cfg(test)]
mod tests;
