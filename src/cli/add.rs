//! `mcpctl add NAME|FILE.json`: a registry entry as a server block, through the same
//! comment-keeping edit as every command; its secrets encrypted with age.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Read};
use std::path::Path;

use age::secrecy::SecretString;
use similar::TextDiff;
use toml_edit::{Array, DocumentMut, Item, Table, value};

use super::args::AddArgs;
use super::lifecycle::{after_edit, declared};
use super::secret::recipients_of;
use super::{Error, edit_file, edited, ok, print};
use crate::config::edit::block;
use crate::config::{Error as ConfigError, store};
use crate::import::plan::printable;
use crate::model::names;
use crate::model::raw::RawConfig;
use crate::registry::entry::{Listed, ServerJson};
use crate::registry::translate::{self, Given, Server};

pub(super) fn run(path: &Path, args: &AddArgs) -> Result<u8, Error> {
    let (entry, source) = read_entry(path, args)?;
    let (given, mut secrets) = given(args)?;
    let server = translate::translate(&entry, &given)?;
    let name = args
        .as_name
        .clone()
        .unwrap_or_else(|| translate::local_name(&server.entry));
    names::check_name(&name).map_err(|why| {
        Error::Failed(format!(
            "`{}` cannot name a server: {why}; choose one with --as NAME ({})",
            printable(&name),
            names::NAME_HINT
        ))
    })?;
    // Only the secrets the server uses are read (a `-` or a prompt), each once.
    let mut values = BTreeMap::new();
    for key in &server.secrets {
        if let Some(source) = secrets.remove(key) {
            values.insert(key.clone(), source.read(key)?);
        }
    }
    for note in &server.notes {
        crate::note!("{note}");
    }
    let mut port = None;
    let change = |doc: &mut DocumentMut, raw: &RawConfig| {
        if raw.servers.contains_key(&name) {
            return Err(ConfigError::edit(
                format!("`servers.{name}` is already in the file"),
                Some("choose another name with --as NAME, or `mcpctl upgrade` it".into()),
            ));
        }
        let chosen = args.port.or_else(|| free_port(raw)).ok_or_else(|| {
            ConfigError::edit(
                "no free port from 8000 to 65535",
                Some("give one with --port N".into()),
            )
        })?;
        port = Some(chosen);
        let text = block_text(
            &name,
            &server,
            chosen,
            &source,
            &values,
            &recipients_of(raw),
        )?;
        block::insert_server(doc, &text, &name, &name)
    };
    if args.dry_run {
        let before = store::read(path)?;
        let after = edited(path, &before, change)?;
        let shown = path.display().to_string();
        print(
            &TextDiff::from_lines(&before, &after)
                .unified_diff()
                .header(&shown, &format!("{shown} (after add)"))
                .to_string(),
        )?;
        crate::note!("(dry run: nothing was changed)");
        return ok();
    }
    let before = declared(path);
    edit_file(path, change)?;
    crate::note!(
        "added {name} ({} {}) on port {}{}",
        server.entry,
        server.version,
        port.map_or("?".to_string(), |p| p.to_string()),
        if values.is_empty() {
            String::new()
        } else {
            format!(", {} secret(s) encrypted", values.len())
        }
    );
    after_edit(path, before, Some(&name), args.apply.no_apply)
}

/// The entry, from a file or the registry, and where it came from (the registry's
/// base URL, or the file).
fn read_entry(path: &Path, args: &AddArgs) -> Result<(ServerJson, String), Error> {
    if args.what.ends_with(".json") {
        let text = store::read_text_bounded(Path::new(&args.what), store::MAX_INPUT)?;
        let entry = parse_entry(&text)
            .map_err(|why| Error::Failed(format!("{} is not a server.json: {why}", args.what)))?;
        if let Some(version) = &args.version
            && *version != entry.version
        {
            return Err(Error::Failed(format!(
                "{} is version {}, not {version}",
                args.what,
                printable(&entry.version)
            )));
        }
        return Ok((entry, args.what.clone()));
    }
    let registry = super::registry::open(&args.registry, Some(path))?;
    let listed = registry.entry(&args.what, args.version.as_deref())?;
    // The registry answers for what was asked, or nothing of its answer is used (a
    // hostile one could send another entry, to receive the secrets given for this one).
    let printable = crate::import::plan::printable;
    if listed.server.name != args.what {
        return Err(Error::Failed(format!(
            "the registry answered `{}` for `{}`: nothing added",
            printable(&listed.server.name),
            printable(&args.what)
        )));
    }
    if let Some(version) = &args.version
        && listed.server.version != *version
    {
        return Err(Error::Failed(format!(
            "the registry answered version `{}` for `{}` {version}: nothing added",
            printable(&listed.server.version),
            printable(&args.what)
        )));
    }
    Ok((listed.server, registry.base().to_string()))
}

/// A `server.json`, or a registry answer wrapping one (`{"server": ...}`).
fn parse_entry(text: &str) -> Result<ServerJson, serde_json::Error> {
    let value: serde_json::Value = serde_json::from_str(text)?;
    if value.get("server").is_some() {
        serde_json::from_value::<Listed>(value).map(|l| l.server)
    } else {
        serde_json::from_value(value)
    }
}

/// Where a secret's value comes from.
enum SecretSource {
    Value(String),
    Stdin,
    Prompt,
}

impl SecretSource {
    fn read(self, key: &str) -> Result<SecretString, Error> {
        let text = match self {
            SecretSource::Value(v) => v,
            SecretSource::Stdin => {
                let mut text = String::new();
                std::io::stdin()
                    .lock()
                    .read_to_string(&mut text)
                    .map_err(Error::Output)?;
                text
            }
            SecretSource::Prompt => prompt(key)?,
        };
        let text = text
            .strip_suffix('\n')
            .unwrap_or(&text)
            .trim_end_matches('\r');
        names::check_env_value(key, text).map_err(|why| {
            Error::Failed(format!("secret {key} cannot be passed to a process: {why}"))
        })?;
        Ok(SecretString::from(text.to_string()))
    }
}

/// Asks for `key` on the terminal without echo (stdin when it is not a terminal).
fn prompt(key: &str) -> Result<String, Error> {
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    // Echo off before the prompt shows: what is typed once it shows is never echoed.
    let echo = terminal
        .then(|| crate::sys::set_stdin_echo(false).ok())
        .flatten();
    if terminal {
        crate::note!("{key} (not shown):");
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(was) = echo {
        let _ = crate::sys::set_stdin_echo(was);
        crate::note!("");
    }
    read.map_err(Error::Output)?;
    Ok(line)
}

/// `--env`, `--arg` and `--secret` as the translation sees them, and where each
/// secret's value comes from.
fn given(args: &AddArgs) -> Result<(Given, BTreeMap<String, SecretSource>), Error> {
    let pair = |flag: &str, text: &str| -> Result<(String, String), Error> {
        text.split_once('=')
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| {
                Error::Failed(format!(
                    "{flag} {}: write it as NAME=VALUE",
                    printable(text)
                ))
            })
    };
    let mut given = Given::default();
    for text in &args.env {
        let (k, v) = pair("--env", text)?;
        names::check_env_name(&k)
            .map_err(|why| Error::Failed(format!("--env {}: {why}", printable(&k))))?;
        given.env.insert(k, v);
    }
    for text in &args.args {
        let (k, v) = pair("--arg", text)?;
        given.args.insert(k, v);
    }
    let mut sources = BTreeMap::new();
    let mut stdin_taken = false;
    for text in &args.secrets {
        let (key, source) = match text.split_once('=') {
            Some((k, "-")) => (k, SecretSource::Stdin),
            Some((k, v)) => (k, SecretSource::Value(v.to_string())),
            None => (text.as_str(), SecretSource::Prompt),
        };
        names::check_env_name(key)
            .map_err(|why| Error::Failed(format!("--secret {}: {why}", printable(key))))?;
        let from_stdin = matches!(source, SecretSource::Stdin)
            || (matches!(source, SecretSource::Prompt) && !std::io::stdin().is_terminal());
        if from_stdin && std::mem::replace(&mut stdin_taken, true) {
            return Err(Error::Failed(
                "only one --secret can read stdin: give the others as KEY=VALUE or on a terminal"
                    .into(),
            ));
        }
        given.secrets.insert(key.to_string());
        sources.insert(key.to_string(), source);
    }
    Ok((given, sources))
}

/// The lowest port from 8000 up that no server of the file has and nothing here
/// listens on.
fn free_port(raw: &RawConfig) -> Option<u16> {
    let taken: Vec<i64> = raw.servers.values().filter_map(|l| l.port).collect();
    (crate::import::plan::FIRST_PORT..=u16::MAX).find(|p| {
        !taken.contains(&i64::from(*p)) && std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok()
    })
}

/// The `[servers.NAME]` block, under a comment naming the entry and version.
fn block_text(
    name: &str,
    server: &Server,
    port: u16,
    source: &str,
    secrets: &BTreeMap<String, SecretString>,
    recipients: &[String],
) -> Result<String, ConfigError> {
    if !secrets.is_empty() && recipients.is_empty() {
        return Err(ConfigError::edit(
            format!(
                "{} has secrets to encrypt and the file has no recipients",
                server.entry
            ),
            Some(
                "`mcpctl config secret keygen --add` creates your key and adds it; then add again"
                    .into(),
            ),
        ));
    }
    let mut table = Table::new();
    if let Some(command) = &server.command {
        table.insert("command", value(command.as_str()));
        let args: Array = server.args.iter().map(String::as_str).collect();
        table.insert("args", value(args));
    }
    if let Some(url) = &server.url {
        table.insert("mode", value("remote"));
        table.insert("url", value(url.as_str()));
        if let Some(transport) = &server.transport {
            table.insert("transport", value(transport.as_str()));
        }
    }
    table.insert("port", value(i64::from(port)));
    let inline = super::inline_strings;
    if !server.env.is_empty() {
        table.insert("env", value(inline(&server.env)));
    }
    if !server.headers.is_empty() {
        table.insert("headers", value(inline(&server.headers)));
    }
    if !secrets.is_empty() {
        let mut encrypted = BTreeMap::new();
        for (key, plain) in secrets {
            let place = format!("servers.{name}.{key}");
            let ciphertext = crate::secrets::encrypt(plain, &place, recipients)
                .map_err(|e| ConfigError::edit(format!("secret `{place}`: {e}"), None))?;
            encrypted.insert(key.clone(), ciphertext);
        }
        table.insert("secrets", value(inline(&encrypted)));
    }
    table.decor_mut().set_prefix(format!(
        "\n{}\n",
        crate::registry::mark(&server.entry, &server.version, source)
    ));
    let mut servers = Table::new();
    servers.set_implicit(true);
    servers.insert(name, Item::Table(table));
    let mut doc = DocumentMut::new();
    doc.insert("servers", Item::Table(servers));
    Ok(doc.to_string())
}
