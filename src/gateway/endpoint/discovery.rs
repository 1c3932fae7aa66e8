//! PURE. Tools on demand (`discovery`): when it is on, what a session's `tools/list`
//! holds (`find_tools`, `use_tools`, the `always` tools and the session's working
//! set), the two meta-tools' definitions and arguments, the working set, and the text
//! `find_tools` answers. The session ([`super::session`]) does the I/O.
//!
//! Discovery saves context, it guards nothing: any tool the table routes may be called
//! by name, listed or not; what policy hides is never listed, found or called.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::rank::{Doc, Hit, Index};
use super::table::Named;
use crate::model::endpoint::DiscoverySpec;

pub const FIND: &str = "find_tools";
pub const USE: &str = "use_tools";
/// Most tools one `find_tools` answers.
pub const MAX_LIMIT: usize = 50;
/// What `find_tools` answers without a `limit`.
const DEFAULT_LIMIT: usize = 10;
/// Longest query, in bytes.
pub const MAX_QUERY: usize = 1_024;
/// Most tools a session's working set holds.
pub const MAX_WORKING: usize = 64;

/// Whether `name` is one of the meta-tools (a member's tool advertised under it is
/// hidden while discovery is configured).
pub fn is_meta(name: &str) -> bool {
    name == FIND || name == USE
}

/// Discovery as the table has it: configured, on or not for this table, and the
/// index `find_tools` asks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Discovery {
    pub spec: DiscoverySpec,
    /// On for this table: always, or the endpoint lists more than `when_over`.
    pub on: bool,
    pub index: Index,
}

impl Discovery {
    /// For the listed tools of one table (the index only while on).
    pub fn new(spec: &DiscoverySpec, tools: &Named) -> Self {
        let on = spec.when_over.is_none_or(|n| tools.listed.len() > n);
        let index = if on {
            Index::build(tools.listed.iter().filter_map(|t| {
                let name = t.get("name")?.as_str()?;
                let route = tools.routes.get(name)?;
                Some(Doc {
                    name,
                    member: &route.member,
                    original: &route.original,
                    title: t
                        .get("title")
                        .or_else(|| t.pointer("/annotations/title"))
                        .and_then(Value::as_str),
                    description: t.get("description").and_then(Value::as_str),
                })
            }))
        } else {
            Index::default()
        };
        Self {
            spec: spec.clone(),
            on,
            index,
        }
    }

    /// What a session with `working` lists: the meta-tools, then the table's tools
    /// that are `always` or in the working set, in the table's order.
    pub fn list(&self, listed: &[Value], working: &WorkingSet) -> Vec<Value> {
        let mut out = meta_definitions();
        out.extend(
            listed
                .iter()
                .filter(|t| {
                    t.get("name").and_then(Value::as_str).is_some_and(|n| {
                        self.spec.always.iter().any(|a| a == n) || working.contains(n)
                    })
                })
                .cloned(),
        );
        out
    }

    /// How many tools a session's first `tools/list` holds.
    pub fn initial(&self, listed: &[Value]) -> usize {
        if self.on {
            self.list(listed, &WorkingSet::default()).len()
        } else {
            listed.len()
        }
    }

    /// How many of `listed` the first list leaves out.
    pub fn kept_out(&self, listed: &[Value]) -> usize {
        if !self.on {
            return 0;
        }
        let meta = meta_definitions().len();
        listed
            .len()
            .saturating_sub(self.initial(listed).saturating_sub(meta))
    }
}

/// The two meta-tools, as listed.
pub fn meta_definitions() -> Vec<Value> {
    vec![
        json!({
            "name": FIND,
            "title": "Find tools",
            "description": format!("Search this endpoint's tools by keywords (names, descriptions, server). Answers one line per tool: name, server, what it does. Call a found tool by its name, or pass names to {USE} to get their full definitions."),
            "inputSchema": {
                "type": "object",
                "properties": {
                    "query": {"type": "string", "minLength": 1, "maxLength": MAX_QUERY, "description": "Keywords, e.g. \"read file\" or \"github issue\""},
                    "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT, "description": "Most tools to answer"}
                },
                "required": ["query"],
                "additionalProperties": false
            },
            "annotations": {"readOnlyHint": true, "idempotentHint": true, "openWorldHint": false}
        }),
        json!({
            "name": USE,
            "title": "Use tools",
            "description": format!("Add tools (names from {FIND}) to this session's tool list, with their full definitions; the list then changes. At most {MAX_WORKING}. `reset: true` empties it first."),
            "inputSchema": {
                "type": "object",
                "properties": {
                    "names": {"type": "array", "items": {"type": "string"}, "maxItems": MAX_WORKING, "description": "Tool names to add"},
                    "reset": {"type": "boolean", "default": false, "description": "Empty the list first"}
                },
                "required": ["names"],
                "additionalProperties": false
            },
            "annotations": {"readOnlyHint": false, "idempotentHint": true, "openWorldHint": false}
        }),
    ]
}

/// Why a meta-tool's arguments are refused: said to the model as a tool error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    #[error("`{0}` is missing: {1}")]
    Missing(&'static str, &'static str),
    #[error("`{0}` is empty: give some keywords")]
    Empty(&'static str),
    #[error("`{0}` must be {1}")]
    Shape(&'static str, &'static str),
    #[error("`query` is longer than {MAX_QUERY} bytes")]
    LongQuery,
    #[error("`limit` must be a whole number from 1 to {MAX_LIMIT}")]
    Limit,
    #[error("{0} names: a session uses at most {MAX_WORKING} tools")]
    TooMany(usize),
    #[error(
        "this session would use {0} tools, more than {MAX_WORKING}: reset it with {{\"names\": [], \"reset\": true}} and add what the task needs"
    )]
    Full(usize),
    /// Names no tool of this endpoint (or one policy hides), printable.
    #[error("unknown {}: {} ({FIND} names the tools this endpoint has)", if .0.len() == 1 { "tool" } else { "tools" }, .0.join(", "))]
    Unknown(Vec<String>),
}

/// `find_tools` arguments.
#[derive(Debug, PartialEq, Eq)]
pub struct Find {
    pub query: String,
    pub limit: usize,
}

pub fn find_args(args: &Value) -> Result<Find, ArgsError> {
    let query = match args.get("query") {
        Some(Value::String(q)) if !q.trim().is_empty() => q,
        Some(Value::String(_)) => return Err(ArgsError::Empty("query")),
        Some(_) => return Err(ArgsError::Shape("query", "a string of keywords")),
        None => {
            return Err(ArgsError::Missing(
                "query",
                "give some keywords, e.g. \"read file\"",
            ));
        }
    };
    if query.len() > MAX_QUERY {
        return Err(ArgsError::LongQuery);
    }
    let limit = match args.get("limit") {
        None | Some(Value::Null) => DEFAULT_LIMIT,
        Some(n) => match n.as_u64() {
            Some(n @ 1..) if n <= MAX_LIMIT as u64 => n as usize,
            _ => return Err(ArgsError::Limit),
        },
    };
    Ok(Find {
        query: query.clone(),
        limit,
    })
}

/// `use_tools` arguments.
#[derive(Debug, PartialEq, Eq)]
pub struct Use {
    pub names: Vec<String>,
    pub reset: bool,
}

pub fn use_args(args: &Value) -> Result<Use, ArgsError> {
    let names = match args.get("names") {
        Some(Value::Array(names)) => names,
        Some(_) => return Err(ArgsError::Shape("names", "an array of tool names")),
        None => {
            return Err(ArgsError::Missing(
                "names",
                "an array of tool names from find_tools",
            ));
        }
    };
    if names.len() > MAX_WORKING {
        return Err(ArgsError::TooMany(names.len()));
    }
    let names = names
        .iter()
        .map(|n| n.as_str().map(str::to_string))
        .collect::<Option<Vec<String>>>()
        .ok_or(ArgsError::Shape("names", "strings only"))?;
    let reset = match args.get("reset") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ArgsError::Shape("reset", "true or false")),
    };
    Ok(Use { names, reset })
}

/// The tools a session pulled in, bounded by [`MAX_WORKING`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkingSet(BTreeSet<String>);

impl WorkingSet {
    pub fn contains(&self, name: &str) -> bool {
        self.0.contains(name)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Applies `args` whole or not at all: every name must be one `known` says the
    /// session may see; the set stays within [`MAX_WORKING`]. Meta-tools and names
    /// already in the set are no-ops. Answers the names added.
    pub fn apply(
        &mut self,
        args: &Use,
        known: impl Fn(&str) -> bool,
    ) -> Result<Vec<String>, ArgsError> {
        let unknown: Vec<String> = args
            .names
            .iter()
            .map(String::as_str)
            .filter(|n| !is_meta(n) && !known(n))
            .map(printable)
            .collect();
        if !unknown.is_empty() {
            return Err(ArgsError::Unknown(unknown));
        }
        let mut next = if args.reset {
            BTreeSet::new()
        } else {
            self.0.clone()
        };
        let mut added = Vec::new();
        for name in args.names.iter().filter(|n| !is_meta(n)) {
            if next.insert(name.clone()) {
                added.push(name.clone());
            }
        }
        if next.len() > MAX_WORKING {
            return Err(ArgsError::Full(next.len()));
        }
        self.0 = next;
        Ok(added)
    }

    /// Drops names `keep` no longer knows (gone from every member).
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.0.retain(|n| keep(n));
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

/// `find_tools`' answer: one line per tool, never a schema.
pub fn render(query: &str, hits: &[Hit<'_>], of: usize) -> String {
    if hits.is_empty() {
        return format!(
            "No tool matches \"{}\" among {of}. Try other keywords.",
            printable(query)
        );
    }
    let mut out = format!(
        "{} of {of} tools match \"{}\" (name [server]: what it does):\n",
        hits.len(),
        printable(query)
    );
    for hit in hits {
        out.push_str(&format!("{} [{}]: {}\n", hit.name, hit.member, hit.summary));
    }
    out.push_str(&format!(
        "Call one by name, or {USE} {{\"names\": [...]}} to list them with their schemas."
    ));
    out
}

/// A name or query as quoted back: control characters dropped, cut to 80 characters.
fn printable(text: &str) -> String {
    let clean: String = text.chars().filter(|c| !c.is_control()).take(80).collect();
    if text.chars().count() > 80 {
        format!("{clean}…")
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::endpoint::table::Route;

    fn named(names: &[&str]) -> Named {
        let mut tools = Named::default();
        for n in names {
            let (member, original) = n.split_once("__").unwrap_or(("m", n));
            tools.listed.push(json!({"name": n, "description": format!("does {original}"), "inputSchema": {"type": "object"}}));
            tools.routes.insert(
                n.to_string(),
                Route {
                    member: member.into(),
                    original: original.into(),
                },
            );
        }
        tools
    }

    fn names(list: &[Value]) -> Vec<&str> {
        list.iter().filter_map(|t| t["name"].as_str()).collect()
    }

    #[test]
    fn on_always_or_over_the_threshold() {
        let tools = named(&["a__x", "a__y", "b__z"]);
        let always = DiscoverySpec::default();
        assert!(Discovery::new(&always, &tools).on);
        let over = |n| DiscoverySpec {
            when_over: Some(n),
            always: vec![],
        };
        assert!(Discovery::new(&over(2), &tools).on);
        let off = Discovery::new(&over(3), &tools);
        assert!(!off.on);
        assert!(off.index.is_empty(), "no index while off");
        assert_eq!(off.kept_out(&tools.listed), 0);
    }

    #[test]
    fn the_initial_list_is_meta_always_and_working_in_table_order() {
        let tools = named(&["a__x", "a__y", "b__z", "b__w"]);
        let spec = DiscoverySpec {
            when_over: None,
            always: vec!["b__z".into(), "gone".into()],
        };
        let d = Discovery::new(&spec, &tools);
        let mut working = WorkingSet::default();
        assert_eq!(names(&d.list(&tools.listed, &working)), [FIND, USE, "b__z"]);
        assert_eq!(d.kept_out(&tools.listed), 3);
        let known = |n: &str| tools.routes.contains_key(n);
        let add = |names: &[&str], reset| Use {
            names: names.iter().map(|n| n.to_string()).collect(),
            reset,
        };
        assert_eq!(
            working.apply(&add(&["b__w", "a__x", "find_tools"], false), known),
            Ok(vec!["b__w".to_string(), "a__x".to_string()])
        );
        assert_eq!(
            names(&d.list(&tools.listed, &working)),
            [FIND, USE, "a__x", "b__z", "b__w"]
        );
        // Unknown names refuse the whole call, naming them.
        let refused = working.apply(&add(&["a__y", "nope", "hidden"], false), known);
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.to_string().contains("nope, hidden")),
            "{refused:?}"
        );
        assert!(!working.contains("a__y"));
        assert_eq!(working.apply(&add(&[], true), known), Ok(vec![]));
        assert!(working.is_empty());
    }

    #[test]
    fn the_working_set_is_bounded() {
        let many: Vec<String> = (0..=MAX_WORKING).map(|i| format!("m__t{i}")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let tools = named(&refs);
        let known = |n: &str| tools.routes.contains_key(n);
        let mut working = WorkingSet::default();
        let first = Use {
            names: many[..MAX_WORKING].to_vec(),
            reset: false,
        };
        assert_eq!(
            working.apply(&first, known).map(|a| a.len()),
            Ok(MAX_WORKING)
        );
        let one_more = Use {
            names: vec![many[MAX_WORKING].clone()],
            reset: false,
        };
        assert!(working.apply(&one_more, known).is_err());
        assert_eq!(working.len(), MAX_WORKING);
        let reset = Use {
            names: vec![many[MAX_WORKING].clone()],
            reset: true,
        };
        assert_eq!(working.apply(&reset, known).map(|a| a.len()), Ok(1));
        working.retain(|_| false);
        assert!(working.is_empty());
    }

    #[test]
    fn bad_arguments_are_refused_with_a_reason() {
        assert_eq!(
            find_args(&json!({"query": "read file"})),
            Ok(Find {
                query: "read file".into(),
                limit: DEFAULT_LIMIT
            })
        );
        assert_eq!(
            find_args(&json!({"query": "x", "limit": 50})).map(|f| f.limit),
            Ok(50)
        );
        for bad in [
            json!({}),
            json!({"query": ""}),
            json!({"query": 3}),
            json!({"query": "x", "limit": 51}),
            json!({"query": "x", "limit": 0}),
            json!({"query": "x", "limit": "5"}),
            json!({"query": "x", "limit": -1}),
            json!({"query": "x", "limit": 2.5}),
            json!({"query": "q".repeat(MAX_QUERY + 1)}),
            json!("not an object"),
        ] {
            assert!(find_args(&bad).is_err(), "{bad}");
        }
        assert_eq!(
            use_args(&json!({"names": ["a"], "reset": true})),
            Ok(Use {
                names: vec!["a".into()],
                reset: true
            })
        );
        let too_many: Vec<String> = (0..=MAX_WORKING).map(|i| i.to_string()).collect();
        for bad in [
            json!({}),
            json!({"names": "a"}),
            json!({"names": [1]}),
            json!({"names": too_many}),
            json!({"names": [], "reset": "yes"}),
        ] {
            assert!(use_args(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_answer_is_one_line_per_tool_and_no_schema() {
        let tools = named(&["fs__read_file", "fs__write_file", "time__now"]);
        let d = Discovery::new(&DiscoverySpec::default(), &tools);
        let hits = d.index.search("read file", 10);
        let text = render("read file", &hits, d.index.len());
        assert!(
            text.starts_with("2 of 3 tools match \"read file\""),
            "{text}"
        );
        assert!(
            text.contains("fs__read_file [fs]: does read_file\n"),
            "{text}"
        );
        assert!(!text.contains("inputSchema"), "{text}");
        let none = render("zzz\u{1b}[31m", &[], 3);
        assert!(none.starts_with("No tool matches \"zzz[31m\""), "{none}");
    }
}
