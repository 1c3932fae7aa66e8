//! The JSON Schema of `mcpctl.toml`, generated from the raw model so it cannot
//! drift: `tests/it/schema.rs` fails when `schema/mcpctl.schema.json` is stale.
//! Editors (taplo / Even Better TOML) use it through a `#:schema` first line.

use serde_json::Value;

use crate::model::raw::RawConfig;

pub const COMMITTED_PATH: &str = "schema/mcpctl.schema.json";

/// The schema's name beside a user's file (`mcpctl init` writes it there).
pub const BESIDE: &str = "mcpctl.schema.json";

pub fn json_schema() -> String {
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<RawConfig>();
    let mut value = schema.to_value();
    drop_null(&mut value);
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    text.push('\n');
    text
}

/// TOML has no null: an optional field is simply absent, so `null` alternatives
/// (schemars' rendering of `Option<T>`) are removed.
fn drop_null(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    map.insert("type".into(), only);
                }
            }
            for key in ["anyOf", "oneOf"] {
                if let Some(Value::Array(alternatives)) = map.get_mut(key) {
                    alternatives.retain(|a| a.get("type").and_then(Value::as_str) != Some("null"));
                    if alternatives.len() == 1
                        && let Some(Value::Object(only)) = alternatives.pop()
                    {
                        map.remove(key);
                        map.extend(only);
                    }
                }
            }
            map.values_mut().for_each(drop_null);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_null),
        _ => {}
    }
}
