//! `profile create|update|list|show|delete`.

use crate::common::{TestEnv, free_port};

/// Servers `a` and `b`, on ports `a`, `b` (only planned, never started).
fn config(a: u16, b: u16) -> String {
    format!(
        "version = 1\n\n[servers.a]\ncommand = \"x\"\nport = {a}\n\n[servers.b]\ncommand = \"y\"\nport = {b}\n"
    )
}

#[test]
fn create_use_show_list_and_delete() {
    let (a, b, prod) = (free_port(), free_port(), free_port());
    let env = TestEnv::with_config(&config(a, b));
    env.write(
        "prod.json",
        &format!(
            r#"{{"instances": 3, "env": {{"LOG": "warn"}}, "servers": {{"a": {{"port": {prod}}}}}}}"#
        ),
    );
    env.run(&["profile", "create", "prod", "--config", "prod.json"])
        .success();
    env.run(&["profile", "create", "prod"])
        .failure()
        .stderr_has("already exists");
    env.run(&["profile", "create", "empty"]).success();

    // Switching server `a` to the profile really changes what runs.
    let text = env.read("mcpctl.toml").replace(
        &format!("port = {a}\n"),
        &format!("port = {a}\nprofile = \"prod\"\n"),
    );
    env.write("mcpctl.toml", &text);
    let plan = env.run(&["plan", "--format", "json"]);
    plan.success();
    let json: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    let a = &json["actions"][0];
    assert_eq!(a["instances_after"], 3);
    let port = a["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "port")
        .unwrap();
    assert_eq!(port["after"], prod);

    let list = env.run(&["profile", "list"]);
    list.success();
    assert_eq!(
        list.stdout,
        "PROFILE              SERVERS\ndefault              b\nempty                -\nprod                 a\n"
    );
    env.run(&["profile", "show", "prod"])
        .success()
        .stdout_has("used by: a")
        .stdout_has("instances = 3");
    env.run(&["profile", "show", "nope"])
        .failure()
        .stderr_has("known profiles: default, empty, prod");

    env.write("more.json", r#"{"instances": 2}"#);
    env.run(&["profile", "update", "prod", "--config", "more.json"])
        .success();
    env.run(&["profile", "show", "prod"])
        .success()
        .stdout_has("instances = 2")
        .stdout_has("LOG = \"warn\"");
    env.run(&["profile", "update", "ghost", "--config", "more.json"])
        .failure()
        .stderr_has("does not exist");

    let before = env.read("mcpctl.toml");
    env.run(&["profile", "delete", "prod"])
        .failure()
        .stderr_has("profile `prod` is used by a");
    assert_eq!(env.read("mcpctl.toml"), before);
    env.run(&["profile", "delete", "empty"]).success();
    assert!(!env.read("mcpctl.toml").contains("[profiles.empty]"));
    env.run(&["validate"]).success();
}
