//! PURE. What one caller (a token of `[tokens.NAME]`) may call: `TARGET/TOOL` globs,
//! TARGET a server or an endpoint, TOOL the names that target advertises (a server's
//! own names on its port, an endpoint's advertised ones). An allow must match for a
//! tool to be seen or called; a deny wins. A caller whose allows name no tool of a
//! target has nothing there at all.

use serde_json::Value;

use super::Glob;

/// One `TARGET/TOOL` pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    target: Glob,
    tool: Glob,
}

impl Grant {
    /// `Err` says what is wrong with the pattern.
    pub fn new(text: &str) -> Result<Self, String> {
        let (target, tool) = text
            .split_once('/')
            .filter(|(t, n)| !t.is_empty() && !n.is_empty())
            .ok_or_else(|| {
                format!("`{text}` is not TARGET/TOOL (a server or endpoint, `/`, a tool)")
            })?;
        Ok(Self {
            target: Glob::new(target)?,
            tool: Glob::new(tool)?,
        })
    }

    /// Whether its TARGET part matches `target`.
    pub fn names(&self, target: &str) -> bool {
        self.target.matches(target)
    }
}

/// A caller's patterns, compiled.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallerRules {
    allow: Vec<Grant>,
    deny: Vec<Grant>,
}

impl CallerRules {
    /// `Err` names the first bad pattern.
    pub fn new(allow: &[String], deny: &[String]) -> Result<Self, String> {
        let compile = |texts: &[String]| -> Result<Vec<Grant>, String> {
            texts.iter().map(|t| Grant::new(t)).collect()
        };
        Ok(Self {
            allow: compile(allow)?,
            deny: compile(deny)?,
        })
    }

    /// What the caller may do on `target`.
    pub fn on(&self, target: &str) -> ToolView {
        let of = |grants: &[Grant]| -> Vec<Glob> {
            grants
                .iter()
                .filter(|g| g.names(target))
                .map(|g| g.tool.clone())
                .collect()
        };
        ToolView {
            allow: of(&self.allow),
            deny: of(&self.deny),
        }
    }
}

/// A caller's patterns on one target: tool globs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolView {
    allow: Vec<Glob>,
    deny: Vec<Glob>,
}

impl ToolView {
    /// A view from its tool globs (an OIDC caller's: its scopes' patterns).
    pub fn of(allow: Vec<Glob>, deny: Vec<Glob>) -> Self {
        Self { allow, deny }
    }

    /// No allow names this target: the caller has nothing here.
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty()
    }

    /// Whether the caller may see and call `tool`.
    pub fn permits(&self, tool: &str) -> bool {
        self.allow.iter().any(|g| g.matches(tool)) && !self.deny.iter().any(|g| g.matches(tool))
    }

    /// `tools/list` result `tools`, kept to what the caller may call.
    pub fn filter(&self, tools: &mut Vec<Value>) {
        tools.retain(|tool| {
            tool.get("name")
                .and_then(Value::as_str)
                .is_some_and(|name| self.permits(name))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(allow: &[&str], deny: &[&str]) -> CallerRules {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        CallerRules::new(&own(allow), &own(deny)).unwrap()
    }

    #[test]
    fn a_grant_is_target_slash_tool_and_each_part_is_a_glob() {
        for bad in ["search", "/search", "alpha/", "", "[x/y"] {
            assert!(Grant::new(bad).is_err(), "{bad}");
        }
        let grant = Grant::new("al*/search").unwrap();
        assert!(grant.names("alpha") && !grant.names("beta"));
    }

    #[test]
    fn allow_must_match_and_deny_wins_per_target() {
        let r = rules(&["alpha/search", "work/*", "*/ro_*"], &["work/*delete*"]);
        let alpha = r.on("alpha");
        assert!(alpha.permits("search") && alpha.permits("ro_list"));
        assert!(!alpha.permits("write"));
        let work = r.on("work");
        assert!(work.permits("fs__read") && !work.permits("fs__delete_file"));
        let other = r.on("other");
        assert!(other.permits("ro_x") && !other.permits("search"));
        assert!(!other.is_empty());
        assert!(rules(&["alpha/*"], &[]).on("beta").is_empty());
        // A tool's name with a `/` is one name: TOOL globs match it whole.
        assert!(rules(&["a/x*"], &[]).on("a").permits("x/y"));
    }

    #[test]
    fn a_list_keeps_only_what_the_caller_may_call() {
        let view = rules(&["alpha/s*"], &["alpha/secret"]).on("alpha");
        let mut tools = vec![
            json!({"name": "search"}),
            json!({"name": "secret"}),
            json!({"name": "write"}),
            json!({"title": "no name"}),
        ];
        view.filter(&mut tools);
        assert_eq!(tools, vec![json!({"name": "search"})]);
    }
}
