//! Terraform-style plan text: `+` start, `-` stop, `~` update or scale, `-/+` replace,
//! attribute diffs (lists and maps line by line through `similar`), `# forces restart`
//! on attributes that cause a replace, and `(sensitive)` for secret values.

use std::fmt::Write as _;

use similar::{ChangeTag, TextDiff};

use super::Colour;
use crate::model::spec::AttrValue;
use crate::plan::endpoints::{EndpointChange, EndpointChangeKind};
use crate::plan::{Action, ActionKind, AttrChange, Plan, SENSITIVE};

pub fn plan_text(plan: &Plan, colour: Colour) -> String {
    if !plan.has_changes() {
        return "No changes. The running servers match the configuration.\n".to_string();
    }
    let mut out = String::from("mcpctl will perform the following actions:\n\n");
    for action in plan.changes() {
        render_action(&mut out, action, colour);
        out.push('\n');
    }
    for change in &plan.endpoints {
        render_endpoint(&mut out, change, colour);
    }
    if !plan.endpoints.is_empty() {
        out.push('\n');
    }
    let s = plan.summary();
    let endpoints = match plan.endpoints.len() {
        0 => String::new(),
        1 => ", 1 endpoint to change".to_string(),
        n => format!(", {n} endpoints to change"),
    };
    let _ = writeln!(
        out,
        "{} {} to start, {} to restart, {} to update, {} to stop{endpoints}.",
        colour.bold("Plan:"),
        s.start,
        s.restart,
        s.update,
        s.stop
    );
    out
}

/// `+ endpoint work`, `~ endpoint work: tools.deny (live, no member restarts)`.
fn render_endpoint(out: &mut String, change: &EndpointChange, colour: Colour) {
    let fields = change.fields.join(", ");
    let line = match change.kind {
        EndpointChangeKind::Serve => format!(
            "{} endpoint {} will be served",
            colour.green("+"),
            change.endpoint
        ),
        EndpointChangeKind::Close => format!(
            "{} endpoint {} will be closed",
            colour.red("-"),
            change.endpoint
        ),
        EndpointChangeKind::Update => format!(
            "{} endpoint {}: {fields} (live: sessions stay, no member restarts)",
            colour.yellow("~"),
            change.endpoint
        ),
        EndpointChangeKind::Rebind => format!(
            "{} endpoint {}: {fields} (served anew: its sessions end, no member restarts)",
            colour.yellow("~"),
            change.endpoint
        ),
    };
    let _ = writeln!(out, "  {line}");
}

fn symbol(kind: ActionKind, colour: Colour) -> String {
    let sym = kind.symbol();
    match kind {
        ActionKind::Start => colour.green(sym),
        ActionKind::Stop => colour.red(sym),
        ActionKind::Replace => format!("{}/{}", colour.red("-"), colour.green("+")),
        _ => colour.yellow(sym),
    }
}

fn plural(n: u32) -> &'static str {
    if n == 1 { "instance" } else { "instances" }
}

fn headline(action: &Action) -> String {
    let (before, after) = (action.instances_before, action.instances_after);
    match action.kind {
        ActionKind::Start => format!("will be started ({after} {})", plural(after)),
        ActionKind::Stop => format!("will be stopped ({before} {})", plural(before)),
        ActionKind::Replace => "must be replaced".to_string(),
        ActionKind::ScaleUp => format!(
            "will be scaled up from {before} to {after} {}",
            plural(after)
        ),
        ActionKind::ScaleDown => {
            format!(
                "will be scaled down from {before} to {after} {}",
                plural(after)
            )
        }
        ActionKind::Update => "will be updated in place".to_string(),
        ActionKind::NoOp => "is unchanged".to_string(),
    }
}

fn render_action(out: &mut String, action: &Action, colour: Colour) {
    let sym = symbol(action.kind, colour);
    let pad = " ".repeat(3 - action.kind.symbol().len());
    let _ = writeln!(
        out,
        "  {} server \"{}\" {}",
        colour.bold("#"),
        action.server,
        headline(action)
    );
    let _ = writeln!(out, "{pad}{sym} server \"{}\" {{", action.server);
    let width = action
        .changes
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(0);
    for change in &action.changes {
        render_change(out, action.kind, change, width, colour);
    }
    out.push_str("    }\n");
}

/// The symbol of one attribute line: whole-server actions mark every attribute with
/// their own symbol; otherwise it says whether the attribute appears, goes or changes.
fn change_kind(action: ActionKind, change: &AttrChange) -> ActionKind {
    match (action, &change.before, &change.after) {
        (ActionKind::Start, ..) | (_, None, Some(_)) => ActionKind::Start,
        (ActionKind::Stop, ..) | (_, Some(_), None) => ActionKind::Stop,
        _ => ActionKind::Update,
    }
}

fn render_change(
    out: &mut String,
    action: ActionKind,
    change: &AttrChange,
    width: usize,
    colour: Colour,
) {
    let kind = change_kind(action, change);
    let sym = symbol(kind, colour);
    let name = format!("{:width$}", change.name);
    let note = if change.forces_restart() && action == ActionKind::Replace {
        colour.red(" # forces restart")
    } else {
        String::new()
    };
    if change.sensitive {
        let _ = writeln!(out, "      {sym} {name} = {SENSITIVE}{note}");
        return;
    }
    let before = change.before.as_ref().map(lines);
    let after = change.after.as_ref().map(lines);
    match (kind, before, after) {
        // Scalars on one line: `~ port = 8000 -> 8001`.
        (ActionKind::Update, Some(Lines::Scalar(b)), Some(Lines::Scalar(a))) => {
            let _ = writeln!(out, "      {sym} {name} = {b} -> {a}{note}");
        }
        (_, None, Some(Lines::Scalar(a))) => {
            let _ = writeln!(out, "      {sym} {name} = {a}{note}");
        }
        (_, Some(Lines::Scalar(b)), None) => {
            let _ = writeln!(out, "      {sym} {name} = {b} -> null{note}");
        }
        (_, before, after) => {
            let (open, close) = brackets(change);
            let _ = writeln!(out, "      {sym} {name} = {open}");
            let old = before.map(Lines::into_vec).unwrap_or_default();
            let new = after.map(Lines::into_vec).unwrap_or_default();
            let old_refs: Vec<&str> = old.iter().map(String::as_str).collect();
            let new_refs: Vec<&str> = new.iter().map(String::as_str).collect();
            let diff = TextDiff::from_slices(&old_refs, &new_refs);
            for c in diff.iter_all_changes() {
                let mark = match c.tag() {
                    ChangeTag::Equal => " ".to_string(),
                    ChangeTag::Delete => colour.red("-"),
                    ChangeTag::Insert => colour.green("+"),
                };
                let _ = writeln!(out, "          {mark} {}", c.value());
            }
            let _ = writeln!(out, "        {close}{note}");
        }
    }
}

enum Lines {
    Scalar(String),
    Many(Vec<String>),
}

impl Lines {
    fn into_vec(self) -> Vec<String> {
        match self {
            Lines::Scalar(s) => vec![s],
            Lines::Many(v) => v,
        }
    }
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

fn lines(value: &AttrValue) -> Lines {
    match value {
        AttrValue::Text(s) => Lines::Scalar(quote(s)),
        AttrValue::Number(n) => Lines::Scalar(n.to_string()),
        AttrValue::List(items) => {
            Lines::Many(items.iter().map(|i| format!("{},", quote(i))).collect())
        }
        AttrValue::Map(map) => Lines::Many(
            map.iter()
                .map(|(k, v)| format!("{k} = {}", quote(v)))
                .collect(),
        ),
        AttrValue::Record(parts) => Lines::Many(
            parts
                .iter()
                .map(|(k, v)| format!("{k} = {}", inline(v)))
                .collect(),
        ),
        AttrValue::Bool(b) => Lines::Scalar(b.to_string()),
    }
}

/// A value on one line, as TOML writes it: `3`, `"30s"`, `["a", "b"]`, `true`.
fn inline(value: &AttrValue) -> String {
    match lines(value) {
        Lines::Scalar(s) => s,
        Lines::Many(items) => match value {
            AttrValue::List(list) => format!(
                "[{}]",
                list.iter().map(|i| quote(i)).collect::<Vec<_>>().join(", ")
            ),
            _ => format!("{{ {} }}", items.join(", ")),
        },
    }
}

fn brackets(change: &AttrChange) -> (&'static str, &'static str) {
    match change.after.as_ref().or(change.before.as_ref()) {
        Some(AttrValue::Map(_) | AttrValue::Record(_)) => ("{", "}"),
        _ => ("[", "]"),
    }
}
