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

/// `[section.name]` (and its sub-tables) as TOML text with its comments, to be put
/// back by [`put_raw`].
pub fn get_raw(text: &str, section: &str, name: &str) -> Result<Option<String>, String> {
    let doc = parse(text)?;
    let Some(item) = doc.get(section).and_then(|s| s.get(name)) else {
        return Ok(None);
    };
    let mut parent = Table::new();
    parent.set_implicit(true);
    parent.insert(name, item.clone());
    let mut fragment = DocumentMut::new();
    fragment.insert(section, Item::Table(parent));
    Ok(Some(fragment.to_string()))
}

/// `text` with `[section.name]` replaced by what [`get_raw`] took, where the entry
/// stands now; unchanged when there is no such entry.
pub fn put_raw(text: &str, section: &str, name: &str, raw: &str) -> Result<String, String> {
    let mut doc = parse(text)?;
    let fragment = parse(raw)?;
    let Some(mut item) = fragment.get(section).and_then(|s| s.get(name)).cloned() else {
        return Err(format!("the kept `{section}.{name}` is not a TOML table"));
    };
    let Some(parent) = doc.get_mut(section).and_then(Item::as_table_mut) else {
        return Ok(text.to_string());
    };
    let Some(current) = parent.get(name) else {
        return Ok(text.to_string());
    };
    // Where the entry is now, not where it was in the fragment.
    let position = current.as_table().and_then(Table::position);
    if let Some(table) = item.as_table_mut() {
        reposition(table, position);
    }
    parent.insert(name, item);
    Ok(doc.to_string())
}

fn reposition(table: &mut Table, position: Option<isize>) {
    table.set_position(position);
    for (_, item) in table.iter_mut() {
        if let Some(sub) = item.as_table_mut() {
            reposition(sub, position);
        }
    }
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
        // A foreign table replaced, then put back as it was.
        let theirs = "model = \"o3\"\n\n# their docs\n[mcp_servers.docs]\ncommand = \"docs-mcp\" # pinned\n\n[mcp_servers.docs.env]\nA = \"1\"\n\n[other]\nx = 1\n";
        let kept = get_raw(theirs, "mcp_servers", "docs").unwrap().unwrap();
        let forced = upsert(theirs, "mcp_servers", "docs", &entry).unwrap();
        assert!(!forced.contains("docs-mcp"), "{forced}");
        assert_eq!(
            put_raw(&forced, "mcp_servers", "docs", &kept).unwrap(),
            theirs
        );
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
