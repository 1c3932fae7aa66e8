//! `mcpctl client link|unlink|show|status CLIENT`: entries that reach mcpctl's
//! servers, written into the client's own file (in place, only mcpctl's entries),
//! with a backup and a record of what was written.

use std::path::{Path, PathBuf};

use serde_json::Value;
use similar::TextDiff;

use super::args::{ClientCommand, LinkScope};
use super::import::homes;
use super::{Error, ok, print};
use crate::clients::records::{Link, Records, State, state};
use crate::clients::{self, Dress, Target, entry, jsonedit, section};
use crate::config::{Error as ConfigError, store};
use crate::import::formats::entry_of;
use crate::import::{Client, Entry};
use crate::model::spec::State as RunState;

const RECORDS: &str = "clients.json";

pub(super) fn run(path: &Path, cmd: ClientCommand) -> Result<u8, Error> {
    match cmd {
        ClientCommand::Link {
            client,
            scope,
            config_path,
            dry_run,
            only,
            endpoint,
            token,
            force,
        } => {
            // An endpoint is linked by name, beside what the client already has.
            let only = match (only, endpoint) {
                (Some(mut only), Some(endpoint)) => {
                    only.push(endpoint);
                    Some(only)
                }
                (only, endpoint) => only.or(endpoint.map(|e| vec![e])),
            };
            link(
                path,
                &client,
                scope,
                config_path,
                dry_run,
                only.as_deref(),
                token.as_deref(),
                force,
            )
        }
        ClientCommand::Unlink {
            client,
            scope,
            force,
        } => unlink(path, &client, scope, force),
        ClientCommand::Show { client, only } => show(path, &client, only.as_deref()),
        ClientCommand::Status { client } => status(path, client.as_deref()),
    }
}

fn client_of(name: &str) -> Result<(Client, &'static str), Error> {
    let client = Client::from_name(name).ok_or_else(|| {
        let all: Vec<&str> = Client::ALL.iter().map(|c| c.name()).collect();
        Error::Failed(format!(
            "unknown client `{name}` (one of: {})",
            all.join(", ")
        ))
    })?;
    let section = section(client)
        .ok_or_else(|| Error::Failed(format!("`{name}` is not a client mcpctl can link")))?;
    Ok((client, section))
}

fn scope_of(client: Client, scope: Option<LinkScope>) -> LinkScope {
    scope.unwrap_or(match client {
        Client::Vscode => LinkScope::Project,
        _ => LinkScope::User,
    })
}

fn scope_name(scope: LinkScope) -> &'static str {
    match scope {
        LinkScope::User => "user",
        LinkScope::Project => "project",
    }
}

/// The client's file for `scope` where the client documents it.
fn default_path(client: Client, scope: LinkScope) -> Result<PathBuf, Error> {
    let homes = homes()?;
    let (home, config_home) = (&homes.home, &homes.config);
    let cwd = std::env::current_dir().map_err(|e| ConfigError::io(Path::new("."), e))?;
    let user_desktop = if cfg!(target_os = "macos") {
        home.join("Library/Application Support/Claude/claude_desktop_config.json")
    } else {
        config_home.join("Claude/claude_desktop_config.json")
    };
    let path = match (client, scope) {
        (Client::ClaudeDesktop, LinkScope::User) => user_desktop,
        (Client::ClaudeCode, LinkScope::User) => home.join(".claude.json"),
        (Client::ClaudeCode, LinkScope::Project) => cwd.join(".mcp.json"),
        (Client::Cursor, LinkScope::User) => home.join(".cursor/mcp.json"),
        (Client::Cursor, LinkScope::Project) => cwd.join(".cursor/mcp.json"),
        (Client::Vscode, LinkScope::User) => config_home.join("Code/User/mcp.json"),
        (Client::Vscode, LinkScope::Project) => cwd.join(".vscode/mcp.json"),
        (Client::Windsurf, LinkScope::User) => home.join(".codeium/windsurf/mcp_config.json"),
        (Client::Zed, LinkScope::User) => config_home.join("zed/settings.json"),
        (Client::Codex, LinkScope::User) => homes.codex.join("config.toml"),
        (c, s) => {
            return Err(Error::Failed(format!(
                "{} has no {} scope",
                c.name(),
                scope_name(s)
            )));
        }
    };
    Ok(path)
}

fn records_path(config: &Path) -> PathBuf {
    store::runtime_dir(&absolute(config)).join(RECORDS)
}

fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Held from reading the records to writing them back: two links at once would each
/// write what they read, and one's entries would be lost.
fn lock_records(config: &Path) -> Result<std::fs::File, Error> {
    let path = records_path(config).with_extension("json.lock");
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| ConfigError::io(dir, e))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| ConfigError::io(&path, e))?;
    file.lock().map_err(|e| ConfigError::io(&path, e))?;
    Ok(file)
}

fn load_records(config: &Path) -> Result<Records, Error> {
    let path = records_path(config);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            Error::Failed(format!(
                "{} is damaged ({e}); remove it to start over",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Records::default()),
        Err(e) => Err(ConfigError::io(&path, e).into()),
    }
}

fn save_records(config: &Path, records: &Records) -> Result<(), Error> {
    let path = records_path(config);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| ConfigError::io(dir, e))?;
    }
    let text = serde_json::to_string_pretty(records).unwrap_or_default() + "\n";
    Ok(store::write_runtime(&path, &text)?)
}

/// An entry to write, and what it reaches (to tell a client's own entry of that name
/// for the same server from another one).
struct Wanted {
    name: String,
    value: Value,
    command: Option<String>,
    args: Vec<String>,
    url: Option<String>,
    /// The gateway URL the entry names.
    link_url: String,
}

impl Wanted {
    /// Whether the client's `theirs` runs this very server: the same command and args,
    /// or url, or a link to it through mcpctl.
    fn runs_as(&self, theirs: &Entry) -> bool {
        if let Some(url) = &theirs.url {
            return self.url.as_ref() == Some(url) || *url == self.link_url;
        }
        let program = theirs
            .command
            .as_deref()
            .map(|c| c.rsplit('/').next().unwrap_or(c));
        if program == Some("mcpctl")
            && let Some(at) = theirs.args.iter().position(|a| a == "connect")
        {
            return theirs.args.get(at + 1) == Some(&self.name);
        }
        theirs.command.is_some() && theirs.command == self.command && theirs.args == self.args
    }
}

/// The entries for every server the file runs (`only`: those named, endpoints too).
fn entries(
    config: &Path,
    client: Client,
    only: Option<&[String]>,
    token: Option<&str>,
) -> Result<Vec<Wanted>, Error> {
    let loaded = crate::config::load(config)?;
    // `--token NAME`: the variable the client's user sets to that caller's token.
    let token_var = match token {
        None => None,
        Some(name) if loaded.config.tokens.contains_key(name) => Some(format!(
            "MCPCTL_TOKEN_{}",
            name.to_ascii_uppercase().replace('-', "_")
        )),
        Some(name) => {
            let known: Vec<&str> = loaded.config.tokens.keys().map(String::as_str).collect();
            return Err(Error::Failed(format!(
                "--token {name}: the file has no token `{name}` ({})",
                if known.is_empty() {
                    "none yet: `mcpctl token create NAME --allow TARGET/TOOL`".to_string()
                } else {
                    format!("it has: {}", known.join(", "))
                }
            )));
        }
    };
    let caller_var = |takes_tokens: bool| token_var.clone().filter(|_| takes_tokens);
    if let Some(only) = only {
        for name in only {
            if !loaded.config.servers.contains_key(name)
                && !loaded.config.endpoints.contains_key(name)
            {
                let known: Vec<String> = loaded
                    .config
                    .servers
                    .keys()
                    .chain(loaded.config.endpoints.keys())
                    .cloned()
                    .collect();
                return Err(crate::config::edit::unknown_server(name, &known).into());
            }
        }
    }
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "mcpctl".into());
    let file = absolute(config).display().to_string();
    // The entry for `name` at `url` (a URL entry, or the `connect` bridge).
    let want = |name: &String, url: String, bearer_var: Option<String>| {
        let target = Target {
            name: name.clone(),
            url: url.clone(),
            bearer_var,
        };
        let connect = [
            exe.clone(),
            "-f".into(),
            file.clone(),
            "connect".into(),
            name.clone(),
        ];
        Wanted {
            name: name.clone(),
            value: entry(client, &target, &connect),
            command: None,
            args: Vec::new(),
            url: None,
            link_url: url,
        }
    };
    let mut out = Vec::new();
    for (name, spec) in &loaded.config.servers {
        if spec.state == RunState::Stopped || only.is_some_and(|o| !o.contains(name)) {
            continue;
        }
        let Some((_, url)) = spec.endpoints().into_iter().next() else {
            continue;
        };
        let bearer = caller_var(spec.auth_tokens).or_else(|| spec.auth_bearer.clone());
        let mut wanted = want(name, url, bearer);
        wanted.command.clone_from(&spec.command);
        wanted.args.clone_from(&spec.args);
        wanted.url.clone_from(&spec.url);
        out.push(wanted);
    }
    // Endpoints are linked only when named: one entry for the whole set.
    for (name, spec) in &loaded.config.endpoints {
        if only.is_some_and(|o| o.contains(name)) {
            out.push(want(name, spec.url(), caller_var(spec.auth_tokens)));
        }
    }
    Ok(out)
}

/// The client's file as it is on disk (bounded), or `None` when there is none.
fn read_client_file(path: &Path) -> Result<Option<String>, Error> {
    if !path.exists() {
        return Ok(None);
    }
    Ok(Some(store::read_text_bounded(path, store::MAX_INPUT)?))
}

/// The client's file without a BOM and with LF line ends, and what it wore (put back
/// when it is written).
fn read_plain(path: &Path) -> Result<Option<(String, Dress)>, Error> {
    Ok(read_client_file(path)?.map(|text| Dress::strip(&text)))
}

fn bad_file(path: &Path, why: String) -> Error {
    Error::Failed(format!(
        "cannot edit {}: {why}; it was left as it was",
        path.display()
    ))
}

#[allow(clippy::too_many_arguments)]
fn link(
    config: &Path,
    client_name: &str,
    scope: Option<LinkScope>,
    config_path: Option<PathBuf>,
    dry_run: bool,
    only: Option<&[String]>,
    token: Option<&str>,
    force: bool,
) -> Result<u8, Error> {
    let (client, section) = client_of(client_name)?;
    let scope = scope_of(client, scope);
    let key = format!("{}:{}", client.name(), scope_name(scope));
    let _records_held = lock_records(config)?;
    let mut records = load_records(config)?;
    let file = match (&config_path, records.links.get(&key)) {
        (Some(p), _) => absolute_or_joined(p)?,
        (None, Some(link)) => PathBuf::from(&link.path),
        (None, None) => default_path(client, scope)?,
    };
    let same = |a: &Path, b: &Path| match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    if same(&file, config) {
        return Err(Error::Failed(format!(
            "{} is mcpctl's own config, not {}'s: give the client's file with --config-path",
            file.display(),
            client.name()
        )));
    }
    let wanted = entries(config, client, only, token)?;
    let existed = read_client_file(&file)?;
    let (before, dress) = Dress::strip(existed.as_deref().unwrap_or_default());
    let mut record = records
        .links
        .get(&key)
        .filter(|l| Path::new(&l.path) == file)
        .cloned()
        .unwrap_or_else(|| Link {
            path: file.display().to_string(),
            created_file: existed.is_none(),
            created_section: !clients::has_section(client, &before, section).unwrap_or(false),
            entries: Default::default(),
            replaced: Default::default(),
        });
    let mut text = before.clone();
    let mut refused = Vec::new();
    let mut written = Vec::new();
    for w in &wanted {
        let (name, value) = (&w.name, &w.value);
        let current =
            clients::get(client, &text, section, name).map_err(|why| bad_file(&file, why))?;
        match state(Some(&record), name, current.as_deref()) {
            // The client's own entry of that name: replaced (--force) only when it runs
            // this same server; another server's slot is never given to this one.
            Some(State::Foreign)
                if !force
                    || !current
                        .as_deref()
                        .and_then(|c| entry_of(name, c))
                        .is_some_and(|theirs| w.runs_as(&theirs)) =>
            {
                refused.push(clash(&file, w, current.as_deref(), &wanted, force));
            }
            Some(State::Drifted) if !force => refused.push(format!(
                "`{name}` was edited by hand since mcpctl wrote it (--force writes it again)"
            )),
            found => {
                // Kept, to be put back by `unlink` as it was.
                if found == Some(State::Foreign)
                    && let Some(theirs) = clients::get_raw(client, &text, section, name)
                        .map_err(|why| bad_file(&file, why))?
                {
                    record.replaced.insert(name.clone(), theirs);
                    crate::note!(
                        "replaced `{name}`, which was not mcpctl's (--force); `client unlink` puts it back"
                    );
                }
                text = clients::upsert(client, &text, section, name, value)
                    .map_err(|why| bad_file(&file, why))?;
                record
                    .entries
                    .insert(name.clone(), jsonedit::digest(&value.to_string()));
                written.push(name.clone());
            }
        }
    }
    // Entries of servers the file no longer runs go (when they are as written).
    let mut dropped = Vec::new();
    if only.is_none() {
        let stale: Vec<String> = record
            .entries
            .keys()
            .filter(|name| !wanted.iter().any(|w| w.name == **name))
            .cloned()
            .collect();
        for name in stale {
            let current =
                clients::get(client, &text, section, &name).map_err(|why| bad_file(&file, why))?;
            match state(Some(&record), &name, current.as_deref()) {
                Some(State::Drifted) => crate::note!(
                    "kept `{name}`: the file no longer runs it, but it was edited by hand (`client unlink --force` removes it)"
                ),
                Some(State::InSync) => {
                    text = take_away(client, &text, section, &name, &mut record)
                        .map_err(|why| bad_file(&file, why))?;
                    record.entries.remove(&name);
                    dropped.push(name);
                }
                _ => {
                    record.entries.remove(&name);
                    record.replaced.remove(&name);
                }
            }
        }
    }
    // The others are linked; each clash is reported, and the command fails.
    let refusal = (!refused.is_empty())
        .then(|| Error::Failed(format!("not linked:\n  - {}", refused.join("\n  - "))));
    if dry_run {
        let name = file.display().to_string();
        print(
            &TextDiff::from_lines(&before, &text)
                .unified_diff()
                .header(&name, &format!("{name} (linked)"))
                .to_string(),
        )?;
        crate::note!("dry run: {} was not changed", file.display());
        return refusal.map_or_else(ok, Err);
    }
    if text != before {
        if let Some(original) = &existed {
            backup(config, &key, original)?;
        }
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| ConfigError::io(dir, e))?;
        }
        store::write_atomic(&file, &dress.apply(&text))?;
    }
    records.links.insert(key, record);
    save_records(config, &records)?;
    crate::note!(
        "linked {} into {} ({client_name})",
        listed(&written),
        file.display()
    );
    if !dropped.is_empty() {
        crate::note!(
            "removed {}: the file no longer runs them",
            dropped.join(", ")
        );
    }
    refusal.map_or_else(ok, Err)
}

/// Why `w` was not linked over the client's own entry of its name, and what to do.
fn clash(file: &Path, w: &Wanted, current: Option<&str>, wanted: &[Wanted], force: bool) -> String {
    let theirs = current.and_then(|c| entry_of(&w.name, c));
    let same = theirs.as_ref().is_some_and(|t| w.runs_as(t));
    if same {
        return format!(
            "`{}` is already in {} and is not mcpctl's, though it runs the same server (--force replaces it with the link; `client unlink` puts it back)",
            w.name,
            file.display()
        );
    }
    // The client's entry may be a server mcpctl serves under another name (imported
    // as `NAME-2` because the name was taken).
    let elsewhere = theirs
        .as_ref()
        .and_then(|t| wanted.iter().find(|o| o.name != w.name && o.runs_as(t)))
        .map(|o| format!(" (mcpctl serves that one as `{}`)", o.name))
        .unwrap_or_default();
    format!(
        "`{name}` is already in {file} and runs a different server than mcpctl's `{name}`{elsewhere}: \
         it is not replaced{even}; rename or remove the client's entry and link again, \
         or rename mcpctl's server",
        name = w.name,
        file = file.display(),
        even = if force { ", even with --force" } else { "" },
    )
}

fn absolute_or_joined(p: &Path) -> Result<PathBuf, Error> {
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    let cwd = std::env::current_dir().map_err(|e| ConfigError::io(Path::new("."), e))?;
    Ok(cwd.join(p))
}

/// The client file as it was before mcpctl first wrote into it (kept, not replaced).
fn backup(config: &Path, key: &str, original: &str) -> Result<(), Error> {
    let dir = store::runtime_dir(&absolute(config)).join("client-backups");
    std::fs::create_dir_all(&dir).map_err(|e| ConfigError::io(&dir, e))?;
    let path = dir.join(format!("{}.json", key.replace(':', "-")));
    if !path.exists() {
        store::write_runtime(&path, original)?;
        crate::note!("backup of the client file: {}", path.display());
    }
    Ok(())
}

fn unlink(
    config: &Path,
    client_name: &str,
    scope: Option<LinkScope>,
    force: bool,
) -> Result<u8, Error> {
    let (client, section) = client_of(client_name)?;
    let _records_held = lock_records(config)?;
    let mut records = load_records(config)?;
    let key_of = |scope| format!("{}:{}", client.name(), scope_name(scope));
    // Without --scope, the scope link used: the client's default, else the other one.
    let scope = match scope {
        Some(scope) => scope,
        None => [scope_of(client, None), LinkScope::User, LinkScope::Project]
            .into_iter()
            .find(|s| records.links.contains_key(&key_of(*s)))
            .unwrap_or(scope_of(client, None)),
    };
    let key = key_of(scope);
    let Some(mut record) = records.links.get(&key).cloned() else {
        let other = match scope {
            LinkScope::User => LinkScope::Project,
            LinkScope::Project => LinkScope::User,
        };
        let hint = if records.links.contains_key(&key_of(other)) {
            format!(
                " (it has some in the {} file: --scope {})",
                scope_name(other),
                scope_name(other)
            )
        } else {
            String::new()
        };
        return Err(Error::Failed(format!(
            "mcpctl has no entries in {client_name}'s {} file{hint}",
            scope_name(scope)
        )));
    };
    let file = PathBuf::from(&record.path);
    let Some((before, dress)) = read_plain(&file)? else {
        records.links.remove(&key);
        save_records(config, &records)?;
        crate::note!("{} is gone; forgot its entries", file.display());
        return ok();
    };
    let mut text = before.clone();
    let mut removed = Vec::new();
    let names: Vec<String> = record.entries.keys().cloned().collect();
    for name in names {
        let current =
            clients::get(client, &text, section, &name).map_err(|why| bad_file(&file, why))?;
        match state(Some(&record), &name, current.as_deref()) {
            Some(State::Drifted) if !force => {
                crate::note!(
                    "kept `{name}`: edited by hand since mcpctl wrote it (--force removes it)"
                );
                continue;
            }
            Some(State::InSync | State::Drifted) => {
                text = take_away(client, &text, section, &name, &mut record)
                    .map_err(|why| bad_file(&file, why))?;
                removed.push(name.clone());
            }
            _ => {
                record.replaced.remove(&name);
            }
        }
        record.entries.remove(&name);
    }
    if record.created_section {
        text = clients::remove_section_if_empty(client, &text, section)
            .map_err(|why| bad_file(&file, why))?;
    }
    if record.created_file && clients::is_empty_file(client, &text) {
        std::fs::remove_file(&file).map_err(|e| ConfigError::io(&file, e))?;
    } else if text != before {
        store::write_atomic(&file, &dress.apply(&text))?;
    }
    if record.entries.is_empty() {
        records.links.remove(&key);
    } else {
        records.links.insert(key, record);
    }
    save_records(config, &records)?;
    crate::note!("unlinked {} from {}", listed(&removed), file.display());
    ok()
}

/// `text` without mcpctl's entry `name`: the foreign entry it replaced put back as it
/// was, or the entry removed.
fn take_away(
    client: Client,
    text: &str,
    section: &str,
    name: &str,
    record: &mut Link,
) -> Result<String, String> {
    match record.replaced.remove(name) {
        Some(theirs) => {
            crate::note!("put back the `{name}` that `link --force` replaced");
            clients::put_raw(client, text, section, name, &theirs)
        }
        None => clients::remove(client, text, section, name),
    }
}

fn show(config: &Path, client_name: &str, only: Option<&[String]>) -> Result<u8, Error> {
    let (client, section) = client_of(client_name)?;
    // The entries as they would stand in a file of the client's own format.
    let mut text = String::new();
    for w in entries(config, client, only, None)? {
        text = clients::upsert(client, &text, section, &w.name, &w.value).map_err(Error::Failed)?;
    }
    print(text.trim_start())?;
    ok()
}

fn status(config: &Path, client: Option<&str>) -> Result<u8, Error> {
    // A misspelt client is an error, not "nothing linked".
    if let Some(name) = client {
        client_of(name)?;
    }
    let records = load_records(config)?;
    let mut lines = Vec::new();
    for (key, link) in &records.links {
        let client_name = key.split(':').next().unwrap_or_default();
        if client.is_some_and(|c| c != client_name) {
            continue;
        }
        let Some(client) = Client::from_name(client_name) else {
            continue;
        };
        let Some(section) = section(client) else {
            continue;
        };
        lines.push(format!("{key}  {}", link.path));
        let text = read_plain(Path::new(&link.path))?
            .map(|(text, _)| text)
            .unwrap_or_default();
        for name in link.entries.keys() {
            let current = clients::get(client, &text, section, name).ok().flatten();
            let st = state(Some(link), name, current.as_deref()).map_or("missing", State::name);
            lines.push(format!("  {name:<24} {st}"));
        }
    }
    if lines.is_empty() {
        crate::note!("no client is linked (`mcpctl client link CLIENT`)");
        return ok();
    }
    print(&(lines.join("\n") + "\n"))?;
    ok()
}

/// `a, b` — or `nothing`.
fn listed(names: &[String]) -> String {
    if names.is_empty() {
        "nothing".to_string()
    } else {
        names.join(", ")
    }
}
