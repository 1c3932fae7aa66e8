//! PURE. `[endpoints.NAME]`: a set of servers served behind one port, resolved and
//! checked against the servers of the file (members exist, ports are free, patterns
//! compile, renames are names an agent can call).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

use super::locate::{KeyPath, Locator, key_path};
use super::raw::{Discovery, Failure, Prefix, RawConfig};
use super::spec::{ServerSpec, ToolPolicy};
use crate::diag::Diagnostic;

/// An endpoint as it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointSpec {
    pub name: String,
    pub port: u16,
    pub bind: IpAddr,
    /// Member servers, in the order that decides clashes.
    pub members: Vec<String>,
    pub prefix: Prefix,
    pub failure: Failure,
    #[serde(default, skip_serializing_if = "ToolPolicy::is_open")]
    pub tools: ToolPolicy,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rename: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub descriptions: BTreeMap<String, String>,
    /// Tools on demand (`discovery`); `None` when off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<DiscoverySpec>,
    /// `auth = { tokens = true }`: only callers' tokens get in.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auth_tokens: bool,
    /// `auth = { oidc = ... }`: JWTs of an OpenID provider get in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_oidc: Option<super::oidc::OidcSpec>,
    /// `pin = true`: only tools whose advertised definition is pinned are shown.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pin: bool,
}

/// `discovery`, resolved: when it is on, and what is always listed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoverySpec {
    /// On while the endpoint would list more tools than this; `None`: always on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when_over: Option<usize>,
    /// Advertised names listed in full from the start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub always: Vec<String>,
}

/// The most `always` names: an initial list is meant to stay short.
pub const MAX_ALWAYS: usize = 64;

impl EndpointSpec {
    /// Where clients reach it.
    pub fn url(&self) -> String {
        match self.bind {
            IpAddr::V6(ip) => format!("http://[{ip}]:{}/mcp", self.port),
            IpAddr::V4(ip) => format!("http://{ip}:{}/mcp", self.port),
        }
    }
}

/// Whether `name` is one an agent can call: `^[A-Za-z0-9_-]{1,64}$`.
pub fn is_tool_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Every `[endpoints.*]`, checked; `ports` are the ports servers (and so far other
/// endpoints) use, and get the endpoints' own.
pub(super) fn resolve_endpoints(
    raw: &RawConfig,
    servers: &BTreeMap<String, ServerSpec>,
    ports: &mut BTreeMap<u16, (String, KeyPath)>,
    loc: &Locator<'_>,
    diags: &mut Vec<Diagnostic>,
) -> BTreeMap<String, EndpointSpec> {
    let mut out = BTreeMap::new();
    for (name, raw_endpoint) in &raw.endpoints {
        let before = diags.len();
        let at = key_path(&["endpoints", name]);
        let here = |field: &str| {
            let mut path = at.clone();
            path.push(field.to_string());
            path
        };
        if let Err(why) = super::names::check_name(name) {
            diags.push(
                Diagnostic::new(format!("invalid endpoint name `{name}`"))
                    .at(loc.key(&at), why)
                    .hint("names are lowercase letters, digits, `-` and `_`"),
            );
        }
        if raw.servers.contains_key(name) {
            diags.push(
                Diagnostic::new(format!("`{name}` is both a server and an endpoint"))
                    .at(loc.key(&at), "this endpoint")
                    .hint("give the endpoint a name of its own (`mcpctl tools NAME` takes either)"),
            );
        }
        let port = match raw_endpoint.port {
            Some(p) => match u16::try_from(p) {
                Ok(port) if port > 0 => Some(port),
                _ => {
                    diags.push(
                        Diagnostic::new(format!("port {p} of endpoint `{name}` is out of range"))
                            .at(loc.value(&here("port")), "not between 1 and 65535"),
                    );
                    None
                }
            },
            None => {
                diags.push(
                    Diagnostic::new(format!("endpoint `{name}` has no `port`"))
                        .at(loc.key(&at), "clients need a port to reach it")
                        .hint("add `port = 8100` (any free port)"),
                );
                None
            }
        };
        if let Some(port) = port {
            match ports.get(&port) {
                Some((owner, origin)) => diags.push(
                    Diagnostic::new(format!(
                        "port {port} is used by both `{owner}` and endpoint `{name}`"
                    ))
                    .at(
                        loc.value(&here("port")),
                        format!("endpoint `{name}` uses it here"),
                    )
                    .related(loc.value(origin), format!("`{owner}` uses it here"))
                    .hint("give the endpoint a port of its own"),
                ),
                None => {
                    ports.insert(port, (format!("endpoint {name}"), here("port")));
                }
            }
        }
        let auth_tokens = raw_endpoint.auth.as_ref().is_some_and(|a| a.tokens);
        let auth_oidc = raw_endpoint.auth.as_ref().and_then(|a| {
            let raw = a.oidc.as_ref()?;
            let owner = format!("endpoint `{name}`");
            super::oidc::resolve_oidc(raw, &here("auth"), &owner, loc, diags)
        });
        if raw_endpoint
            .auth
            .as_ref()
            .is_some_and(|a| !a.tokens && a.oidc.is_none())
        {
            diags.push(
                Diagnostic::new(format!("`auth` of endpoint `{name}` lets nobody in"))
                    .at(loc.value(&here("auth")), "neither `tokens = true` nor `oidc`")
                    .hint("`auth = { tokens = true }` (callers' tokens of [tokens.*]) or `auth = { oidc = { issuer, audience } }`"),
            );
        }
        // Callers' tokens or an issuer's JWTs: who comes in is known.
        let guarded = auth_tokens || raw_endpoint.auth.as_ref().is_some_and(|a| a.oidc.is_some());
        let bind = match &raw_endpoint.bind {
            None => Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            Some(text) => {
                match text.parse::<IpAddr>() {
                    Ok(ip) if ip.is_loopback() || guarded => Some(ip),
                    Ok(ip) => {
                        diags.push(
                        Diagnostic::new(format!(
                            "endpoint `{name}` is bound to {ip}, beyond this machine"
                        ))
                        .at(loc.value(&here("bind")), "reachable from the network")
                        .hint("bind 127.0.0.1, or take callers' tokens: `auth = { tokens = true }`"),
                    );
                        None
                    }
                    Err(_) => {
                        diags.push(
                            Diagnostic::new(format!(
                                "`bind` of endpoint `{name}` is not an IP address"
                            ))
                            .at(loc.value(&here("bind")), "not an IP address"),
                        );
                        None
                    }
                }
            }
        };
        let members = members(raw_endpoint, name, servers, &here, loc, diags);
        let at = if raw_endpoint.servers.is_some() {
            here("servers")
        } else {
            here("profile")
        };
        // Without `auth` of its own, serving a member behind `auth` would hand its
        // tools to every local user.
        for member in members.iter().flatten().filter(|_| !guarded) {
            if servers.get(member).is_some_and(ServerSpec::has_auth) {
                diags.push(
                    Diagnostic::new(format!(
                        "endpoint `{name}` serves `{member}`, which has `auth`: an endpoint without `auth` lets anyone who reaches it call `{member}` without the bearer"
                    ))
                    .at(loc.value(&at), "a member behind `auth`")
                    .hint(format!("leave `{member}` out of the endpoint, or give the endpoint `auth = {{ tokens = true }}`")),
                );
            }
        }
        let tools = match &raw_endpoint.tools {
            Some(rules) => super::resolve::tool_policy(rules, loc, &here("tools"), diags),
            None => Some(ToolPolicy::default()),
        };
        let rename = raw_endpoint.rename.clone().unwrap_or_default();
        let mut targets: BTreeMap<&str, &str> = BTreeMap::new();
        for (from, to) in &rename {
            if !is_tool_name(to) {
                diags.push(
                    Diagnostic::new(format!(
                        "endpoint `{name}` renames `{from}` to `{to}`, which no agent can call"
                    ))
                    .at(loc.value(&here("rename")), "here")
                    .hint("a tool name is 1 to 64 letters, digits, `_` or `-`"),
                );
            } else if let Some(first) = targets.insert(to, from) {
                diags.push(
                    Diagnostic::new(format!(
                        "endpoint `{name}` renames both `{first}` and `{from}` to `{to}`"
                    ))
                    .at(loc.value(&here("rename")), "here")
                    .hint("each advertised name must stay one tool's"),
                );
            } else if rename.contains_key(to.as_str()) && to != from {
                diags.push(
                    Diagnostic::new(format!(
                        "endpoint `{name}` renames `{from}` onto `{to}`, a name it renames too"
                    ))
                    .at(loc.value(&here("rename")), "here")
                    .hint("rename onto a name no member advertises"),
                );
            }
        }
        let discovery = raw_endpoint
            .discovery
            .as_ref()
            .and_then(|d| discovery(d, name, &here("discovery"), loc, diags));
        if discovery.is_some() {
            for (from, to) in rename
                .iter()
                .filter(|(_, to)| matches!(to.as_str(), "find_tools" | "use_tools"))
            {
                diags.push(
                    Diagnostic::new(format!(
                        "endpoint `{name}` renames `{from}` to `{to}`, the endpoint's own tool while `discovery` is on"
                    ))
                    .at(loc.value(&here("rename")), "here")
                    .hint("rename it to another name"),
                );
            }
        }
        if guarded && discovery.is_some() {
            // find_tools would rank what a caller may not see: not until it knows callers.
            diags.push(
                Diagnostic::new(format!(
                    "endpoint `{name}` has both `discovery` and `auth`, which do not work together yet"
                ))
                .at(loc.value(&here("discovery")), "tools on demand")
                .hint("drop `discovery`, or take callers' tokens on its members instead"),
            );
        }
        if diags.len() != before {
            continue;
        }
        let (Some(port), Some(bind), Some(members), Some(tools)) = (port, bind, members, tools)
        else {
            continue;
        };
        out.insert(
            name.clone(),
            EndpointSpec {
                name: name.clone(),
                port,
                bind,
                members,
                prefix: raw_endpoint.prefix.unwrap_or(Prefix::Always),
                failure: raw_endpoint.failure.unwrap_or(Failure::Open),
                tools,
                rename,
                descriptions: raw_endpoint.descriptions.clone().unwrap_or_default(),
                discovery,
                auth_tokens,
                auth_oidc,
                pin: raw_endpoint.pin == Some(true),
            },
        );
    }
    out
}

/// `discovery`, checked: `when_over` at least 1, `always` names an agent can call.
fn discovery(
    raw: &Discovery,
    name: &str,
    at: &KeyPath,
    loc: &Locator<'_>,
    diags: &mut Vec<Diagnostic>,
) -> Option<DiscoverySpec> {
    let field = |key: &str| {
        let mut path = at.clone();
        path.push(key.to_string());
        path
    };
    let table = match raw {
        Discovery::Switch(false) => return None,
        Discovery::Switch(true) => return Some(DiscoverySpec::default()),
        Discovery::Table(table) => table,
    };
    let when_over = match table.when_over {
        None => None,
        Some(n) => match usize::try_from(n) {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                diags.push(
                    Diagnostic::new(format!(
                        "`discovery.when_over` of endpoint `{name}` is {n}, below 1"
                    ))
                    .at(loc.value(&field("when_over")), "not a count of tools")
                    .hint("a number of tools, e.g. `when_over = 40`; `discovery = true` keeps it always on"),
                );
                None
            }
        },
    };
    let always = table.always.clone().unwrap_or_default();
    for tool in always.iter().filter(|t| !is_tool_name(t)) {
        diags.push(
            Diagnostic::new(format!(
                "endpoint `{name}` lists `{tool}` in `discovery.always`, which no agent can call"
            ))
            .at(loc.value(&field("always")), "here")
            .hint("an advertised tool name (1 to 64 letters, digits, `_` or `-`), e.g. `fs__read_file`"),
        );
    }
    if always.len() > MAX_ALWAYS {
        diags.push(
            Diagnostic::new(format!(
                "endpoint `{name}` lists {} tools in `discovery.always`, more than {MAX_ALWAYS}",
                always.len()
            ))
            .at(loc.value(&field("always")), "too many")
            .hint("keep the initial list short; agents pull in the rest with `use_tools`"),
        );
    }
    Some(DiscoverySpec { when_over, always })
}

/// The members: `servers` as listed (each must exist, once), or every server of
/// `profile`.
fn members(
    raw: &super::raw::Endpoint,
    name: &str,
    servers: &BTreeMap<String, ServerSpec>,
    here: &dyn Fn(&str) -> KeyPath,
    loc: &Locator<'_>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Vec<String>> {
    match (&raw.servers, &raw.profile) {
        (Some(_), Some(_)) | (None, None) => {
            diags.push(
                Diagnostic::new(format!(
                    "endpoint `{name}` needs either `servers` or `profile`"
                ))
                .at(loc.key(&here("port")[..2]), "which servers it serves")
                .hint("`servers = [\"a\", \"b\"]`, or `profile = \"P\"` for every server using P"),
            );
            None
        }
        (Some(list), None) => {
            let before = diags.len();
            let mut seen = BTreeSet::new();
            for member in list {
                if !seen.insert(member.as_str()) {
                    diags.push(
                        Diagnostic::new(format!("endpoint `{name}` lists `{member}` twice"))
                            .at(loc.value(&here("servers")), "here"),
                    );
                } else if !servers.contains_key(member) {
                    let known: Vec<&str> = servers.keys().map(String::as_str).collect();
                    diags.push(
                        Diagnostic::new(format!(
                            "endpoint `{name}` names server `{member}`, which the file lacks"
                        ))
                        .at(loc.value(&here("servers")), "no such server")
                        .hint(if known.is_empty() {
                            "add it under [servers]".to_string()
                        } else {
                            format!("servers: {}", known.join(", "))
                        }),
                    );
                }
            }
            if list.is_empty() {
                diags.push(
                    Diagnostic::new(format!("endpoint `{name}` has no servers"))
                        .at(loc.value(&here("servers")), "empty"),
                );
            }
            (diags.len() == before).then(|| list.clone())
        }
        (None, Some(profile)) => {
            let list: Vec<String> = servers
                .values()
                .filter(|s| &s.profile == profile)
                .map(|s| s.name.clone())
                .collect();
            if list.is_empty() {
                diags.push(
                    Diagnostic::new(format!(
                        "endpoint `{name}`: no server uses profile `{profile}`"
                    ))
                    .at(loc.value(&here("profile")), "no members")
                    .hint("set `profile = \"...\"` on the servers it should serve, or list them in `servers`"),
                );
                return None;
            }
            Some(list)
        }
    }
}
