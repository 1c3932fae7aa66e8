//! JSON values written as YAML, block style: every string double-quoted as JSON
//! writes it (a valid YAML 1.2 scalar, so no value is ever read as another type).

use serde_json::Value;

/// `documents` as one YAML stream, `---` before each.
pub fn stream(documents: &[Value]) -> String {
    let mut out = String::new();
    for doc in documents {
        out.push_str("---\n");
        block(doc, 0, &mut out);
    }
    out
}

fn block(value: &Value, indent: usize, out: &mut String) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                out.push_str(&" ".repeat(indent));
                out.push_str(&key_text(key));
                out.push(':');
                nested(v, indent, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                out.push_str(&" ".repeat(indent));
                out.push('-');
                match item {
                    Value::Object(map) if !map.is_empty() => {
                        // The first key on the dash's line, the rest under it.
                        let mut inner = String::new();
                        block(item, indent + 2, &mut inner);
                        out.push(' ');
                        out.push_str(&inner[indent + 2..]);
                    }
                    _ => nested(item, indent, out),
                }
            }
        }
        scalar => {
            out.push_str(&" ".repeat(indent));
            out.push_str(&scalar_text(scalar));
            out.push('\n');
        }
    }
}

/// After `key:` or `-`: a scalar (or empty collection) on the line, else a block.
fn nested(v: &Value, indent: usize, out: &mut String) {
    match v {
        Value::Object(m) if m.is_empty() => out.push_str(" {}\n"),
        Value::Array(a) if a.is_empty() => out.push_str(" []\n"),
        Value::Object(_) | Value::Array(_) => {
            out.push('\n');
            block(v, indent + 2, out);
        }
        scalar => {
            out.push(' ');
            out.push_str(&scalar_text(scalar));
            out.push('\n');
        }
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => quoted(s),
        other => other.to_string(),
    }
}

/// JSON's quoting, and also `\u` escapes for what YAML does not take raw (DEL, the C1
/// controls) or reads as a line break (NEL, U+2028, U+2029) or a mark (BOM).
fn quoted(s: &str) -> String {
    let json = serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    json.chars()
        .map(|c| match c {
            '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{feff}' => {
                format!("\\u{:04x}", u32::from(c))
            }
            c => c.to_string(),
        })
        .collect()
}

/// Keys plain where YAML reads them as the same string (Kubernetes' own keys, labels
/// like `app.kubernetes.io/name`), else quoted.
fn key_text(key: &str) -> String {
    let plain = !key.is_empty()
        && key.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        && !matches!(
            key.to_ascii_lowercase().as_str(),
            "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null"
        );
    if plain { key.to_string() } else { quoted(key) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn blocks_lists_and_quoted_scalars() {
        let doc = json!({
            "kind": "Deployment",
            "metadata": {"labels": {"app.kubernetes.io/name": "a"}, "annotations": {}},
            "spec": {"replicas": 2, "args": ["--port", "8000", "yes"], "ports": [],
                     "containers": [{"name": "c", "env": [{"name": "X", "value": "1"}]}],
                     "on": true, "n": null, "odd key": "v: \"q\"\nline"}
        });
        let text = stream(&[doc]);
        // Keys in serde_json's (sorted) order; Kubernetes reads any.
        let want = r#"---
kind: "Deployment"
metadata:
  annotations: {}
  labels:
    app.kubernetes.io/name: "a"
spec:
  args:
    - "--port"
    - "8000"
    - "yes"
  containers:
    - env:
        - name: "X"
          value: "1"
      name: "c"
  "n": null
  "odd key": "v: \"q\"\nline"
  "on": true
  ports: []
  replicas: 2
"#;
        assert_eq!(text, want);
        let odd = stream(&[json!({"v": "a\u{7f}b\u{85}c\u{2028}d"})]);
        assert_eq!(odd, "---\nv: \"a\\u007fb\\u0085c\\u2028d\"\n");
    }
}
