//! `mcpctl import --from CLIENT|FILE`: other clients' MCP servers into the file,
//! through the same comment-keeping edit as every command; credentials encrypted.

use std::path::{Path, PathBuf};

use age::secrecy::SecretString;
use similar::TextDiff;
use toml_edit::{Array, DocumentMut, Item, Table, value};

use super::args::ImportArgs;
use super::lifecycle::{after_edit, declared};
use super::secret::recipients_of;
use super::{Error, edit_file, edited, ok, print};
use crate::config::edit::block;
use crate::config::{Error as ConfigError, store};
use crate::import::plan::{Existing, Imported, NewServer, plan};
use crate::import::{Client, Entry, Homes, formats};
use crate::model::raw::RawConfig;

pub(super) fn run(path: &Path, args: &ImportArgs) -> Result<u8, Error> {
    let cwd = std::env::current_dir().map_err(|e| ConfigError::io(Path::new("."), e))?;
    let entries = read_entries(&args.from, args.config_path.as_deref(), &cwd)?;
    let only = args.only.as_deref();
    if let Some(only) = only {
        for name in only {
            if !entries.iter().any(|(_, e)| &e.name == name) {
                return Err(Error::Failed(format!(
                    "--only {name}: no such server in {} (it has: {})",
                    args.from,
                    names_of(&entries)
                )));
            }
        }
    }
    let mut imported = Imported::default();
    let change = |doc: &mut DocumentMut, raw: &RawConfig| {
        imported = plan(&entries, &existing(raw), only, args.first_port, port_free);
        if imported.without_port > 0 {
            return Err(ConfigError::edit(
                format!(
                    "no free port for {} of the {} server(s) to import: every port from {} to 65535 is taken",
                    imported.without_port,
                    imported.without_port + imported.servers.len(),
                    args.first_port
                ),
                Some("import fewer with --only, or start lower with --first-port N".to_string()),
            ));
        }
        add_servers(doc, raw, &imported.servers)
    };
    if args.dry_run {
        let before = store::read(path)?;
        let after = edited(path, &before, change)?;
        for note in &imported.notes {
            crate::note!("{note}");
        }
        let name = path.display().to_string();
        let diff = TextDiff::from_lines(&before, &after)
            .unified_diff()
            .header(&name, &format!("{name} (after import)"))
            .to_string();
        print(&diff)?;
        if !imported.servers.is_empty() {
            show_plan(path, after, &imported)?;
        }
        crate::note!("{} (dry run: nothing was changed)", summary(&imported));
        return ok();
    }
    let before = declared(path);
    edit_file(path, change)?;
    for note in &imported.notes {
        crate::note!("{note}");
    }
    crate::note!("{}", summary(&imported));
    if imported.servers.is_empty() {
        return ok();
    }
    after_edit(path, before, None, args.apply.no_apply)
}

/// The plan the imported file would cause for the new servers (secrets shown as
/// `(sensitive)`); without an identity to read them, said and skipped.
fn show_plan(path: &Path, after: String, imported: &Imported) -> Result<(), Error> {
    let config = crate::model::parse(&after).map_err(|d| ConfigError::invalid(path, &after, d))?;
    let mut loaded = crate::config::Loaded {
        path: path.to_path_buf(),
        source: after,
        config,
    };
    if let Err(e) = crate::secrets::unlock::unlock(&mut loaded) {
        crate::note!("(no plan: the secrets cannot be read here: {e})");
        return Ok(());
    }
    let names: Vec<String> = imported.servers.iter().map(|s| s.name.clone()).collect();
    let plan = crate::plan::focus(
        crate::plan::plan(&loaded.config.servers, &super::lifecycle::observed(path)?),
        &names,
        None,
    );
    print(&crate::render::plan_text(&plan, super::plan::colour()))
}

fn summary(imported: &Imported) -> String {
    if imported.servers.is_empty() {
        return "nothing to import: the file has every server already".into();
    }
    let list: Vec<String> = imported
        .servers
        .iter()
        .map(|s| {
            let secrets = if s.secrets.is_empty() {
                String::new()
            } else {
                format!(", {} secret(s) encrypted", s.secrets.len())
            };
            format!("{} (port {}{secrets})", s.name, s.port)
        })
        .collect();
    format!("imported {}", list.join(", "))
}

fn names_of(entries: &[(String, Entry)]) -> String {
    let names: Vec<&str> = entries.iter().map(|(_, e)| e.name.as_str()).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// The entries of `from` (a client's name or a file), from `path` when given, else
/// from every one of the client's locations that exists.
fn read_entries(
    from: &str,
    path: Option<&Path>,
    cwd: &Path,
) -> Result<Vec<(String, Entry)>, Error> {
    let (client, files) = match (Client::from_name(from), path) {
        (Some(client), Some(path)) => (client, vec![path.to_path_buf()]),
        (Some(client), None) => {
            let homes = homes()?;
            let found: Vec<PathBuf> = client
                .locations(&homes, cwd)
                .into_iter()
                .filter(|p| p.is_file())
                .collect();
            if found.is_empty() {
                let looked: Vec<String> = client
                    .locations(&homes, cwd)
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect();
                return Err(Error::Failed(format!(
                    "no {from} config found (looked at {}); name one with --config-path",
                    looked.join(", ")
                )));
            }
            (client, found)
        }
        (None, _) => {
            let file = PathBuf::from(from);
            let client = if file.extension().is_some_and(|e| e == "toml") {
                Client::Codex
            } else {
                Client::File
            };
            (client, vec![file])
        }
    };
    let mut entries = Vec::new();
    for file in files {
        let text = store::read_text_bounded(&file, store::MAX_INPUT)?;
        let found = formats::parse(client, &text)
            .map_err(|why| Error::Failed(format!("cannot import {}: {why}", file.display())))?;
        let label = if client == Client::File {
            file.display().to_string()
        } else {
            client.name().to_string()
        };
        entries.extend(found.into_iter().map(|e| (label.clone(), e)));
    }
    Ok(entries)
}

/// `$HOME`, `$XDG_CONFIG_HOME` (else `$HOME/.config`) and `$CODEX_HOME` (else
/// `$HOME/.codex`).
pub(super) fn homes() -> Result<Homes, Error> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| Error::Failed("HOME is not set; name the file with --config-path".into()))?;
    let from_env = |var: &str, default: PathBuf| {
        std::env::var_os(var)
            .filter(|h| !h.is_empty())
            .map_or(default, PathBuf::from)
    };
    Ok(Homes {
        config: from_env("XDG_CONFIG_HOME", home.join(".config")),
        codex: from_env("CODEX_HOME", home.join(".codex")),
        home,
    })
}

/// Whether a port can be served here now.
fn port_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

fn existing(raw: &RawConfig) -> Vec<Existing> {
    raw.servers
        .iter()
        .map(|(name, layer)| Existing {
            name: name.clone(),
            command: layer.command.clone(),
            args: layer.args.clone().unwrap_or_default(),
            url: layer.url.clone(),
            port: layer.port.and_then(|p| u16::try_from(p).ok()),
        })
        .collect()
}

fn add_servers(
    doc: &mut DocumentMut,
    raw: &RawConfig,
    servers: &[NewServer],
) -> Result<(), ConfigError> {
    let recipients = recipients_of(raw);
    let mut blocks = Vec::with_capacity(servers.len());
    for server in servers {
        if !server.secrets.is_empty() && recipients.is_empty() {
            return Err(ConfigError::edit(
                format!(
                    "`{}` has credentials to encrypt and the file has no recipients",
                    server.sources.join(", ")
                ),
                Some(
                    "add your recipient with `mcpctl config secret recipients add age1...` \
                     (`mcpctl config secret keygen --add` creates your key and adds it, or adds \
                     the one you have), then import again"
                        .into(),
                ),
            ));
        }
        blocks.push((block_text(server, &recipients)?, server.name.as_str()));
    }
    block::insert_servers(doc, &blocks)
}

/// A server's `[servers.NAME]` block, with a comment naming where it came from.
fn block_text(server: &NewServer, recipients: &[String]) -> Result<String, ConfigError> {
    let mut table = Table::new();
    if let Some(command) = &server.command {
        table.insert("command", value(command.as_str()));
        if !server.args.is_empty() {
            let args: Array = server.args.iter().map(String::as_str).collect();
            table.insert("args", value(args));
        }
    }
    if let Some(url) = &server.url {
        table.insert("mode", value("remote"));
        table.insert("url", value(url.as_str()));
        table.insert(
            "transport",
            value(if server.sse { "sse" } else { "streamable-http" }),
        );
    }
    if let Some(cwd) = &server.cwd {
        table.insert("cwd", value(cwd.as_str()));
    }
    table.insert("port", value(i64::from(server.port)));
    if server.stopped {
        table.insert("state", value("stopped"));
    }
    let inline = super::inline_strings;
    if !server.env.is_empty() {
        table.insert("env", value(inline(&server.env)));
    }
    if !server.headers.is_empty() {
        table.insert("headers", value(inline(&server.headers)));
    }
    if !server.secrets.is_empty() {
        let mut encrypted = std::collections::BTreeMap::new();
        for (key, plain) in &server.secrets {
            let place = format!("servers.{}.{key}", server.name);
            let ciphertext =
                crate::secrets::encrypt(&SecretString::from(plain.clone()), &place, recipients)
                    .map_err(|e| ConfigError::edit(format!("secret `{place}`: {e}"), None))?;
            encrypted.insert(key.clone(), ciphertext);
        }
        table.insert("secrets", value(inline(&encrypted)));
    }
    table
        .decor_mut()
        .set_prefix(format!("\n# imported from {}\n", server.sources.join(", ")));
    let mut servers = Table::new();
    servers.set_implicit(true);
    servers.insert(&server.name, Item::Table(table));
    let mut doc = DocumentMut::new();
    doc.insert("servers", Item::Table(servers));
    Ok(doc.to_string())
}
