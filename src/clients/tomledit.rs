//! PURE. The same edits as [`super::jsonedit`] for a TOML client file (Codex's
//! `config.toml`, `[mcp_servers.NAME]`), through `toml_edit`: comments, order and
//! formatting of everything else kept. Entries are read back as JSON text, so one
//! digest serves both formats.

use serde_json::Value;
use toml_edit::{Array, DocumentMut, InlineTable, Item, Table};

fn parse(text: &str) -> Result<DocumentMut, String> {
    text.parse::<DocumentMut>()
        .map_err(|e| format!("not TOML: {e}"))
}

/// `section.name` as JSON text, when there is one.
pub fn get(text: &str, section: &str, name: &str) -> Result<Option<String>, String> {
    let doc: toml::Table = toml::from_str(text).map_err(|e| format!("not TOML: {e}"))?;
    let entry = doc
        .get(section)
        .and_then(|s| s.as_table())
        .and_then(|s| s.get(name));
    Ok(entry.map(|e| serde_json::to_value(e).map_or_else(|_| String::new(), |v| v.to_string())))
}

/// Whether the file has `section`.
pub fn has_section(text: &str, section: &str) -> Result<bool, String> {
    Ok(parse(text)?.get(section).is_some())
}

fn to_toml(value: &Value) -> Option<toml_edit::Value> {
    Some(match value {
        Value::String(s) => s.as_str().into(),
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64()?.into(),
        },
        Value::Array(items) => {
            let mut array = Array::new();
            for item in items {
                array.push(to_toml(item)?);
            }
            array.into()
        }
        Value::Object(map) => {
            let mut table = InlineTable::new();
            for (k, v) in map {
                table.insert(k, to_toml(v)?);
            }
            table.fmt();
            table.into()
        }
        Value::Null => return None,
    })
}

/// `text` with `[section.name]` set to `value` (an object), made at the end of the file.
pub fn upsert(text: &str, section: &str, name: &str, value: &Value) -> Result<String, String> {
    let mut doc = parse(text)?;
    let Some(fields) = value.as_object() else {
        return Err("an entry must be an object".into());
    };
    let mut table = Table::new();
    // `command` first, as people write it (JSON objects here are sorted).
    let mut fields: Vec<(&String, &Value)> = fields.iter().collect();
    fields.sort_by_key(|(k, _)| *k != "command");
    for (k, v) in fields {
        if let Some(v) = to_toml(v) {
            table.insert(k, toml_edit::value(v));
        }
    }
    table.decor_mut().set_prefix("\n");
    let parent = doc
        .entry(section)
        .or_insert_with(|| {
            let mut t = Table::new();
            t.set_implicit(true);
            Item::Table(t)
        })
        .as_table_mut()
        .ok_or_else(|| format!("`{section}` is not a table"))?;
    parent.insert(name, Item::Table(table));
    Ok(doc.to_string())
}

/// `text` without `[section.name]`.
pub fn remove(text: &str, section: &str, name: &str) -> Result<String, String> {
    let mut doc = parse(text)?;
    if let Some(parent) = doc.get_mut(section).and_then(Item::as_table_mut) {
        parent.remove(name);
    }
    Ok(doc.to_string())
}

/// `text` without `section` when it holds nothing.
pub fn remove_section_if_empty(text: &str, section: &str) -> Result<String, String> {
    let mut doc = parse(text)?;
    if doc
        .get(section)
        .and_then(Item::as_table)
        .is_some_and(Table::is_empty)
    {
        doc.remove(section);
    }
    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_table_goes_in_and_out_and_the_file_is_as_it_was() {
        let codex = "model = \"o3\" # the model\n\n[mcp_servers.docs]\ncommand = \"docs-mcp\"\n";
        let entry = json!({"command": "/bin/mcpctl", "args": ["connect", "gh"]});
        let linked = upsert(codex, "mcp_servers", "gh", &entry).unwrap();
        assert!(linked.starts_with(codex), "{linked}");
        assert!(
            linked.contains(
                "[mcp_servers.gh]\ncommand = \"/bin/mcpctl\"\nargs = [\"connect\", \"gh\"]"
            ),
            "{linked}"
        );
        let read = get(&linked, "mcp_servers", "gh").unwrap().unwrap();
        assert_eq!(
            super::super::jsonedit::digest(&read),
            super::super::jsonedit::digest(&entry.to_string())
        );
        assert_eq!(remove(&linked, "mcp_servers", "gh").unwrap(), codex);
        let fresh = upsert("", "mcp_servers", "gh", &entry).unwrap();
        let back = remove(&fresh, "mcp_servers", "gh").unwrap();
        assert_eq!(
            remove_section_if_empty(&back, "mcp_servers")
                .unwrap()
                .trim(),
            ""
        );
    }
}
