//! Regressions of issue 28, "What careful users broke": each test is named after the
//! defect it pins down.

use crate::common::{KillOnDrop, TestEnv, echo_bin, free_port, spawn_logged, wait_for};

/// `init` (this user's identity, and it as the file's recipient) plus `extra`.
fn initialised(extra: &str) -> TestEnv {
    let env = TestEnv::new();
    env.run(&["init"]).success();
    let mut text = env.read("mcpctl.toml");
    text.push_str(extra);
    env.write("mcpctl.toml", &text);
    env
}

/// Two servers; `other` names a bearer and a header secret, neither set yet.
fn unfinished() -> TestEnv {
    let (a, b) = (free_port(), free_port());
    initialised(&format!(
        "\n[servers.echo]\ncommand = \"mcp-echo\"\nport = {a}\n\n\
         [servers.other]\ncommand = \"mcp-echo\"\nport = {b}\n\
         auth = {{ bearer = \"TOK\" }}\nheaders = {{ X = \"${{HK}}\" }}\n"
    ))
}

#[test]
fn issue28_secrets_not_set_yet_do_not_block_setting_secrets() {
    let env = unfinished();
    // The very command the check asks for, while another secret is still missing.
    env.set_secret("TOK", Some("other"), "bearer-value-1")
        .success();
    // A secret for another server, while `other` is unfinished.
    env.set_secret("A", Some("echo"), "a-value-1").success();
    env.run(&["validate"])
        .failure()
        .stderr_has("uses `${HK}`, which is neither in its env nor in its secrets");
    // An edit still may not bring a new problem: unsetting TOK would.
    let before = env.read("mcpctl.toml");
    env.run(&["config", "secret", "unset", "TOK", "--server", "other"])
        .failure()
        .stderr_has("`auth` of server `other` names secret `TOK`");
    assert_eq!(
        env.read("mcpctl.toml"),
        before,
        "a refused edit changes nothing"
    );
    env.set_secret("HK", Some("other"), "header-value-1")
        .success();
    env.run(&["validate"]).success();
}

#[test]
fn issue28_keygen_add_adds_the_identity_that_exists() {
    let env = TestEnv::with_config("version = 1\n");
    let made = env.run(&["config", "secret", "keygen"]);
    made.success();
    let me = made.stdout.trim().to_string();
    let again = env.run(&["config", "secret", "keygen", "--add"]);
    again.success().stderr_has("using it");
    assert_eq!(again.stdout.trim(), me);
    env.run(&["config", "secret", "recipients", "list"])
        .success()
        .stdout_has(&me);
    env.set_secret("K", None, "value-1").success();
    // Without --add, an existing key is still never overwritten.
    env.run(&["config", "secret", "keygen"])
        .failure()
        .stderr_has("already exists")
        .stderr_has("keygen --add");
}

#[test]
fn issue28_import_without_recipients_names_recipients_add() {
    let env = TestEnv::with_config("version = 1\n");
    env.write(
        "desktop.json",
        r#"{"mcpServers": {"gh": {"command": "gh-mcp", "env": {"GITHUB_TOKEN": "ghp_abcdefghijklmnopqrstuvwxyz0123456789"}}}}"#,
    );
    env.run(&["import", "--from", "desktop.json"])
        .failure()
        .stderr_has("no recipients")
        .stderr_has("mcpctl config secret recipients add");
    assert_eq!(env.read("mcpctl.toml"), "version = 1\n");
}

#[test]
fn issue28_env_values_no_process_can_take_fail_validate() {
    let port = free_port();
    let nul = format!(
        "version = 1\n[servers.echo]\ncommand = \"mcp-echo\"\nport = {port}\nenv = {{ N = \"a\\u0000b\" }}\n"
    );
    TestEnv::with_config(&nul)
        .run(&["validate"])
        .failure()
        .stderr_has("env `N` cannot be passed to a process: it holds a NUL byte")
        .stderr_has("mcpctl.toml:5:13");
    let big = format!(
        "version = 1\n[servers.echo]\ncommand = \"mcp-echo\"\nport = {port}\nenv = {{ BIG = \"{}\" }}\n",
        "x".repeat(129 * 1024)
    );
    TestEnv::with_config(&big)
        .run(&["validate"])
        .failure()
        .stderr_has("env `BIG` cannot be passed to a process")
        .stderr_has("128 KiB")
        .stderr_has("mcpctl.toml:5:15");
}

#[test]
fn issue28_secret_values_no_process_can_take_are_refused_at_set() {
    let env = initialised(&format!(
        "\n[servers.echo]\ncommand = \"mcp-echo\"\nport = {}\n",
        free_port()
    ));
    let before = env.read("mcpctl.toml");
    env.set_secret("N", Some("echo"), "a\0b")
        .failure()
        .stderr_has("secret `N` cannot be passed to a process: it holds a NUL byte");
    env.set_secret("BIG", Some("echo"), &"y".repeat(129 * 1024))
        .failure()
        .stderr_has("secret `BIG` cannot be passed to a process")
        .stderr_has("128 KiB");
    assert_eq!(env.read("mcpctl.toml"), before);
}

#[test]
fn issue28_client_status_of_an_unknown_client_is_an_error() {
    let env = TestEnv::with_config("version = 1\n");
    env.run(&["client", "status", "notaclient"])
        .failure()
        .stderr_has("unknown client `notaclient`");
}

#[test]
fn issue28_a_too_open_identity_gets_the_same_advice_from_apply_and_validate() {
    use std::os::unix::fs::PermissionsExt;
    let env = initialised(&format!(
        "\n[servers.echo]\ncommand = \"mcp-echo\"\nport = {}\n",
        free_port()
    ));
    env.set_secret("K", Some("echo"), "value-1").success();
    std::fs::set_permissions(
        env.path().join("xdg/mcpctl/identity.txt"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    for args in [&["validate"][..], &["apply"][..]] {
        let run = env.run_within(60, args);
        run.failure()
            .stderr_has("can be read by others (mode 644)")
            .stderr_has("chmod 600");
        assert!(!run.stderr.contains("keygen"), "{}", run.stderr);
    }
}

#[test]
fn issue28_server_logs_escapes_what_the_server_wrote() {
    let env = TestEnv::with_config(&format!(
        "version = 1\n[servers.echo]\ncommand = \"mcp-echo\"\nport = {}\n",
        free_port()
    ));
    let hostile = "2026-12-07T00:00:00.000Z stderr \u{1b}]0;pwned\u{7}\u{1b}[31mred\u{0}nul\n";
    env.write(".mcpctl/logs/echo-0.log", hostile);
    let run = env.run(&["server", "logs", "echo"]);
    run.success()
        .stdout_has("pwned")
        .stdout_has("\\u{1b}[31mred\\u{0}nul");
    assert!(
        !run.stdout.contains(['\u{1b}', '\u{7}', '\0']),
        "{:?}",
        run.stdout
    );

    // --follow too, with a line that comes later (and in two pieces).
    let _follow: KillOnDrop =
        spawn_logged(&env, &["server", "logs", "echo", "--follow"], "follow.out");
    wait_for("the first lines", 20, || {
        let out = env.read("follow.out");
        if out.contains("pwned") {
            Ok(())
        } else {
            Err(out)
        }
    });
    let path = env.path().join(".mcpctl/logs/echo-0.log");
    let append = |text: &str| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    };
    append("2026-12-07T00:00:01.000Z stderr later \u{1b}[2J");
    std::thread::sleep(std::time::Duration::from_millis(300));
    append("cleared\n");
    let out = wait_for("the later line, escaped", 20, || {
        let out = env.read("follow.out");
        if out.contains("cleared") {
            Ok(out)
        } else {
            Err(out)
        }
    });
    assert!(out.contains("later \\u{1b}[2Jcleared"), "{out:?}");
    assert!(!out.contains('\u{1b}'), "{out:?}");
}

#[test]
fn issue28_a_secret_straddling_the_line_cut_is_redacted() {
    // `T=` then the secret: it starts before the 16 KiB cut and ends after it.
    let secret = format!("Qz{}end", "k".repeat(16 * 1024));
    let env = initialised(&format!(
        "\n[servers.leaky]\ncommand = \"{}\"\nargs = [\"--print-env\", \"T\"]\nport = {}\n",
        echo_bin(),
        free_port()
    ));
    env.set_secret("T", Some("leaky"), &secret).success();
    env.run_within(60, &["apply"]).success();
    let log = wait_for("the server to print its secret", 20, || {
        let log = std::fs::read_to_string(env.path().join(".mcpctl/logs/leaky-0.log"))
            .unwrap_or_default();
        if log.contains("T=") {
            Ok(log)
        } else {
            Err(log)
        }
    });
    assert!(
        log.contains("T=(redacted)"),
        "{}",
        &log[..log.len().min(400)]
    );
    assert!(
        !log.contains("Qzkkkk"),
        "a prefix of the secret is in the log"
    );
    let logs = env.run(&["server", "logs", "leaky"]);
    assert!(
        !logs.stdout.contains("Qzkkkk"),
        "a prefix of the secret is shown"
    );
}

/// `mcpctl ARGS` with HOME (and so the clients' files) in the test's folder.
fn run_home(env: &TestEnv, args: &[&str]) -> crate::common::Run {
    let output = env
        .command(args)
        .env("HOME", env.path().join("home"))
        .output()
        .expect("run mcpctl");
    crate::common::to_run(args, &output)
}

#[test]
fn issue28_import_keeps_url_passwords_secret_and_cwd_state_and_bearer_env() {
    let env = initialised("");
    env.write(
        "desktop.json",
        r#"{"mcpServers": {
            "db": {"command": "db-mcp", "cwd": "/srv/db", "disabled": true,
                   "env": {"DATABASE_URL": "postgres://user:hunter2pw@db.example/app"}},
            "web": {"command": "web-mcp", "args": ["-H", "X-Api-Key: k3yvalue", "-H", "Cookie: sid=c00kie"]},
            "api": {"type": "http", "url": "https://api.example/mcp", "headers": {"Cookie": "sid=c00kie2"}}
        }}"#,
    );
    let run = env.run(&["import", "--from", "desktop.json", "--no-apply"]);
    run.success()
        .stderr_has("imported as `state = \"stopped\"`")
        .stderr_has("a `X-Api-Key` header")
        .stderr_has("a `Cookie` header");
    let file = env.read("mcpctl.toml");
    for plain in ["hunter2pw", "c00kie2"] {
        assert!(!file.contains(plain), "{plain} in plain text:\n{file}");
    }
    assert!(file.contains("cwd = \"/srv/db\""), "{file}");
    assert!(file.contains("state = \"stopped\""), "{file}");
    env.run(&["config", "secret", "get", "DATABASE_URL", "--server", "db"])
        .success()
        .stdout_has("postgres://user:hunter2pw@db.example/app");

    let codex = "[mcp_servers.remote]\nurl = \"https://r.example/mcp\"\nbearer_token_env_var = \"R_TOKEN\"\n";
    env.write("codex.toml", codex);
    env.run(&["import", "--from", "codex.toml", "--no-apply"])
        .success()
        .stderr_has("bearer_token_env_var R_TOKEN")
        .stderr_has("mcpctl config secret set R_TOKEN --server remote");
}

#[test]
fn issue28_import_and_restore_refuse_files_over_16_mib() {
    let env = TestEnv::with_config("version = 1\n");
    let big = format!(
        "{{\"mcpServers\": {{\"x\": {{\"command\": \"c\", \"env\": {{\"V\": \"{}\"}}}}}}}}",
        "v".repeat(17 * 1024 * 1024)
    );
    env.write("big.json", &big);
    env.run(&["import", "--from", "big.json"])
        .failure()
        .stderr_has("big.json is")
        .stderr_has("over the 16 MiB");
    env.write("big-backup.json", &big);
    env.run(&["server", "restore", "x", "--input", "big-backup.json"])
        .failure()
        .stderr_has("over the 16 MiB");
    assert_eq!(env.read("mcpctl.toml"), "version = 1\n");
}

#[test]
fn issue28_import_refuses_when_ports_run_out() {
    let env = TestEnv::with_config("version = 1\n");
    env.write(
        "desktop.json",
        r#"{"mcpServers": {"a": {"command": "a"}, "b": {"command": "b"}, "c": {"command": "c"}}}"#,
    );
    env.run(&["import", "--from", "desktop.json", "--first-port", "65535"])
        .failure()
        .stderr_has("no free port for")
        .stderr_has("every port from 65535 to 65535 is taken");
    assert_eq!(env.read("mcpctl.toml"), "version = 1\n");
}

#[test]
fn issue28_link_keeps_a_bom_and_crlf_and_unlink_finds_the_scope() {
    let port = free_port();
    let env = TestEnv::with_config(&format!(
        "version = 1\n[servers.linked]\ncommand = \"{}\"\nport = {port}\n",
        echo_bin()
    ));
    let theirs =
        "\u{feff}{\r\n  \"mcpServers\": {\r\n    \"other\": {\"command\": \"x\"}\r\n  }\r\n}\r\n";
    env.write("home/.cursor/mcp.json", theirs);
    run_home(&env, &["client", "link", "cursor"]).success();
    let linked = env.read("home/.cursor/mcp.json");
    assert!(linked.starts_with('\u{feff}'), "{linked:?}");
    assert!(linked.contains("/mcp"), "{linked:?}");
    assert!(
        !linked.replace("\r\n", "").contains('\n'),
        "every line ends with CRLF: {linked:?}"
    );
    run_home(&env, &["client", "status", "cursor"])
        .success()
        .stdout_has("in-sync");
    run_home(&env, &["client", "unlink", "cursor"]).success();
    assert_eq!(env.read("home/.cursor/mcp.json"), theirs);

    // Linked in the project scope, unlinked without saying so.
    run_home(
        &env,
        &["client", "link", "claude-code", "--scope", "project"],
    )
    .success();
    assert!(env.read(".mcp.json").contains("/mcp"));
    run_home(&env, &["client", "unlink", "claude-code"]).success();
    assert!(!env.path().join(".mcp.json").exists());
}

#[test]
fn issue28_link_links_the_others_and_never_gives_a_foreign_slot_to_another_server() {
    let (a, b) = (free_port(), free_port());
    let env = TestEnv::with_config(&format!(
        "version = 1\n[servers.github]\ncommand = \"{echo}\"\nport = {a}\n\n\
         [servers.github-2]\ncommand = \"vscode-github\"\nport = {b}\n",
        echo = echo_bin()
    ));
    // VS Code's own `github` is what mcpctl imported as `github-2`.
    let theirs = "{\n  \"servers\": {\n    \"github\": {\"command\": \"vscode-github\"}\n  }\n}\n";
    env.write(".vscode/mcp.json", theirs);
    for force in [&[][..], &["--force"][..]] {
        let args = [&["client", "link", "vscode"][..], force].concat();
        run_home(&env, &args)
            .failure()
            .stderr_has("`github` is already in")
            .stderr_has("runs a different server than mcpctl's `github`")
            .stderr_has("mcpctl serves that one as `github-2`");
        let file = env.read(".vscode/mcp.json");
        let doc: serde_json::Value = serde_json::from_str(&file).unwrap();
        assert_eq!(
            doc["servers"]["github"]["command"], "vscode-github",
            "{file}"
        );
        assert_eq!(
            doc["servers"]["github-2"]["url"],
            format!("http://127.0.0.1:{b}/mcp"),
            "the others are linked: {file}"
        );
    }
}

/// A backup of `sec`, its content changed by `forge` and sealed again with a checksum
/// that matches (anyone can compute one: it catches damage, not forgery).
fn forged(env: &TestEnv, forge: impl FnOnce(&mut mcpctl::backup::Content)) -> String {
    env.run(&["server", "backup", "sec", "--output", "sec.json"])
        .success();
    let doc: serde_json::Value = serde_json::from_str(&env.read("sec.json")).unwrap();
    let mut content: mcpctl::backup::Content =
        serde_json::from_value(doc["content"].clone()).unwrap();
    forge(&mut content);
    mcpctl::backup::write(&content).unwrap()
}

fn with_sec() -> TestEnv {
    TestEnv::with_config(&format!(
        "version = 1\n\n[profiles.newp]\n\n[profiles.newp.servers.sec]\nport = {}\n\n\
         [servers.sec]\ncommand = \"mcp-echo\"\nprofile = \"newp\"\nport = {}\n\n\
         [servers.victim]\ncommand = \"mcp-echo\"\nport = {}\n",
        free_port(),
        free_port(),
        free_port()
    ))
}

#[test]
fn issue28_restore_takes_only_its_own_servers_override_from_a_profile() {
    let env = with_sec();
    let doc = forged(&env, |c| {
        let profile = c.profile.as_mut().unwrap();
        profile
            .text
            .push_str("\n[profiles.newp.servers.victim]\ncommand = \"/bin/sh\"\n");
    });
    env.write("forged.json", &doc);
    let target = TestEnv::with_config(&format!(
        "version = 1\n\n[servers.victim]\ncommand = \"mcp-echo\"\nport = {}\n",
        free_port()
    ));
    target.write("forged.json", &doc);
    let before = target.read("mcpctl.toml");
    target
        .run(&[
            "server",
            "restore",
            "sec",
            "--input",
            "forged.json",
            "--no-apply",
        ])
        .failure()
        .stderr_has("carries overrides of other servers (`victim`)");
    assert_eq!(target.read("mcpctl.toml"), before);
}

#[test]
fn issue28_restore_refuses_a_backup_with_a_huge_comment() {
    let env = with_sec();
    let doc = forged(&env, |c| {
        c.block = format!("# {}\n{}", "x".repeat(2 * 1024 * 1024), c.block);
    });
    let target = TestEnv::with_config("version = 1\n\n[profiles.newp]\n");
    target.write("big.json", &doc);
    target
        .run(&[
            "server",
            "restore",
            "sec",
            "--input",
            "big.json",
            "--no-apply",
        ])
        .failure()
        .stderr_has("its server block is")
        .stderr_has("over the 1024 KiB");
    assert_eq!(
        target.read("mcpctl.toml"),
        "version = 1\n\n[profiles.newp]\n"
    );
}

#[test]
fn issue28_one_tampered_document_of_a_bundle_does_not_block_the_others() {
    let env = with_sec();
    env.run(&["backup", "--all", "--output", "all.json"])
        .success();
    // `sec` comes first in the bundle: a changed byte in it.
    let bundle = env.read("all.json").replacen("mcp-echo", "mcp-echp", 1);
    let target = TestEnv::with_config("version = 1\n\n[profiles.newp]\n");
    target.write("all.json", &bundle);
    target
        .run(&[
            "server",
            "restore",
            "victim",
            "--input",
            "all.json",
            "--no-apply",
        ])
        .success();
    assert!(target.read("mcpctl.toml").contains("[servers.victim]"));
    target
        .run(&[
            "server",
            "restore",
            "sec",
            "--input",
            "all.json",
            "--no-apply",
        ])
        .failure()
        .stderr_has("checksum does not match");
}
