//! `mcpctl token create|list|revoke|rotate`: callers' tokens in `[tokens.NAME]`. A new
//! token is printed once, alone on stdout; the file keeps only its hash (it stays
//! committable). A running daemon takes the change at once, nothing restarted.

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use toml_edit::{Array, Item, Table, value};

use super::args::{Format, TokenCommand};
use super::{Error, edit_file, edit_file_removing, ok, print, read_raw};
use crate::api::{ApplyOptions, Request};
use crate::config::Error as ConfigError;
use crate::model::token::hash_text;

/// Random bytes in a token: 256 bits.
const TOKEN_BYTES: usize = 32;
/// What every token starts with (so a leaked one is recognisable, e.g. by scanners).
const TOKEN_PREFIX: &str = "mcpctl_";

pub(super) fn run(path: &Path, cmd: TokenCommand) -> Result<u8, Error> {
    match cmd {
        TokenCommand::Create {
            name,
            allow,
            deny,
            expires,
            rate,
        } => {
            let expires = expires.as_deref().map(expiry).transpose()?;
            let token = new_token()?;
            let hash = hash_text(&token);
            edit_file(path, |doc, raw| {
                if raw.tokens.contains_key(&name) {
                    return Err(ConfigError::edit(
                        format!("token `{name}` exists already"),
                        Some(format!(
                            "`mcpctl token rotate {name}` gives it a new token; `revoke` removes it"
                        )),
                    ));
                }
                let mut table = Table::new();
                table["allow"] = value(list(&allow));
                if !deny.is_empty() {
                    table["deny"] = value(list(&deny));
                }
                if let Some(at) = &expires {
                    table["expires"] = value(at.as_str());
                }
                if let Some(rate) = &rate {
                    table["rate"] = value(rate.as_str());
                }
                table["hash"] = value(hash.as_str());
                tokens_table(doc)?.insert(&name, Item::Table(table));
                Ok(())
            })?;
            crate::note!(
                "token `{name}` written to {} (its hash only); the token is below, shown this once",
                path.display()
            );
            print(&format!("{token}\n"))?;
            reload(path)
        }
        TokenCommand::Rotate { name } => {
            let token = new_token()?;
            let hash = hash_text(&token);
            edit_file(path, |doc, raw| {
                if !raw.tokens.contains_key(&name) {
                    return Err(unknown(&name, raw));
                }
                tokens_table(doc)?[name.as_str()]["hash"] = value(hash.as_str());
                Ok(())
            })?;
            crate::note!("token `{name}` rotated: the old one no longer works");
            print(&format!("{token}\n"))?;
            reload(path)
        }
        TokenCommand::Revoke { name } => {
            edit_file_removing(path, |doc, raw| {
                if !raw.tokens.contains_key(&name) {
                    return Err(unknown(&name, raw));
                }
                let tokens = tokens_table(doc)?;
                tokens.remove(&name);
                if tokens.is_empty() {
                    doc.remove("tokens");
                }
                Ok(())
            })?;
            crate::note!("token `{name}` revoked");
            reload(path)
        }
        TokenCommand::List { format } => list_tokens(path, format),
    }
}

/// One line of `token list`.
#[derive(Serialize)]
struct Line {
    name: String,
    allow: Vec<String>,
    deny: Vec<String>,
    expires: Option<String>,
    rate: Option<String>,
    expired: bool,
    /// When the running daemon last let it in (`None`: not since it started, or no
    /// daemon runs).
    last_used: Option<String>,
}

fn list_tokens(path: &Path, format: Format) -> Result<u8, Error> {
    let raw = read_raw(path)?;
    let now = SystemTime::now();
    let used = super::status::daemon_status(path)?.map(|s| s.tokens_used);
    let lines: Vec<Line> = raw
        .tokens
        .iter()
        .map(|(name, t)| Line {
            name: name.clone(),
            allow: t.allow.clone(),
            deny: t.deny.clone().unwrap_or_default(),
            expires: t.expires.clone(),
            rate: t.rate.clone(),
            expired: t
                .expires
                .as_deref()
                .and_then(|e| humantime::parse_rfc3339(e).ok())
                .is_some_and(|at| at <= now),
            last_used: used.as_ref().and_then(|u| u.get(name).cloned()),
        })
        .collect();
    match format {
        Format::Json => {
            let text = serde_json::to_string_pretty(&lines)
                .map_err(|e| Error::Failed(format!("cannot write JSON: {e}")))?;
            print(&format!("{text}\n"))?;
        }
        Format::Text if lines.is_empty() => {
            crate::note!("no tokens: `mcpctl token create NAME --allow TARGET/TOOL` makes one");
        }
        Format::Text => {
            let mut out = format!(
                "{:<16} {:<10} {:<24} {:<24} PATTERNS\n",
                "NAME", "STATE", "EXPIRES", "LAST USED"
            );
            for l in &lines {
                let state = if l.expired { "expired" } else { "active" };
                let mut patterns = l.allow.join(" ");
                if !l.deny.is_empty() {
                    patterns.push_str(&format!(" (deny {})", l.deny.join(" ")));
                }
                if let Some(rate) = &l.rate {
                    patterns.push_str(&format!(" [rate {rate}]"));
                }
                let last = match (&used, &l.last_used) {
                    (None, _) => "(no daemon)",
                    (Some(_), None) => "not yet",
                    (Some(_), Some(at)) => at.as_str(),
                };
                out.push_str(&format!(
                    "{:<16} {:<10} {:<24} {last:<24} {patterns}\n",
                    l.name,
                    state,
                    l.expires.as_deref().unwrap_or("never"),
                ));
            }
            print(&out)?;
        }
    }
    ok()
}

/// `[tokens]`, made when the file has none.
fn tokens_table(doc: &mut toml_edit::DocumentMut) -> Result<&mut Table, ConfigError> {
    if !doc.contains_key("tokens") {
        let mut table = Table::new();
        table.set_implicit(true);
        doc.insert("tokens", Item::Table(table));
    }
    doc["tokens"]
        .as_table_mut()
        .ok_or_else(|| ConfigError::edit("`tokens` in the file is not a table".to_string(), None))
}

fn list(items: &[String]) -> Array {
    let mut array = Array::new();
    items.iter().for_each(|i| array.push(i.as_str()));
    array
}

fn unknown(name: &str, raw: &crate::model::raw::RawConfig) -> ConfigError {
    let known: Vec<&str> = raw.tokens.keys().map(String::as_str).collect();
    ConfigError::edit(
        format!("no token `{name}` in the file"),
        Some(if known.is_empty() {
            "there are none: `mcpctl token create NAME --allow TARGET/TOOL`".to_string()
        } else {
            format!("tokens: {}", known.join(", "))
        }),
    )
}

/// `--expires 30d` as the RFC 3339 time it ends.
fn expiry(text: &str) -> Result<String, Error> {
    let span = humantime::parse_duration(text).map_err(|e| {
        Error::Failed(format!(
            "--expires {text}: {e} (a duration such as 30d or 12h)"
        ))
    })?;
    if span > Duration::from_secs(100 * 365 * 24 * 3600) {
        return Err(Error::Failed(format!(
            "--expires {text}: more than 100 years; leave --expires out for a token that does not expire"
        )));
    }
    if span < Duration::from_secs(60) {
        return Err(Error::Failed(format!(
            "--expires {text}: a token must last at least a minute"
        )));
    }
    let at = SystemTime::now()
        .checked_add(span)
        .ok_or_else(|| Error::Failed(format!("--expires {text}: too far away")))?;
    Ok(humantime::format_rfc3339_seconds(at).to_string())
}

/// 256 random bits from the OS, URL-safe.
fn new_token() -> Result<String, Error> {
    use base64::Engine;
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::Failed(format!("the OS random source failed: {e}")))?;
    Ok(format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// A running daemon takes the file's tokens and `mcpctl.lock` now (nothing runs or
/// stops); none running takes them at start.
pub(super) fn reload(path: &Path) -> Result<u8, Error> {
    let Some(stream) = crate::client::connect(path)? else {
        crate::note!("no daemon runs: it takes the change when it starts");
        return ok();
    };
    let options = ApplyOptions {
        only_tokens: true,
        ..ApplyOptions::default()
    };
    crate::client::request(stream, &Request::Apply(Box::new(options)), |line| {
        crate::note!("{line}");
    })?;
    ok()
}
