//! PURE. What an import adds to the file: one server per distinct command or URL,
//! named, given a port, its values sorted into env, secrets and headers, and a note
//! for everything it decided (skipped, merged, renamed, kept as a reference).

use std::collections::{BTreeMap, BTreeSet};

use super::Entry;
use super::credentials::{
    header_secret_name, is_credential, is_reference, plaintext_in_args, plaintext_in_url,
};
use crate::model::names::{check_env_name, check_name};

/// A server already in the file, as far as an import compares it.
#[derive(Debug, Clone, Default)]
pub struct Existing {
    pub name: String,
    pub command: Option<String>,
    pub args: Vec<String>,
    pub url: Option<String>,
    pub port: Option<u16>,
}

/// A server to add.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewServer {
    pub name: String,
    /// Where it came from (`claude-desktop:NAME`, ...), every source once.
    pub sources: Vec<String>,
    pub command: Option<String>,
    pub args: Vec<String>,
    pub url: Option<String>,
    pub sse: bool,
    pub env: BTreeMap<String, String>,
    /// Plaintext, for the caller to encrypt; never printed.
    pub secrets: BTreeMap<String, String>,
    pub headers: BTreeMap<String, String>,
    pub port: u16,
}

#[derive(Debug, Default)]
pub struct Imported {
    pub servers: Vec<NewServer>,
    pub notes: Vec<String>,
}

/// The first port tried for a new server, unless one is given.
pub const FIRST_PORT: u16 = 8000;

/// What `entries` (each with the label of where it came from) add to a file holding
/// `existing`; `only` keeps the named entries; `port_free` says whether a port can be
/// served (the caller asks the OS); ports are tried from `first_port` upward.
pub fn plan(
    entries: &[(String, Entry)],
    existing: &[Existing],
    only: Option<&[String]>,
    first_port: u16,
    mut port_free: impl FnMut(u16) -> bool,
) -> Imported {
    let mut out = Imported::default();
    let mut taken_ports: BTreeSet<u16> = existing.iter().filter_map(|e| e.port).collect();
    let mut next_port = first_port;
    for (origin, entry) in entries {
        if only.is_some_and(|only| !only.iter().any(|n| n == &entry.name)) {
            continue;
        }
        // Printable: it goes into a `# imported from` comment and every note.
        let source = printable(&format!("{origin}:{}", entry.name));
        if entry.command.is_none() && entry.url.is_none() {
            out.notes
                .push(format!("skipped {source}: neither a command nor a url"));
            continue;
        }
        if let Some(name) = links_here(entry, existing) {
            out.notes.push(format!(
                "skipped {source}: it is mcpctl's own link to `{name}` (`mcpctl client link`)"
            ));
            continue;
        }
        let same =
            |command: &Option<String>, args: &[String], url: &Option<String>| match &entry.url {
                Some(u) => url.as_deref() == Some(u.as_str()),
                None => command == &entry.command && args == entry.args.as_slice(),
            };
        if let Some(e) = existing.iter().find(|e| same(&e.command, &e.args, &e.url)) {
            out.notes.push(format!(
                "skipped {source}: already in the file as `{}`",
                e.name
            ));
            continue;
        }
        if let Some(s) = out
            .servers
            .iter_mut()
            .find(|s| same(&s.command, &s.args, &s.url))
        {
            let mut conflicts = Vec::new();
            let mut incoming = NewServer::default();
            sort_values(entry, &mut incoming, &mut Vec::new());
            merge(&mut s.env, incoming.env, &mut conflicts);
            merge(&mut s.secrets, incoming.secrets, &mut conflicts);
            merge(&mut s.headers, incoming.headers, &mut conflicts);
            s.sources.push(source.clone());
            let kept = if conflicts.is_empty() {
                String::new()
            } else {
                format!(
                    " (different values of {} kept from the first)",
                    conflicts.join(", ")
                )
            };
            out.notes.push(format!(
                "merged {source} into `{}`: the same {}{kept}",
                s.name,
                if entry.url.is_some() {
                    "url"
                } else {
                    "command"
                }
            ));
            continue;
        }
        let base = server_name(&entry.name);
        let taken = |n: &str| {
            existing.iter().any(|e| e.name == n) || out.servers.iter().any(|s| s.name == n)
        };
        let mut name = base.clone();
        let mut n = 2;
        while taken(&name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        if base != entry.name.to_ascii_lowercase() {
            out.notes.push(format!(
                "{source}: \"{}\" is not a valid server name; named `{base}`",
                printable(&entry.name)
            ));
        }
        if name != base {
            out.notes.push(format!(
                "{source}: a different server is already named `{base}`; added as `{name}`"
            ));
        }
        while taken_ports.contains(&next_port) || !port_free(next_port) {
            next_port = next_port.saturating_add(1);
            if next_port == u16::MAX {
                break;
            }
        }
        taken_ports.insert(next_port);
        let mut server = NewServer {
            name,
            sources: vec![source.clone()],
            command: entry.command.clone(),
            args: entry.args.clone(),
            url: entry.url.clone(),
            sse: entry.sse,
            port: next_port,
            ..NewServer::default()
        };
        sort_values(entry, &mut server, &mut out.notes);
        let mut places = plaintext_in_args(&entry.args);
        places.extend(
            entry
                .url
                .as_deref()
                .map(plaintext_in_url)
                .unwrap_or_default(),
        );
        if !places.is_empty() {
            let verb = if places.len() == 1 { "holds" } else { "hold" };
            out.notes.push(format!(
                "warning: {source}: {} {verb} a credential, imported in plain text (mcpctl expands `${{...}}` in headers only, not in args or urls): pass it through env or a header if the server takes one, and rotate it",
                places.join(", ")
            ));
        }
        out.servers.push(server);
    }
    // Every note goes to a terminal: what a hostile file put in a value is shown, not run.
    out.notes = out.notes.iter().map(|n| printable(n)).collect();
    out
}

/// Env values and headers of `entry` into `server`'s env, secrets and headers.
fn sort_values(entry: &Entry, server: &mut NewServer, notes: &mut Vec<String>) {
    let source = printable(&entry.name);
    if let Some(arg) = entry.args.iter().find(|a| is_reference(a)) {
        notes.push(format!(
            "{source}: the argument \"{arg}\" stays as written (mcpctl does not expand `${{...}}` in args)"
        ));
    }
    for (key, value) in &entry.env {
        if check_env_name(key).is_err() {
            notes.push(format!(
                "{source}: env `{}` is not a valid variable name; left out",
                printable(key)
            ));
        } else if is_reference(value) {
            notes.push(format!(
                "{source}: env {key} = \"{value}\" stays a reference (mcpctl passes it as written; `mcpctl config secret set {key} --server {}` sets a value)",
                server.name
            ));
            server.env.insert(key.clone(), value.clone());
        } else if is_credential(key, value) {
            server.secrets.insert(key.clone(), value.clone());
        } else {
            server.env.insert(key.clone(), value.clone());
        }
    }
    for (header, value) in &entry.headers {
        if is_reference(value) {
            notes.push(format!(
                "{source}: header {header} refers to a variable of the client's; left out: set it with `mcpctl config secret set {} --server {}` and add `headers = {{ {header} = \"${{{}}}\" }}`",
                header_secret_name(header),
                server.name,
                header_secret_name(header)
            ));
        } else if is_credential(header, value) {
            let secret = header_secret_name(header);
            server
                .headers
                .insert(header.clone(), format!("${{{secret}}}"));
            server.secrets.insert(secret, value.clone());
        } else {
            server.headers.insert(header.clone(), value.clone());
        }
    }
}

fn merge(
    into: &mut BTreeMap<String, String>,
    from: BTreeMap<String, String>,
    conflicts: &mut Vec<String>,
) {
    for (k, v) in from {
        match into.get(&k) {
            Some(old) if *old != v => conflicts.push(k),
            Some(_) => {}
            None => {
                into.insert(k, v);
            }
        }
    }
}

/// `text` with its control characters (a newline in a name, an escape sequence, a
/// NUL) escaped: what a file or a server wrote is shown on a terminal, never run.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A client's server name as an mcpctl name: lowercase, other characters as `-`.
pub fn server_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    out = out.trim_matches(|c| c == '-' || c == '_').to_string();
    out.truncate(63);
    if check_name(&out).is_err() {
        out = format!("server-{out}");
        out.truncate(63);
    }
    out
}

/// The server of this file an entry reaches through mcpctl (`mcpctl connect NAME`, or
/// NAME's own gateway URL): what `client link` wrote, not a server to import again.
fn links_here<'e>(entry: &Entry, existing: &'e [Existing]) -> Option<&'e str> {
    let by_name = |name: &str| existing.iter().find(|e| e.name == name);
    let program = entry
        .command
        .as_deref()
        .map(|c| c.rsplit('/').next().unwrap_or(c));
    if program == Some("mcpctl")
        && let Some(at) = entry.args.iter().position(|a| a == "connect")
        && let Some(found) = entry.args.get(at + 1).and_then(|n| by_name(n))
    {
        return Some(&found.name);
    }
    let url = entry.url.as_deref()?;
    existing.iter().find_map(|e| {
        let port = e.port?;
        ["127.0.0.1", "localhost", "[::1]"]
            .iter()
            .any(|host| {
                ["/mcp", "/sse"].iter().any(|path| {
                    url == format!("http://{host}:{port}{path}")
                        || url == format!("https://{host}:{port}{path}")
                })
            })
            .then_some(e.name.as_str())
    })
}
