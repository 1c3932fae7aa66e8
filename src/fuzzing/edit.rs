//! `edit`: the comment-keeping editor of `mcpctl.toml`. A file the raw reader accepts
//! gets a sequence of edits (`config env|secret set|unset`, `server set`, `profile
//! create|update|delete`, a backup's block restored under a new name); the result
//! must parse, and, when no edit removed anything, keep every comment of the file.

use std::collections::BTreeMap;

use toml_edit::{DocumentMut, Item, Value};

use crate::config::edit::{self as ed, MapTable, Scope, block};
use crate::model::raw::Layer;

/// The comments of a TOML text (`#` outside strings to the end of its line), counted.
pub(super) fn comments(text: &str) -> BTreeMap<String, usize> {
    let mut found = BTreeMap::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    let starts = |at: usize, s: &str| bytes.get(at..at + s.len()) == Some(s.as_bytes());
    while i < bytes.len() {
        if starts(i, "\"\"\"") || starts(i, "'''") {
            let quote = &text[i..i + 3];
            let escapes = quote == "\"\"\"";
            i += 3;
            while i < bytes.len() && !starts(i, quote) {
                i += if escapes && bytes[i] == b'\\' { 2 } else { 1 };
            }
            // A closing quote may be followed by up to two more quotes of the string.
            i += 3;
            while i < bytes.len() && starts(i, quote.get(..1).unwrap_or("")) {
                i += 1;
            }
            continue;
        }
        match bytes[i] {
            b'"' | b'\'' => {
                let quote = bytes[i];
                i += 1;
                while i < bytes.len() && bytes[i] != quote && bytes[i] != b'\n' {
                    i += if quote == b'"' && bytes[i] == b'\\' {
                        2
                    } else {
                        1
                    };
                }
                i += 1;
            }
            b'#' => {
                let end = text[i..].find('\n').map_or(text.len(), |n| i + n);
                let comment = text[i..end].trim_end().to_string();
                *found.entry(comment).or_insert(0) += 1;
                i = end;
            }
            _ => i += 1,
        }
    }
    found
}

/// The servers of the document, in order.
fn servers(doc: &DocumentMut) -> Vec<String> {
    doc.get("servers")
        .and_then(Item::as_table_like)
        .map(|t| t.iter().map(|(k, _)| k.to_string()).collect())
        .unwrap_or_default()
}

/// One edit, chosen by a byte: the low 3 bits the edit, the rest its argument.
/// Returns whether it may remove something (and so a comment with it).
fn apply(doc: &mut DocumentMut, op: u8) -> bool {
    let arg = usize::from(op >> 3);
    let known = servers(doc);
    let server = known
        .get(arg % (known.len() + 1))
        .cloned()
        .unwrap_or_else(|| format!("new{arg}"));
    let scope = if arg % 5 == 4 {
        Scope::Defaults
    } else {
        Scope::Server(server.clone())
    };
    let key = ["LOG", "TOKEN", "A", "b.c"][arg % 4];
    let profile = format!("p{}", arg % 3);
    match op & 7 {
        0 => drop(ed::set_entry(doc, &scope, MapTable::Env, key, "v")),
        1 => drop(ed::set_entry(doc, &scope, MapTable::Secrets, key, "age:x")),
        2 => {
            let _ = ed::unset_entry(doc, &scope, MapTable::Env, key);
            return true;
        }
        3 => {
            let Ok(raw) = crate::model::parse_raw(&doc.to_string()) else {
                return false;
            };
            let (field, value, removes) = match arg % 4 {
                0 => ("command", Value::from("mcp-echo"), false),
                1 => ("port", Value::from(8123), false),
                2 => ("instances", Value::from(2), true),
                _ => ("restart", Value::from("always"), false),
            };
            let profile = ed::profile_of(&raw, &server);
            let _ = ed::set_server_field(doc, &raw, &server, &profile, field, value);
            return removes;
        }
        4 => {
            let path = ["servers".to_string(), server, "command".to_string()];
            let _ = ed::replace_value(doc, &path, Value::from("other"));
        }
        5 => {
            let layer = Layer {
                command: Some("mcp-echo".into()),
                env: Some(BTreeMap::from([("K".to_string(), "v".to_string())])),
                ..Layer::default()
            };
            let _ = ed::upsert_profile(doc, &profile, &layer, arg & 8 != 0);
        }
        6 => {
            if let Ok(text) = block::server_block(doc, &server) {
                let _ = block::insert_server(doc, &text, &server, &format!("copy{arg}"));
            }
        }
        _ => {
            let _ = ed::remove_profile(doc, &profile);
            return true;
        }
    }
    false
}

/// First byte: how many edits (0 to 7) the next bytes are; the rest is the file.
pub fn edit(data: &[u8]) {
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    let count = usize::from(count % 8).min(rest.len());
    let (ops, source) = rest.split_at(count);
    let Ok(source) = std::str::from_utf8(source) else {
        return;
    };
    if crate::model::parse_raw(source).is_err() {
        return;
    }
    let Ok(mut doc) = ed::parse(source) else {
        return;
    };
    let mut removed = false;
    for &op in ops {
        removed |= apply(&mut doc, op);
    }
    let text = doc.to_string();
    if let Err(e) = ed::parse(&text) {
        panic!("the edits left a file that does not parse: {e}\n{text}");
    }
    if removed {
        return;
    }
    let after = comments(&text);
    for (comment, n) in comments(source) {
        let kept = after.get(&comment).copied().unwrap_or(0);
        assert!(
            kept >= n,
            "lost the comment {comment:?}:\n{source}\n---\n{text}"
        );
    }
}
