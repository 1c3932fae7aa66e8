//! PURE. What converging endpoints would change: each endpoint of the file against
//! what runs, with the fields that differ. No endpoint change restarts a member: a
//! policy, rename, description, discovery or member change is adopted live; a port or bind
//! change re-binds the endpoint alone.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::endpoint::EndpointSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndpointChangeKind {
    Serve,
    /// Adopted live: sessions stay, and hear `list_changed`.
    Update,
    /// Its port, address or `auth` changes: it is served anew (its sessions end).
    Rebind,
    Close,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointChange {
    pub endpoint: String,
    pub kind: EndpointChangeKind,
    /// The fields that differ (`tools.deny`, `rename`, `servers`...).
    pub fields: Vec<String>,
}

/// Every endpoint of either side that differs, in name order.
pub fn diff(
    desired: &BTreeMap<String, EndpointSpec>,
    running: &BTreeMap<String, EndpointSpec>,
) -> Vec<EndpointChange> {
    let mut names: Vec<&String> = desired.keys().chain(running.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|name| {
            let change = |kind, fields| EndpointChange {
                endpoint: name.clone(),
                kind,
                fields,
            };
            match (desired.get(name), running.get(name)) {
                (Some(_), None) => Some(change(EndpointChangeKind::Serve, Vec::new())),
                (None, Some(_)) => Some(change(EndpointChangeKind::Close, Vec::new())),
                (Some(want), Some(have)) => {
                    let fields = fields_that_differ(want, have);
                    if fields.is_empty() {
                        return None;
                    }
                    let rebind = want.port != have.port
                        || want.bind != have.bind
                        || want.auth_tokens != have.auth_tokens
                        || want.auth_oidc != have.auth_oidc;
                    Some(change(
                        if rebind {
                            EndpointChangeKind::Rebind
                        } else {
                            EndpointChangeKind::Update
                        },
                        fields,
                    ))
                }
                (None, None) => None,
            }
        })
        .collect()
}

fn fields_that_differ(a: &EndpointSpec, b: &EndpointSpec) -> Vec<String> {
    let mut out = Vec::new();
    let mut differs = |name: &str, yes: bool| {
        if yes {
            out.push(name.to_string());
        }
    };
    differs("port", a.port != b.port);
    differs("bind", a.bind != b.bind);
    differs("servers", a.members != b.members);
    differs("prefix", a.prefix != b.prefix);
    differs("failure", a.failure != b.failure);
    differs("tools.allow", a.tools.allow != b.tools.allow);
    differs("tools.deny", a.tools.deny != b.tools.deny);
    differs("tools.read_only", a.tools.read_only != b.tools.read_only);
    differs("rename", a.rename != b.rename);
    differs("descriptions", a.descriptions != b.descriptions);
    differs("discovery", a.discovery != b.discovery);
    differs("pin", a.pin != b.pin);
    differs(
        "auth",
        a.auth_tokens != b.auth_tokens || a.auth_oidc != b.auth_oidc,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::raw::{Failure, Prefix};

    fn spec(port: u16) -> EndpointSpec {
        EndpointSpec {
            name: "work".into(),
            port,
            bind: "127.0.0.1".parse().unwrap(),
            members: vec!["a".into()],
            prefix: Prefix::Always,
            failure: Failure::Open,
            tools: Default::default(),
            rename: BTreeMap::new(),
            descriptions: BTreeMap::new(),
            discovery: None,
            auth_tokens: false,
            auth_oidc: None,
            pin: false,
        }
    }

    #[test]
    fn serve_update_rebind_close_and_nothing() {
        let one = |s: EndpointSpec| BTreeMap::from([("work".to_string(), s)]);
        let none = BTreeMap::new();
        assert_eq!(
            diff(&one(spec(1)), &none)[0].kind,
            EndpointChangeKind::Serve
        );
        assert_eq!(
            diff(&none, &one(spec(1)))[0].kind,
            EndpointChangeKind::Close
        );
        assert!(diff(&one(spec(1)), &one(spec(1))).is_empty());
        let mut denied = spec(1);
        denied.tools.deny = vec!["*delete*".into()];
        let update = &diff(&one(denied), &one(spec(1)))[0];
        assert_eq!(
            (update.kind, update.fields.clone()),
            (EndpointChangeKind::Update, vec!["tools.deny".to_string()])
        );
        // Tools on demand switched on: adopted live like a policy.
        let mut discovery = spec(1);
        discovery.discovery = Some(Default::default());
        let update = &diff(&one(discovery), &one(spec(1)))[0];
        assert_eq!(
            (update.kind, update.fields.clone()),
            (EndpointChangeKind::Update, vec!["discovery".to_string()])
        );
        let rebind = &diff(&one(spec(2)), &one(spec(1)))[0];
        assert_eq!(rebind.kind, EndpointChangeKind::Rebind);
    }
}
