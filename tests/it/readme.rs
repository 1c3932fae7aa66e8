//! The README's commands work: the main job runs, and the test command is CI's.

use crate::common::{TestEnv, echo_bin, http, repo_root, to_run};

fn readme() -> String {
    std::fs::read_to_string(repo_root().join("README.md")).unwrap()
}

/// The README's main job, on a copy of its config whose command is the already
/// built fixture: running `cargo` inside `cargo test` would wait on the build lock.
#[test]
fn the_main_job_command_works() {
    let text = readme();
    let line = text
        .lines()
        .find(|l| l.starts_with("cargo run -- "))
        .expect("README has a `cargo run -- ...` main job");
    let args: Vec<&str> = line
        .trim_start_matches("cargo run -- ")
        .split_whitespace()
        .collect();
    let config_arg = args
        .iter()
        .position(|a| *a == "-f")
        .map(|i| args[i + 1])
        .expect("the main job names its config");
    let original = std::fs::read_to_string(repo_root().join(config_arg)).unwrap();
    let mut config: toml_edit::DocumentMut = original.parse().unwrap();
    let echo = &mut config["servers"]["echo"];
    echo["command"] = toml_edit::value(echo_bin());
    echo["args"] = toml_edit::value(toml_edit::Array::new());
    echo.as_table_mut().unwrap().remove("cwd");
    let env = TestEnv::new();
    env.write(config_arg, &config.to_string());
    let out = env.command(&args).output().unwrap();
    to_run(&args, &out)
        .success()
        .stdout_has("echo: instance 0 ready")
        .stdout_has("echo             Streamable HTTP http://127.0.0.1:8000/mcp");
    // The printed endpoint is a real MCP server over HTTP.
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"readme","version":"1"}}}"#;
    let reply = http(8000, "POST", "/mcp", &[], init.as_bytes());
    assert_eq!(reply.status, 200, "{}", reply.body);
    let session = reply.header("mcp-session-id").unwrap().to_string();
    let call = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"from the README"}}}"#;
    let reply = http(
        8000,
        "POST",
        "/mcp",
        &[("Mcp-Session-Id", &session)],
        call.as_bytes(),
    );
    assert!(reply.body.contains("from the README"), "{}", reply.body);
    let stop = ["-f", config_arg, "daemon", "stop"];
    to_run(&stop, &env.command(&stop).output().unwrap()).success();
}

#[test]
fn ci_runs_the_readme_test_command() {
    let ci = std::fs::read_to_string(repo_root().join(".ci/run")).unwrap();
    assert!(readme().contains("\ncargo test\n"));
    assert!(ci.lines().any(|l| l.starts_with("cargo test")), "{ci}");
}
