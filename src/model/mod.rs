//! The configuration model. Pure: no filesystem, clock, environment or processes.
//!
//! `parse` turns source text into a validated [`Config`] in three steps: TOML syntax,
//! the raw serde shape ([`raw`]), then resolution and cross-field rules ([`resolve`]).
//! Every failure is a [`Diagnostic`] pointing at the text.

pub mod endpoint;
pub mod identity;
pub mod locate;
pub mod lock;
pub mod names;
pub mod oidc;
pub mod raw;
pub mod resolve;
pub mod spec;
pub mod token;

use std::collections::{BTreeMap, BTreeSet};

use crate::diag::Diagnostic;

pub use identity::SpecHash;
pub use spec::ServerSpec;

/// The only format version this build reads.
pub const FORMAT_VERSION: i64 = 1;
/// The profile every server has unless it names another; it always exists.
pub const DEFAULT_PROFILE: &str = "default";

/// A validated file: one effective spec per server.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub servers: BTreeMap<String, ServerSpec>,
    /// Every profile name, `default` included.
    pub profiles: BTreeSet<String>,
    /// `[daemon] metrics`: where `/metrics` is served.
    pub metrics: Option<std::net::SocketAddr>,
    /// `[endpoints.*]`: sets of servers behind one port each.
    pub endpoints: BTreeMap<String, endpoint::EndpointSpec>,
    /// `[tokens.*]`: callers' tokens, by name.
    pub tokens: BTreeMap<String, token::TokenSpec>,
}

/// Parses and validates `source`. On failure, every problem found is returned.
pub fn parse(source: &str) -> Result<Config, Vec<Diagnostic>> {
    let raw = parse_raw(source).map_err(|d| vec![d])?;
    resolve::resolve(&raw, &locate::Locator::new(source))
}

/// TOML syntax and the raw shape only.
// One diagnostic, made once per parse when the file is unreadable: its size (a few
// words over clippy's bound since it carries `pending`) costs nothing worth boxing.
#[allow(clippy::result_large_err)]
pub fn parse_raw(source: &str) -> Result<raw::RawConfig, Diagnostic> {
    if let Err(e) = toml_edit::Document::parse(source) {
        return Err(
            Diagnostic::new(format!("invalid TOML: {}", e.message().trim_end()))
                .at(e.span(), "")
                .hint("see https://toml.io for the syntax"),
        );
    }
    toml::from_str::<raw::RawConfig>(source).map_err(|e| serde_diagnostic(e.message(), e.span()))
}

fn serde_diagnostic(message: &str, span: Option<std::ops::Range<usize>>) -> Diagnostic {
    let message = message.trim_end();
    let diag = Diagnostic::new(message.to_string()).at(span, "");
    if let Some(field) = between(message, "unknown field `", "`") {
        let known = between(message, "expected ", "\u{0}")
            .map(|rest| {
                rest.split('`')
                    .skip(1)
                    .step_by(2)
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let hint = match closest(field, &known) {
            Some(best) => format!("did you mean `{best}`?"),
            None => {
                "remove it; the schema in schema/mcpctl.schema.json lists every field".to_string()
            }
        };
        return Diagnostic {
            message: format!("unknown field `{field}`"),
            ..diag
        }
        .hint(hint);
    }
    if message.starts_with("missing field") {
        return diag.hint("see schema/mcpctl.schema.json for the fields this table needs");
    }
    if message.starts_with("invalid type") || message.starts_with("unknown variant") {
        return diag.hint("see schema/mcpctl.schema.json for the type of each field");
    }
    diag
}

/// The text between `start` and `end` (or to the end of `s` when `end` is NUL).
fn between<'s>(s: &'s str, start: &str, end: &str) -> Option<&'s str> {
    let from = s.find(start)? + start.len();
    let rest = &s[from..];
    if end == "\u{0}" {
        return Some(rest);
    }
    rest.find(end).map(|to| &rest[..to])
}

/// The known name nearest to `word`, when it is near enough to be a typo.
fn closest<'k>(word: &str, known: &'k [String]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(word, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.as_str())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests;
