use serde::Serialize;

use crate::plan::{Action, Plan, Summary};

#[derive(Serialize)]
struct JsonPlan<'a> {
    format_version: u32,
    has_changes: bool,
    summary: Summary,
    actions: &'a [Action],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    endpoints: &'a [crate::plan::endpoints::EndpointChange],
}

/// The plan as pretty JSON (sensitive values already redacted by `AttrChange`).
pub fn plan_json(plan: &Plan) -> String {
    let doc = JsonPlan {
        format_version: 1,
        has_changes: plan.has_changes(),
        summary: plan.summary(),
        actions: &plan.actions,
        endpoints: &plan.endpoints,
    };
    let mut text =
        serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    text.push('\n');
    text
}
