//! `mcpctl import --from CLIENT|FILE`: each client's file, found where the client keeps
//! it under a temp HOME (never the real one), into the file; credentials encrypted.

use std::path::PathBuf;

use crate::common::{
    Run, TestEnv, client_fixture as fixture, echo_bin, free_port, to_run, wait_for,
};

fn home(env: &TestEnv) -> PathBuf {
    env.path().join("home")
}

/// `mcpctl ARGS` with HOME in the test's folder.
fn run_home(env: &TestEnv, args: &[&str]) -> Run {
    let output = env
        .command(args)
        .env("HOME", home(env))
        .output()
        .expect("run mcpctl");
    to_run(args, &output)
}

const TOKEN: &str = "ghp_importedTokenValue0123456789";

#[test]
fn a_claude_desktop_token_is_encrypted_reaches_the_server_and_a_second_import_changes_nothing() {
    let env = TestEnv::new();
    env.run(&["init"]).success();
    let port = free_port().to_string();
    let desktop = serde_json::json!({
        "mcpServers": {
            "GitHub": {
                "command": echo_bin(),
                "args": ["--print-env", "GITHUB_TOKEN", "--print-env", "LOG_LEVEL"],
                "env": {"GITHUB_TOKEN": TOKEN, "LOG_LEVEL": "debug", "HOME_DIR": "${HOME}"}
            }
        },
        "globalShortcut": "Ctrl+Space"
    });
    env.write(
        "xdg/Claude/claude_desktop_config.json",
        &serde_json::to_string_pretty(&desktop).unwrap(),
    );
    let before = env.read("mcpctl.toml");

    // --dry-run: the diff, no token in it, the file untouched.
    let dry = run_home(
        &env,
        &[
            "import",
            "--from",
            "claude-desktop",
            "--dry-run",
            "--first-port",
            &port,
        ],
    );
    dry.success()
        .stdout_has("+[servers.github]")
        .stdout_has("+# imported from claude-desktop:GitHub")
        .stdout_has("+ server \"github\"")
        .stderr_has("dry run");
    assert!(!dry.stdout.contains(TOKEN) && !dry.stderr.contains(TOKEN));
    assert_eq!(env.read("mcpctl.toml"), before);

    run_home(
        &env,
        &["import", "--from", "claude-desktop", "--first-port", &port],
    )
    .success()
    .stderr_has("imported github")
    .stderr_has("1 secret(s) encrypted")
    .stderr_has("stays a reference");
    let after = env.read("mcpctl.toml");
    assert!(!after.contains(TOKEN), "{after}");
    // Only lines added: every comment and line of the file kept where it was.
    let diff = similar::TextDiff::from_lines(&before, &after);
    assert!(
        diff.iter_all_changes()
            .all(|c| c.tag() != similar::ChangeTag::Delete),
        "the file's own text is kept:\n{}",
        diff.unified_diff()
    );
    assert!(after.contains("GITHUB_TOKEN = \"age:"), "{after}");
    assert!(after.contains("LOG_LEVEL = \"debug\""), "{after}");
    assert!(after.contains("HOME_DIR = \"${HOME}\""), "{after}");
    assert!(after.contains(&format!("port = {port}")), "{after}");
    env.run(&["validate"]).success();
    env.run(&[
        "config",
        "secret",
        "get",
        "GITHUB_TOKEN",
        "--server",
        "github",
    ])
    .success()
    .stdout_has(TOKEN);

    // Again: nothing changes, byte for byte.
    run_home(
        &env,
        &["import", "--from", "claude-desktop", "--first-port", &port],
    )
    .success()
    .stderr_has("already in the file as `github`");
    assert_eq!(env.read("mcpctl.toml"), after);

    // The server runs with the value in its environment (the log redacts it).
    env.run_within(60, &["apply"]).success();
    wait_for("the server's env in its log", 20, || {
        let logs = env.run(&["server", "logs", "github"]);
        if logs.stdout.contains("GITHUB_TOKEN=(redacted)")
            && logs.stdout.contains("LOG_LEVEL=debug")
        {
            Ok(())
        } else {
            Err(logs.stdout)
        }
    });
}

/// Where each client keeps its file under HOME (or the project folder), and what it
/// holds.
const CLIENTS: [(&str, &str, &str, &[&str]); 8] = [
    (
        "claude-desktop",
        "xdg/Claude/claude_desktop_config.json",
        "claude_desktop_config.json",
        &["filesystem", "github"],
    ),
    (
        "claude-code",
        "home/.claude.json",
        "claude.json",
        &["sentry", "db"],
    ),
    ("claude-code", ".mcp.json", "mcp.json", &["airtable"]),
    (
        "cursor",
        "home/.cursor/mcp.json",
        "cursor_mcp.json",
        &["github", "remote-sse"],
    ),
    (
        "vscode",
        ".vscode/mcp.json",
        "vscode_mcp.json",
        &["perplexity", "fetch"],
    ),
    (
        "windsurf",
        "home/.codeium/windsurf/mcp_config.json",
        "windsurf_mcp_config.json",
        &["figma", "memory"],
    ),
    (
        "zed",
        "xdg/zed/settings.json",
        "zed_settings.json",
        &["old-style", "postgres", "remote"],
    ),
    (
        "codex",
        "home/.codex/config.toml",
        "codex_config.toml",
        &["docs", "linear"],
    ),
];

#[test]
fn every_client_s_fixture_is_found_and_imported_into_a_valid_file_without_plaintext() {
    for (client, at, fixture_name, servers) in CLIENTS {
        let env = TestEnv::new();
        env.run(&["init"]).success();
        let text = fixture(fixture_name);
        env.write(at, &text);
        let port = free_port().to_string();
        run_home(&env, &["import", "--from", client, "--first-port", &port]).success();
        let after = env.read("mcpctl.toml");
        for server in servers {
            assert!(
                after.contains(&format!("[servers.{server}]")),
                "{client}: no {server} in\n{after}"
            );
        }
        for secret in [
            "ghp_exampleexampleexample1234",
            "sntrys_exampletoken",
            "fig_1234567890abcdefghijklmn",
            "hunter2",
            "d0cs-t0ken-abcdefghijklmnop",
            "lin_api_abc123",
        ] {
            assert!(!after.contains(secret), "{client}: {secret} in\n{after}");
        }
        env.run(&["validate"]).success();
        // Importing again adds nothing.
        run_home(&env, &["import", "--from", client, "--first-port", &port])
            .success()
            .stderr_has("nothing to import");
        assert_eq!(env.read("mcpctl.toml"), after, "{client}");
    }
}

#[test]
fn import_reports_duplicates_clashes_and_refusals() {
    let env = TestEnv::new();
    env.run(&["init"]).success();
    env.write("a.json", &fixture("claude_desktop_config.json"));
    env.write("b.json", &fixture("cursor_mcp.json"));
    let port = free_port().to_string();
    run_home(&env, &["import", "--from", "a.json", "--first-port", &port]).success();
    // The same github command again: skipped, not doubled.
    run_home(
        &env,
        &[
            "import",
            "--from",
            "b.json",
            "--only",
            "github,remote-sse",
            "--first-port",
            &port,
        ],
    )
    .success()
    .stderr_has("already in the file as `github`")
    .stderr_has("imported remote-sse");
    let text = env.read("mcpctl.toml");
    assert_eq!(text.matches("[servers.github]").count(), 1, "{text}");
    // A name another server has: renamed.
    env.write(
        "c.json",
        r#"{"mcpServers": {"github": {"command": "another-github-mcp"}}}"#,
    );
    run_home(&env, &["import", "--from", "c.json", "--first-port", &port])
        .success()
        .stderr_has("added as `github-2`");
    // Refusals change nothing.
    let before = env.read("mcpctl.toml");
    run_home(&env, &["import", "--from", "b.json", "--only", "nope"])
        .failure()
        .stderr_has("--only nope: no such server");
    run_home(&env, &["import", "--from", "cursor"])
        .failure()
        .stderr_has("no cursor config found");
    env.write("bad.json", "{ not json");
    run_home(&env, &["import", "--from", "bad.json"])
        .failure()
        .stderr_has("not JSON");
    assert_eq!(env.read("mcpctl.toml"), before);

    // Credentials with no recipient to encrypt to: refused, with the fix.
    let bare = TestEnv::with_config("version = 1\n");
    bare.write("a.json", &fixture("claude_desktop_config.json"));
    run_home(&bare, &["import", "--from", "a.json"])
        .failure()
        .stderr_has("no recipients")
        .stderr_has("keygen --add");
    assert_eq!(bare.read("mcpctl.toml"), "version = 1\n");
}

#[test]
fn a_name_no_server_can_have_is_renamed_and_the_rest_imported() {
    let env = TestEnv::new();
    env.run(&["init"]).success();
    let desktop = serde_json::json!({"mcpServers": {
        "evil\nname": {"command": "evil-mcp"},
        "fine": {"command": "fine-mcp"},
    }});
    env.write("a.json", &desktop.to_string());
    let port = free_port().to_string();
    run_home(&env, &["import", "--from", "a.json", "--first-port", &port])
        .success()
        .stderr_has(r#""evil\nname" is not a valid server name; named `evil-name`"#)
        .stderr_has("imported evil-name");
    let after = env.read("mcpctl.toml");
    assert!(after.contains("[servers.evil-name]"), "{after}");
    assert!(after.contains("[servers.fine]"), "{after}");
    assert!(after.contains(r"# imported from "), "{after}");
    env.run(&["validate"]).success();
}

#[test]
fn credentials_in_args_and_urls_are_warned_about_by_server_and_place() {
    let env = TestEnv::new();
    env.run(&["init"]).success();
    let desktop = serde_json::json!({"mcpServers": {
        "tokened": {"command": "some-mcp", "args": ["--token=argS3cret0", "--api-key", "argS3cret1"]},
        "remote": {"url": "https://mcp.example.com/mcp?api_key=urlS3cret2"},
    }});
    env.write("a.json", &desktop.to_string());
    let port = free_port().to_string();
    let run = run_home(&env, &["import", "--from", "a.json", "--first-port", &port]);
    run.success()
        .stderr_has("warning: a.json:tokened: argument 1 (`--token=...`), argument 3 (the value of `--api-key`) hold a credential")
        .stderr_has("warning: a.json:remote: the url's query parameter `api_key` holds a credential");
    for secret in ["argS3cret0", "argS3cret1", "urlS3cret2"] {
        assert!(!run.stderr.contains(secret), "{}", run.stderr);
    }
}

#[test]
fn codex_s_file_is_found_under_codex_home() {
    let env = TestEnv::new();
    env.run(&["init"]).success();
    env.write("codex-home/config.toml", &fixture("codex_config.toml"));
    let port = free_port().to_string();
    let output = env
        .command(&["import", "--from", "codex", "--first-port", &port])
        .env("HOME", home(&env))
        .env("CODEX_HOME", env.path().join("codex-home"))
        .output()
        .unwrap();
    to_run(&["import"], &output)
        .success()
        .stderr_has("imported docs");
    // Without it, ~/.codex is where it is looked for.
    run_home(&env, &["import", "--from", "codex"])
        .failure()
        .stderr_has(".codex/config.toml");
}
