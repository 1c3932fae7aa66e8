//! `profile create|update|list|show|delete`.

use std::path::Path;

use super::args::ProfileCommand;
use super::{Error, edit_file, ok, print, read_raw};
use crate::config::{Error as ConfigError, edit, store};
use crate::diag::line_col;
use crate::model::raw::{Layer, RawConfig};
use crate::model::{DEFAULT_PROFILE, names};

pub(super) fn run(path: &Path, cmd: ProfileCommand) -> Result<u8, Error> {
    match cmd {
        ProfileCommand::Create { name, config } => {
            check_name(&name)?;
            let layer = match config {
                Some(file) => read_layer(&file)?,
                None => Layer::default(),
            };
            edit_file(path, |doc, _| {
                edit::upsert_profile(doc, &name, &layer, false)
            })?;
            crate::note!("created profile `{name}`");
            ok()
        }
        ProfileCommand::Update {
            name,
            config,
            apply,
        } => {
            let layer = read_layer(&config)?;
            let before = super::lifecycle::declared(path);
            edit_file(path, |doc, _| {
                edit::upsert_profile(doc, &name, &layer, true)
            })?;
            crate::note!("updated profile `{name}`");
            super::lifecycle::after_edit(path, before, None, apply.no_apply)
        }
        ProfileCommand::List => {
            let raw = read_raw(path)?;
            let mut out = String::new();
            for name in profile_names(&raw) {
                let users = users_of(&raw, &name);
                let used = if users.is_empty() {
                    "-".to_string()
                } else {
                    users.join(", ")
                };
                out.push_str(&format!("{name:<20} {used}\n"));
            }
            print(&format!("{:<20} {}\n{out}", "PROFILE", "SERVERS"))?;
            ok()
        }
        ProfileCommand::Show { name } => {
            let raw = read_raw(path)?;
            let layer = match raw.profiles.get(&name) {
                Some(layer) => layer.clone(),
                None if name == DEFAULT_PROFILE => Layer::default(),
                None => return Err(unknown_profile(&raw, &name)),
            };
            let body = toml::to_string(&layer).unwrap_or_default();
            let users = users_of(&raw, &name);
            let used = if users.is_empty() {
                "no server".to_string()
            } else {
                users.join(", ")
            };
            let body = if body.trim().is_empty() {
                "# (empty)\n".to_string()
            } else {
                body
            };
            print(&format!("# profile `{name}`, used by: {used}\n{body}"))?;
            ok()
        }
        ProfileCommand::Delete { name } => {
            let raw = read_raw(path)?;
            let users = users_of(&raw, &name);
            if !users.is_empty() {
                return Err(ConfigError::edit(
                    format!("profile `{name}` is used by {}", users.join(", ")),
                    Some(
                        "switch those servers to another profile first (`profile = \"...\"`)"
                            .to_string(),
                    ),
                )
                .into());
            }
            edit_file(path, |doc, _| edit::remove_profile(doc, &name))?;
            crate::note!("deleted profile `{name}`");
            ok()
        }
    }
}

fn check_name(name: &str) -> Result<(), Error> {
    names::check_name(name).map_err(|why| {
        ConfigError::edit(
            format!("invalid profile name `{name}`: {why}"),
            Some(names::NAME_HINT.to_string()),
        )
        .into()
    })
}

/// Reads a JSON object of server fields; errors name the JSON file, line and column.
fn read_layer(file: &Path) -> Result<Layer, Error> {
    let text = store::read(file)?;
    serde_json::from_str::<Layer>(&text).map_err(|e| {
        let (line, col) = if e.line() > 0 {
            (e.line(), e.column())
        } else {
            line_col(&text, 0)
        };
        ConfigError::edit(
            format!("{}:{line}:{col}: {e}", file.display()),
            Some("the file holds a JSON object of server fields, e.g. {\"env\": {\"LOG_LEVEL\": \"warn\"}, \"instances\": 2}".to_string()),
        )
        .into()
    })
}

fn profile_names(raw: &RawConfig) -> Vec<String> {
    let mut names: Vec<String> = raw.profiles.keys().cloned().collect();
    if !raw.profiles.contains_key(DEFAULT_PROFILE) {
        names.insert(0, DEFAULT_PROFILE.to_string());
    }
    names
}

/// Servers whose profile (own, else from `[defaults]`, else `default`) is `profile`.
fn users_of(raw: &RawConfig, profile: &str) -> Vec<String> {
    let default = raw
        .defaults
        .as_ref()
        .and_then(|d| d.profile.as_deref())
        .unwrap_or(DEFAULT_PROFILE);
    raw.servers
        .iter()
        .filter(|(_, s)| s.profile.as_deref().unwrap_or(default) == profile)
        .map(|(name, _)| name.clone())
        .collect()
}

fn unknown_profile(raw: &RawConfig, name: &str) -> Error {
    ConfigError::edit(
        format!("profile `{name}` does not exist"),
        Some(format!("known profiles: {}", profile_names(raw).join(", "))),
    )
    .into()
}
