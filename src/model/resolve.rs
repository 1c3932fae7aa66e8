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
#[cfg(test)]
pub(super) use fields::parse_size;
use fields::{autoscale, duration, health_check, positive, resource_limits};

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
    let metrics = resolve_metrics(raw, loc, &ports, &mut diags);
    let tokens = super::token::resolve_tokens(raw, loc, &mut diags);
    let telemetry = super::telemetry::resolve(raw.telemetry.as_ref(), loc, &mut diags);
    if diags.is_empty() {
        let mut profiles: BTreeSet<String> = raw.profiles.keys().cloned().collect();
        profiles.insert(DEFAULT_PROFILE.to_string());
        Ok(Config {
            servers,
            profiles,
            metrics,
            endpoints,
            tokens,
            telemetry,
        })
    } else {
        Err(diags)
    }
}

/// `[daemon] metrics`: an address with a port no server uses.
fn resolve_metrics(
    raw: &RawConfig,
    loc: &Locator<'_>,
    ports: &BTreeMap<u16, (String, KeyPath)>,
    diags: &mut Vec<Diagnostic>,
) -> Option<std::net::SocketAddr> {
    let text = raw.daemon.as_ref()?.metrics.as_deref()?;
    let at = loc.value(&["daemon", "metrics"]);
    let Ok(addr) = text.trim().parse::<std::net::SocketAddr>() else {
        diags.push(
            Diagnostic::new(format!("`{text}` is not an address to listen on"))
                .at(at, "here")
                .hint("write an IP address and a port, e.g. `metrics = \"127.0.0.1:9464\"`"),
        );
        return None;
    };
    if let Some((server, origin)) = ports.get(&addr.port()) {
        diags.push(
            Diagnostic::new(format!(
                "port {} is used by both `{server}` and `[daemon] metrics`",
                addr.port()
            ))
            .at(at, "the metrics listen here")
            .related(loc.value(origin), format!("`{server}` uses it here"))
            .hint("give the metrics a port of their own"),
        );
        return None;
    }
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

fn resolve_server(
    raw: &RawConfig,
    name: &str,
    own: &Layer,
    loc: &Locator<'_>,
    diags: &mut Vec<Diagnostic>,
) -> Option<(ServerSpec, KeyPath)> {
    let server_path = key_path(&["servers", name]);
    let mut m = Merged::default();
    if let Some(defaults) = &raw.defaults {
        m.apply(defaults, &key_path(&["defaults"]));
    }
    m.apply(own, &server_path);

    let profile = m
        .profile
        .as_ref()
        .map_or(DEFAULT_PROFILE, |p| p.value.as_str())
        .to_string();
    match raw.profiles.get(&profile) {
        Some(layer) => {
            m.apply(layer, &key_path(&["profiles", &profile]));
            if let Some(over) = layer.servers.as_ref().and_then(|s| s.get(name)) {
                m.apply(over, &key_path(&["profiles", &profile, "servers", name]));
            }
        }
        None if profile == DEFAULT_PROFILE => {}
        None => {
            let origin = m
                .profile
                .as_ref()
                .map(|p| p.origin.clone())
                .unwrap_or_default();
            diags.push(
                Diagnostic::new(format!(
                    "server `{name}` uses profile `{profile}`, which does not exist"
                ))
                .at(loc.value(&origin), "unknown profile")
                .hint(format!(
                    "{}; create it with `mcpctl profile create {profile}`",
                    known_list(
                        "profiles",
                        std::iter::once(&DEFAULT_PROFILE.to_string()).chain(raw.profiles.keys())
                    )
                )),
            );
        }
    }

    let before = diags.len();
    for key in m.secrets.keys().filter(|k| m.env.contains_key(*k)) {
        diags.push(
            Diagnostic::new(format!(
                "server `{name}` sets `{key}` both in `env` and in `secrets`"
            ))
            .at(loc.key(&server_path), "one of them must go")
            .hint("keep it in `secrets` if it is sensitive, else in `env`"),
        );
    }
    let mode = m.mode.as_ref().map_or(Mode::Local, |s| s.value);
    let at_server = || loc.key(&server_path);

    let command = match (mode, &m.command) {
        (Mode::Remote, _) => None,
        (Mode::Local, Some(c)) if c.value.trim().is_empty() => {
            diags.push(
                Diagnostic::new(format!("server `{name}` has an empty `command`"))
                    .at(loc.value(&c.origin), "empty")
                    .hint("name the program to run, e.g. `command = \"npx\"`"),
            );
            None
        }
        (Mode::Local, Some(c)) => Some(c.value.clone()),
        (Mode::Local, None) => {
            diags.push(
                Diagnostic::new(format!("server `{name}` has no `command`"))
                    .at(at_server(), "local servers need a command")
                    .hint("add `command = \"...\"`, or set `mode = \"remote\"` and a `url`"),
            );
            None
        }
    };

    let url = match (&m.url, mode) {
        (Some(u), _) if !(u.value.starts_with("http://") || u.value.starts_with("https://")) => {
            diags.push(
                Diagnostic::new(format!("server `{name}` has an invalid `url`"))
                    .at(loc.value(&u.origin), "not an http:// or https:// address")
                    .hint("write the full address, e.g. `url = \"https://mcp.example.com/mcp\"`"),
            );
            None
        }
        (Some(u), _) => Some(u.value.clone()),
        (None, Mode::Remote) => {
            let at = m.mode.as_ref().and_then(|s| loc.value(&s.origin));
            diags.push(
                Diagnostic::new(format!("server `{name}` is remote but has no `url`"))
                    .at(at.or_else(at_server), "remote servers need a url")
                    .hint(
                        "add `url = \"https://...\"`, or use `mode = \"local\"` with a `command`",
                    ),
            );
            None
        }
        (None, Mode::Local) => None,
    };

    let port = match &m.port {
        Some(p) => match u16::try_from(p.value) {
            Ok(port) if port > 0 => Some((port, p.origin.clone())),
            _ => {
                diags.push(
                    Diagnostic::new(format!(
                        "port {} of server `{name}` is out of range",
                        p.value
                    ))
                    .at(loc.value(&p.origin), "not a port")
                    .hint("use a port between 1 and 65535"),
                );
                None
            }
        },
        None => {
            diags.push(
                Diagnostic::new(format!("server `{name}` has no `port`"))
                    .at(at_server(), "mcpctl needs a port to serve it on")
                    .hint("add `port = 8000` (any free port between 1 and 65535)"),
            );
            None
        }
    };

    let bind = match &m.bind {
        Some(b) => match b.value.parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                diags.push(
                    Diagnostic::new(format!("`bind` of server `{name}` is not an IP address"))
                        .at(loc.value(&b.origin), "not an IP address")
                        .hint("use an address such as \"127.0.0.1\", \"0.0.0.0\" or \"::1\""),
                );
                None
            }
        },
        None => Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
    };

    let instances = match &m.instances {
        Some(i) if (1..=MAX_INSTANCES).contains(&i.value) => u32::try_from(i.value).ok(),
        Some(i) => {
            diags.push(
                Diagnostic::new(format!("`instances` of server `{name}` is out of range"))
                    .at(loc.value(&i.origin), "not between 1 and 64")
                    .hint("use 1 to 64 instances; use `state = \"stopped\"` to run none"),
            );
            None
        }
        None => Some(1),
    };

    if let Some(at) = &m.both_counts {
        diags.push(
            Diagnostic::new(format!(
                "server `{name}` sets both `instances` and `autoscale`"
            ))
            .at(loc.value(at), "one or the other")
            .hint("keep `instances = N` for a fixed count, or `autoscale = { min, max, ... }` to follow the load"),
        );
    }
    let autoscale = autoscale(name, m.autoscale.as_ref(), loc, diags);
    let scaled = autoscale.as_ref().and_then(Option::as_ref);
    if let (Some(_), Some(sharing)) = (scaled, &m.sharing)
        && sharing.value == super::raw::Sharing::PerSession
    {
        diags.push(
            Diagnostic::new(format!(
                "server `{name}` has `sharing = \"per-session\"` and `autoscale`"
            ))
            .at(
                loc.value(&sharing.origin),
                "each session has a process of its own",
            )
            .hint("per-session servers follow their sessions already: remove `autoscale`"),
        );
    }
    if let (Some(_), Mode::Remote) = (scaled, mode) {
        diags.push(
            Diagnostic::new(format!("server `{name}` is remote and has `autoscale`"))
                .at(at_server(), "a remote server runs no process")
                .hint("remove `autoscale`"),
        );
    }
    if let (Some(_), Mode::Local, Some(t)) = (scaled, mode, &m.transport)
        && t.value != Transport::Stdio
    {
        diags.push(
            Diagnostic::new(format!(
                "server `{name}` speaks HTTP itself: `autoscale` is for stdio servers"
            ))
            .at(loc.value(&t.origin), "not stdio")
            .hint("the gateway measures sessions and calls of stdio servers only: use `instances = N` here"),
        );
    }
    let stop_timeout = duration(
        name,
        "stop_timeout",
        &m.stop_timeout,
        DEFAULT_STOP_TIMEOUT,
        loc,
        diags,
    );
    let start_timeout = duration(
        name,
        "start_timeout",
        &m.start_timeout,
        DEFAULT_START_TIMEOUT,
        loc,
        diags,
    );

    let call_timeout = positive(
        name,
        "call_timeout",
        &m.call_timeout,
        DEFAULT_CALL_TIMEOUT,
        loc,
        diags,
    );
    let drain_timeout = duration(
        name,
        "drain_timeout",
        &m.drain_timeout,
        DEFAULT_DRAIN_TIMEOUT,
        loc,
        diags,
    );
    let per_session = m
        .sharing
        .as_ref()
        .is_some_and(|s| s.value == super::raw::Sharing::PerSession);
    let session_idle = duration(
        name,
        "session_idle",
        &m.session_idle,
        if per_session {
            DEFAULT_PER_SESSION_IDLE
        } else {
            super::spec::DEFAULT_SESSION_IDLE
        },
        loc,
        diags,
    );
    let max_sessions = match &m.max_sessions {
        Some(n) => match usize::try_from(n.value) {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                diags.push(
                    Diagnostic::new(format!(
                        "`max_sessions` of server `{name}` must be at least 1, not {}",
                        n.value
                    ))
                    .at(loc.value(&n.origin), "not a positive count")
                    .hint("the default is 10000 (100 with sharing = \"per-session\")"),
                );
                None
            }
        },
        // Each per-session session is a process of its own: far fewer by default.
        None if m
            .sharing
            .as_ref()
            .is_some_and(|s| s.value == super::raw::Sharing::PerSession) =>
        {
            Some(DEFAULT_PER_SESSION_MAX)
        }
        None => Some(DEFAULT_MAX_SESSIONS),
    };
    let health = health_check(name, m.health.as_ref(), loc, diags);
    let limits = resource_limits(name, m.limits.as_ref(), loc, diags);

    if let (Mode::Remote, Some(t)) = (mode, &m.transport)
        && t.value == Transport::Stdio
    {
        diags.push(
            Diagnostic::new(format!(
                "server `{name}` is remote but its transport is `stdio`"
            ))
            .at(loc.value(&t.origin), "a remote server speaks HTTP")
            .hint("use `transport = \"streamable-http\"` (or `\"sse\"`), or `mode = \"local\"`"),
        );
    }
    for (key, template) in &m.headers {
        for var in template_names(template) {
            if !m.env.contains_key(var) && !m.secrets.contains_key(var) {
                let at =
                    loc.value(&[&server_path[..], &["headers".to_string(), key.clone()]].concat());
                diags.push(
                    Diagnostic::new(format!(
                        "header `{key}` of server `{name}` uses `${{{var}}}`, which is neither in its env nor in its secrets"
                    ))
                    .at(at.or_else(at_server), "unknown name")
                    .hint(format!("set it with `mcpctl config secret set {var} --server {name}`"))
                    .pending(),
                );
            }
        }
    }
    if let (Mode::Local, Some(t), Some(i)) = (mode, &m.transport, &m.instances)
        && t.value == Transport::Sse
        && i.value > 1
    {
        diags.push(
            Diagnostic::new(format!(
                "server `{name}` speaks legacy HTTP+SSE: only one instance is supported"
            ))
            .at(loc.value(&i.origin), "more than one")
            .hint("use `instances = 1`, or `transport = \"streamable-http\"` or stdio for a pool"),
        );
    }
    let auth_bearer = m.auth.as_ref().and_then(|a| a.value.bearer.clone());
    let auth_tokens = m
        .auth
        .as_ref()
        .is_some_and(|a| a.value.tokens == Some(true));
    let auth_oidc = m.auth.as_ref().and_then(|a| {
        let raw = a.value.oidc.as_ref()?;
        super::oidc::resolve_oidc(raw, &a.origin, &format!("server `{name}`"), loc, diags)
    });
    match (&m.auth, bind) {
        (Some(auth), _)
            if auth.value.bearer.is_none() && !auth_tokens && auth.value.oidc.is_none() =>
        {
            diags.push(
            Diagnostic::new(format!("`auth` of server `{name}` lets nobody in"))
                .at(loc.value(&auth.origin), "neither `bearer`, `tokens = true` nor `oidc`")
                .hint("`auth = { bearer = \"SECRET\" }` (one owner's token), `auth = { tokens = true }` (callers' tokens of [tokens.*]), `auth = { oidc = { issuer, audience } }` (an OpenID provider's JWTs), or several"),
            );
        }
        (Some(auth), _)
            if auth
                .value
                .bearer
                .as_ref()
                .is_some_and(|b| !m.secrets.contains_key(b)) =>
        {
            let bearer = auth.value.bearer.clone().unwrap_or_default();
            diags.push(
                Diagnostic::new(format!(
                    "`auth` of server `{name}` names secret `{bearer}`, which the server does not have"
                ))
                .at(loc.value(&auth.origin), "no such secret")
                .hint(format!(
                    "set it with `mcpctl config secret set {bearer} --server {name}`"
                ))
                .pending(),
            );
        }
        (None, Some(ip)) if !ip.is_loopback() => {
            let at = m.bind.as_ref().and_then(|b| loc.value(&b.origin));
            diags.push(
                Diagnostic::new(format!("server `{name}` is bound to {ip}, beyond this machine, without `auth`"))
                    .at(at.or_else(at_server), "reachable from the network")
                    .hint(format!(
                        "add `auth = {{ bearer = \"TOKEN\" }}` and `mcpctl config secret set TOKEN --server {name}`, or bind 127.0.0.1"
                    )),
            );
        }
        _ => {}
    }
    let tools = m
        .tools
        .as_ref()
        .and_then(|t| tool_policy(&t.value, loc, &t.origin, diags));
    // A secret not set yet (pending) still lets the spec be built: the checks across
    // servers (ports, endpoints) must see it, or a missing secret hides new problems.
    if diags[before..].iter().any(|d| !d.pending) {
        return None;
    }
    let (port, port_origin) = port?;
    let local = mode == Mode::Local;
    let transport = m.transport.map_or(
        // A remote server speaks HTTP; Streamable HTTP unless it says otherwise.
        if local {
            Transport::Stdio
        } else {
            Transport::StreamableHttp
        },
        |t| t.value,
    );
    let network = network_of(
        local,
        transport,
        m.auth.is_some(),
        m.network.map(|n| n.value),
    );
    let spec = ServerSpec {
        name: name.to_string(),
        command,
        args: m
            .args
            .filter(|_| local)
            .map(|a| a.value)
            .unwrap_or_default(),
        cwd: m.cwd.filter(|_| local).map(|c| c.value),
        env: m.env,
        secrets: m.secrets,
        transport,
        tools: tools.unwrap_or_default(),
        pin: m.pin.as_ref().is_some_and(|p| p.value),
        network,
        mode,
        url,
        port,
        bind: bind?,
        profile,
        state: m.state.map_or(State::Running, |s| s.value),
        sharing: m
            .sharing
            .map_or(super::raw::Sharing::Multiplex, |s| s.value),
        instances: match &autoscale {
            Some(Some(a)) => a.initial(),
            _ => instances?,
        },
        autoscale: autoscale?,
        restart: m.restart.map_or(RestartPolicy::OnFailure, |r| r.value),
        stop_timeout: stop_timeout?,
        start_timeout: start_timeout?,
        call_timeout: call_timeout?,
        drain_timeout: drain_timeout?,
        session_idle: session_idle?,
        max_sessions: max_sessions?,
        health: health?,
        limits: limits?,
        auth_bearer,
        auth_tokens,
        auth_oidc,
        tls: m.tls.map(|t| t.value),
        image: m.image.map(|i| i.value),
        headers: m.headers,
    };
    Some((spec, port_origin))
}

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
