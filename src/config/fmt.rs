//! `mcpctl fmt`: one canonical layout, comments kept.
//!
//! Only whitespace changes: `key = value` with single spaces, no indentation, one
//! space before a trailing comment, at most one blank line in a row, one blank line
//! before each table header, single-line arrays and inline tables spaced as
//! `[1, 2]` / `{ a = 1 }`, and exactly one newline at the end. `toml_edit`'s own
//! `Table::fmt` is not used: it clears the decor that holds comments.

use toml_edit::{Array, Decor, DocumentMut, Item, RawString, Table, Value};

/// Formats `source`; fails only on TOML syntax errors.
pub fn format(source: &str) -> Result<String, toml_edit::TomlError> {
    let mut doc: DocumentMut = source.parse()?;
    format_table(doc.as_table_mut(), true);
    let trailing = normalise_comments(doc.trailing().as_str().unwrap_or(""));
    doc.set_trailing(trailing);
    let mut text = doc.to_string().trim_start_matches('\n').to_string();
    while text.ends_with("\n\n") {
        text.pop();
    }
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

fn format_table(table: &mut Table, is_root: bool) {
    if !is_root && !table.is_implicit() {
        let comments = leading_comments(table.decor());
        let suffix = trailing_comment(table.decor().suffix());
        let decor = table.decor_mut();
        decor.set_prefix(format!("\n{}", comments.trim_start_matches('\n')));
        decor.set_suffix(suffix);
    }
    for (mut key, item) in table.iter_mut() {
        match item {
            Item::Value(value) => {
                let comments = leading_comments(key.leaf_decor());
                key.leaf_decor_mut().set_prefix(comments);
                key.leaf_decor_mut().set_suffix(" ");
                value.decor_mut().set_prefix(" ");
                let suffix = trailing_comment(value.decor().suffix());
                value.decor_mut().set_suffix(suffix);
                format_value(value);
            }
            Item::Table(sub) => format_table(sub, false),
            Item::ArrayOfTables(tables) => {
                for sub in tables.iter_mut() {
                    format_table(sub, false);
                }
            }
            Item::None => {}
        }
    }
}

fn format_value(value: &mut Value) {
    match value {
        Value::Array(array) if is_single_line(array) => {
            for v in array.iter_mut() {
                format_value(v);
            }
            array.fmt();
        }
        Value::InlineTable(inline) => {
            for (_, v) in inline.iter_mut() {
                format_value(v);
            }
            inline.fmt();
        }
        _ => {}
    }
}

fn is_single_line(array: &Array) -> bool {
    !array.to_string().contains('\n')
}

fn leading_comments(decor: &Decor) -> String {
    normalise_comments(decor.prefix().and_then(RawString::as_str).unwrap_or(""))
}

/// A value's or header's suffix reduced to ` # comment` (or nothing).
fn trailing_comment(suffix: Option<&RawString>) -> String {
    let text = suffix.and_then(RawString::as_str).unwrap_or("");
    match text.trim() {
        "" => String::new(),
        comment => format!(" {comment}"),
    }
}

/// Comment and blank lines before a key or header: indentation removed, trailing
/// spaces removed, runs of blank lines folded to one, leading blank lines kept as one.
fn normalise_comments(prefix: &str) -> String {
    let mut out = String::new();
    let mut blank = false;
    for line in prefix.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            if line.ends_with('\n') {
                blank = true;
            }
            continue;
        }
        if blank {
            out.push('\n');
        }
        blank = false;
        out.push_str(trimmed);
        out.push('\n');
    }
    if blank && !out.is_empty() {
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_whitespace_and_keeps_comments() {
        let src = "#:schema ./s.json\nversion=1   # the format\n\n\n\n   [servers.a]   # first\n  # about the command\n  command    =   \"x\"\nargs=[ \"a\",\"b\" ]\nenv={A=\"1\",B=\"2\"}\n";
        let want = "#:schema ./s.json\nversion = 1 # the format\n\n[servers.a] # first\n# about the command\ncommand = \"x\"\nargs = [\"a\", \"b\"]\nenv = { A = \"1\", B = \"2\" }\n";
        assert_eq!(format(src).unwrap(), want);
    }

    #[test]
    fn is_idempotent_and_keeps_meaning() {
        let src = "version = 1\n[servers.a]\ncommand = \"x\"\nargs = [\n  \"multi\", # why\n  \"line\",\n]\n\n\n[servers.b]\ncommand=\"y\"\n";
        let once = format(src).unwrap();
        assert_eq!(format(&once).unwrap(), once);
        let a: toml::Table = toml::from_str(src).unwrap();
        let b: toml::Table = toml::from_str(&once).unwrap();
        assert_eq!(a, b);
        assert!(once.contains("# why"));
    }
}
