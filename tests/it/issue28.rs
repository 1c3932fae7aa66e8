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
