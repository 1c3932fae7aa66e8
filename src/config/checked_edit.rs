//! An edit of the file's text checked before it is written: the CLI's imperative
//! commands and the dashboard's actions make the same edits through here.

use std::path::Path;

use toml_edit::DocumentMut;

use super::{Error as ConfigError, edit};
use crate::diag::Diagnostic;
use crate::model::{self, raw::RawConfig};

/// One field of server `name` written where it takes effect (its own table, or the
/// layer that sets it): `state` for `server start|stop|restart`, `instances` for
/// `server scale`, the same from the CLI and the dashboard.
pub fn set_field(
    doc: &mut DocumentMut,
    raw: &RawConfig,
    name: &str,
    field: &str,
    value: toml_edit::Value,
) -> Result<(), ConfigError> {
    if !raw.servers.contains_key(name) {
        let known: Vec<String> = raw.servers.keys().cloned().collect();
        return Err(edit::unknown_server(name, &known));
    }
    let profile = edit::profile_of(raw, name);
    edit::set_server_field(doc, raw, name, &profile, field, value)
}

/// Edits the file at `path` under its lock with `change`, checked by [`edited`];
/// whether it changed.
pub fn update<F>(path: &Path, change: F) -> Result<bool, ConfigError>
where
    F: FnOnce(&mut DocumentMut, &RawConfig) -> Result<(), ConfigError>,
{
    super::store::update(path, |before| edited(path, before, change, false))
}

/// The text `change` makes of `before` (the file at `path`), refused unless it is
/// valid; an edit may repair a file that was invalid (e.g. set the secret that `auth`
/// names), but on a file that stays broken the file's own problems are shown.
/// `removing`: problems the file had already do not block the edit.
pub fn edited<F>(
    path: &Path,
    before: &str,
    change: F,
    removing: bool,
) -> Result<String, ConfigError>
where
    F: FnOnce(&mut DocumentMut, &RawConfig) -> Result<(), ConfigError>,
{
    let was_invalid = model::parse(before).err();
    // Only secrets not set yet: the file is unfinished, not broken.
    let only_pending = was_invalid
        .as_ref()
        .is_some_and(|diags| diags.iter().all(|d| d.pending));
    let raw = model::parse_raw(before).map_err(|d| ConfigError::invalid(path, before, vec![d]))?;
    let mut doc = edit::parse(before).map_err(|e| ConfigError::edit(e.to_string(), None))?;
    if let Err(e) = change(&mut doc, &raw) {
        // On a broken file, the file's own problems explain more than the edit's.
        return Err(match was_invalid {
            Some(diags) if !only_pending && !removing => ConfigError::invalid(path, before, diags),
            _ => e,
        });
    }
    let mut after = doc.to_string();
    // A removed last table takes its newline with it: a text file ends with one.
    if !after.is_empty() && !after.ends_with('\n') {
        after.push('\n');
    }
    match (model::parse(&after), was_invalid) {
        (Ok(_), _) => Ok(after),
        // Secrets not set yet that were there before must not block an edit (setting
        // one of them, or one for another server); what the edit brings is refused.
        (Err(left), Some(diags)) if only_pending || removing => {
            let old = |d: &Diagnostic| {
                (d.pending || removing) && diags.iter().any(|b| b.message == d.message)
            };
            let new: Vec<Diagnostic> = left.into_iter().filter(|d| !old(d)).collect();
            if new.is_empty() {
                return Ok(after);
            }
            Err(ConfigError::Invalid {
                file: format!("{} (as this change would leave it)", path.display()),
                source_text: after,
                diagnostics: new,
                all: false,
            })
        }
        (Err(_), Some(diags)) => Err(ConfigError::invalid(path, before, diags)),
        (Err(diags), None) => Err(ConfigError::Invalid {
            file: format!("{} (as this change would leave it)", path.display()),
            source_text: after,
            diagnostics: diags,
            all: false,
        }),
    }
}
