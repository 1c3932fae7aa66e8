//! Saved plans (`plan --out FILE`, `apply FILE`): a plan with digests of the inputs it
//! was made from, and the pure check that those inputs are still the same. As with
//! Terraform's saved plans, a plan is only applied to the state it was made against:
//! the plan is a pure function of the file and what runs, so the same two inputs give
//! exactly the same plan.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Observed, Plan};
use crate::model::ServerSpec;

pub const FORMAT: &str = "mcpctl-plan";
pub const FORMAT_VERSION: u64 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedPlan {
    pub format: String,
    pub format_version: u64,
    /// The config file it was made for.
    pub config: String,
    /// [`crate::config::digest`] of its text.
    pub file_digest: String,
    /// [`observed_digest`] of what ran.
    pub observed_digest: String,
    /// Per server, a digest of its effective spec in the file.
    pub desired: BTreeMap<String, String>,
    /// Per server, a digest of what ran of it.
    pub observed: BTreeMap<String, String>,
    /// The plan, as `plan --format json` shows its actions (secrets as `(sensitive)`).
    pub plan: serde_json::Value,
}

fn digest_of<T: Serialize>(value: &T) -> String {
    let text = serde_json::to_string(value).unwrap_or_default();
    format!("blake3:{}", blake3::hash(text.as_bytes()).to_hex())
}

/// A digest of everything the plan reads of what runs.
pub fn observed_digest(observed: &Observed) -> String {
    digest_of(observed)
}

fn desired_digests(desired: &BTreeMap<String, ServerSpec>) -> BTreeMap<String, String> {
    desired
        .iter()
        .map(|(n, s)| (n.clone(), digest_of(s)))
        .collect()
}

fn observed_digests(observed: &Observed) -> BTreeMap<String, String> {
    observed
        .servers
        .iter()
        .map(|(n, s)| (n.clone(), digest_of(s)))
        .collect()
}

impl SavedPlan {
    pub fn new(
        config: String,
        file_digest: String,
        desired: &BTreeMap<String, ServerSpec>,
        observed: &Observed,
        plan: &Plan,
    ) -> Self {
        Self {
            format: FORMAT.to_string(),
            format_version: FORMAT_VERSION,
            config,
            file_digest,
            observed_digest: observed_digest(observed),
            desired: desired_digests(desired),
            observed: observed_digests(observed),
            plan: serde_json::to_value(plan).unwrap_or_default(),
        }
    }

    /// Reads a saved plan; `Err` says why it is not one this build applies.
    pub fn parse(text: &str) -> Result<Self, String> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("it is not JSON ({e})"))?;
        if value.get("format").and_then(serde_json::Value::as_str) != Some(FORMAT) {
            return Err(format!(
                "it is not a saved plan (no \"format\": \"{FORMAT}\")"
            ));
        }
        match value
            .get("format_version")
            .and_then(serde_json::Value::as_u64)
        {
            Some(FORMAT_VERSION) => {}
            Some(v) => {
                return Err(format!(
                    "it is saved plan format {v}; this mcpctl reads {FORMAT_VERSION}"
                ));
            }
            None => return Err("it has no `format_version`".into()),
        }
        serde_json::from_value(value).map_err(|e| format!("it is not a valid saved plan: {e}"))
    }

    /// What moved since the plan was made, one line each; empty when it still holds.
    pub fn what_changed(
        &self,
        config: &str,
        file_digest: &str,
        desired: &BTreeMap<String, ServerSpec>,
        observed: &Observed,
        plan: &Plan,
    ) -> Vec<String> {
        let mut changed = Vec::new();
        if self.config != config {
            changed.push(format!("it was made for {}, not {config}", self.config));
        }
        if self.file_digest != file_digest {
            let servers = differing(&self.desired, &desired_digests(desired));
            changed.push(if servers.is_empty() {
                "the file changed (no server's spec did: comments or layout)".to_string()
            } else {
                format!("the file changed: {}", servers.join(", "))
            });
        }
        if self.observed_digest != observed_digest(observed) {
            let servers = differing(&self.observed, &observed_digests(observed));
            changed.push(format!(
                "what runs changed: {}",
                if servers.is_empty() {
                    "(the daemon's view)".to_string()
                } else {
                    servers.join(", ")
                }
            ));
        }
        if changed.is_empty() && self.plan != serde_json::to_value(plan).unwrap_or_default() {
            changed.push(
                "the plan in the file is not what its file and running state plan now (the plan file was edited, or another mcpctl version wrote it)".into(),
            );
        }
        changed
    }
}

/// `NAME (added|removed|changed)` for each server whose digest differs.
fn differing(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<String> {
    let mut names: Vec<&String> = before.keys().chain(after.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|n| match (before.get(n), after.get(n)) {
            (Some(a), Some(b)) if a == b => None,
            (Some(_), Some(_)) => Some(format!("{n} (changed)")),
            (None, _) => Some(format!("{n} (added)")),
            (_, None) => Some(format!("{n} (removed)")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::plan;

    fn desired(port: u16) -> BTreeMap<String, ServerSpec> {
        let text = format!(
            "version = 1\n[servers.a]\ncommand = \"x\"\nport = {port}\n[servers.b]\ncommand = \"y\"\nport = 2\n"
        );
        crate::model::parse(&text).unwrap().servers
    }

    #[test]
    fn a_plan_holds_until_its_inputs_move_and_then_says_which() {
        let d = desired(1);
        let nothing = Observed::nothing();
        let p = plan(&d, &nothing);
        let saved = SavedPlan::new("f".into(), "h1".into(), &d, &nothing, &p);
        let text = serde_json::to_string(&saved).unwrap();
        let saved = SavedPlan::parse(&text).unwrap();
        assert!(saved.what_changed("f", "h1", &d, &nothing, &p).is_empty());

        let d2 = desired(3);
        let changed = saved.what_changed("f", "h2", &d2, &nothing, &plan(&d2, &nothing));
        assert_eq!(changed, vec!["the file changed: a (changed)".to_string()]);
        let same = saved.what_changed("f", "h2", &d, &nothing, &p);
        assert_eq!(
            same,
            vec!["the file changed (no server's spec did: comments or layout)".to_string()]
        );

        let running = Observed::converged(&d);
        let changed = saved.what_changed("f", "h1", &d, &running, &plan(&d, &running));
        assert_eq!(
            changed,
            vec!["what runs changed: a (added), b (added)".to_string()]
        );
        assert_eq!(
            saved.what_changed("g", "h1", &d, &nothing, &p),
            vec!["it was made for f, not g".to_string()]
        );
    }

    #[test]
    fn what_is_not_a_saved_plan_is_refused_with_why() {
        assert!(SavedPlan::parse("nope").unwrap_err().contains("not JSON"));
        assert!(
            SavedPlan::parse("{}")
                .unwrap_err()
                .contains("not a saved plan")
        );
        let newer = format!("{{\"format\": \"{FORMAT}\", \"format_version\": 9}}");
        assert!(SavedPlan::parse(&newer).unwrap_err().contains("format 9"));
    }
}
