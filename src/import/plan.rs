//! PURE. What an import adds to the file: one server per distinct command or URL,
//! named, given a port, its values sorted into env, secrets and headers, and a note
//! for everything it decided (skipped, merged, renamed, kept as a reference).

use std::collections::{BTreeMap, HashMap, HashSet};

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
    pub cwd: Option<String>,
    /// Turned off in the client: imported as `state = "stopped"`.
    pub stopped: bool,
}

#[derive(Debug, Default)]
pub struct Imported {
    pub servers: Vec<NewServer>,
    pub notes: Vec<String>,
    /// Servers left out because no port was free from the first port up: the
    /// caller refuses the import.
    pub without_port: usize,
}

/// The first port tried for a new server, unless one is given.
pub const FIRST_PORT: u16 = 8000;

/// What makes two servers the same server: the url, or the command with its args.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key<'a> {
    Url(&'a str),
    Command(&'a str, &'a [String]),
}

fn key_of<'a>(
    command: Option<&'a String>,
    args: &'a [String],
    url: Option<&'a String>,
) -> Option<Key<'a>> {
    match (url, command) {
        (Some(u), _) => Some(Key::Url(u)),
        (None, Some(c)) => Some(Key::Command(c, args)),
        (None, None) => None,
    }
}

/// What `entries` (each with the label of where it came from) add to a file holding
/// `existing`; `only` keeps the named entries; `port_free` says whether a port can be
/// served (the caller asks the OS); ports are tried from `first_port` upward.
///
/// Linear in the entries and the file's servers: every lookup (the same server, a
/// name taken, a port taken, mcpctl's own link) is a hash lookup, and the next port
/// and each name's next suffix only move forward. (Scanning lists for each entry made
/// an import of 50,000 servers take a minute.)
pub fn plan(
    entries: &[(String, Entry)],
    existing: &[Existing],
    only: Option<&[String]>,
    first_port: u16,
    mut port_free: impl FnMut(u16) -> bool,
) -> Imported {
    let mut out = Imported::default();
    let only: Option<HashSet<&str>> = only.map(|o| o.iter().map(String::as_str).collect());
    let mut taken_ports: HashSet<u16> = existing.iter().filter_map(|e| e.port).collect();
    let mut next_port = u32::from(first_port);
    let mut known: HashMap<Key<'_>, &str> = HashMap::new();
    for e in existing {
        // The url wins: an entry with a url is compared by it.
        if let Some(u) = &e.url {
            known.entry(Key::Url(u)).or_insert(&e.name);
        }
        if let Some(c) = &e.command {
            known.entry(Key::Command(c, &e.args)).or_insert(&e.name);
        }
    }
    let own = OwnLinks::new(existing);
    let mut names: HashSet<String> = existing.iter().map(|e| e.name.clone()).collect();
    let mut suffixes: HashMap<String, u32> = HashMap::new();
    let mut added: HashMap<Key<'_>, usize> = HashMap::new();
    for (origin, entry) in entries {
        if only
            .as_ref()
            .is_some_and(|only| !only.contains(entry.name.as_str()))
        {
            continue;
        }
        // Printable: it goes into a `# imported from` comment and every note.
        let source = printable(&format!("{origin}:{}", entry.name));
        let Some(key) = key_of(entry.command.as_ref(), &entry.args, entry.url.as_ref()) else {
            out.notes
                .push(format!("skipped {source}: neither a command nor a url"));
            continue;
        };
        if let Some(name) = own.links_here(entry) {
            out.notes.push(format!(
                "skipped {source}: it is mcpctl's own link to `{name}` (`mcpctl client link`)"
            ));
            continue;
        }
        if let Some(name) = known.get(&key) {
            out.notes
                .push(format!("skipped {source}: already in the file as `{name}`"));
            continue;
        }
        if let Some(&at) = added.get(&key) {
            let s = &mut out.servers[at];
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
        // The first free port from where the last one was found; none left is counted
        // (the caller refuses the import), never the last port handed out again.
        let port = loop {
            let Ok(port) = u16::try_from(next_port) else {
                break None;
            };
            if !taken_ports.contains(&port) && port_free(port) {
                break Some(port);
            }
            next_port += 1;
        };
        let Some(port) = port else {
            out.without_port += 1;
            continue;
        };
        taken_ports.insert(port);
        let base = server_name(&entry.name);
        let mut name = base.clone();
        if names.contains(&name) {
            let n = suffixes.entry(base.clone()).or_insert(2);
            loop {
                name = format!("{base}-{n}");
                *n += 1;
                if !names.contains(&name) {
                    break;
                }
            }
        }
        names.insert(name.clone());
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
        let mut server = NewServer {
            name,
            sources: vec![source.clone()],
            command: entry.command.clone(),
            args: entry.args.clone(),
            url: entry.url.clone(),
            sse: entry.sse,
            port,
            cwd: entry.cwd.clone(),
            stopped: entry.disabled,
            ..NewServer::default()
        };
        if entry.disabled {
            out.notes.push(format!(
                "{source}: turned off in the client; imported as `state = \"stopped\"`"
            ));
        }
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
        added.insert(key, out.servers.len());
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
    if let Some(var) = &entry.bearer_env {
        // A header naming a secret not in the file would make the file invalid: the
        // same advice as for a header that refers to a client's variable.
        notes.push(format!(
            "{source}: bearer_token_env_var {var}: Codex sends `Authorization: Bearer` with that variable's value; left out: set it with `mcpctl config secret set {var} --server {}` and add `headers = {{ Authorization = \"Bearer ${{{var}}}\" }}`",
            server.name
        ));
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
            // Bidi overrides and isolates reorder what a terminal shows.
            let bidi = matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
            if c.is_control() || bidi {
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

/// The servers of this file by name and by port: what an entry that reaches one of
/// them through mcpctl (`mcpctl connect NAME`, or NAME's own gateway URL) names.
/// Such an entry is what `client link` wrote, not a server to import again.
struct OwnLinks<'e> {
    by_name: HashSet<&'e str>,
    by_port: HashMap<u16, &'e str>,
}

impl<'e> OwnLinks<'e> {
    fn new(existing: &'e [Existing]) -> Self {
        let mut by_port = HashMap::new();
        for e in existing {
            if let Some(port) = e.port {
                by_port.entry(port).or_insert(e.name.as_str());
            }
        }
        Self {
            by_name: existing.iter().map(|e| e.name.as_str()).collect(),
            by_port,
        }
    }

    fn links_here<'a>(&self, entry: &'a Entry) -> Option<&'a str>
    where
        'e: 'a,
    {
        let program = entry
            .command
            .as_deref()
            .map(|c| c.rsplit('/').next().unwrap_or(c));
        if program == Some("mcpctl")
            && let Some(at) = entry.args.iter().position(|a| a == "connect")
            && let Some(name) = entry.args.get(at + 1)
            && let Some(found) = self.by_name.get(name.as_str())
        {
            return Some(found);
        }
        let url = entry.url.as_deref()?;
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))?;
        let (authority, path) = rest.split_at(rest.find('/')?);
        if path != "/mcp" && path != "/sse" {
            return None;
        }
        let (host, port) = authority.rsplit_once(':')?;
        if !["127.0.0.1", "localhost", "[::1]"].contains(&host) {
            return None;
        }
        self.by_port.get(&port.parse::<u16>().ok()?).copied()
    }
}
