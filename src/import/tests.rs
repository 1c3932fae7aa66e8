//! The parsers on a fixture of each client's documented shape, and the import plan.

use super::plan::{Existing, FIRST_PORT, plan};
use super::{Client, Entry, formats};

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/clients/",
            $name
        ))
    };
}

fn names(entries: &[Entry]) -> Vec<&str> {
    entries.iter().map(|e| e.name.as_str()).collect()
}

#[test]
fn claude_desktop() {
    let e = formats::parse(
        Client::ClaudeDesktop,
        fixture!("claude_desktop_config.json"),
    )
    .unwrap();
    assert_eq!(names(&e), ["filesystem", "github"]);
    assert_eq!(e[1].command.as_deref(), Some("npx"));
    assert_eq!(e[1].args, ["-y", "@modelcontextprotocol/server-github"]);
    assert_eq!(e[1].env["LOG_LEVEL"], "info");
}

#[test]
fn claude_code_user_and_project_scopes() {
    let e = formats::parse(Client::ClaudeCode, fixture!("claude.json")).unwrap();
    assert_eq!(names(&e), ["sentry", "db"]);
    assert_eq!(e[0].url.as_deref(), Some("https://mcp.sentry.dev/mcp"));
    assert_eq!(e[0].headers["Authorization"], "Bearer sntrys_exampletoken");
    assert_eq!(e[1].scope, "/home/me/app");
    let project = formats::parse(Client::ClaudeCode, fixture!("mcp.json")).unwrap();
    assert_eq!(project[0].env["AIRTABLE_API_KEY"], "${AIRTABLE_API_KEY}");
}

#[test]
fn cursor_windsurf_vscode_zed_codex() {
    let cursor = formats::parse(Client::Cursor, fixture!("cursor_mcp.json")).unwrap();
    assert!(cursor[1].sse, "{cursor:?}");
    let windsurf = formats::parse(Client::Windsurf, fixture!("windsurf_mcp_config.json")).unwrap();
    assert_eq!(
        windsurf[0].url.as_deref(),
        Some("https://figma.example.com/mcp")
    );
    let vscode = formats::parse(Client::Vscode, fixture!("vscode_mcp.json")).unwrap();
    assert_eq!(names(&vscode), ["Perplexity", "fetch"]);
    assert_eq!(
        vscode[0].env["PERPLEXITY_API_KEY"],
        "${input:perplexity-key}"
    );
    let zed = formats::parse(Client::Zed, fixture!("zed_settings.json")).unwrap();
    assert_eq!(names(&zed), ["old-style", "postgres", "remote"]);
    assert_eq!(zed[0].command.as_deref(), Some("old-mcp"));
    assert_eq!(zed[1].args, ["--read-only"]);
    let codex = formats::parse(Client::Codex, fixture!("codex_config.toml")).unwrap();
    assert_eq!(names(&codex), ["docs", "linear"]);
    assert_eq!(codex[1].headers["Authorization"], "Bearer lin_api_abc123");
    // A named file in the common shape, or VS Code's.
    assert_eq!(
        formats::parse(Client::File, fixture!("vscode_mcp.json"))
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn bad_files_say_what_is_wrong() {
    assert!(
        formats::parse(Client::Cursor, "{")
            .unwrap_err()
            .contains("not JSON")
    );
    assert!(
        formats::parse(Client::Cursor, r#"{"mcpServers": {"a": {"args": "x"}}}"#)
            .unwrap_err()
            .contains("not a list")
    );
    assert!(
        formats::parse(Client::Codex, "[[")
            .unwrap_err()
            .contains("not TOML")
    );
    assert!(formats::parse(Client::Cursor, "{}").unwrap().is_empty());
}

#[test]
fn comments_and_trailing_commas_are_dropped_outside_strings() {
    assert_eq!(
        formats::strip_json_comments("{\"a\": \"//x\", /* c */ \"b\": [1,],}"),
        "{\"a\": \"//x\",  \"b\": [1]}"
    );
}

fn all(client: Client, text: &str) -> Vec<(String, Entry)> {
    formats::parse(client, text)
        .unwrap()
        .into_iter()
        .map(|e| (client.name().to_string(), e))
        .collect()
}

#[test]
fn credentials_become_secrets_references_stay_and_duplicates_merge() {
    let mut entries = all(
        Client::ClaudeDesktop,
        fixture!("claude_desktop_config.json"),
    );
    entries.extend(all(Client::Cursor, fixture!("cursor_mcp.json")));
    entries.extend(all(Client::ClaudeCode, fixture!("mcp.json")));
    let imported = plan(&entries, &[], None, FIRST_PORT, |p| p != 8001);
    let names: Vec<&str> = imported.servers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["filesystem", "github", "remote-sse", "airtable"]);
    let github = &imported.servers[1];
    assert_eq!(github.sources, ["claude-desktop:github", "cursor:github"]);
    assert_eq!(
        github.secrets["GITHUB_PERSONAL_ACCESS_TOKEN"],
        "ghp_exampleexampleexample1234"
    );
    assert!(!github.env.contains_key("GITHUB_PERSONAL_ACCESS_TOKEN"));
    assert_eq!(github.env["LOG_LEVEL"], "info");
    // Ports: free ones, in order (8001 is taken by something else).
    let ports: Vec<u16> = imported.servers.iter().map(|s| s.port).collect();
    assert_eq!(ports, [8000, 8002, 8003, 8004]);
    assert!(imported.servers[2].sse);
    let airtable = &imported.servers[3];
    assert_eq!(airtable.env["AIRTABLE_API_KEY"], "${AIRTABLE_API_KEY}");
    assert!(airtable.secrets.is_empty());
    let notes = imported.notes.join("\n");
    assert!(
        notes.contains("merged cursor:github into `github`"),
        "{notes}"
    );
    assert!(notes.contains("stays a reference"), "{notes}");
}

#[test]
fn headers_that_are_credentials_become_secret_templates() {
    let entries = all(Client::Codex, fixture!("codex_config.toml"));
    let imported = plan(&entries, &[], None, FIRST_PORT, |_| true);
    let linear = &imported.servers[1];
    assert_eq!(linear.headers["Authorization"], "${AUTHORIZATION}");
    assert_eq!(linear.secrets["AUTHORIZATION"], "Bearer lin_api_abc123");
    assert_eq!(
        imported.servers[0].secrets["DOCS_TOKEN"],
        "d0cs-t0ken-abcdefghijklmnop"
    );
    let code = all(Client::ClaudeCode, fixture!("claude.json"));
    let notes = plan(&code, &[], None, FIRST_PORT, |_| true)
        .notes
        .join("\n");
    assert!(
        notes.contains("\"${DATABASE_URL}\" stays as written"),
        "{notes}"
    );
    let vscode = all(Client::Vscode, fixture!("vscode_mcp.json"));
    let imported = plan(&vscode, &[], None, FIRST_PORT, |_| true);
    assert_eq!(imported.servers[0].name, "perplexity");
    assert_eq!(imported.servers[1].headers["X-Team"], "core");
}

#[test]
fn what_the_file_has_is_skipped_and_clashing_names_renamed() {
    let entries = all(
        Client::ClaudeDesktop,
        fixture!("claude_desktop_config.json"),
    );
    let existing = [
        Existing {
            name: "github".into(),
            command: Some("npx".into()),
            args: vec!["-y".into(), "@modelcontextprotocol/server-github".into()],
            url: None,
            port: Some(8000),
        },
        Existing {
            name: "filesystem".into(),
            command: Some("other".into()),
            port: Some(8001),
            ..Existing::default()
        },
    ];
    let imported = plan(&entries, &existing, None, FIRST_PORT, |_| true);
    assert_eq!(imported.servers.len(), 1);
    assert_eq!(imported.servers[0].name, "filesystem-2");
    assert_eq!(imported.servers[0].port, 8002);
    let notes = imported.notes.join("\n");
    assert!(notes.contains("already in the file as `github`"), "{notes}");
    assert!(notes.contains("added as `filesystem-2`"), "{notes}");
    let only = plan(
        &entries,
        &[],
        Some(&["github".to_string()]),
        FIRST_PORT,
        |_| true,
    );
    assert_eq!(only.servers.len(), 1);
}

#[test]
fn vscode_references_stay_references_and_inputs_are_reported() {
    let text = r#"{"servers": {"gh": {"command": "gh-mcp",
        "env": {"GITHUB_TOKEN": "${env:GITHUB_TOKEN}", "KEY": "${input:key}"},
        "headers": {"Authorization": "Bearer ${env:GH}"}}}}"#;
    let imported = plan(&all(Client::Vscode, text), &[], None, FIRST_PORT, |_| true);
    let gh = &imported.servers[0];
    assert_eq!(gh.env["GITHUB_TOKEN"], "${env:GITHUB_TOKEN}");
    assert_eq!(gh.env["KEY"], "${input:key}");
    assert!(gh.secrets.is_empty() && gh.headers.is_empty(), "{gh:?}");
    let notes = imported.notes.join("\n");
    assert!(
        notes.contains("GITHUB_TOKEN = \"${env:GITHUB_TOKEN}\" stays a reference"),
        "{notes}"
    );
    assert!(
        notes.contains("header Authorization refers to a variable"),
        "{notes}"
    );
}

#[test]
fn a_name_with_a_newline_is_renamed_in_printable_words() {
    let entries = [
        (
            "claude-desktop".to_string(),
            Entry {
                name: "bad\nname".into(),
                command: Some("x".into()),
                ..Entry::default()
            },
        ),
        (
            "claude-desktop".to_string(),
            Entry {
                name: "ok".into(),
                command: Some("y".into()),
                ..Entry::default()
            },
        ),
    ];
    let imported = plan(&entries, &[], None, FIRST_PORT, |_| true);
    let names: Vec<&str> = imported.servers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["bad-name", "ok"]);
    assert_eq!(imported.servers[0].sources, ["claude-desktop:bad\\nname"]);
    assert!(
        imported.notes.iter().all(|n| !n.contains('\n')),
        "{:?}",
        imported.notes
    );
}

#[test]
fn mcpctls_own_links_are_not_imported_again_and_jsonc_with_a_bom_reads() {
    let text = "\u{feff}{\n  // linked by mcpctl\n  \"servers\": {\n    \"echo\": {\"command\": \"/usr/local/bin/mcpctl\", \"args\": [\"-f\", \"/p/mcpctl.toml\", \"connect\", \"echo\"]},\n    \"web\": {\"type\": \"http\", \"url\": \"http://127.0.0.1:8000/mcp\"},\n    \"other\": {\"command\": \"uvx\", \"args\": [\"x\"],},\n  },\n}\n";
    let entries = all(Client::Vscode, text);
    let existing = [Existing {
        name: "echo".into(),
        command: Some("mcp-echo".into()),
        port: Some(8000),
        ..Existing::default()
    }];
    let imported = plan(&entries, &existing, None, FIRST_PORT, |_| true);
    let names: Vec<&str> = imported.servers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["other"], "{:?}", imported.notes);
    let notes = imported.notes.join("\n");
    assert!(notes.contains("mcpctl's own link to `echo`"), "{notes}");
}

#[test]
fn notes_never_carry_terminal_escapes_from_the_file() {
    let text = "{\"mcpServers\": {\"x\": {\"command\": \"c\", \"args\": [\"${A}\\u001b]0;pwned\\u0007\"], \"env\": {\"V\": \"${B}\\n\\u001b[31mwarning: fake\"}}}}";
    let imported = plan(
        &all(Client::ClaudeDesktop, text),
        &[],
        None,
        FIRST_PORT,
        |_| true,
    );
    assert!(
        imported.notes.iter().any(|n| n.contains("pwned")),
        "{:?}",
        imported.notes
    );
    for note in &imported.notes {
        assert!(!note.chars().any(char::is_control), "{note:?}");
    }
}

/// Issue 28: the plan scanned lists for every entry (50,000 servers took a minute).
/// 100,000 entries, half of them sharing a name, into a file of 20,000: a
/// quadratic plan does not finish in this bound, a linear one takes well under it.
#[test]
fn a_plan_of_100k_entries_is_linear() {
    let existing: Vec<Existing> = (0..20_000u16)
        .map(|i| Existing {
            name: format!("old-{i}"),
            command: Some(format!("old-cmd-{i}")),
            port: Some(1024 + i),
            ..Existing::default()
        })
        .collect();
    let entries: Vec<(String, Entry)> = (0..100_000)
        .map(|i| {
            let entry = Entry {
                name: if i % 2 == 0 {
                    "same".to_string()
                } else {
                    format!("s{i}")
                },
                command: Some(format!("cmd-{}", i % 40_000)),
                ..Entry::default()
            };
            ("file".to_string(), entry)
        })
        .collect();
    let started = std::time::Instant::now();
    let imported = plan(&entries, &existing, None, 1024, |_| true);
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(20), "took {took:?}");
    // 40,000 distinct commands, the rest merged; ports 1024..21024 taken by the file.
    assert_eq!(imported.servers.len(), 40_000);
    assert_eq!(imported.without_port, 0);
    assert_eq!(imported.servers[0].port, 21_024);
    assert_eq!(imported.servers[2].name, "same-2");
    let names: std::collections::HashSet<&str> =
        imported.servers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names.len(), imported.servers.len(), "every name once");
}

/// Issue 28: when ports ran out, 65535 was handed out again and again.
#[test]
fn when_ports_run_out_the_rest_are_counted_not_given_the_last_port_again() {
    let entries: Vec<(String, Entry)> = (0..5)
        .map(|i| {
            let entry = Entry {
                name: format!("s{i}"),
                command: Some(format!("cmd-{i}")),
                ..Entry::default()
            };
            ("file".to_string(), entry)
        })
        .collect();
    let imported = plan(&entries, &[], None, 65_533, |port| port != 65_534);
    let ports: Vec<u16> = imported.servers.iter().map(|s| s.port).collect();
    assert_eq!(ports, [65_533, 65_535]);
    assert_eq!(imported.without_port, 3);
}

/// Issue 28: a password in a URL in env, `cwd`, a server turned off, and Codex's
/// `bearer_token_env_var` were imported in plain text or dropped.
#[test]
fn url_passwords_cwd_disabled_and_bearer_env_are_kept() {
    let text = r#"{"mcpServers": {"db": {"command": "db-mcp", "cwd": "/srv/db", "disabled": true,
        "env": {"DATABASE_URL": "postgres://user:password@db.example/app", "PLAIN": "postgres://db.example/app"}}}}"#;
    let imported = plan(
        &all(Client::ClaudeDesktop, text),
        &[],
        None,
        FIRST_PORT,
        |_| true,
    );
    let db = &imported.servers[0];
    assert!(db.secrets.contains_key("DATABASE_URL"), "{db:?}");
    assert!(!db.env.contains_key("DATABASE_URL"));
    assert_eq!(db.env["PLAIN"], "postgres://db.example/app");
    assert_eq!(db.cwd.as_deref(), Some("/srv/db"));
    assert!(db.stopped);
    let codex = "[mcp_servers.api]\nurl = \"https://api.example/mcp\"\nbearer_token_env_var = \"API_TOKEN\"\nenabled = false\n";
    let imported = plan(&all(Client::Codex, codex), &[], None, FIRST_PORT, |_| true);
    assert!(imported.servers[0].stopped);
    let notes = imported.notes.join("\n");
    assert!(
        notes.contains("bearer_token_env_var API_TOKEN")
            && notes.contains("mcpctl config secret set API_TOKEN --server api"),
        "{notes}"
    );
}
