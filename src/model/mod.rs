//! The configuration model. Pure: no filesystem, clock, environment or processes.
//!
//! `parse` turns source text into a validated [`Config`] in three steps: TOML syntax,
//! the raw serde shape ([`raw`]), then resolution and cross-field rules ([`resolve`]).
//! Every failure is a [`Diagnostic`] pointing at the text.

mod attributes;
pub mod endpoint;
pub mod identity;
pub mod locate;
pub mod lock;
pub mod names;
pub mod oidc;
pub mod raw;
pub mod resolve;
pub mod spec;
pub mod telemetry;
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
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    pub servers: BTreeMap<String, ServerSpec>,
    /// Every profile name, `default` included.
    pub profiles: BTreeSet<String>,
    /// `[daemon] metrics`: where `/metrics` is served.
    pub metrics: Option<std::net::SocketAddr>,
    /// `[daemon] ui`: where the dashboard is served (loopback).
    pub ui: Option<std::net::SocketAddr>,
    /// `[endpoints.*]`: sets of servers behind one port each.
    pub endpoints: BTreeMap<String, endpoint::EndpointSpec>,
    /// `[tokens.*]`: callers' tokens, by name.
    pub tokens: BTreeMap<String, token::TokenSpec>,
    /// `[telemetry]`: where traces go (none: the file does not say).
    pub telemetry: Option<telemetry::TelemetrySpec>,
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

/// Rust's type names as a user says them: "expected i64" is "expected an integer".
fn plain_types(message: &str) -> String {
    let mut out = message.to_string();
    for (rust, plain) in [
        ("i64", "an integer"),
        ("u64", "an integer (0 or more)"),
        ("i32", "an integer"),
        ("u32", "an integer (0 or more)"),
        ("u16", "an integer from 0 to 65535"),
        ("u8", "an integer from 0 to 255"),
        ("usize", "an integer (0 or more)"),
        ("f64", "a number"),
        ("f32", "a number"),
    ] {
        out = out.replace(&format!("expected {rust}"), &format!("expected {plain}"));
    }
    out
}

/// Where a user finds each field and its type.
const SCHEMA_HINT: &str = "the schema `mcpctl init` writes beside the file (mcpctl.schema.json; editors read it through the `#:schema` line)";

fn serde_diagnostic(message: &str, span: Option<std::ops::Range<usize>>) -> Diagnostic {
    let message = plain_types(message.trim_end());
    let message = message.as_str();
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
                format!("remove it; {SCHEMA_HINT} lists every field")
            }
        };
        return Diagnostic {
            message: format!("unknown field `{field}`"),
            ..diag
        }
        .hint(hint);
    }
    if message.starts_with("missing field") {
        return diag.hint(format!("see {SCHEMA_HINT} for the fields this table needs"));
    }
    if message.starts_with("invalid type") || message.starts_with("unknown variant") {
        return diag.hint(format!("see {SCHEMA_HINT} for the type of each field"));
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
