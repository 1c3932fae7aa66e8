//! `mcpctl client link|unlink|show|status`: each client's fixture file, under a temp
//! HOME, gets mcpctl's entries in place and loses exactly them again.

use similar::{ChangeTag, TextDiff};

use crate::common::{Run, TestEnv, client_fixture as fixture, echo_bin, free_port, to_run};

fn run_home(env: &TestEnv, args: &[&str]) -> Run {
    let output = env
        .command(args)
        .env("HOME", env.path().join("home"))
        .output()
        .expect("run mcpctl");
    to_run(args, &output)
}

fn config(port: u16) -> String {
    format!(
        "version = 1\n[servers.linked]\ncommand = \"{}\"\nport = {port}\n",
        echo_bin()
    )
}

/// Only insertions from `before` to `after`: every byte of `before` is still there,
/// in order (foreign entries byte-identical).
fn only_added(before: &str, after: &str) -> bool {
    TextDiff::from_chars(before, after)
        .iter_all_changes()
        .all(|c| c.tag() != ChangeTag::Delete)
}

/// (client, scope, where its file is under the test folder, fixture, what the entry holds)
const CLIENTS: [(&str, &str, &str, &str, &str); 8] = [
    (
        "claude-desktop",
        "user",
        "xdg/Claude/claude_desktop_config.json",
        "claude_desktop_config.json",
        "\"connect\"",
    ),
    (
        "claude-code",
        "user",
        "home/.claude.json",
        "claude.json",
        "\"type\": \"http\"",
    ),
    (
        "claude-code",
        "project",
        ".mcp.json",
        "mcp.json",
        "\"type\": \"http\"",
    ),
    (
        "cursor",
        "user",
        "home/.cursor/mcp.json",
        "cursor_mcp.json",
        "\"url\": \"http://127.0.0.1:",
    ),
    (
        "vscode",
        "project",
        ".vscode/mcp.json",
        "vscode_mcp.json",
        "\"type\": \"http\"",
    ),
    (
        "windsurf",
        "user",
        "home/.codeium/windsurf/mcp_config.json",
        "windsurf_mcp_config.json",
        "\"serverUrl\"",
    ),
    (
        "zed",
        "user",
        "xdg/zed/settings.json",
        "zed_settings.json",
        "\"connect\"",
    ),
    (
        "codex",
        "user",
        "home/.codex/config.toml",
        "codex_config.toml",
        "[mcp_servers.linked]",
    ),
];

#[test]
fn every_client_s_file_is_linked_in_place_and_unlinked_back_to_its_bytes() {
    for (client, scope, at, fixture_name, holds) in CLIENTS {
        let env = TestEnv::with_config(&config(free_port()));
        let original = fixture(fixture_name);
        env.write(at, &original);
        let show = run_home(&env, &["client", "show", client]);
        show.success().stdout_has("\"linked\"").stdout_has(holds);

        run_home(&env, &["client", "link", client, "--scope", scope])
            .success()
            .stderr_has("linked linked into");
        let linked = env.read(at);
        assert!(linked.contains(holds), "{client}: {linked}");
        assert!(
            only_added(&original, &linked),
            "{client}: something else changed:\n{}",
            TextDiff::from_lines(&original, &linked).unified_diff()
        );
        if client != "zed" && client != "codex" {
            let doc: serde_json::Value = serde_json::from_str(&linked).unwrap();
            let section = if client == "vscode" {
                "servers"
            } else {
                "mcpServers"
            };
            assert!(doc[section]["linked"].is_object(), "{client}: {linked}");
        }
        run_home(&env, &["client", "status"])
            .success()
            .stdout_has(&format!("{client}:{scope}"))
            .stdout_has("in-sync");
        // Linking again changes nothing.
        run_home(&env, &["client", "link", client, "--scope", scope]).success();
        assert_eq!(env.read(at), linked, "{client}");

        run_home(&env, &["client", "unlink", client, "--scope", scope])
            .success()
            .stderr_has("unlinked linked");
        assert_eq!(env.read(at), original, "{client}: unlink left a difference");
        assert!(
            env.path()
                .join(".mcpctl/client-backups")
                .read_dir()
                .unwrap()
                .count()
                == 1,
            "{client}: a backup"
        );
    }
}

#[test]
fn a_foreign_entry_of_the_same_name_is_refused_unless_forced_and_drift_is_told() {
    let port = free_port();
    let env = TestEnv::with_config(&config(port));
    // Another server under that name is never replaced, even with --force (issue 28).
    let other = "{\n  \"mcpServers\": {\n    \"linked\": { \"command\": \"their-own\" }\n  }\n}\n";
    env.write("home/.cursor/mcp.json", other);
    for force in [&[][..], &["--force"][..]] {
        let args = [&["client", "link", "cursor"][..], force].concat();
        run_home(&env, &args)
            .failure()
            .stderr_has("`linked` is already in")
            .stderr_has("runs a different server");
        assert_eq!(env.read("home/.cursor/mcp.json"), other);
    }
    // The client's own entry for this same server: --force replaces it with the link.
    let theirs = format!(
        "{{\n  \"mcpServers\": {{\n    \"linked\": {{ \"command\": \"{}\" }}\n  }}\n}}\n",
        echo_bin()
    );
    let theirs = theirs.as_str();
    env.write("home/.cursor/mcp.json", theirs);
    run_home(&env, &["client", "link", "cursor"])
        .failure()
        .stderr_has("`linked` is already in")
        .stderr_has("--force");
    assert_eq!(env.read("home/.cursor/mcp.json"), theirs);
    run_home(&env, &["client", "link", "cursor", "--force"]).success();
    let linked = env.read("home/.cursor/mcp.json");
    assert!(
        linked.contains(&format!("http://127.0.0.1:{port}/mcp")),
        "{linked}"
    );

    // Edited by hand: drifted; link and unlink leave it alone without --force.
    let edited = linked.replace("/mcp", "/mcp?mine");
    env.write("home/.cursor/mcp.json", &edited);
    run_home(&env, &["client", "status", "cursor"])
        .success()
        .stdout_has("drifted");
    run_home(&env, &["client", "link", "cursor"])
        .failure()
        .stderr_has("edited by hand");
    run_home(&env, &["client", "unlink", "cursor"])
        .success()
        .stderr_has("kept `linked`");
    assert_eq!(env.read("home/.cursor/mcp.json"), edited);
    // Forced, the edited entry goes, and the foreign one `--force` replaced is back.
    run_home(&env, &["client", "unlink", "cursor", "--force"])
        .success()
        .stderr_has("put back the `linked`");
    assert_eq!(env.read("home/.cursor/mcp.json"), theirs);
}

#[test]
fn unlink_puts_back_byte_for_byte_the_foreign_entry_link_force_replaced() {
    let env = TestEnv::with_config(&config(free_port()));
    // The client's own entries of the same server (--force replaces only such).
    let cursor = format!(
        "{{\n  \"mcpServers\": {{\n    \"other\": {{\"command\": \"x\"}},\n    \"linked\":   {{ \"command\": \"{}\",\n      \"env\": {{\"KEEP\": \"1\"}} }}\n  }}\n}}\n",
        echo_bin()
    );
    let cursor = cursor.as_str();
    env.write("home/.cursor/mcp.json", cursor);
    run_home(&env, &["client", "link", "cursor", "--force"])
        .success()
        .stderr_has("replaced `linked`");
    assert!(!env.read("home/.cursor/mcp.json").contains("KEEP"));
    run_home(&env, &["client", "unlink", "cursor"]).success();
    assert_eq!(env.read("home/.cursor/mcp.json"), cursor);

    // Codex's TOML, in the folder CODEX_HOME names: its table and comments come back.
    let codex = format!(
        "{}\n# theirs\n[mcp_servers.linked]\ncommand = \"{}\" # pinned\n\n[mcp_servers.linked.env]\nA = \"1\"\n",
        fixture("codex_config.toml").trim_end(),
        echo_bin()
    );
    env.write("codex-home/config.toml", &codex);
    let with_codex_home = |args: &[&str]| {
        let output = env
            .command(args)
            .env("HOME", env.path().join("home"))
            .env("CODEX_HOME", env.path().join("codex-home"))
            .output()
            .unwrap();
        to_run(args, &output)
    };
    with_codex_home(&["client", "link", "codex", "--force"]).success();
    let linked = env.read("codex-home/config.toml");
    assert!(linked.contains("\"connect\""), "{linked}");
    assert!(!linked.contains("# pinned"), "{linked}");
    with_codex_home(&["client", "unlink", "codex"]).success();
    assert_eq!(env.read("codex-home/config.toml"), codex);
}

#[test]
fn a_file_link_made_goes_away_with_unlink_and_paths_are_remembered() {
    let env = TestEnv::with_config(&config(free_port()));
    run_home(&env, &["client", "link", "claude-desktop"]).success();
    let made = env.path().join("xdg/Claude/claude_desktop_config.json");
    let text = std::fs::read_to_string(&made).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let args = doc["mcpServers"]["linked"]["args"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(args.last().unwrap(), "linked");
    assert_eq!(args[args.len() - 2], "connect");
    run_home(&env, &["client", "unlink", "claude-desktop"]).success();
    assert!(
        !made.exists(),
        "a file link made is removed with its last entry"
    );

    // mcpctl's own file is no client's.
    let own = env.read("mcpctl.toml");
    run_home(
        &env,
        &["client", "link", "codex", "--config-path", "mcpctl.toml"],
    )
    .failure()
    .stderr_has("is mcpctl's own config");
    assert_eq!(env.read("mcpctl.toml"), own);

    // --config-path is remembered for the next link and for unlink.
    env.write("elsewhere/mcp.json", "{}\n");
    run_home(
        &env,
        &[
            "client",
            "link",
            "cursor",
            "--config-path",
            "elsewhere/mcp.json",
        ],
    )
    .success();
    assert!(env.read("elsewhere/mcp.json").contains("\"linked\""));
    run_home(&env, &["client", "link", "cursor", "--dry-run"])
        .success()
        .stderr_has("elsewhere/mcp.json was not changed");
    run_home(&env, &["client", "unlink", "cursor"]).success();
    assert_eq!(env.read("elsewhere/mcp.json"), "{}\n");
    // A server the file no longer runs loses its entry at the next link.
    run_home(&env, &["client", "link", "windsurf"]).success();
    env.write("mcpctl.toml", "version = 1\n");
    run_home(&env, &["client", "link", "windsurf"])
        .success()
        .stderr_has("removed linked");
    assert!(
        !env.read("home/.codeium/windsurf/mcp_config.json")
            .contains("linked")
    );
    run_home(&env, &["client", "link", "notepad"])
        .failure()
        .stderr_has("unknown client `notepad`");
}

#[test]
fn links_made_at_once_are_all_recorded() {
    let env = TestEnv::with_config(&config(free_port()));
    let clients = ["cursor", "windsurf", "claude-desktop", "claude-code"];
    let running: Vec<_> = clients
        .iter()
        .map(|client| {
            env.command(&["client", "link", client])
                .env("HOME", env.path().join("home"))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in running {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let records = env.read(".mcpctl/clients.json");
    for client in clients {
        assert!(
            records.contains(&format!("\"{client}:")),
            "{client} lost:\n{records}"
        );
    }
    for client in clients {
        run_home(&env, &["client", "unlink", client]).success();
    }
}
