//! A server's own tool policy (`tools = { allow, deny, read_only }`) on its own port:
//! `tools/list` answers filtered, and a call of a hidden tool refused with the answer
//! an unknown tool gets, before it reaches the server. The decision is
//! `crate::policy::decide`, the one endpoints use; a new policy is adopted live.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::Upstream;
use crate::policy::caller::ToolView;
use crate::policy::pin::{self, Pins};
use crate::policy::{self, Rules};
use crate::wire::jsonrpc::INVALID_PARAMS;

/// The policy of one server's port, and the definitions it last listed (a
/// `read_only` decision needs a tool's annotations).
#[derive(Default)]
pub struct ToolGate {
    rules: RwLock<Arc<Rules>>,
    definitions: RwLock<HashMap<String, Value>>,
    /// `pin = true`: the definitions as pinned in `mcpctl.lock`.
    pins: RwLock<Option<Arc<Pins>>>,
    /// What the pins hid from the last list, with why (for `status`).
    unpinned: RwLock<Vec<String>>,
    /// Lists being filtered as they come: they end with the port.
    tasks: crate::gateway::owned::Scope,
}

impl ToolGate {
    pub fn new(rules: Rules) -> Arc<Self> {
        Arc::new(Self {
            rules: RwLock::new(Arc::new(rules)),
            definitions: RwLock::default(),
            pins: RwLock::default(),
            unpinned: RwLock::default(),
            tasks: crate::gateway::owned::Scope::new(),
        })
    }

    /// Ends the lists being filtered (the port closed).
    pub fn end_tasks(&self) {
        self.tasks.end();
    }

    /// Pins from now on (`None`: the server does not pin); whether they changed.
    pub fn set_pins(&self, pins: Option<Pins>) -> bool {
        let Ok(mut current) = self.pins.write() else {
            return false;
        };
        if current.as_deref() == pins.as_ref() {
            return false;
        }
        *current = pins.map(Arc::new);
        true
    }

    fn pins(&self) -> Option<Arc<Pins>> {
        self.pins.read().ok().and_then(|p| p.clone())
    }

    pub fn set(&self, rules: Rules) {
        if let Ok(mut r) = self.rules.write() {
            *r = Arc::new(rules);
        }
    }

    fn rules(&self) -> Arc<Rules> {
        self.rules
            .read()
            .map(|r| Arc::clone(&r))
            .unwrap_or_default()
    }

    /// `Err(answer)` when `method` calls a tool the policy hides: the error an
    /// unknown tool gets (nothing tells a hidden tool from a missing one). A
    /// `read_only` decision about a tool not seen listed yet reads the list first.
    pub async fn check(
        &self,
        upstream: &Upstream,
        method: &str,
        params: Option<&Value>,
        caller: Option<&ToolView>,
    ) -> Result<(), Value> {
        let rules = self.rules();
        let name = called(method, params);
        let pinned = self.pins().is_some();
        let unseen = name.is_some_and(|name| {
            (pinned || policy::decide_by_name(&rules, name).is_none())
                && self.definitions.read().is_ok_and(|d| !d.contains_key(name))
        });
        if unseen {
            self.relist(upstream).await;
        }
        self.check_known(method, params, caller)
    }

    /// [`Self::check`] for a server reached over HTTP (no channel to ask its list on
    /// the side): a `read_only` decision uses the definitions its last `tools/list`
    /// through this port gave, and a tool not seen there yet is refused (closed).
    pub fn check_known(
        &self,
        method: &str,
        params: Option<&Value>,
        caller: Option<&ToolView>,
    ) -> Result<(), Value> {
        match (
            self.why_refused(method, params, caller),
            called(method, params),
        ) {
            (Some(_), Some(name)) => Err(unknown_tool(name)),
            _ => Ok(()),
        }
    }

    /// Why a request is refused by the policy (the caller's patterns first, then the
    /// server's), if it is: what the audit says, while the caller only hears "unknown
    /// tool".
    pub fn why_refused(
        &self,
        method: &str,
        params: Option<&Value>,
        caller: Option<&ToolView>,
    ) -> Option<String> {
        let name = called(method, params)?;
        // `NAME` beside `name`: a server that matches keys without case (Go's) could
        // call the other tool than the one decided on.
        let ambiguous = params.and_then(Value::as_object).is_some_and(|p| {
            p.keys()
                .any(|k| k != "name" && k.eq_ignore_ascii_case("name"))
        });
        if ambiguous {
            return Some("the tool's name is given twice, in two cases".into());
        }
        if caller.is_some_and(|c| !c.permits(name)) {
            return Some("outside the caller's patterns".into());
        }
        let rules = self.rules();
        let pins = self.pins();
        if rules.is_open() && pins.is_none() {
            return None;
        }
        let definition = || {
            self.definitions
                .read()
                .ok()
                .and_then(|d| d.get(name).cloned())
                .unwrap_or(Value::Null)
        };
        let verdict = policy::decide_by_name(&rules, name)
            .unwrap_or_else(|| policy::decide(&rules, name, &definition()));
        if let Err(hidden) = verdict {
            return Some(format!("tool policy: {hidden}"));
        }
        let pins = pins?;
        pin::check(&pins, name, &definition())
            .err()
            .map(|unpinned| format!("tool pinning: {unpinned}"))
    }

    /// A `tools/list` answer (a whole message) filtered in place, for `caller` too;
    /// the definitions kept.
    pub fn filter_answer(&self, answer: &mut Value, caller: Option<&ToolView>) {
        if let Some(tools) = answer
            .pointer_mut("/result/tools")
            .and_then(Value::as_array_mut)
        {
            self.remember(tools);
            self.filter_by_policy(tools);
            if let Some(caller) = caller {
                caller.filter(tools);
            }
        }
    }

    /// Whether lists need filtering at all.
    pub fn is_open(&self) -> bool {
        self.rules().is_open() && self.pins().is_none()
    }

    /// The server's policy and its pins applied to a list.
    fn filter_by_policy(&self, tools: &mut Vec<Value>) {
        policy::filter_tools(&self.rules(), tools);
        if let Some(pins) = self.pins() {
            let mut hidden = Vec::new();
            tools.retain(|tool| {
                let name = tool.get("name").and_then(Value::as_str).unwrap_or_default();
                let verdict = pin::check(&pins, name, tool);
                if let Err(why) = verdict {
                    hidden.push(format!("{name}: {why}"));
                }
                verdict.is_ok()
            });
            // Bounded by the list, which the server's answer size bounds.
            if let Ok(mut u) = self.unpinned.write() {
                *u = hidden;
            }
        }
    }

    /// What the pins hid from the last list (`tool: why`).
    pub fn unpinned(&self) -> Vec<String> {
        if self.pins().is_none() {
            return Vec::new();
        }
        self.unpinned.read().map(|u| u.clone()).unwrap_or_default()
    }

    /// Reads the server's tools now (for a `read_only` decision).
    async fn relist(&self, upstream: &Upstream) {
        let Ok(answer) = upstream.request("tools/list", Some(json!({}))).await else {
            return;
        };
        let tools = answer
            .pointer("/result/tools")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        self.remember(&tools);
    }

    fn remember(&self, tools: &[Value]) {
        let map: HashMap<String, Value> = tools
            .iter()
            .filter_map(|t| Some((t.get("name")?.as_str()?.to_string(), t.clone())))
            .collect();
        if let Ok(mut d) = self.definitions.write() {
            *d = map;
        }
    }

    /// The answer to a `tools/list`, filtered once it comes (other methods pass as they
    /// are).
    pub fn filter(
        self: &Arc<Self>,
        method: &str,
        reply: oneshot::Receiver<Value>,
        caller: Option<Arc<ToolView>>,
    ) -> oneshot::Receiver<Value> {
        if method != "tools/list" || (self.is_open() && caller.is_none()) {
            return reply;
        }
        let (tx, filtered) = oneshot::channel();
        let gate = Arc::clone(self);
        self.tasks.spawn(async move {
            let Ok(mut answer) = reply.await else { return };
            if let Some(tools) = answer
                .pointer_mut("/result/tools")
                .and_then(Value::as_array_mut)
            {
                gate.remember(tools);
                gate.filter_by_policy(tools);
                if let Some(caller) = &caller {
                    caller.filter(tools);
                }
            }
            let _ = tx.send(answer);
        });
        filtered
    }
}

/// What an unknown (or hidden) tool's call is answered.
fn unknown_tool(name: &str) -> Value {
    json!({"code": INVALID_PARAMS, "message": format!("unknown tool: {name}")})
}

/// The tool a `tools/call` names (`None` for any other method).
fn called<'p>(method: &str, params: Option<&'p Value>) -> Option<&'p str> {
    if method != "tools/call" {
        return None;
    }
    Some(
        params
            .and_then(|p| p.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default(),
    )
}
