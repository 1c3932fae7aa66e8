//! `config secret set|get|list|unset|keygen|recipients|rekey`.

use std::io::{IsTerminal, Read};
use std::path::Path;

use age::secrecy::{ExposeSecret, SecretString};
use toml_edit::{Array, DocumentMut, Item, Value};

use super::args::{RecipientsCommand, SecretCommand};
use super::lifecycle::{after_edit, declared};
use super::{Error, check_server, edit_file, ok, print, read_raw, scope_of};
use crate::config::Error as ConfigError;
use crate::config::edit::{self, MapTable, Scope};
use crate::model::names;
use crate::model::raw::RawConfig;
use crate::secrets::{self, identity};

pub(super) fn run(path: &Path, cmd: SecretCommand) -> Result<u8, Error> {
    match cmd {
        SecretCommand::Set {
            key,
            value,
            scope,
            encrypt: _,
            apply,
        } => {
            names::check_env_name(&key).map_err(|why| {
                ConfigError::edit(
                    format!("invalid secret name `{key}`: {why}"),
                    Some(
                        "secrets become environment variables: use letters, digits and `_`".into(),
                    ),
                )
            })?;
            let scope = scope_of(scope);
            let value = match value.as_deref() {
                None | Some("-") => read_stdin()?,
                Some(v) => SecretString::from(v.to_string()),
            };
            // Encrypted in the file, the value cannot be checked by `validate`: here
            // is the last place before a server fails to start with it.
            names::check_env_value(&key, value.expose_secret()).map_err(|why| {
                ConfigError::edit(
                    format!("secret `{key}` cannot be passed to a process: {why}"),
                    Some("a server's environment holds C strings of at most 128 KiB each (KEY=VALUE): put a large value in a file and pass its path".into()),
                )
            })?;
            let before = declared(path);
            edit_file(path, |doc, raw| {
                let recipients = recipients_of(raw);
                let place = place(&scope, &key);
                let ciphertext = secrets::encrypt(&value, &place, &recipients)
                    .map_err(|e| secret_error(&key, &scope, e))?;
                edit::set_entry(doc, &scope, MapTable::Secrets, &key, &ciphertext)
            })?;
            crate::note!("set secret {key} in {} (encrypted)", scope.describe());
            after_edit(path, before, scope.server(), apply.no_apply)
        }
        SecretCommand::Get { key, scope } => {
            let scope = scope_of(scope);
            let raw = read_raw(path)?;
            let ciphertext = secret_of(&raw, &scope, &key)?;
            let identities = identity::load().map_err(identity_error)?;
            let value = secrets::decrypt(&ciphertext, &place(&scope, &key), &identities)
                .map_err(|e| secret_error(&key, &scope, e))?;
            print(&format!("{}\n", value.expose_secret()))?;
            ok()
        }
        SecretCommand::List { scope } => {
            let scope = scope_of(scope);
            let raw = read_raw(path)?;
            let lines: String = scope
                .layer(&raw)
                .and_then(|l| l.secrets.as_ref())
                .into_iter()
                .flatten()
                .map(|(k, ct)| {
                    let n = secrets::recipient_count(ct).map_or("?".to_string(), |n| n.to_string());
                    format!(
                        "{k}  (encrypted to {n} recipient{})\n",
                        if n == "1" { "" } else { "s" }
                    )
                })
                .collect();
            print(&lines)?;
            ok()
        }
        SecretCommand::Unset { key, scope, apply } => {
            let scope = scope_of(scope);
            let before = declared(path);
            edit_file(path, |doc, _| {
                edit::unset_entry(doc, &scope, MapTable::Secrets, &key)
            })?;
            crate::note!("removed secret {key} from {}", scope.describe());
            after_edit(path, before, scope.server(), apply.no_apply)
        }
        SecretCommand::Keygen { add } => keygen(Some(path), add),
        SecretCommand::Recipients(RecipientsCommand::List) => {
            let raw = read_raw(path)?;
            print(
                &recipients_of(&raw)
                    .iter()
                    .map(|r| format!("{r}\n"))
                    .collect::<String>(),
            )?;
            ok()
        }
        SecretCommand::Recipients(RecipientsCommand::Add { recipient }) => {
            secrets::parse_recipients(std::slice::from_ref(&recipient))
                .map_err(|e| ConfigError::edit(e.to_string(), None))?;
            let n = add_recipient(path, &recipient)?;
            crate::note!("added {recipient}; re-encrypted {n} secret(s)");
            ok()
        }
        SecretCommand::Recipients(RecipientsCommand::Remove { recipient }) => {
            let n = rewrite(path, |list| edit::remove_recipient(list, &recipient))?;
            crate::note!(
                "removed {recipient}; re-encrypted {n} secret(s).\n\
                 warning: the removed party may have kept copies of the old values (in git history too): \
                 rotate the real credentials."
            );
            ok()
        }
        SecretCommand::Rekey { apply } => {
            let before = declared(path);
            let n = rewrite(path, |_| Ok(()))?;
            crate::note!("re-encrypted {n} secret(s)");
            // The values are the same: a converge finds nothing to restart.
            after_edit(path, before, None, apply.no_apply)
        }
    }
}

/// Creates this user's identity and prints its recipient. `add`: adds it to the
/// file's recipients too (as `recipients add` does). Otherwise a file that has no
/// recipients is pointed out, since `secret set` cannot encrypt until it has one.
/// `path` is `None` when there is no file (only without `add`).
pub(super) fn keygen(path: Option<&Path>, add: bool) -> Result<u8, Error> {
    if let (Some(path), true) = (path, add)
        && identity::path().is_ok_and(|p| p.exists())
    {
        return add_existing(path);
    }
    let recipient = identity::generate().map_err(identity_error)?;
    crate::note!(
        "wrote a new age identity to {} (mode 0600): keep it private and backed up",
        identity::path().map_err(identity_error)?.display()
    );
    print(&format!("{recipient}\n"))?;
    match path {
        Some(path) if add => {
            add_new_recipient(path, &recipient)?;
            crate::note!("added it to the recipients of {}", path.display());
        }
        Some(path) if read_raw(path).is_ok_and(|raw| recipients_of(&raw).is_empty()) => {
            crate::note!(
                "note: {} has no recipients, so `mcpctl config secret set` cannot encrypt yet; \
                 add this one with `mcpctl config secret recipients add {recipient}` \
                 (`mcpctl config secret keygen --add` does both steps)",
                path.display()
            );
        }
        _ => {}
    }
    ok()
}

/// `recipients add`: appends `recipient` (once) and re-encrypts every value to it too.
/// Returns how many values were re-encrypted.
fn add_recipient(path: &Path, recipient: &str) -> Result<usize, Error> {
    rewrite(path, |list| {
        if !list.iter().any(|r| r == recipient) {
            list.push(recipient.to_string());
        }
        Ok(())
    })
}

/// `keygen --add`: `recipients add` for the identity just created. (A brand-new
/// identity cannot re-encrypt values that are encrypted to others only.)
fn add_new_recipient(path: &Path, recipient: &str) -> Result<(), Error> {
    add_recipient(path, recipient).map_err(|e| {
        ConfigError::edit(
            format!(
                "the new identity was created, but not added to {}: {e}",
                path.display()
            ),
            Some(format!(
                "someone who can read the secrets can add it: `mcpctl config secret recipients add {recipient}`"
            )),
        )
    })?;
    Ok(())
}

/// `keygen --add` when this user has a key already: a key is never overwritten, so
/// its recipient is the one added (what the user asked for: this user can read the
/// file's secrets).
fn add_existing(path: &Path) -> Result<u8, Error> {
    let identities = identity::load().map_err(identity_error)?;
    let Some(recipient) = identity::recipient(&identities) else {
        return Err(identity_error(identity::Error::Empty(
            identity::path().map_err(identity_error)?,
        )));
    };
    crate::note!(
        "an age identity exists at {}: using it (a key is never overwritten)",
        identity::path().map_err(identity_error)?.display()
    );
    print(&format!("{recipient}\n"))?;
    let n = add_recipient(path, &recipient)?;
    crate::note!(
        "added it to the recipients of {}; re-encrypted {n} secret(s)",
        path.display()
    );
    ok()
}

/// `servers.NAME.KEY` or `defaults.KEY`: what the encrypted payload is bound to.
pub(super) fn place(scope: &Scope, key: &str) -> String {
    match scope {
        Scope::Defaults => format!("defaults.{key}"),
        Scope::Server(name) => format!("servers.{name}.{key}"),
    }
}

pub(super) fn recipients_of(raw: &RawConfig) -> Vec<String> {
    raw.secrets
        .as_ref()
        .map(|s| s.recipients.clone())
        .unwrap_or_default()
}

fn secret_of(raw: &RawConfig, scope: &Scope, key: &str) -> Result<String, Error> {
    check_server(raw, scope)?;
    scope
        .layer(raw)
        .and_then(|l| l.secrets.as_ref())
        .and_then(|s| s.get(key))
        .cloned()
        .ok_or_else(|| {
            ConfigError::edit(
                format!("no secret `{key}` in {}", scope.describe()),
                Some("`mcpctl config secret list` shows the secrets".into()),
            )
            .into()
        })
}

fn read_stdin() -> Result<SecretString, Error> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        crate::note!("enter the value, then press Enter and Ctrl-D:");
    }
    let mut text = String::new();
    stdin
        .lock()
        .read_to_string(&mut text)
        .map_err(Error::Output)?;
    let value = SecretString::from(
        text.strip_suffix('\n')
            .unwrap_or(&text)
            .trim_end_matches('\r')
            .to_string(),
    );
    use age::secrecy::zeroize::Zeroize;
    text.zeroize();
    Ok(value)
}

pub(super) fn identity_error(e: identity::Error) -> Error {
    let hint = e.hint();
    ConfigError::edit(e.to_string(), hint).into()
}

pub(super) fn secret_error(key: &str, scope: &Scope, e: secrets::Error) -> ConfigError {
    let hint = match e {
        secrets::Error::NoRecipients => Some("add one with `mcpctl config secret recipients add age1...` (`mcpctl config secret keygen --add` creates yours and adds it)".to_string()),
        secrets::Error::NotARecipient => Some("ask someone who can read it to add your recipient".to_string()),
        _ => None,
    };
    ConfigError::edit(format!("secret `{key}` in {}: {e}", scope.describe()), hint)
}

/// Changes the recipient list with `change`, then re-encrypts every secret in the file
/// to the new list. Everything is decrypted first: one value this identity cannot
/// read aborts the whole change, and the file is left as it was (as it is when
/// `change` refuses).
fn rewrite(
    path: &Path,
    change: impl FnOnce(&mut Vec<String>) -> Result<(), ConfigError>,
) -> Result<usize, Error> {
    let mut count = 0;
    edit_file(path, |doc, raw| {
        let mut recipients = recipients_of(raw);
        change(&mut recipients)?;
        let identities = identity::load().map_err(|e| match identity_error(e) {
            Error::Config(c) => c,
            other => ConfigError::edit(other.to_string(), None),
        })?;
        let mut plan = Vec::new();
        for (at, layer) in raw.layers() {
            for (key, ciphertext) in layer.secrets.iter().flatten() {
                let place = format!("{}.{key}", at.join("."));
                let value = secrets::decrypt(ciphertext, &place, &identities).map_err(|e| {
                    ConfigError::edit(
                        format!("secret `{place}`: {e}"),
                        Some("nothing was changed".into()),
                    )
                })?;
                plan.push((
                    [&at[..], &["secrets".to_string(), key.clone()]].concat(),
                    place,
                    value,
                ));
            }
        }
        set_recipients(doc, &recipients)?;
        for (value_path, place, value) in &plan {
            let ciphertext = secrets::encrypt(value, place, &recipients)
                .map_err(|e| ConfigError::edit(format!("secret `{place}`: {e}"), None))?;
            edit::replace_value(doc, value_path, Value::from(ciphertext))?;
        }
        count = plan.len();
        Ok(())
    })?;
    Ok(count)
}

pub(super) fn set_recipients(
    doc: &mut DocumentMut,
    recipients: &[String],
) -> Result<(), ConfigError> {
    let secrets = doc.entry("secrets").or_insert_with(|| {
        let mut t = toml_edit::Table::new();
        t.set_position(Some(0));
        Item::Table(t)
    });
    let table = secrets
        .as_table_like_mut()
        .ok_or_else(|| ConfigError::edit("`secrets` is not a table", None))?;
    let mut array: Array = recipients.iter().map(String::as_str).collect();
    if recipients.len() > 1 {
        for value in array.iter_mut() {
            value.decor_mut().set_prefix("\n  ");
        }
        array.set_trailing("\n");
        array.set_trailing_comma(true);
    }
    edit::set_value(table, "recipients", Value::Array(array));
    Ok(())
}
