//! PURE. Tool pinning: a tool's definition as reviewed (its name, description, input
//! schema and annotations) kept as a digest in `mcpctl.lock`; with `pin = true` a tool
//! whose definition no longer matches, or that was never pinned, is hidden and refused,
//! so a server cannot change what a tool does after it was reviewed.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// Tool name -> digest, for one server.
pub type Pins = BTreeMap<String, String>;

/// What a definition is pinned by: BLAKE3 of its reviewed parts as canonical JSON
/// (serde_json's maps keep their keys sorted).
pub fn digest(definition: &Value) -> String {
    let part = |key: &str| definition.get(key).cloned().unwrap_or(Value::Null);
    let reviewed = json!({
        "name": part("name"),
        "description": part("description"),
        "inputSchema": part("inputSchema"),
        "annotations": part("annotations"),
    });
    format!(
        "blake3:{}",
        blake3::hash(reviewed.to_string().as_bytes()).to_hex()
    )
}

/// Why a pinned server hides a tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unpinned {
    /// Its definition is not the one pinned.
    Changed,
    /// It was never pinned (new since).
    New,
}

impl std::fmt::Display for Unpinned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Changed => "changed since pinned",
            Self::New => "not pinned",
        })
    }
}

/// Whether `definition` (of tool `name`) is as pinned.
pub fn check(pins: &Pins, name: &str, definition: &Value) -> Result<(), Unpinned> {
    match pins.get(name) {
        None => Err(Unpinned::New),
        Some(pinned) if *pinned == digest(definition) => Ok(()),
        Some(_) => Err(Unpinned::Changed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_description_schema_or_annotation_unpins_and_key_order_does_not() {
        let tool = json!({"name": "echo", "description": "Echo", "inputSchema": {"type": "object", "properties": {"a": {}, "b": {}}}});
        let pins = Pins::from([("echo".to_string(), digest(&tool))]);
        assert_eq!(check(&pins, "echo", &tool), Ok(()));
        let reordered: Value = serde_json::from_str(
            r#"{"inputSchema": {"properties": {"b": {}, "a": {}}, "type": "object"}, "description": "Echo", "name": "echo"}"#,
        )
        .unwrap();
        assert_eq!(check(&pins, "echo", &reordered), Ok(()));
        // Not reviewed parts: a title or output schema may change.
        let mut titled = tool.clone();
        titled["title"] = json!("Echo!");
        assert_eq!(check(&pins, "echo", &titled), Ok(()));
        for changed in [
            json!({"name": "echo", "description": "Echo and delete", "inputSchema": tool["inputSchema"]}),
            json!({"name": "echo", "description": "Echo", "inputSchema": {"type": "object"}}),
            json!({"name": "echo", "description": "Echo", "inputSchema": tool["inputSchema"], "annotations": {"destructiveHint": true}}),
        ] {
            assert_eq!(check(&pins, "echo", &changed), Err(Unpinned::Changed));
        }
        assert_eq!(check(&pins, "other", &tool), Err(Unpinned::New));
    }
}
