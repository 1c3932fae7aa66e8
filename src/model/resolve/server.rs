//! One server's effective spec: its layers merged (defaults, the server, its profile,
//! the profile's override of it), each group of fields checked where it was written,
//! and the spec built when nothing but secrets not set yet is wrong. Diagnostics come
//! in the order the steps run.

use super::*;

/// One server's effective spec and where its port is written; `None` after reporting
/// what is wrong in `diags`.
pub(super) fn resolve_server(
    raw: &RawConfig,
    name: &str,
    own: &Layer,
    loc: &Locator<'_>,
    diags: &mut Vec<Diagnostic>,
) -> Option<(ServerSpec, KeyPath)> {
    let server_path = key_path(&["servers", name]);
    let (m, profile) = merge(raw, name, own, &server_path, loc, diags);
    let before = diags.len();
    let at = Site {
        name,
        path: &server_path,
        loc,
    };
    check_env_and_secrets(&m, &at, diags);
    let mode = m.mode.as_ref().map_or(Mode::Local, |s| s.value);
    let (command, url) = what_runs(&m, mode, &at, diags);
    let (port, bind) = where_served(&m, &at, diags);
    let (instances, autoscale) = how_many(&m, mode, &at, diags);
    let timings = timings(&m, &at, diags);
    let health = health_check(name, m.health.as_ref(), loc, diags);
    let limits = resource_limits(name, m.limits.as_ref(), loc, diags);
    check_transport_and_headers(&m, mode, &at, diags);
    let (auth_bearer, auth_tokens, auth_oidc) = access(&m, bind, &at, diags);
    let tools = m
        .tools
        .as_ref()
        .and_then(|t| tool_policy(&t.value, loc, &t.origin, diags));
    // A secret not set yet (pending) still lets the spec be built: the checks across
    // servers (ports, endpoints) must see it, or a missing secret hides new problems.
    if diags[before..].iter().any(|d| !d.pending) {
        return None;
    }
    let Timings {
        stop_timeout,
        start_timeout,
        call_timeout,
        drain_timeout,
        session_idle,
        max_sessions,
    } = timings;
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
            .map_or(super::super::raw::Sharing::Multiplex, |s| s.value),
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

/// Where a server is written, for its diagnostics.
struct Site<'a> {
    name: &'a str,
    path: &'a [String],
    loc: &'a Locator<'a>,
}

impl Site<'_> {
    fn server(&self) -> Option<std::ops::Range<usize>> {
        self.loc.key(self.path)
    }
}

/// The server's layers merged in order, and its profile (an unknown one reported).
fn merge(
    raw: &RawConfig,
    name: &str,
    own: &Layer,
    server_path: &[String],
    loc: &Locator<'_>,
    diags: &mut Vec<Diagnostic>,
) -> (Merged, String) {
    let mut m = Merged::default();
    if let Some(defaults) = &raw.defaults {
        m.apply(defaults, &key_path(&["defaults"]));
    }
    m.apply(own, server_path);

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

    (m, profile)
}

fn check_env_and_secrets(m: &Merged, at: &Site<'_>, diags: &mut Vec<Diagnostic>) {
    let (name, server_path, loc) = (at.name, at.path, at.loc);
    for key in m.secrets.keys().filter(|k| m.env.contains_key(*k)) {
        diags.push(
            Diagnostic::new(format!(
                "server `{name}` sets `{key}` both in `env` and in `secrets`"
            ))
            .at(loc.key(server_path), "one of them must go")
            .hint("keep it in `secrets` if it is sensitive, else in `env`"),
        );
    }
}

/// `command` (local) and `url` (remote, or a local server's own HTTP address).
fn what_runs(
    m: &Merged,
    mode: Mode,
    at: &Site<'_>,
    diags: &mut Vec<Diagnostic>,
) -> (Option<String>, Option<String>) {
    let (name, loc) = (at.name, at.loc);
    let at_server = || at.server();
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

    (command, url)
}

/// The gateway's port (and where it is written) and its address.
fn where_served(
    m: &Merged,
    at: &Site<'_>,
    diags: &mut Vec<Diagnostic>,
) -> (Option<(u16, KeyPath)>, Option<IpAddr>) {
    let (name, loc) = (at.name, at.loc);
    let at_server = || at.server();
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

    (port, bind)
}

/// `instances` or `autoscale` (one or the other), and what autoscale cannot go with.
fn how_many(
    m: &Merged,
    mode: Mode,
    at: &Site<'_>,
    diags: &mut Vec<Diagnostic>,
) -> (Option<u32>, Option<Option<super::super::spec::Autoscale>>) {
    let (name, loc) = (at.name, at.loc);
    let at_server = || at.server();
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
        && sharing.value == super::super::raw::Sharing::PerSession
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
    (instances, autoscale)
}

/// The timeouts and the session bounds, checked (`None`: reported).
struct Timings {
    stop_timeout: Option<Duration>,
    start_timeout: Option<Duration>,
    call_timeout: Option<Duration>,
    drain_timeout: Option<Duration>,
    session_idle: Option<Duration>,
    max_sessions: Option<usize>,
}

fn timings(m: &Merged, at: &Site<'_>, diags: &mut Vec<Diagnostic>) -> Timings {
    let (name, loc) = (at.name, at.loc);
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
        .is_some_and(|s| s.value == super::super::raw::Sharing::PerSession);
    let session_idle = duration(
        name,
        "session_idle",
        &m.session_idle,
        if per_session {
            DEFAULT_PER_SESSION_IDLE
        } else {
            super::super::spec::DEFAULT_SESSION_IDLE
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
            .is_some_and(|s| s.value == super::super::raw::Sharing::PerSession) =>
        {
            Some(DEFAULT_PER_SESSION_MAX)
        }
        None => Some(DEFAULT_MAX_SESSIONS),
    };
    Timings {
        stop_timeout,
        start_timeout,
        call_timeout,
        drain_timeout,
        session_idle,
        max_sessions,
    }
}

/// A remote server's transport, a header's `${NAME}`s, and legacy SSE's one instance.
fn check_transport_and_headers(m: &Merged, mode: Mode, at: &Site<'_>, diags: &mut Vec<Diagnostic>) {
    let (name, server_path, loc) = (at.name, at.path, at.loc);
    let at_server = || at.server();
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
                let at = loc.value(&[server_path, &["headers".to_string(), key.clone()]].concat());
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
}

/// `auth`: the owner's bearer, callers' tokens, an OIDC issuer; and a server beyond
/// loopback without any.
fn access(
    m: &Merged,
    bind: Option<IpAddr>,
    at: &Site<'_>,
    diags: &mut Vec<Diagnostic>,
) -> (Option<String>, bool, Option<super::super::oidc::OidcSpec>) {
    let (name, loc) = (at.name, at.loc);
    let at_server = || at.server();
    let auth_bearer = m.auth.as_ref().and_then(|a| a.value.bearer.clone());
    let auth_tokens = m
        .auth
        .as_ref()
        .is_some_and(|a| a.value.tokens == Some(true));
    let auth_oidc = m.auth.as_ref().and_then(|a| {
        let raw = a.value.oidc.as_ref()?;
        super::super::oidc::resolve_oidc(raw, &a.origin, &format!("server `{name}`"), loc, diags)
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
    (auth_bearer, auth_tokens, auth_oidc)
}
