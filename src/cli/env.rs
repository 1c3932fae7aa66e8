//! `config env set|get|list|unset KEY [VALUE] [--server NAME]`.

use std::path::Path;

use super::args::EnvCommand;
use super::lifecycle::{after_edit, declared};
use super::{Error, check_server, edit_file, ok, print, read_raw, scope_of};
use crate::config::edit::MapTable;
use crate::config::{Error as ConfigError, edit};
use crate::model::names;

pub(super) fn run(path: &Path, cmd: EnvCommand) -> Result<u8, Error> {
    match cmd {
        EnvCommand::Set {
            key,
            value,
            scope,
            apply,
        } => {
            check_key(&key)?;
            let scope = scope_of(scope);
            let before = declared(path);
            edit_file(path, |doc, _| {
                edit::set_entry(doc, &scope, MapTable::Env, &key, &value)
            })?;
            crate::note!("set {key} in {}", scope.describe());
            warn_if_credential(&key, &value, &scope);
            after_edit(path, before, scope.server(), apply.no_apply)
        }
        EnvCommand::Unset { key, scope, apply } => {
            let scope = scope_of(scope);
            let before = declared(path);
            edit_file(path, |doc, _| {
                edit::unset_entry(doc, &scope, MapTable::Env, &key)
            })?;
            crate::note!("removed {key} from {}", scope.describe());
            after_edit(path, before, scope.server(), apply.no_apply)
        }
        EnvCommand::Get { key, scope } => {
            let scope = scope_of(scope);
            let raw = read_raw(path)?;
            check_server(&raw, &scope)?;
            let value = scope
                .layer(&raw)
                .and_then(|l| l.env.as_ref())
                .and_then(|env| env.get(&key));
            match value {
                Some(v) => print(&format!("{v}\n")).and_then(|()| ok()),
                None => Err(ConfigError::edit(
                    format!("`{key}` is not set in {}", scope.describe()),
                    Some("`mcpctl config env list` shows what is set".to_string()),
                )
                .into()),
            }
        }
        EnvCommand::List { scope } => {
            let scope = scope_of(scope);
            let raw = read_raw(path)?;
            check_server(&raw, &scope)?;
            let lines: String = scope
                .layer(&raw)
                .and_then(|l| l.env.as_ref())
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k}={v}\n"))
                .collect();
            print(&lines)?;
            ok()
        }
    }
}

/// Env values are plaintext in a file that is committed: a value that looks like a
/// credential (by its name or its shape) is pointed at the encrypted alternative.
fn warn_if_credential(key: &str, value: &str, scope: &edit::Scope) {
    use crate::import::credentials;
    if credentials::is_reference(value) || !credentials::is_credential(key, value) {
        return;
    }
    let server = scope
        .server()
        .map(|s| format!(" --server {s}"))
        .unwrap_or_default();
    crate::note!(
        "warning: {key} looks like a credential and is stored in plain text in the file; \
         keep it encrypted instead: `mcpctl config env unset {key}{server} && \
         mcpctl config secret set {key}{server}` (the value is read from stdin)"
    );
}

fn check_key(key: &str) -> Result<(), Error> {
    names::check_env_name(key).map_err(|why| {
        ConfigError::edit(
            format!("invalid environment variable name `{key}`: {why}"),
            Some("use letters, digits and `_`, not starting with a digit".to_string()),
        )
        .into()
    })
}
