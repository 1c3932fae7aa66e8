//! `server backup`, `backup --all` and `server restore`: one server's block (with the
//! profile and defaults it uses, its recipients and what ran) to a checked document,
//! and back into the file through the same comment-keeping edit as every command.

use std::path::Path;
use std::time::SystemTime;

use age::secrecy::SecretString;
use toml_edit::{DocumentMut, Value};

use super::lifecycle::{after_edit, declared, observed};
use super::secret::{identity_error, place, recipients_of, secret_error};
use super::{Error, edit_file, edited, ok, print};
use crate::api::{DaemonStatus, Reply, Request};
use crate::backup::{self, Content, Runtime, Section};
use crate::client;
use crate::config::edit::{self, MapTable, Scope, block};
use crate::config::{self, Error as ConfigError, store};
use crate::model::{self, DEFAULT_PROFILE, raw::RawConfig};
use crate::secrets::{self, identity};

/// What runs, when a daemon runs (a backup never starts one).
fn running(path: &Path) -> Result<Option<DaemonStatus>, Error> {
    match client::ask(path, &Request::Status) {
        Ok(Reply::Status { status }) => Ok(Some(status)),
        Ok(other) => Err(client::Error::BadReply(format!("{other:?}")).into()),
        Err(client::Error::NotRunning(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The file, parsed both ways (it must be valid: a backup of a broken file would
/// restore the breakage).
struct File {
    doc: DocumentMut,
    raw: RawConfig,
}

fn read_file(path: &Path) -> Result<File, Error> {
    let loaded = config::load(path)?;
    let raw = model::parse_raw(&loaded.source)
        .map_err(|d| ConfigError::invalid(path, &loaded.source, vec![d]))?;
    let doc = edit::parse(&loaded.source).map_err(|e| ConfigError::edit(e.to_string(), None))?;
    Ok(File { doc, raw })
}

fn content_of(file: &File, name: &str, status: Option<&DaemonStatus>) -> Result<Content, Error> {
    let profile = edit::profile_of(&file.raw, name);
    let runtime = status.and_then(|st| {
        let server = st.servers.iter().find(|s| s.name == name)?;
        Some(Runtime {
            status: server.status.clone(),
            created_at: server.created_at.clone(),
            restarts: server.restarts,
            applied_commit: st.applied.as_ref().and_then(|a| a.commit.clone()),
        })
    });
    Ok(Content {
        server: name.to_string(),
        block: block::server_block(&file.doc, name)?,
        profile: block::profile_section(&file.doc, &profile, name).map(|text| Section {
            name: profile.clone(),
            text,
        }),
        defaults: block::defaults_section(&file.doc),
        recipients: recipients_of(&file.raw),
        runtime,
        mcpctl_version: env!("CARGO_PKG_VERSION").to_string(),
        backed_up_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
    })
}

fn document(content: &Content) -> Result<String, Error> {
    backup::write(content).map_err(|e| Error::Failed(format!("cannot write the backup: {e}")))
}

/// Writes `text` to `output`, or to stdout for `-`.
fn write_out(output: &Path, text: &str) -> Result<(), Error> {
    if output == Path::new("-") {
        return print(text);
    }
    store::write_atomic(output, text)?;
    Ok(())
}

/// `server backup NAME --output FILE|-`.
pub(super) fn backup_server(path: &Path, name: &str, output: &Path) -> Result<u8, Error> {
    let file = read_file(path)?;
    let status = running(path)?;
    let text = document(&content_of(&file, name, status.as_ref())?)?;
    write_out(output, &text)?;
    if output != Path::new("-") {
        crate::note!("backed up {name} to {}", output.display());
    }
    ok()
}

/// `backup --all --output DIR|FILE|-`: one `NAME.json` per server into a folder (one
/// that exists, or a path ending in `/`), else one bundle.
pub(super) fn backup_all(path: &Path, output: &Path) -> Result<u8, Error> {
    let file = read_file(path)?;
    let status = running(path)?;
    let mut documents = Vec::new();
    for name in file.raw.servers.keys() {
        documents.push((
            name.clone(),
            document(&content_of(&file, name, status.as_ref())?)?,
        ));
    }
    let as_folder = output.is_dir() || output.as_os_str().to_string_lossy().ends_with('/');
    if as_folder {
        std::fs::create_dir_all(output).map_err(|e| ConfigError::io(output, e))?;
        for (name, text) in &documents {
            store::write_atomic(&output.join(format!("{name}.json")), text)?;
        }
        crate::note!(
            "backed up {} server(s) to {}",
            documents.len(),
            output.display()
        );
        return ok();
    }
    let texts: Vec<String> = documents.into_iter().map(|(_, t)| t).collect();
    let bundle = backup::write_bundle(&texts)
        .map_err(|e| Error::Failed(format!("cannot write the backup: {e}")))?;
    write_out(output, &bundle)?;
    if output != Path::new("-") {
        crate::note!(
            "backed up {} server(s) to {}",
            texts.len(),
            output.display()
        );
    }
    ok()
}

/// What `server restore` was asked.
pub(super) struct Restore<'a> {
    pub name: &'a str,
    pub input: &'a Path,
    pub as_name: Option<&'a str>,
    pub port: Option<u16>,
    pub dry_run: bool,
    pub no_apply: bool,
}

pub(super) fn restore(path: &Path, request: &Restore<'_>) -> Result<u8, Error> {
    let bytes = store::read_bounded(request.input, store::MAX_INPUT)?;
    let content = backup::read(&bytes, request.name).map_err(|refused| Error::Backup {
        file: request.input.display().to_string(),
        refused,
    })?;
    let to = request.as_name.unwrap_or(request.name).to_string();
    model::names::check_name(&to).map_err(|why| {
        ConfigError::edit(
            format!("invalid server name `{to}`: {why}"),
            Some(model::names::NAME_HINT.to_string()),
        )
    })?;
    let mut notes = Vec::new();
    let change = |doc: &mut DocumentMut, raw: &RawConfig| {
        restore_into(doc, raw, &content, &to, request.port, &mut notes)
    };
    if request.dry_run {
        let before = store::read(path)?;
        let after = edited(path, &before, change)?;
        for note in &notes {
            crate::note!("{note}");
        }
        return show_plan(path, after, &to);
    }
    let before = declared(path);
    edit_file(path, change)?;
    for note in &notes {
        crate::note!("{note}");
    }
    crate::note!("restored {to} from {}", request.input.display());
    after_edit(path, before, Some(&to), request.no_apply)
}

/// `--dry-run`: the plan the restored file would cause for the server.
fn show_plan(path: &Path, after: String, server: &str) -> Result<u8, Error> {
    let config = model::parse(&after).map_err(|d| ConfigError::invalid(path, &after, d))?;
    let mut loaded = config::Loaded {
        path: path.to_path_buf(),
        source: after,
        config,
    };
    crate::secrets::unlock::unlock(&mut loaded)?;
    let plan = crate::plan::focus(
        crate::plan::plan(&loaded.config.servers, &observed(path)?),
        &[server.to_string()],
        None,
    );
    print(&crate::render::plan_text(&plan, super::plan::colour()))?;
    crate::note!("dry run: {} is unchanged", path.display());
    ok()
}

/// The edit of a restore: checks what the file would clash with, then puts the block
/// back (and the profile it needs, when the file lacks it).
fn restore_into(
    doc: &mut DocumentMut,
    raw: &RawConfig,
    content: &Content,
    to: &str,
    port: Option<u16>,
    notes: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let from = content.server.as_str();
    if raw.servers.contains_key(to) {
        return Err(ConfigError::edit(
            format!("server `{to}` is already in the file; nothing was restored"),
            Some(format!(
                "restore it under another name with `--as NEW_NAME`, or remove [servers.{to}] first"
            )),
        ));
    }
    let block_raw = model::parse_raw(&content.block)
        .map_err(|d| ConfigError::edit(format!("the backup's block: {}", d.message), None))?;
    let layer = block_raw.servers.get(from).cloned().unwrap_or_default();
    check_port(doc, port.map(i64::from).or(layer.port))?;
    let profile = layer
        .profile
        .clone()
        .or_else(|| raw.defaults.as_ref().and_then(|d| d.profile.clone()))
        .unwrap_or_else(|| DEFAULT_PROFILE.to_string());
    let carried = content.profile.as_ref().filter(|p| p.name == profile);
    if profile != DEFAULT_PROFILE && !raw.profiles.contains_key(&profile) {
        let Some(section) = carried else {
            return Err(ConfigError::edit(
                format!(
                    "server `{from}` uses profile `{profile}`, which the file does not define and the backup does not carry; nothing was restored"
                ),
                Some(format!(
                    "create it first with `mcpctl profile create {profile}`"
                )),
            ));
        };
        block::insert_profile(doc, &section.text, &profile, from, to)?;
        notes.push(format!("restored profile {profile} from the backup"));
    } else if let Some(section) = carried {
        let has_override = raw
            .profiles
            .get(&profile)
            .and_then(|p| p.servers.as_ref())
            .is_some_and(|s| s.contains_key(to));
        if !has_override && block::insert_override(doc, &section.text, &profile, from, to)? {
            notes.push(format!(
                "restored [profiles.{profile}.servers.{to}] from the backup"
            ));
        }
    }
    block::insert_server(doc, &content.block, from, to)?;
    let secrets = layer.secrets.clone().unwrap_or_default();
    if from != to && !secrets.is_empty() {
        // A ciphertext names its place: under a new name each is encrypted again.
        let identities = identity::load().map_err(|e| match identity_error(e) {
            Error::Config(c) => c,
            other => ConfigError::edit(other.to_string(), None),
        })?;
        let recipients = recipients_of(raw);
        let scope = Scope::Server(to.to_string());
        for (key, ciphertext) in &secrets {
            let old = Scope::Server(from.to_string());
            let value: SecretString = secrets::decrypt(ciphertext, &place(&old, key), &identities)
                .map_err(|e| secret_error(key, &old, e))?;
            let again = secrets::encrypt(&value, &place(&scope, key), &recipients)
                .map_err(|e| secret_error(key, &scope, e))?;
            edit::set_entry(doc, &scope, MapTable::Secrets, key, &again)?;
        }
        notes.push(format!(
            "re-encrypted {} secret(s) for their new place in [servers.{to}]",
            secrets.len()
        ));
    } else if !secrets.is_empty() {
        let mut theirs = content.recipients.clone();
        let mut ours = recipients_of(raw);
        theirs.sort();
        ours.sort();
        if theirs != ours {
            notes.push(
                "warning: the backup's secrets were encrypted to other recipients than the file's; \
                 `mcpctl config secret rekey` encrypts them to the file's"
                    .to_string(),
            );
        }
    }
    if let Some(port) = port {
        let now =
            model::parse_raw(&doc.to_string()).map_err(|d| ConfigError::edit(d.message, None))?;
        edit::set_server_field(
            doc,
            &now,
            to,
            &profile,
            "port",
            Value::from(i64::from(port)),
        )?;
    }
    Ok(())
}

/// A port that another server of the file serves on is refused by name.
fn check_port(doc: &DocumentMut, port: Option<i64>) -> Result<(), ConfigError> {
    let Some(port) = port else { return Ok(()) };
    let Ok(config) = model::parse(&doc.to_string()) else {
        return Ok(());
    };
    match config.servers.values().find(|s| i64::from(s.port) == port) {
        Some(other) => Err(ConfigError::edit(
            format!(
                "port {port} is already served by server `{}`; nothing was restored",
                other.name
            ),
            Some("restore it on another port with `--port N`".to_string()),
        )),
        None => Ok(()),
    }
}
