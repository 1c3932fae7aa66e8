//! PURE. Edits of one member of one object in a client's JSON file, as text: every
//! other byte stays as it was (key order, formatting, comments of JSONC files such as
//! Zed's settings, and the client's own state in `~/.claude.json`).
//!
//! The file must be one JSON object; `section` is a member of it whose value is an
//! object of entries (`mcpServers`, `servers`, `context_servers`).

use serde_json::Value;

/// A member of an object: its key and the byte ranges of key and value.
#[derive(Debug, Clone)]
struct Member {
    key: String,
    key_start: usize,
    value_start: usize,
    value_end: usize,
}

/// An object: where its braces are and its members.
#[derive(Debug)]
struct Object {
    open: usize,
    close: usize,
    members: Vec<Member>,
}

fn skip_ws(s: &[u8], mut i: usize) -> usize {
    loop {
        while i < s.len() && s[i].is_ascii_whitespace() {
            i += 1;
        }
        if s[i..].starts_with(b"//") {
            while i < s.len() && s[i] != b'\n' {
                i += 1;
            }
        } else if s[i..].starts_with(b"/*") {
            i += 2;
            while i < s.len() && !s[i..].starts_with(b"*/") {
                i += 1;
            }
            i = (i + 2).min(s.len());
        } else {
            return i;
        }
    }
}

fn string_end(s: &[u8], mut i: usize) -> Result<usize, String> {
    i += 1;
    while i < s.len() {
        match s[i] {
            b'\\' => i += 2,
            b'"' => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err("a string does not end".into())
}

fn value_end(s: &[u8], i: usize) -> Result<usize, String> {
    match s.get(i) {
        None => Err("a value is missing at the end".into()),
        Some(b'"') => string_end(s, i),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut j = i;
            while j < s.len() {
                j = skip_ws(s, j);
                match s.get(j) {
                    Some(b'"') => {
                        j = string_end(s, j)?;
                        continue;
                    }
                    Some(b'{' | b'[') => depth += 1,
                    Some(b'}' | b']') => {
                        depth -= 1;
                        if depth == 0 {
                            return Ok(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            Err("an object or array does not end".into())
        }
        Some(_) => {
            let mut j = i;
            while j < s.len()
                && !matches!(s[j], b',' | b'}' | b']' | b'/')
                && !s[j].is_ascii_whitespace()
            {
                j += 1;
            }
            Ok(j)
        }
    }
}

fn object_at(s: &[u8], open: usize) -> Result<Object, String> {
    if s.get(open) != Some(&b'{') {
        return Err("not an object".into());
    }
    let mut members = Vec::new();
    let mut i = skip_ws(s, open + 1);
    loop {
        match s.get(i) {
            Some(b'}') => {
                return Ok(Object {
                    open,
                    close: i,
                    members,
                });
            }
            Some(b'"') => {
                let key_end = string_end(s, i)?;
                let key: String = serde_json::from_slice(&s[i..key_end])
                    .map_err(|e| format!("a key is not a string: {e}"))?;
                let colon = skip_ws(s, key_end);
                if s.get(colon) != Some(&b':') {
                    return Err(format!("`{key}` has no `:`"));
                }
                let value_start = skip_ws(s, colon + 1);
                let value_end = value_end(s, value_start)?;
                members.push(Member {
                    key,
                    key_start: i,
                    value_start,
                    value_end,
                });
                i = skip_ws(s, value_end);
                if s.get(i) == Some(&b',') {
                    i = skip_ws(s, i + 1);
                }
            }
            _ => return Err(format!("unexpected text at byte {i}")),
        }
    }
}

fn root(s: &[u8]) -> Result<Object, String> {
    let open = skip_ws(s, 0);
    if s.get(open) != Some(&b'{') {
        return Err("the file is not a JSON object".into());
    }
    object_at(s, open)
}

fn section_object(text: &str, section: &str) -> Result<Option<Object>, String> {
    // A file that does not exist yet (or is empty) has no section.
    if text.trim().is_empty() {
        return Ok(None);
    }
    let s = text.as_bytes();
    let root = root(s)?;
    match root.members.iter().find(|m| m.key == section) {
        None => Ok(None),
        Some(m) => object_at(s, m.value_start)
            .map(Some)
            .map_err(|_| format!("`{section}` is not an object")),
    }
}

/// The text of `section.name`'s value, when there is one.
pub fn get<'t>(text: &'t str, section: &str, name: &str) -> Result<Option<&'t str>, String> {
    let Some(obj) = section_object(text, section)? else {
        return Ok(None);
    };
    Ok(obj
        .members
        .iter()
        .find(|m| m.key == name)
        .map(|m| &text[m.value_start..m.value_end]))
}

/// The names in `section`.
pub fn names(text: &str, section: &str) -> Result<Vec<String>, String> {
    Ok(section_object(text, section)?
        .map(|o| o.members.into_iter().map(|m| m.key).collect())
        .unwrap_or_default())
}

/// Whether the file has `section` at all.
pub fn has_section(text: &str, section: &str) -> Result<bool, String> {
    Ok(section_object(text, section)?.is_some())
}

/// The indentation of the line holding byte `at`.
fn indent_of(text: &str, at: usize) -> String {
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    text[line_start..at]
        .chars()
        .take_while(|c| *c == ' ' || *c == '\t')
        .collect()
}

/// `value` pretty-printed, its lines after the first indented by `indent`.
fn render(value: &Value, indent: &str) -> String {
    let pretty = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    pretty.replace('\n', &format!("\n{indent}"))
}

fn key_text(name: &str) -> String {
    Value::from(name).to_string()
}

/// Puts `"name": value` into `obj` (replacing its value if the name is there).
fn upsert_in(text: &str, obj: &Object, name: &str, value: &Value, step: &str) -> String {
    if let Some(m) = obj.members.iter().find(|m| m.key == name) {
        let indent = indent_of(text, m.key_start);
        return format!(
            "{}{}{}",
            &text[..m.value_start],
            render(value, &indent),
            &text[m.value_end..]
        );
    }
    match obj.members.last() {
        Some(last) => {
            let indent = indent_of(text, obj.members[0].key_start);
            format!(
                "{},\n{indent}{}: {}{}",
                &text[..last.value_end],
                key_text(name),
                render(value, &indent),
                &text[last.value_end..]
            )
        }
        None => {
            let outer = indent_of(text, obj.open);
            let indent = format!("{outer}{step}");
            format!(
                "{}\n{indent}{}: {}\n{outer}{}",
                &text[..=obj.open],
                key_text(name),
                render(value, &indent),
                &text[obj.close..]
            )
        }
    }
}

/// The indentation step the file uses (its root members'), else two spaces.
fn step_of(text: &str, root: &Object) -> String {
    root.members
        .first()
        .map(|m| indent_of(text, m.key_start))
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| "  ".into())
}

/// `text` with `section.name` set to `value`; the section is made when missing.
pub fn upsert(text: &str, section: &str, name: &str, value: &Value) -> Result<String, String> {
    let text = if text.trim().is_empty() { "{}\n" } else { text };
    let s = text.as_bytes();
    let root = root(s)?;
    let step = step_of(text, &root);
    match section_object(text, section)? {
        Some(obj) => Ok(upsert_in(text, &obj, name, value, &step)),
        None => {
            let mut entries = serde_json::Map::new();
            entries.insert(name.to_string(), value.clone());
            Ok(upsert_in(
                text,
                &root,
                section,
                &Value::Object(entries),
                &step,
            ))
        }
    }
}

/// `text` with the value of `section.name` replaced by `raw`, byte for byte (what
/// was there before a `link --force`); unchanged when there is no such member.
pub fn replace_raw(text: &str, section: &str, name: &str, raw: &str) -> Result<String, String> {
    let Some(obj) = section_object(text, section)? else {
        return Ok(text.to_string());
    };
    Ok(match obj.members.iter().find(|m| m.key == name) {
        Some(m) => format!("{}{raw}{}", &text[..m.value_start], &text[m.value_end..]),
        None => text.to_string(),
    })
}

/// Removes member `name` of `obj` with the comma that joined it.
fn remove_in(text: &str, obj: &Object, name: &str) -> Option<String> {
    let at = obj.members.iter().position(|m| m.key == name)?;
    let m = &obj.members[at];
    let (start, end) = if at > 0 {
        // From the end of the one before: `,\n  "name": value`.
        (obj.members[at - 1].value_end, m.value_end)
    } else if let Some(next) = obj.members.get(1) {
        (m.key_start, next.key_start)
    } else {
        // The only one: the object becomes `{}`.
        (obj.open + 1, obj.close)
    };
    Some(format!("{}{}", &text[..start], &text[end..]))
}

/// `text` without `section.name` (unchanged when it has none).
pub fn remove(text: &str, section: &str, name: &str) -> Result<String, String> {
    let Some(obj) = section_object(text, section)? else {
        return Ok(text.to_string());
    };
    Ok(remove_in(text, &obj, name).unwrap_or_else(|| text.to_string()))
}

/// `text` without `section` when it holds nothing.
pub fn remove_section_if_empty(text: &str, section: &str) -> Result<String, String> {
    match section_object(text, section)? {
        Some(obj) if obj.members.is_empty() => {
            let root = root(text.as_bytes())?;
            Ok(remove_in(text, &root, section).unwrap_or_else(|| text.to_string()))
        }
        _ => Ok(text.to_string()),
    }
}

/// A digest of a value that ignores formatting and key order.
pub fn digest(value_text: &str) -> String {
    let canonical = serde_json::from_str::<Value>(value_text)
        .map(|v| v.to_string())
        .unwrap_or_else(|_| value_text.to_string());
    blake3::hash(canonical.as_bytes()).to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CLAUDE: &str = "{\n  \"numStartups\": 3,\n  \"mcpServers\": {\n    \"mine\": {\"command\": \"x\",   \"args\": [ ]}\n  },\n  \"tipsHistory\": {\"a\": 1}\n}\n";

    #[test]
    fn an_entry_goes_in_and_out_leaving_every_other_byte() {
        let entry = json!({"type": "http", "url": "http://127.0.0.1:8000/mcp"});
        let linked = upsert(CLAUDE, "mcpServers", "github", &entry).unwrap();
        assert!(linked.contains("\"mine\": {\"command\": \"x\",   \"args\": [ ]},\n    \"github\": {\n      \"type\": \"http\""), "{linked}");
        assert!(
            linked.ends_with("  },\n  \"tipsHistory\": {\"a\": 1}\n}\n"),
            "{linked}"
        );
        assert_eq!(
            digest(get(&linked, "mcpServers", "github").unwrap().unwrap()),
            digest(&entry.to_string())
        );
        assert_eq!(remove(&linked, "mcpServers", "github").unwrap(), CLAUDE);
        // Replacing keeps the place.
        let again = upsert(&linked, "mcpServers", "github", &json!({"url": "u"})).unwrap();
        assert_eq!(names(&again, "mcpServers").unwrap(), ["mine", "github"]);
    }

    #[test]
    fn a_missing_section_is_made_and_taken_away_again() {
        let text = "{\n  \"theme\": \"dark\"\n}\n";
        let linked = upsert(text, "mcpServers", "a", &json!({"url": "u"})).unwrap();
        assert_eq!(
            linked,
            "{\n  \"theme\": \"dark\",\n  \"mcpServers\": {\n    \"a\": {\n      \"url\": \"u\"\n    }\n  }\n}\n"
        );
        let removed = remove(&linked, "mcpServers", "a").unwrap();
        assert_eq!(
            remove_section_if_empty(&removed, "mcpServers").unwrap(),
            text
        );
        let fresh = upsert("", "servers", "a", &json!({})).unwrap();
        assert_eq!(fresh, "{\n  \"servers\": {\n    \"a\": {}\n  }\n}\n");
    }

    #[test]
    fn comments_and_first_members() {
        let zed = "// settings\n{\n  \"context_servers\": {\n    // mine\n    \"x\": {\"command\": \"y\"}, // trailing\n  },\n}\n";
        let linked = upsert(zed, "context_servers", "z", &json!({"command": "c"})).unwrap();
        assert_eq!(names(&linked, "context_servers").unwrap(), ["x", "z"]);
        assert_eq!(remove(&linked, "context_servers", "z").unwrap(), zed);
        let two = "{\"s\": {\"a\": 1, \"b\": 2}}";
        assert_eq!(remove(two, "s", "a").unwrap(), "{\"s\": {\"b\": 2}}");
        assert!(upsert("[1]", "s", "a", &json!(1)).is_err());
        assert!(upsert("{\"s\": 3}", "s", "a", &json!(1)).is_err());
    }
}
