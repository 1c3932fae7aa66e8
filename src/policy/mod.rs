//! PURE. Which tools an agent sees and may call: one decision, used to filter lists
//! and to refuse calls, so what an agent sees and what it may call never drift apart.
//!
//! A [`Rules`] is what a `tools = { allow, deny, read_only }` table says. Patterns are
//! globs (`*`, `?`, `[...]`) on a tool's name; deny wins over allow; an empty allow
//! allows every name; `read_only` keeps only tools whose `annotations.readOnlyHint` is
//! true. A server's rules match its own names; an endpoint's match the names it
//! advertises. [`decide`] says why a tool is hidden, for `mcpctl tools --all`.

pub mod caller;
pub mod jwt;
pub mod pin;

use std::fmt;

use serde_json::Value;

/// One glob, kept with its text (said back in a [`Hidden`] reason).
#[derive(Debug, Clone)]
pub struct Glob {
    text: String,
    pattern: glob::Pattern,
}

impl Glob {
    /// `Err` says what is wrong with the pattern.
    pub fn new(text: &str) -> Result<Self, String> {
        glob::Pattern::new(text)
            .map(|pattern| Self {
                text: text.to_string(),
                pattern,
            })
            .map_err(|e| format!("`{text}` is not a glob pattern: {}", e.msg))
    }

    pub fn matches(&self, name: &str) -> bool {
        self.pattern.matches_with(
            name,
            glob::MatchOptions {
                case_sensitive: true,
                require_literal_separator: false,
                require_literal_leading_dot: false,
            },
        )
    }

    pub fn text(&self) -> &str {
        &self.text
    }
}

impl PartialEq for Glob {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

/// A `tools = { allow, deny, read_only }` table, its patterns compiled.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rules {
    pub allow: Vec<Glob>,
    pub deny: Vec<Glob>,
    pub read_only: bool,
}

impl Rules {
    /// Rules from their patterns; `Err` names the first bad pattern.
    pub fn new(allow: &[String], deny: &[String], read_only: bool) -> Result<Self, String> {
        let compile = |texts: &[String]| -> Result<Vec<Glob>, String> {
            texts.iter().map(|t| Glob::new(t)).collect()
        };
        Ok(Self {
            allow: compile(allow)?,
            deny: compile(deny)?,
            read_only,
        })
    }

    /// Nothing is filtered.
    pub fn is_open(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty() && !self.read_only
    }

    /// The patterns as written, for plans and status.
    pub fn describe(&self) -> String {
        let list = |globs: &[Glob]| {
            globs
                .iter()
                .map(|g| format!("{:?}", g.text))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut parts = Vec::new();
        if !self.allow.is_empty() {
            parts.push(format!("allow [{}]", list(&self.allow)));
        }
        if !self.deny.is_empty() {
            parts.push(format!("deny [{}]", list(&self.deny)));
        }
        if self.read_only {
            parts.push("read_only".to_string());
        }
        parts.join(", ")
    }
}

/// Why a tool is hidden (and refused when called by name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hidden {
    /// A deny pattern matched.
    Denied { pattern: String },
    /// An allow list exists and no pattern of it matched.
    NotAllowed,
    /// `read_only` and the tool does not say `readOnlyHint: true`.
    NotReadOnly,
}

impl fmt::Display for Hidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Denied { pattern } => write!(f, "denied by {pattern:?}"),
            Self::NotAllowed => f.write_str("not in allow"),
            Self::NotReadOnly => f.write_str("not read-only"),
        }
    }
}

/// Whether `rules` let an agent see and call tool `name` (its definition, as listed,
/// for `read_only`): `Ok(())`, or why not.
pub fn decide(rules: &Rules, name: &str, definition: &Value) -> Result<(), Hidden> {
    decide_any(rules, &[name], definition)
}

/// [`decide`] for a tool known by several names (an endpoint's advertised name and
/// its rename): a deny of any name hides it; an allow of any name lets it through.
pub fn decide_any(rules: &Rules, names: &[&str], definition: &Value) -> Result<(), Hidden> {
    if let Some(deny) = rules
        .deny
        .iter()
        .find(|g| names.iter().any(|n| g.matches(n)))
    {
        return Err(Hidden::Denied {
            pattern: deny.text.clone(),
        });
    }
    if !rules.allow.is_empty()
        && !rules
            .allow
            .iter()
            .any(|g| names.iter().any(|n| g.matches(n)))
    {
        return Err(Hidden::NotAllowed);
    }
    if rules.read_only && !is_read_only(definition) {
        return Err(Hidden::NotReadOnly);
    }
    Ok(())
}

/// A tool that says it changes nothing (`annotations.readOnlyHint: true`).
pub fn is_read_only(definition: &Value) -> bool {
    definition.pointer("/annotations/readOnlyHint") == Some(&Value::Bool(true))
}

/// Whether `rules` decide `name` without its definition (no `read_only`): a call
/// can then be refused before the tool list is known.
pub fn decide_by_name(rules: &Rules, name: &str) -> Option<Result<(), Hidden>> {
    if rules.read_only {
        // Denied by name is still certain.
        return rules.deny.iter().find(|g| g.matches(name)).map(|g| {
            Err(Hidden::Denied {
                pattern: g.text.clone(),
            })
        });
    }
    Some(decide(rules, name, &Value::Null))
}

/// `tools/list` result `tools`, filtered by `rules` (a tool without a string name is
/// dropped: it could not be called anyway).
pub fn filter_tools(rules: &Rules, tools: &mut Vec<Value>) {
    if rules.is_open() {
        return;
    }
    tools.retain(|tool| {
        tool.get("name")
            .and_then(Value::as_str)
            .is_some_and(|name| decide(rules, name, tool).is_ok())
    });
}

#[cfg(test)]
mod tests;
