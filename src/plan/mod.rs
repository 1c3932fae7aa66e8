//! The plan engine: `plan(desired, observed) -> Plan`. Pure; no tokio, fs, process
//! or clock.
//!
//! A plan is a value. The human renderer, `--format json` and (later) the daemon's
//! executor all consume the same `Plan`, so what is shown is what is done.

pub mod endpoints;
pub mod saved;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::spec::{AttrValue, Attribute, Effect, State};
use crate::model::{ServerSpec, SpecHash};

/// What runs: per server, the spec its instances were started from and how many run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    pub servers: BTreeMap<String, ObservedServer>,
    /// The endpoints being served, as they were last converged.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub endpoints: BTreeMap<String, crate::model::endpoint::EndpointSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedServer {
    pub spec: ServerSpec,
    /// Instances currently running.
    pub instances: u32,
    /// Autoscaled to no instance at all: it still serves (the next request starts one).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub scaled_to_zero: bool,
}

impl Observed {
    /// Nothing running (what is observed while no daemon runs).
    pub fn nothing() -> Self {
        Self::default()
    }

    /// What runs once `desired` has been converged to.
    pub fn converged(desired: &BTreeMap<String, ServerSpec>) -> Self {
        let servers = desired
            .iter()
            .filter(|(_, s)| s.state == State::Running)
            .map(|(name, spec)| {
                let running = ObservedServer {
                    spec: spec.clone(),
                    instances: spec.instances,
                    scaled_to_zero: false,
                };
                (name.clone(), running)
            })
            .collect();
        Self {
            servers,
            endpoints: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionKind {
    Start,
    Stop,
    /// The spec hash changed: stop the old instances, start new ones.
    Replace,
    ScaleUp,
    ScaleDown,
    /// Only fields the supervisor can adopt without a restart changed.
    Update,
    NoOp,
}

impl ActionKind {
    /// What it does, as a word (`start a`, `restart b`).
    pub fn verb(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Replace => "restart",
            Self::ScaleUp => "scale up",
            Self::ScaleDown => "scale down",
            Self::Update => "update",
            Self::NoOp => "keep",
        }
    }

    /// Terraform-style symbol.
    pub fn symbol(self) -> &'static str {
        match self {
            Self::Start => "+",
            Self::Stop => "-",
            Self::Replace => "-/+",
            Self::ScaleUp | Self::ScaleDown | Self::Update => "~",
            Self::NoOp => " ",
        }
    }
}

/// One attribute that differs between what runs and what is desired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrChange {
    pub name: &'static str,
    pub before: Option<AttrValue>,
    pub after: Option<AttrValue>,
    pub effect: Effect,
    pub sensitive: bool,
}

impl AttrChange {
    pub fn forces_restart(&self) -> bool {
        self.effect == Effect::Restart
    }
}

/// Written by hand so that a sensitive value can never reach the JSON form: it is
/// replaced by `"(sensitive)"` before serialization sees it.
impl Serialize for AttrChange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let shown = |v: &Option<AttrValue>| match (v, self.sensitive) {
            (Some(_), true) => Some(AttrValue::Text(SENSITIVE.to_string())),
            (v, _) => v.clone(),
        };
        let mut st = s.serialize_struct("AttrChange", 5)?;
        st.serialize_field("name", self.name)?;
        st.serialize_field("before", &shown(&self.before))?;
        st.serialize_field("after", &shown(&self.after))?;
        st.serialize_field("effect", &self.effect)?;
        st.serialize_field("sensitive", &self.sensitive)?;
        st.end()
    }
}

/// What a sensitive value looks like in every output.
pub const SENSITIVE: &str = "(sensitive)";

/// The change planned for one server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    pub server: String,
    pub kind: ActionKind,
    /// Every attribute that differs; for start and stop, all of them.
    pub changes: Vec<AttrChange>,
    pub instances_before: u32,
    pub instances_after: u32,
    /// The spec to run afterwards (`None` for stop and for a stopped no-op).
    #[serde(skip)]
    pub target: Option<ServerSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec_hash: Option<SpecHash>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// One entry per server known on either side, in name order; unchanged ones are `no-op`.
    pub actions: Vec<Action>,
    /// Endpoints that would change (see [`endpoints::diff`]).
    pub endpoints: Vec<endpoints::EndpointChange>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub start: usize,
    pub restart: usize,
    pub update: usize,
    pub stop: usize,
}

impl Plan {
    pub fn has_changes(&self) -> bool {
        self.actions.iter().any(|a| a.kind != ActionKind::NoOp) || !self.endpoints.is_empty()
    }

    /// The plan with what converging `desired` endpoints would change.
    pub fn with_endpoints(
        mut self,
        desired: &BTreeMap<String, crate::model::endpoint::EndpointSpec>,
        observed: &Observed,
    ) -> Self {
        self.endpoints = endpoints::diff(desired, &observed.endpoints);
        self
    }

    pub fn changes(&self) -> impl Iterator<Item = &Action> {
        self.actions.iter().filter(|a| a.kind != ActionKind::NoOp)
    }

    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for action in &self.actions {
            match action.kind {
                ActionKind::Start => s.start += 1,
                ActionKind::Replace => s.restart += 1,
                ActionKind::ScaleUp | ActionKind::ScaleDown | ActionKind::Update => s.update += 1,
                ActionKind::Stop => s.stop += 1,
                ActionKind::NoOp => {}
            }
        }
        s
    }

    /// `observed` after every action has been carried out: what the executor must
    /// reach. Used to check that plans converge.
    pub fn simulate(&self, observed: &Observed) -> Observed {
        let mut after = observed.clone();
        for action in &self.actions {
            match (&action.kind, &action.target) {
                (ActionKind::Stop, _) => {
                    after.servers.remove(&action.server);
                }
                (ActionKind::NoOp, _) | (_, None) => {}
                (_, Some(spec)) => {
                    let running = ObservedServer {
                        spec: spec.clone(),
                        instances: action.instances_after,
                        scaled_to_zero: action.instances_after == 0 && spec.autoscale.is_some(),
                    };
                    after.servers.insert(action.server.clone(), running);
                }
            }
        }
        after
    }
}

/// Diffs desired specs against what runs.
pub fn plan(desired: &BTreeMap<String, ServerSpec>, observed: &Observed) -> Plan {
    let mut names: Vec<&String> = desired.keys().chain(observed.servers.keys()).collect();
    names.sort();
    names.dedup();
    let actions = names
        .into_iter()
        .map(|name| {
            let want = desired.get(name).filter(|s| s.state == State::Running);
            let present = observed.servers.get(name);
            // A server the file no longer runs is stopped even with no instance held
            // (a crash loop still holds its port and its supervisors); one it runs
            // with none held is started again.
            let have = match want {
                None => present,
                Some(_) => present.filter(|o| o.instances > 0 || o.scaled_to_zero),
            };
            plan_server(name, want, have)
        })
        .collect();
    Plan {
        actions,
        endpoints: Vec::new(),
    }
}

/// Narrows a plan to the servers in `only` (all when empty, and `restart` counts as
/// one of them), and turns `restart`'s action into a replace of what runs. The plan
/// the CLI shows and the one the daemon executes both come through here.
pub fn focus(mut plan: Plan, only: &[String], restart: Option<&str>) -> Plan {
    if !only.is_empty() || restart.is_some() {
        plan.actions
            .retain(|a| only.contains(&a.server) || restart == Some(a.server.as_str()));
    }
    if let Some(name) = restart {
        for action in plan.actions.iter_mut().filter(|a| a.server == name) {
            if action.target.is_some()
                && action.instances_before > 0
                && action.kind != ActionKind::Replace
            {
                action.kind = ActionKind::Replace;
            }
        }
    }
    plan
}

fn plan_server(name: &str, want: Option<&ServerSpec>, have: Option<&ObservedServer>) -> Action {
    let action = |kind, changes, before, after, target: Option<&ServerSpec>| Action {
        server: name.to_string(),
        kind,
        changes,
        instances_before: before,
        instances_after: after,
        spec_hash: target.map(SpecHash::of),
        target: target.cloned(),
    };
    match (want, have) {
        (None, None) => action(ActionKind::NoOp, Vec::new(), 0, 0, None),
        (Some(spec), None) => {
            let changes = diff(&[], &spec.attributes());
            action(ActionKind::Start, changes, 0, spec.instances, Some(spec))
        }
        (None, Some(running)) => {
            let changes = diff(&running.spec.attributes(), &[]);
            action(ActionKind::Stop, changes, running.instances, 0, None)
        }
        (Some(spec), Some(running)) => {
            // An autoscaled count is the autoscaler's: only one outside the bounds moves.
            let autoscaled;
            let spec = match spec.autoscale {
                Some(bounds) => {
                    autoscaled = ServerSpec {
                        instances: running.instances.clamp(bounds.min, bounds.max),
                        ..spec.clone()
                    };
                    &autoscaled
                }
                None => spec,
            };
            let mut before = running.spec.attributes();
            // The instance count that matters is what runs, not what was asked for.
            set_instances(&mut before, running.instances);
            let changes = diff(&before, &spec.attributes());
            let kind = if SpecHash::of(spec) != SpecHash::of(&running.spec) {
                ActionKind::Replace
            } else if spec.instances > running.instances {
                ActionKind::ScaleUp
            } else if spec.instances < running.instances {
                ActionKind::ScaleDown
            } else if !changes.is_empty() {
                ActionKind::Update
            } else {
                ActionKind::NoOp
            };
            action(kind, changes, running.instances, spec.instances, Some(spec))
        }
    }
}

fn set_instances(attributes: &mut [Attribute], instances: u32) {
    // An autoscaled spec has no count of its own (`None`): nothing to compare.
    for a in attributes
        .iter_mut()
        .filter(|a| a.effect == Effect::Scale && a.value.is_some())
    {
        a.value = Some(AttrValue::Number(u64::from(instances)));
    }
}

/// Attribute-level differences. Attribute lists come from `ServerSpec::attributes`,
/// so both sides name the same attributes in the same order.
fn diff(before: &[Attribute], after: &[Attribute]) -> Vec<AttrChange> {
    let mut names: Vec<&'static str> = after.iter().map(|a| a.name).collect();
    names.extend(
        before
            .iter()
            .map(|a| a.name)
            .filter(|n| !after.iter().any(|a| a.name == *n)),
    );
    names
        .into_iter()
        .filter_map(|name| {
            let old = before.iter().find(|a| a.name == name);
            let new = after.iter().find(|a| a.name == name);
            let old_value = old.and_then(|a| a.value.clone());
            let new_value = new.and_then(|a| a.value.clone());
            if old_value == new_value {
                return None;
            }
            let meta = new.or(old)?;
            Some(AttrChange {
                name,
                before: old_value,
                after: new_value,
                effect: meta.effect,
                sensitive: old.is_some_and(|a| a.sensitive) || new.is_some_and(|a| a.sensitive),
            })
        })
        .collect()
}
