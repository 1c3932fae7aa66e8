//! The commit-to-repo workflow: the commit apply records and status names, `apply
//! --rev`, saved plans, the systemd unit, completions and the man page, and the CI
//! commands that need no daemon and no identity.

use crate::common::{TestEnv, echo_bin, free_port, spawn_logged, wait_for};

fn git(env: &TestEnv, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
        .args(args)
        .current_dir(env.path())
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn echo_with(port: u16, word: &str) -> String {
    format!(
        "version = 1\n\n[servers.echo]\ncommand = \"{}\"\nargs = [\"--stderr\", \"{word}\"]\nport = {port}\n",
        echo_bin()
    )
}

/// The running server's command line.
fn cmdline(env: &TestEnv) -> String {
    let pid = env.server_status("echo")["pids"][0]
        .as_u64()
        .expect("a pid");
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

#[test]
fn apply_records_the_commit_and_apply_rev_rolls_back_without_touching_the_file() {
    let port = free_port();
    let env = TestEnv::with_config(&echo_with(port, "first-args"));
    env.write(".gitignore", ".mcpctl/\n");
    git(&env, &["init", "-q"]);
    git(&env, &["add", "."]);
    git(&env, &["commit", "-q", "-m", "one"]);
    let one = git(&env, &["rev-parse", "HEAD"]);
    env.run_within(60, &["apply"]).success();
    env.run(&["status"])
        .success()
        .stdout_has(&format!("applied from {} (clean)", &one[..12]));
    env.run(&["daemon", "status"])
        .success()
        .stdout_has(&format!("applied from {} (clean)", &one[..12]));

    env.write("mcpctl.toml", &echo_with(port, "second-args"));
    env.run(&["status"])
        .success()
        .stderr_has("mcpctl.toml on disk differs from what runs");
    git(&env, &["commit", "-q", "-am", "two"]);
    let two = git(&env, &["rev-parse", "HEAD"]);
    env.run_within(60, &["apply"]).success();
    assert!(cmdline(&env).contains("second-args"));
    let status = env.run(&["status"]);
    status
        .success()
        .stdout_has(&format!("applied from {} (clean)", &two[..12]));
    assert!(!status.stderr.contains("differs"), "{}", status.stderr);

    let before = env.read("mcpctl.toml");
    env.run_within(60, &["apply", "--rev", "HEAD~1"])
        .success()
        .stderr_has(&format!("as of HEAD~1 ({})", &one[..12]))
        .stdout_has("-/+ server \"echo\"");
    assert_eq!(
        env.read("mcpctl.toml"),
        before,
        "the working file is untouched"
    );
    wait_for("the previous args to run", 30, || {
        let line = cmdline(&env);
        if line.contains("first-args") {
            Ok(())
        } else {
            Err(line)
        }
    });
    env.run(&["status"])
        .success()
        .stdout_has(&format!(
            "applied from {} (clean), --rev HEAD~1",
            &one[..12]
        ))
        .stderr_has("differs from what runs");
    // Back to the working file; an uncommitted change shows as modified.
    env.write("mcpctl.toml", &echo_with(port, "third-args"));
    env.run_within(60, &["apply"]).success();
    env.run(&["status"])
        .success()
        .stdout_has(&format!("applied from {} (modified)", &two[..12]));

    env.run(&["apply", "--rev", "no-such-rev"])
        .failure()
        .stderr_has("`no-such-rev` is not a commit of this repository");
}

#[test]
fn apply_rev_outside_a_repository_is_a_clear_error() {
    let env = TestEnv::with_config(&echo_with(free_port(), "x"));
    env.run(&["apply", "--rev", "HEAD"])
        .failure()
        .stderr_has("is not in a git repository");
    assert!(!env.path().join(".mcpctl/daemon.sock").exists());
}

#[test]
fn a_saved_plan_applies_exactly_as_planned_and_is_refused_once_the_file_or_what_runs_moved() {
    let port = free_port();
    let env = TestEnv::with_config(&echo_with(port, "planned"));
    let plan = env.run(&["plan", "--out", "tonight.plan"]);
    plan.success()
        .stdout_has("+ server \"echo\"")
        .stderr_has("saved the plan to tonight.plan");
    let saved: serde_json::Value = serde_json::from_str(&env.read("tonight.plan")).unwrap();
    assert_eq!(saved["format"], "mcpctl-plan");
    assert!(
        saved["file_digest"]
            .as_str()
            .unwrap()
            .starts_with("blake3:")
    );

    // The file changed: refused, nothing started.
    let text = env.read("mcpctl.toml");
    env.write("mcpctl.toml", &echo_with(port, "edited"));
    env.run(&["apply", "tonight.plan"])
        .failure()
        .stderr_has("the saved plan tonight.plan is stale, nothing was applied")
        .stderr_has("the file changed: echo (changed)");
    assert!(
        !env.path().join(".mcpctl/daemon.sock").exists(),
        "no daemon was started"
    );
    env.write("mcpctl.toml", &text);

    // Unchanged: it converges exactly as planned.
    let applied = env.run_within(60, &["apply", "tonight.plan"]);
    applied.success().stdout_has("echo: instance 0 ready");
    assert!(
        applied.stdout.starts_with(plan.stdout.trim_end()),
        "{}",
        applied.stdout
    );
    env.run(&["plan", "--detailed-exitcode"]).code(0);
    assert!(cmdline(&env).contains("planned"));

    // What runs moved (it now runs): the same plan is refused.
    env.run(&["apply", "tonight.plan"])
        .failure()
        .stderr_has("what runs changed: echo (added)");
    // However the file is named, it is the same file.
    env.run(&["plan", "--out", "again.plan"]).success();
    env.run_within(60, &["-f", "./mcpctl.toml", "apply", "again.plan"])
        .success()
        .stdout_has("No changes.");
    env.run(&["apply", "no-plan.json"])
        .failure()
        .stderr_has("no-plan.json");
    env.write("bogus.plan", "{}");
    env.run(&["apply", "bogus.plan"])
        .failure()
        .stderr_has("it is not a saved plan");
}

/// `systemd-analyze verify` finds nothing wrong with `unit`.
fn verify_unit(unit: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mcpctl-test.service");
    std::fs::write(&path, unit).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("mcpctl-test.service:"),
        "systemd-analyze verify: {stderr}\n{unit}"
    );
}

#[test]
fn the_user_unit_is_printed_written_verified_and_removed_only_when_ours() {
    let env = TestEnv::with_config(&echo_with(free_port(), "x"));
    let printed = env.run(&["daemon", "install", "--user", "--print"]);
    printed
        .success()
        .stdout_has("daemon --watch\n")
        .stdout_has("\nRestart=on-failure\n")
        .stdout_has("\nKillMode=mixed\n");
    let units = env.path().join("xdg/systemd/user");
    assert!(!units.exists(), "--print writes nothing");

    // systemd-analyze checks the unit where it exists.
    let verify = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output();
    if verify.is_ok_and(|o| o.status.success()) {
        verify_unit(&printed.stdout);
        // A folder with a space, a quote, `$` and `%` in its name.
        let odd = env.path().join("we ird $x \"q\" %h");
        std::fs::create_dir_all(&odd).unwrap();
        std::fs::copy(env.path().join("mcpctl.toml"), odd.join("mcpctl.toml")).unwrap();
        let file = odd.join("mcpctl.toml");
        let odd_unit = env.run(&[
            "-f",
            file.to_str().unwrap(),
            "daemon",
            "install",
            "--user",
            "--print",
        ]);
        odd_unit.success();
        verify_unit(&odd_unit.stdout);
    } else {
        // Written to the stream itself, so the reason shows even when the test passes.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "note: skipped `systemd-analyze verify`: systemd-analyze is not installed here"
        );
    }

    env.run(&["daemon", "install", "--user"])
        .success()
        .stderr_has("systemctl --user daemon-reload");
    let written: Vec<_> = std::fs::read_dir(&units).unwrap().collect();
    assert_eq!(written.len(), 1);
    let path = written[0].as_ref().unwrap().path();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), printed.stdout);
    env.run(&["daemon", "uninstall", "--user"])
        .success()
        .stderr_has("removed");
    assert!(!path.exists());
    // A unit of that name that is not ours is neither replaced nor removed.
    std::fs::write(&path, "[Unit]\nDescription=mine\n").unwrap();
    env.run(&["daemon", "uninstall", "--user"])
        .failure()
        .stderr_has("nothing was removed");
    env.run(&["daemon", "install", "--user"])
        .failure()
        .stderr_has("was not written by mcpctl");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "[Unit]\nDescription=mine\n"
    );
}

#[test]
fn completions_and_the_man_page_come_from_the_cli_definition() {
    let env = TestEnv::new();
    for shell in ["bash", "zsh", "fish"] {
        env.run(&["completions", shell])
            .success()
            .stdout_has("mcpctl")
            .stdout_has("restore");
    }
    env.run(&["man"])
        .success()
        .stdout_has(".TH mcpctl")
        .stdout_has("mcpctl server restore")
        .stdout_has("\\-\\-dry\\-run")
        .stdout_has("Examples:");
    env.run(&["server", "restore", "--help"])
        .success()
        .stdout_has("Examples:");
}

#[test]
fn validate_and_plan_need_no_daemon_and_no_identity() {
    let env = TestEnv::with_config(&echo_with(free_port(), "x"));
    env.run(&["validate"]).success();
    env.run(&["plan", "--detailed-exitcode"]).code(2);
    env.run(&["fmt", "--check"]).success();
    assert!(!env.path().join("xdg/mcpctl/identity.txt").exists());
    assert!(!env.path().join(".mcpctl/daemon.sock").exists());
}

#[test]
fn plan_and_validate_of_a_file_with_secrets_need_no_identity_when_nothing_runs() {
    let env = TestEnv::new();
    env.run(&["init"]).success();
    let mut text = env.read("mcpctl.toml");
    text.push_str(&format!(
        "\n[servers.echo]\ncommand = \"mcp-echo\"\nport = {}\n",
        free_port()
    ));
    env.write("mcpctl.toml", &text);
    env.run_with_stdin(
        &["config", "secret", "set", "TOKEN", "--server", "echo"],
        "a-token-value\n",
    )
    .success();
    // The reviewer's machine: no identity.
    std::fs::rename(env.path().join("xdg"), env.path().join("elsewhere")).unwrap();
    env.run(&["validate"])
        .success()
        .stdout_has("(secrets not checked: no identity)");
    env.run(&["plan", "--detailed-exitcode"])
        .code(2)
        .stdout_has("+ server \"echo\"")
        .stdout_has("(sensitive)")
        .stderr_has("secrets not decrypted (no identity)");
    env.run(&["fmt", "--check"]).success();
}

#[test]
fn the_daemons_own_applies_under_watch_record_the_commit_too() {
    let env = TestEnv::with_config(&echo_with(free_port(), "watched"));
    env.write(".gitignore", ".mcpctl/\n*.out\n");
    git(&env, &["init", "-q"]);
    git(&env, &["add", "."]);
    git(&env, &["commit", "-q", "-m", "one"]);
    let one = git(&env, &["rev-parse", "HEAD"]);
    let _daemon = spawn_logged(&env, &["daemon", "--watch"], "daemon.out");
    let status_has = |want: String| {
        wait_for(&want, 60, || {
            let run = env.run(&["status"]);
            if run.stdout.contains(&want) {
                Ok(())
            } else {
                Err(format!(
                    "{}{}{}",
                    run.stdout,
                    run.stderr,
                    env.read("daemon.out")
                ))
            }
        })
    };
    status_has(format!("applied from {} (clean)", &one[..12]));
    let text = env.read("mcpctl.toml").replace("watched", "edited");
    env.write("mcpctl.toml", &text);
    status_has(format!("applied from {} (modified)", &one[..12]));
    env.run_within(30, &["daemon", "stop"]).success();
}
