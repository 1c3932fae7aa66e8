//! The README's commands work: the main job runs, and the test command is CI's.

use crate::common::{TestEnv, free_port, http, repo_root, to_run};

fn readme() -> String {
    std::fs::read_to_string(repo_root().join("README.md")).unwrap()
}

/// The README's main job, on a copy of its config as it is: its `mcp-echo` is the
/// copy inside the mcpctl under test (none is on the test's PATH), so nothing but
/// mcpctl is needed, as on a fresh checkout after `cargo run`.
///
/// It runs on the documented port when that is free. When something else holds it
/// (another checkout's tests, a real server), the test says so and runs the same
/// check on a free port, rewritten into the copy.
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
    assert_eq!(
        echo["command"].as_str(),
        Some("mcp-echo"),
        "the quickstart runs the bundled server, built with mcpctl itself"
    );
    let documented = echo["port"]
        .as_integer()
        .and_then(|p| u16::try_from(p).ok())
        .expect("the example names its port");
    assert!(
        text.contains(&format!("http://127.0.0.1:{documented}/mcp")),
        "the README shows the example's port {documented}"
    );

    let free = std::net::TcpListener::bind(("127.0.0.1", documented)).is_ok();
    if free {
        // Free a moment ago: taken since (a race with another run) is said and
        // retried below, like taken before.
        match main_job(&args, config_arg, &config, documented) {
            Ok(()) => return,
            Err(taken) => say(&format!(
                "note: the documented port {documented} was taken when the main job started \
                 ({taken}); checking the main job on a free port instead"
            )),
        }
    } else {
        say(&format!(
            "note: the documented port {documented} is taken on this machine, so the main \
             job is checked on a free port instead"
        ));
    }
    let port = free_port();
    config["servers"]["echo"]["port"] = toml_edit::value(i64::from(port));
    main_job(&args, config_arg, &config, port).unwrap_or_else(|e| panic!("{e}"));
}

/// A line on the test's stderr, shown even when the test passes: written to the
/// stream itself, as `eprintln!` output is captured by the harness and shown only
/// for a failure.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Runs the main job `args` in a new folder holding `config` at `config_arg`, then
/// talks MCP to the endpoint it prints on `port`. `Err` when `port` was taken.
fn main_job(
    args: &[&str],
    config_arg: &str,
    config: &toml_edit::DocumentMut,
    port: u16,
) -> Result<(), String> {
    let env = TestEnv::new();
    env.write(config_arg, &config.to_string());
    let out = env.command(args).output().unwrap();
    let run = to_run(args, &out);
    let taken = format!("cannot serve on 127.0.0.1:{port}");
    if run.code != 0 && run.stderr.contains(&taken) {
        return Err(taken);
    }
    run.success()
        .stdout_has("echo: instance 0 ready")
        .stdout_has(&format!(
            "echo             Streamable HTTP http://127.0.0.1:{port}/mcp"
        ));
    // The printed endpoint is a real MCP server over HTTP.
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"readme","version":"1"}}}"#;
    let reply = http(port, "POST", "/mcp", &[], init.as_bytes());
    assert_eq!(reply.status, 200, "{}", reply.body);
    let session = reply.header("mcp-session-id").unwrap().to_string();
    let call = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"from the README"}}}"#;
    let reply = http(
        port,
        "POST",
        "/mcp",
        &[("Mcp-Session-Id", &session)],
        call.as_bytes(),
    );
    assert!(reply.body.contains("from the README"), "{}", reply.body);
    let stop = ["-f", config_arg, "daemon", "stop"];
    to_run(&stop, &env.command(&stop).output().unwrap()).success();
    Ok(())
}

#[test]
fn ci_runs_the_readme_test_command() {
    let ci = std::fs::read_to_string(repo_root().join(".ci/run")).unwrap();
    assert!(readme().contains("\ncargo test\n"));
    assert!(ci.lines().any(|l| l.starts_with("cargo test")), "{ci}");
}

/// Issue 28: three `MCPCTL_*` variables were read by the code and named nowhere in the
/// README. Every one in a string of `src/` is in the README's one list.
#[test]
fn every_mcpctl_variable_is_in_the_readmes_list() {
    let readme = readme();
    let list = readme
        .split("## Environment variables")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("a section \"Environment variables\"");
    let mut missing = std::collections::BTreeSet::new();
    let mut stack = vec![repo_root().join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for (at, _) in text.match_indices("\"MCPCTL_") {
                let name: String = text[at + 1..]
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                // `"MCPCTL_"` alone is the prefix (a server's env never gets them).
                if name != "MCPCTL_" && !list.contains(&format!("`{name}`")) {
                    missing.insert(name);
                }
            }
        }
    }
    assert!(missing.is_empty(), "not in the README's list: {missing:?}");
}

/// Issue 28: the SDK test installed packages from PyPI when no Python was given.
/// Nothing in the tests runs pip (built here so this file does not name it).
#[test]
fn no_test_installs_from_the_network() {
    let pip = format!("\"{}\"", ["p", "i", "p"].concat());
    let dir = repo_root().join("tests/it");
    for entry in std::fs::read_dir(&dir).unwrap().filter_map(Result::ok) {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        assert!(!text.contains(&pip), "{} runs pip", entry.path().display());
    }
}
