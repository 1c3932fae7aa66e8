//! The committed JSON Schema is what the model generates. `UPDATE_SCHEMA=1 cargo test`
//! rewrites it.

use crate::common::repo_root;

#[test]
fn committed_schema_is_current() {
    let path = repo_root().join(mcpctl::schema::COMMITTED_PATH);
    let generated = mcpctl::schema::json_schema();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is stale; run `UPDATE_SCHEMA=1 cargo test --test it schema` and commit it",
        path.display()
    );
}

#[test]
fn schema_refuses_unknown_fields_and_knows_every_server_field() {
    let schema: serde_json::Value = serde_json::from_str(&mcpctl::schema::json_schema()).unwrap();
    assert_eq!(schema["additionalProperties"], false);
    let layer = &schema["$defs"]["Layer"];
    assert_eq!(layer["additionalProperties"], false);
    for field in [
        "command",
        "args",
        "cwd",
        "env",
        "transport",
        "mode",
        "url",
        "port",
        "bind",
        "profile",
        "state",
        "instances",
        "restart",
        "stop_timeout",
        "start_timeout",
        "servers",
    ] {
        assert!(
            layer["properties"].get(field).is_some(),
            "schema lacks `{field}`"
        );
    }
    assert_eq!(layer["properties"]["port"]["maximum"], 65535);
    let text = schema.to_string();
    assert!(!text.contains("\"null\""), "TOML has no null");
}
