//! PURE. The endpoint's routing table: from its members' lists (as last read) and the
//! policies, what the agent sees under which name, where each name goes, and why each
//! hidden tool is hidden. Rebuilt whenever a list or a policy changes; consulted on
//! every call, so a tool that is not listed can never be called.
//!
//! Naming, in order: the member's name, prefixed `member__name` as `prefix` says;
//! characters an agent cannot call replaced by `_`; a name over 64 characters cut to
//! a readable stem and a hash of (member, original name); then `rename`. A name
//! already taken (an earlier member's, in `servers` order) stays the earlier one's:
//! the later tool is hidden as shadowed, so no member can take another's tool.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;

use super::discovery::{Discovery, is_meta};
use crate::model::endpoint::{EndpointSpec, is_tool_name};
use crate::model::raw::Prefix;
use crate::policy::pin::{self, Pins};
use crate::policy::{self, Rules};

/// The longest advertised name.
const MAX_NAME: usize = 64;

/// Whether a member can be reached now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberState {
    Up,
    /// Not reachable: its tools vanish (`failure = "open"`), calls say why.
    Down(String),
}

/// One member as the table sees it.
pub struct Member<'a> {
    pub name: &'a str,
    pub state: MemberState,
    /// The server's own policy, on its own names.
    pub policy: &'a Rules,
    pub tools: &'a [Value],
    pub prompts: &'a [Value],
    pub resources: &'a [Value],
    pub templates: &'a [Value],
}

/// Where an advertised name goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub member: String,
    pub original: String,
}

/// A tool or prompt the agent does not see, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HiddenEntry {
    /// The name it would have had.
    pub advertised: String,
    pub member: String,
    pub original: String,
    pub why: String,
    /// The advertised definition's digest, when pinning hides it (what `--pin` takes).
    pub digest: Option<String>,
}

/// One kind of named thing (tools or prompts): what is listed and where names go.
#[derive(Debug, Default, Clone)]
pub struct Named {
    /// The definitions as the agent sees them (advertised name, description).
    pub listed: Vec<Value>,
    pub routes: HashMap<String, Route>,
    pub hidden: Vec<HiddenEntry>,
    /// Names whose member is down: a call is told so instead of "unknown".
    pub down: HashMap<String, String>,
}

impl Table {
    /// The member a `tools/call` or `prompts/get` of `name` goes to.
    pub fn member_of(&self, method: &str, name: &str) -> Option<&str> {
        let named = match method {
            "tools/call" => &self.tools,
            "prompts/get" => &self.prompts,
            _ => return None,
        };
        named.routes.get(name).map(|r| r.member.as_str())
    }
}

#[derive(Debug, Default, Clone)]
pub struct Table {
    pub tools: Named,
    pub prompts: Named,
    /// Resources as listed, each with the member that serves it.
    pub resources: Vec<Value>,
    pub templates: Vec<Value>,
    /// URI -> member; a URI two members list goes to the first.
    pub by_uri: HashMap<String, String>,
    /// (uri, the member that has it, the member shadowed).
    pub uri_clashes: Vec<(String, String, String)>,
    /// Template literal prefixes, in member order: a URI no member lists goes to the
    /// first whose template it fits.
    pub template_prefixes: Vec<(String, String)>,
    /// Member names reported for what they sent (a list too long, garbage).
    pub notes: Vec<String>,
    /// Tools on demand, when the endpoint has `discovery`.
    pub discovery: Option<Discovery>,
}

impl Table {
    /// The member for a `resources/read` of `uri`.
    pub fn member_for_uri(&self, uri: &str) -> Option<&str> {
        self.by_uri.get(uri).map(String::as_str).or_else(|| {
            self.template_prefixes
                .iter()
                .find(|(prefix, _)| !prefix.is_empty() && uri.starts_with(prefix.as_str()))
                .map(|(_, member)| member.as_str())
        })
    }
}

/// Builds the table of `spec` from `members` (in `spec.members` order); with `pins`
/// (`pin = true`), a tool is listed only when its advertised definition is pinned.
pub fn build(spec: &EndpointSpec, members: &[Member<'_>], pins: Option<&Pins>) -> Table {
    let rules = spec.tools.rules();
    let tools = Policies {
        endpoint: Some(&rules),
        servers: true,
        pins,
    };
    let prompts = Policies {
        endpoint: None,
        servers: false,
        pins: None,
    };
    let mut table = Table {
        tools: named(spec, members, |m| m.tools, &tools),
        prompts: named(spec, members, |m| m.prompts, &prompts),
        ..Table::default()
    };
    if let Some(wanted) = &spec.discovery {
        reserve_meta_names(&mut table.tools);
        table.discovery = Some(Discovery::new(wanted, &table.tools));
    }
    for m in members.iter().filter(|m| m.state == MemberState::Up) {
        for resource in m.resources {
            let Some(uri) = resource.get("uri").and_then(Value::as_str) else {
                continue;
            };
            match table.by_uri.get(uri) {
                Some(first) => {
                    table
                        .uri_clashes
                        .push((uri.to_string(), first.clone(), m.name.to_string()));
                }
                None => {
                    table.by_uri.insert(uri.to_string(), m.name.to_string());
                    table.resources.push(resource.clone());
                }
            }
        }
        for template in m.templates {
            let Some(pattern) = template.get("uriTemplate").and_then(Value::as_str) else {
                continue;
            };
            let prefix = pattern.split('{').next().unwrap_or_default().to_string();
            table.template_prefixes.push((prefix, m.name.to_string()));
            table.templates.push(template.clone());
        }
    }
    table
}

/// What filters a kind of named thing: the endpoint's rules, the servers' own, pins.
struct Policies<'p> {
    endpoint: Option<&'p Rules>,
    servers: bool,
    pins: Option<&'p Pins>,
}

/// Tools or prompts of every member, named and filtered.
fn named<'a>(
    spec: &EndpointSpec,
    members: &[Member<'a>],
    lists: impl Fn(&Member<'a>) -> &'a [Value],
    policies: &Policies<'_>,
) -> Named {
    let mut out = Named::default();
    // Names more than one member has, for `prefix = "on-collision"`.
    let mut count: HashMap<&str, usize> = HashMap::new();
    for m in members {
        let mut own = HashSet::new();
        for item in lists(m) {
            if let Some(name) = item.get("name").and_then(Value::as_str)
                && own.insert(name)
            {
                *count.entry(name).or_default() += 1;
            }
        }
    }
    let renamed: BTreeMap<&str, &str> = spec
        .rename
        .iter()
        .map(|(from, to)| (from.as_str(), to.as_str()))
        .collect();
    let member_names: HashSet<&str> = members.iter().map(|m| m.name).collect();
    let mut taken: HashSet<String> = HashSet::new();
    // Renamed names are the operator's: they win over a member's own.
    taken.extend(renamed.values().map(|v| v.to_string()));
    for m in members {
        for item in lists(m) {
            let Some(original) = item.get("name").and_then(Value::as_str) else {
                continue;
            };
            // A name like another member's prefixed ones (`other__x`) is never
            // advertised as it is: it would pass policies written for that member.
            let foreign = original
                .split_once("__")
                .is_some_and(|(p, _)| p != m.name && member_names.contains(p));
            let prefixed = match spec.prefix {
                Prefix::Always => true,
                Prefix::OnCollision => foreign || count.get(original).copied().unwrap_or(0) > 1,
                Prefix::Never => false,
            };
            let advertised = advertise(m.name, original, prefixed);
            let hide = |why: String, out: &mut Named| {
                out.hidden.push(HiddenEntry {
                    advertised: advertised.clone(),
                    member: m.name.to_string(),
                    original: original.to_string(),
                    why,
                    digest: None,
                });
            };
            if original.is_empty() {
                hide("an empty name cannot be called".into(), &mut out);
                continue;
            }
            if foreign && !prefixed {
                hide(
                    "named like another member's tools (prefix = \"never\")".into(),
                    &mut out,
                );
                continue;
            }
            if policies.servers
                && let Err(why) = policy::decide(m.policy, original, item)
            {
                hide(format!("{why} (server {})", m.name), &mut out);
                continue;
            }
            let shown = renamed
                .get(advertised.as_str())
                .map_or(advertised.as_str(), |r| r);
            if let Some(rules) = policies.endpoint {
                // A pattern may name the tool as prefixed, or as renamed.
                if let Err(why) = policy::decide_any(rules, &[&advertised, shown], item) {
                    hide(why.to_string(), &mut out);
                    continue;
                }
            }
            if let MemberState::Down(why) = &m.state {
                out.down.insert(shown.to_string(), m.name.to_string());
                hide(format!("member {} down: {why}", m.name), &mut out);
                continue;
            }
            let is_renamed = shown != advertised;
            if !is_renamed && !taken.insert(shown.to_string()) || out.routes.contains_key(shown) {
                let by = out.routes.get(shown).map_or_else(
                    || "a rename".to_string(),
                    |r| format!("{} of {}", r.original, r.member),
                );
                hide(format!("shadowed by {shown} ({by})"), &mut out);
                continue;
            }
            let mut definition = item.clone();
            definition["name"] = Value::String(shown.to_string());
            if let Some(description) = spec.descriptions.get(shown) {
                definition["description"] = Value::String(description.clone());
            }
            // Pinned as advertised: a member's change, a rename or a description
            // edit all unpin it until it is reviewed again.
            if let Some(pins) = policies.pins
                && let Err(unpinned) = pin::check(pins, shown, &definition)
            {
                out.hidden.push(HiddenEntry {
                    advertised: shown.to_string(),
                    member: m.name.to_string(),
                    original: original.to_string(),
                    why: unpinned.to_string(),
                    digest: Some(pin::digest(&definition)),
                });
                continue;
            }
            out.routes.insert(
                shown.to_string(),
                Route {
                    member: m.name.to_string(),
                    original: original.to_string(),
                },
            );
            out.listed.push(definition);
        }
    }
    out
}

/// With `discovery`, `find_tools` and `use_tools` are the endpoint's own: a member
/// tool advertised under either (by `prefix` or `rename`) is hidden, with why.
fn reserve_meta_names(tools: &mut Named) {
    let taken: Vec<(usize, String)> = tools
        .listed
        .iter()
        .enumerate()
        .filter_map(|(at, t)| {
            let name = t.get("name")?.as_str()?;
            is_meta(name).then(|| (at, name.to_string()))
        })
        .collect();
    for (at, name) in taken.into_iter().rev() {
        tools.listed.remove(at);
        if let Some(route) = tools.routes.remove(&name) {
            tools.hidden.push(HiddenEntry {
                advertised: name.clone(),
                member: route.member,
                original: route.original,
                why: format!("{name} is the endpoint's own while `discovery` is set; rename it"),
                digest: None,
            });
        }
    }
    for name in ["find_tools", "use_tools"] {
        tools.down.remove(name);
    }
}

/// The name an agent sees for `member`'s `original`: prefixed or not, then made
/// callable (`^[A-Za-z0-9_-]{1,64}$`).
pub fn advertise(member: &str, original: &str, prefixed: bool) -> String {
    let base = if prefixed {
        format!("{member}__{original}")
    } else {
        original.to_string()
    };
    if is_tool_name(&base) {
        return base;
    }
    let mut clean: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let changed = clean != base;
    if clean.len() > MAX_NAME || changed || clean.is_empty() {
        // Stable: the same member and name always give the same hash.
        let hash = blake3::hash(format!("{member}\0{original}").as_bytes()).to_hex();
        let hash = &hash[..8];
        clean.truncate(MAX_NAME - hash.len() - 1);
        clean = format!("{clean}_{hash}");
    }
    clean
}

#[cfg(test)]
mod tests;
