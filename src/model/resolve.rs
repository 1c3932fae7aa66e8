//! From the raw file to one effective [`ServerSpec`] per server, with every rule
//! that needs more than one field checked on the way.
//!
//! Resolution order, last wins: built-in defaults, `[defaults]`, `[servers.NAME]`,
//! `[profiles.P]`, `[profiles.P.servers.NAME]`. Each value remembers the key path it
//! came from, so an error about an effective value points at the line that set it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::diag::Diagnostic;

use super::locate::{KeyPath, Locator, key_path};
use super::raw::{Layer, Mode, RawConfig, RestartPolicy, State, Transport};
use super::spec::{DEFAULT_MAX_SESSIONS, SecretRef, ServerSpec};
use super::{Config, DEFAULT_PROFILE, FORMAT_VERSION, names};

mod fields;
mod server;
#[cfg(test)]
pub(super) use fields::parse_size;
use fields::{autoscale, duration, health_check, positive, resource_limits};
use server::resolve_server;

const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(300);
const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// `session_idle` of a `sharing = "per-session"` server: each session holds a process.
const DEFAULT_PER_SESSION_IDLE: Duration = Duration::from_secs(5 * 60);
/// `max_sessions` of a `sharing = "per-session"` server: each session is a process.
const DEFAULT_PER_SESSION_MAX: usize = 100;
const MAX_INSTANCES: i64 = 64;

/// A value and the key path that set it.
#[derive(Debug, Clone)]
struct Sourced<T> {
    value: T,
    origin: KeyPath,
}

/// Every field of a layer after merging, with its origin.
#[derive(Debug, Default)]
struct Merged {
    command: Option<Sourced<String>>,
    args: Option<Sourced<Vec<String>>>,
    cwd: Option<Sourced<String>>,
    env: BTreeMap<String, String>,
    secrets: BTreeMap<String, SecretRef>,
    transport: Option<Sourced<Transport>>,
    mode: Option<Sourced<Mode>>,
    url: Option<Sourced<String>>,
    port: Option<Sourced<i64>>,
    bind: Option<Sourced<String>>,
    profile: Option<Sourced<String>>,
    state: Option<Sourced<State>>,
    sharing: Option<Sourced<super::raw::Sharing>>,
    instances: Option<Sourced<i64>>,
    /// `instances` and `autoscale` are one choice: a layer's own replaces the other's.
    autoscale: Option<Sourced<super::raw::Autoscale>>,
    /// Where one layer set both.
    both_counts: Option<Vec<String>>,
    restart: Option<Sourced<RestartPolicy>>,
    stop_timeout: Option<Sourced<String>>,
    start_timeout: Option<Sourced<String>>,
    call_timeout: Option<Sourced<String>>,
    drain_timeout: Option<Sourced<String>>,
    session_idle: Option<Sourced<String>>,
    max_sessions: Option<Sourced<i64>>,
    health: Option<Sourced<super::raw::Health>>,
    limits: Option<Sourced<super::raw::Limits>>,
    auth: Option<Sourced<super::raw::Auth>>,
    network: Option<Sourced<super::raw::Network>>,
    tools: Option<Sourced<super::raw::ToolRules>>,
    pin: Option<Sourced<bool>>,
    tls: Option<Sourced<super::raw::Tls>>,
    image: Option<Sourced<String>>,
    headers: BTreeMap<String, String>,
}

impl Merged {
    fn apply(&mut self, layer: &Layer, at: &[String]) {
        let origin = |field: &str| {
            let mut path = at.to_vec();
            path.push(field.to_string());
            path
        };
        macro_rules! take {
            ($($field:ident),*) => {$(
                if let Some(value) = &layer.$field {
                    self.$field = Some(Sourced { value: value.clone(), origin: origin(stringify!($field)) });
                }
            )*};
        }
        take!(
            command,
            args,
            cwd,
            transport,
            mode,
            url,
            port,
            bind,
            profile,
            state,
            sharing,
            instances,
            autoscale,
            restart,
            stop_timeout,
            start_timeout,
            call_timeout,
            drain_timeout,
            session_idle,
            max_sessions,
            health,
            limits,
            auth,
            network,
            tools,
            pin,
            tls,
            image
        );
        match (&layer.instances, &layer.autoscale) {
            (Some(_), Some(_)) => self.both_counts = Some(origin("autoscale")),
            (Some(_), None) => self.autoscale = None,
            (None, Some(_)) => self.instances = None,
            (None, None) => {}
        }
        if let Some(secrets) = &layer.secrets {
            for (key, ciphertext) in secrets {
                let place = [at, std::slice::from_ref(key)].concat().join(".");
                let secret = SecretRef {
                    place,
                    ciphertext: ciphertext.clone(),
                    digest: None,
                };
                self.secrets.insert(key.clone(), secret);
            }
        }
        if let Some(headers) = &layer.headers {
            self.headers
                .extend(headers.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        if let Some(env) = &layer.env {
            self.env
                .extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
}

/// Resolves and validates the whole file. All problems are reported, not just the first.
pub(super) fn resolve(raw: &RawConfig, loc: &Locator<'_>) -> Result<Config, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    check_version(raw, loc, &mut diags);
    check_structure(raw, loc, &mut diags);

    let mut servers = BTreeMap::new();
    let mut ports: BTreeMap<u16, (String, KeyPath)> = BTreeMap::new();
    for (name, layer) in &raw.servers {
        let Some((spec, port_origin)) = resolve_server(raw, name, layer, loc, &mut diags) else {
            continue;
        };
        if let Some((first, first_origin)) = ports.get(&spec.port) {
            diags.push(
                Diagnostic::new(format!(
                    "port {} is used by both `{first}` and `{name}`",
                    spec.port
                ))
                .at(loc.value(&port_origin), format!("`{name}` uses it here"))
                .related(loc.value(first_origin), format!("`{first}` uses it here"))
                .hint("give each server a port of its own"),
            );
        } else {
            ports.insert(spec.port, (name.clone(), port_origin));
        }
        servers.insert(name.clone(), spec);
    }

    let endpoints = super::endpoint::resolve_endpoints(raw, &servers, &mut ports, loc, &mut diags);
    let metrics = resolve_listen(raw, loc, &mut ports, Listen::Metrics, &mut diags);
    let ui = resolve_listen(raw, loc, &mut ports, Listen::Ui, &mut diags);
    let tokens = super::token::resolve_tokens(raw, loc, &mut diags);
    let telemetry = super::telemetry::resolve(raw.telemetry.as_ref(), loc, &mut diags);
    if diags.is_empty() {
        let mut profiles: BTreeSet<String> = raw.profiles.keys().cloned().collect();
        profiles.insert(DEFAULT_PROFILE.to_string());
        Ok(Config {
            servers,
            profiles,
            metrics,
            ui,
            endpoints,
            tokens,
            telemetry,
        })
    } else {
        Err(diags)
    }
}

/// What the daemon listens on besides the servers' ports.
#[derive(Clone, Copy)]
enum Listen {
    Metrics,
    Ui,
}

impl Listen {
    fn key(self) -> &'static str {
        match self {
            Self::Metrics => "metrics",
            Self::Ui => "ui",
        }
    }
}

/// `[daemon] metrics` / `[daemon] ui`: an address with a port nothing else uses (the
/// dashboard on loopback only: it has no TLS).
fn resolve_listen(
    raw: &RawConfig,
    loc: &Locator<'_>,
    ports: &mut BTreeMap<u16, (String, KeyPath)>,
    which: Listen,
    diags: &mut Vec<Diagnostic>,
) -> Option<std::net::SocketAddr> {
    let daemon = raw.daemon.as_ref()?;
    let key = which.key();
    let text = match which {
        Listen::Metrics => daemon.metrics.as_deref()?,
        Listen::Ui => daemon.ui.as_deref()?,
    };
    let at = loc.value(&["daemon", key]);
    let Ok(addr) = text.trim().parse::<std::net::SocketAddr>() else {
        diags.push(
            Diagnostic::new(format!("`{text}` is not an address to listen on"))
                .at(at, "here")
                .hint(format!(
                    "write an IP address and a port, e.g. `{key} = \"127.0.0.1:{}\"`",
                    match which {
                        Listen::Metrics => 9464,
                        Listen::Ui => 9470,
                    }
                )),
        );
        return None;
    };
    if matches!(which, Listen::Ui) && !addr.ip().is_loopback() {
        diags.push(
            Diagnostic::new(format!(
                "the dashboard listens on loopback only, not on {}",
                addr.ip()
            ))
            .at(at, "here")
            .hint("use 127.0.0.1 (or [::1]) and reach it from elsewhere through `ssh -L`"),
        );
        return None;
    }
    if addr.port() == 0 {
        return Some(addr);
    }
    if let Some((owner, origin)) = ports.get(&addr.port()) {
        diags.push(
            Diagnostic::new(format!(
                "port {} is used by both `{owner}` and `[daemon] {key}`",
                addr.port()
            ))
            .at(at.clone(), format!("the {key} listen here"))
            .related(loc.value(origin), format!("`{owner}` uses it here"))
            .hint(format!("give the {key} a port of their own")),
        );
        return None;
    }
    ports.insert(
        addr.port(),
        (
            format!("[daemon] {key}"),
            vec!["daemon".to_string(), key.to_string()],
        ),
    );
    Some(addr)
}

fn check_version(raw: &RawConfig, loc: &Locator<'_>, diags: &mut Vec<Diagnostic>) {
    match raw.version {
        Some(FORMAT_VERSION) => {}
        Some(other) => diags.push(
            Diagnostic::new(format!("unsupported format version {other}"))
                .at(loc.value(&["version"]), "this mcpctl reads version 1")
                .hint("set `version = 1`, or use the mcpctl release that wrote this file"),
        ),
        None => diags.push(
            Diagnostic::new("missing `version`")
                .at(Some(0..0), "")
                .hint("add `version = 1` at the top of the file"),
        ),
    }
}

/// Rules about where things may be written, independent of resolution.
fn check_structure(raw: &RawConfig, loc: &Locator<'_>, diags: &mut Vec<Diagnostic>) {
    let mut layers: Vec<(KeyPath, &Layer)> = Vec::new();
    if let Some(defaults) = &raw.defaults {
        layers.push((key_path(&["defaults"]), defaults));
        if defaults.servers.is_some() {
            diags.push(misplaced_servers(loc, &["defaults", "servers"]));
        }
    }
    for (name, layer) in &raw.servers {
        let at = key_path(&["servers", name]);
        if let Err(why) = names::check_name(name) {
            diags.push(invalid_name(loc, &at, "server", name, &why));
        }
        if layer.servers.is_some() {
            diags.push(misplaced_servers(loc, &["servers", name, "servers"]));
        }
        layers.push((at, layer));
    }
    for (profile, layer) in &raw.profiles {
        let at = key_path(&["profiles", profile]);
        if let Err(why) = names::check_name(profile) {
            diags.push(invalid_name(loc, &at, "profile", profile, &why));
        }
        if layer.profile.is_some() {
            diags.push(profile_in_profile(loc, &["profiles", profile, "profile"]));
        }
        for (server, over) in layer.servers.iter().flatten() {
            let at = key_path(&["profiles", profile, "servers", server]);
            if !raw.servers.contains_key(server) {
                diags.push(
                    Diagnostic::new(format!(
                        "profile `{profile}` overrides unknown server `{server}`"
                    ))
                    .at(loc.key(&at), "no such server")
                    .hint(known_list("servers", raw.servers.keys())),
                );
            }
            if over.profile.is_some() {
                diags.push(profile_in_profile(
                    loc,
                    &[&at[..], &["profile".into()]].concat(),
                ));
            }
            if over.servers.is_some() {
                diags.push(misplaced_servers(
                    loc,
                    &[&at[..], &["servers".into()]].concat(),
                ));
            }
            layers.push((at, over));
        }
        layers.push((at, layer));
    }
    for (at, layer) in layers {
        for (table, keys) in [
            ("env", layer.env.as_ref()),
            ("secrets", layer.secrets.as_ref()),
        ] {
            for key in keys.into_iter().flat_map(|map| map.keys()) {
                if let Err(why) = names::check_env_name(key) {
                    let path = [&at[..], &[table.into(), key.clone()]].concat();
                    diags.push(
                        Diagnostic::new(format!("invalid environment variable name `{key}`"))
                            .at(loc.key(&path), why)
                            .hint("use letters, digits and `_`, not starting with a digit"),
                    );
                }
            }
        }
        for (key, value) in layer.env.iter().flatten() {
            if let Err(why) = names::check_env_value(key, value) {
                let path = [&at[..], &["env".into(), key.clone()]].concat();
                diags.push(
                    Diagnostic::new(format!("env `{key}` cannot be passed to a process: {why}"))
                        .at(loc.value(&path), "this value")
                        .hint("a server's environment holds C strings of at most 128 KiB each (KEY=VALUE): put a large value in a file and pass its path"),
                );
            }
        }
        for (key, value) in layer.secrets.iter().flatten() {
            if !value.starts_with(SECRET_PREFIX) {
                let path = [&at[..], &["secrets".into(), key.clone()]].concat();
                diags.push(
                    Diagnostic::new(format!("secret `{key}` is not encrypted"))
                        .at(loc.value(&path), "plaintext is never allowed here")
                        .hint(format!(
                            "remove it and run `mcpctl config secret set {key}` (the value is read from stdin)"
                        )),
                );
            }
        }
    }
    for (i, recipient) in raw
        .secrets
        .iter()
        .flat_map(|s| s.recipients.iter())
        .enumerate()
    {
        if !recipient.starts_with("age1") {
            let at = loc.value(&["secrets", "recipients"]);
            diags.push(
                Diagnostic::new(format!(
                    "recipient {} is not an age X25519 public key",
                    i + 1
                ))
                .at(at, format!("`{recipient}`"))
                .hint("recipients look like `age1...`; `mcpctl config secret keygen` prints yours"),
            );
        }
    }
}

/// The `NAME`s of the `${NAME}` placeholders in a header template.
pub fn template_names(template: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        names.push(&after[..end]);
        rest = &after[end + 1..];
    }
    names
}

/// How every secret value in the file starts.
pub const SECRET_PREFIX: &str = "age:";

/// A `tools` table, its patterns checked (each bad one reported where it is written).
pub(super) fn tool_policy(
    rules: &super::raw::ToolRules,
    loc: &Locator<'_>,
    at: &[String],
    diags: &mut Vec<Diagnostic>,
) -> Option<super::spec::ToolPolicy> {
    let before = diags.len();
    for (key, list) in [("allow", &rules.allow), ("deny", &rules.deny)] {
        for (i, text) in list.iter().flatten().enumerate() {
            if let Err(why) = crate::policy::Glob::new(text) {
                let mut path = at.to_vec();
                path.push(key.to_string());
                let span = loc.value(&path).or_else(|| loc.value(at));
                diags.push(
                    Diagnostic::new(format!("`tools.{key}[{i}]`: {why}"))
                        .at(span, "here")
                        .hint("patterns are globs: `*` any run of characters, `?` one, `[abc]` one of"),
                );
            }
        }
    }
    (diags.len() == before).then(|| super::spec::ToolPolicy {
        allow: rules.allow.clone().unwrap_or_default(),
        deny: rules.deny.clone().unwrap_or_default(),
        read_only: rules.read_only.unwrap_or(false),
    })
}

/// The network a server runs in: as the file says for a local server, and by default
/// its own when it speaks HTTP behind `auth` (its inner port would otherwise let any
/// local user call it without the bearer). A remote server runs nothing here.
pub fn network_of(
    local: bool,
    transport: Transport,
    auth: bool,
    chosen: Option<super::raw::Network>,
) -> super::raw::Network {
    use super::raw::Network;
    match chosen {
        _ if !local => Network::Host,
        Some(network) => network,
        None if auth && transport != Transport::Stdio => Network::Isolated,
        None => Network::Host,
    }
}

fn invalid_name(loc: &Locator<'_>, at: &[String], kind: &str, name: &str, why: &str) -> Diagnostic {
    Diagnostic::new(format!("invalid {kind} name `{name}`"))
        .at(loc.key(at), why.to_string())
        .hint(names::NAME_HINT)
}

fn misplaced_servers(loc: &Locator<'_>, at: &[impl AsRef<str>]) -> Diagnostic {
    Diagnostic::new("`servers` is only allowed inside a profile")
        .at(loc.key(at), "not allowed here")
        .hint("declare servers at the top level as `[servers.NAME]`; per-server overrides go in `[profiles.P.servers.NAME]`")
}

fn profile_in_profile(loc: &Locator<'_>, at: &[impl AsRef<str>]) -> Diagnostic {
    Diagnostic::new("a profile cannot select another profile")
        .at(loc.key(at), "not allowed in a profile")
        .hint("set `profile = \"...\"` in `[servers.NAME]` or `[defaults]` instead")
}

/// "known servers: a, b" (or "there are no servers yet").
pub fn known_list<'a>(kind: &str, names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() {
        format!("there are no {kind} yet")
    } else {
        format!("known {kind}: {}", names.join(", "))
    }
}
