//! The daemon with real processes: apply, supervision, stop, crash loops, drift.
//! Every wait is a bounded poll; nothing asserts on timing.

use crate::common::{TestEnv, alive, echo_bin, free_port, wait_for};

/// A config with one `mcp-echo` server named `name` plus extra fields.
fn server(name: &str, port: u16, extra: &str) -> String {
    format!(
        "[servers.{name}]\ncommand = \"{}\"\nport = {port}\n{extra}\n",
        echo_bin()
    )
}

fn config(servers: &[String]) -> String {
    format!("version = 1\n\n{}", servers.join("\n"))
}

fn pid_file_args(file: &str, more: &str) -> String {
    format!("args = [\"--pid-file\", \"{file}\"{more}]")
}

#[test]
fn apply_twice_changes_nothing_the_second_time() {
    let port = free_port();
    let env = TestEnv::with_config(&config(&[server("echo", port, "")]));
    env.run_within(60, &["apply"])
        .success()
        .stdout_has("+ server \"echo\"")
        .stdout_has("echo: instance 0 ready")
        .stdout_has(&format!("http://127.0.0.1:{port}/mcp"));
    env.run_within(60, &["apply"])
        .success()
        .stdout_has("No changes.");
    env.run(&["plan", "--detailed-exitcode"]).code(0);
    let status = env.server_status("echo");
    assert_eq!(status["status"], "running");
    assert_eq!(status["restarts"], 0);
    env.run(&["status"])
        .success()
        .stdout_has("echo")
        .stdout_has("running");
    env.run(&["daemon", "status"])
        .success()
        .stdout_has("daemon running");
}

#[test]
fn a_killed_child_is_restarted_by_policy_and_the_plan_stays_empty() {
    let env = TestEnv::new();
    let dir = env.path().display().to_string();
    let always = server(
        "echo",
        free_port(),
        &pid_file_args(&format!("{dir}/a.pids"), ""),
    );
    let never = server(
        "once",
        free_port(),
        &format!(
            "{}\nrestart = \"never\"",
            pid_file_args(&format!("{dir}/b.pids"), "")
        ),
    );
    env.write("mcpctl.toml", &config(&[always, never]));
    env.run_within(60, &["apply"]).success();

    let first = env.pids("a.pids")[0];
    std::fs::remove_file(env.path().join("a.pids")).unwrap();
    std::process::Command::new("kill")
        .args(["-9", &first.to_string()])
        .status()
        .unwrap();
    let second = wait_for("a restarted echo", 30, || {
        let pids = env.pids("a.pids");
        let status = env.server_status("echo");
        match pids.first() {
            Some(&p) if p != first && status["status"] == "running" => Ok(p),
            _ => Err(format!("pids {pids:?}, status {status}")),
        }
    });
    assert!(alive(second));
    assert_eq!(env.server_status("echo")["restarts"], 1);
    env.run(&["plan", "--detailed-exitcode"]).code(0);

    let once = env.pids("b.pids")[0];
    std::process::Command::new("kill")
        .args(["-9", &once.to_string()])
        .status()
        .unwrap();
    wait_for("`once` to stay exited", 30, || {
        let status = env.server_status("once");
        if status["status"] == "exited" {
            Ok(())
        } else {
            Err(status.to_string())
        }
    });
    env.run(&["plan", "--detailed-exitcode"])
        .code(2)
        .stdout_has("server \"once\" will be started");
    env.run_within(60, &["apply"]).success();
    assert_eq!(env.server_status("once")["status"], "running");
}

#[test]
fn stop_waits_for_stop_timeout_then_kills_and_force_kills_at_once() {
    let env = TestEnv::new();
    let dir = env.path().display().to_string();
    let stubborn = server(
        "stubborn",
        free_port(),
        &format!(
            "{}\nstop_timeout = \"1s\"",
            pid_file_args(
                &format!("{dir}/s.pids"),
                ", \"--ignore-sigterm\", \"--grandchild\""
            )
        ),
    );
    // With an hour of grace, only --force can make this stop return in time.
    let forced = server(
        "forced",
        free_port(),
        &format!(
            "{}\nstop_timeout = \"1h\"",
            pid_file_args(
                &format!("{dir}/f.pids"),
                ", \"--ignore-sigterm\", \"--grandchild\""
            )
        ),
    );
    env.write("mcpctl.toml", &config(&[stubborn, forced]));
    env.run_within(60, &["apply"]).success();
    let stubborn_pids = env.pids("s.pids");
    let forced_pids = env.pids("f.pids");
    assert_eq!(stubborn_pids.len(), 2, "server and grandchild");
    let shim = env.server_status("stubborn")["pids"][0].as_u64().unwrap() as u32;

    env.run_within(30, &["server", "stop", "stubborn"])
        .success();
    for pid in &stubborn_pids {
        assert!(!alive(*pid), "{pid} of stubborn survived its stop");
    }
    assert!(!alive(shim));
    assert!(
        group_members(shim).is_empty(),
        "processes left in group {shim}"
    );
    assert!(env.read("mcpctl.toml").contains("state = \"stopped\""));
    assert_eq!(env.server_status("stubborn")["status"], "stopped");

    env.run_within(30, &["server", "stop", "forced", "--force"])
        .success();
    for pid in &forced_pids {
        assert!(!alive(*pid), "{pid} of forced survived --force");
    }
    env.run(&["plan", "--detailed-exitcode"]).code(0);
}

fn group_members(pgid: u32) -> Vec<u32> {
    mcpctl::sys::group_members(pgid)
}

#[test]
fn sigkill_of_the_daemon_leaves_no_child_and_the_next_command_converges() {
    let env = TestEnv::new();
    let dir = env.path().display().to_string();
    let plain = server(
        "plain",
        free_port(),
        &pid_file_args(&format!("{dir}/p.pids"), ", \"--grandchild\""),
    );
    let detached = server(
        "detached",
        free_port(),
        &pid_file_args(&format!("{dir}/d.pids"), ", \"--grandchild\", \"--setsid\""),
    );
    let stubborn = server(
        "stubborn",
        free_port(),
        &format!(
            "{}\nstop_timeout = \"1s\"",
            pid_file_args(&format!("{dir}/s.pids"), ", \"--ignore-sigterm\"")
        ),
    );
    env.write("mcpctl.toml", &config(&[plain, detached, stubborn]));
    env.run_within(60, &["apply"]).success();
    let mut pids: Vec<u32> = ["p.pids", "d.pids", "s.pids"]
        .iter()
        .flat_map(|f| env.pids(f))
        .collect();
    let status: serde_json::Value =
        serde_json::from_str(&env.run(&["status", "--format", "json"]).stdout).unwrap();
    pids.extend(status.as_array().unwrap().iter().flat_map(|s| {
        s["pids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_u64().unwrap() as u32)
    }));
    assert_eq!(pids.len(), 8, "{pids:?}");
    let daemon: u32 = env.read(".mcpctl/daemon.pid").trim().parse().unwrap();

    std::process::Command::new("kill")
        .args(["-9", &daemon.to_string()])
        .status()
        .unwrap();
    wait_for("every child of the killed daemon to be gone", 20, || {
        let left: Vec<u32> = pids.iter().copied().filter(|&p| alive(p)).collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("still alive: {left:?}"))
        }
    });

    env.run(&["plan", "--detailed-exitcode"]).code(2);
    env.run_within(60, &["apply"])
        .success()
        .stdout_has("Plan: 3 to start");
    for name in ["plain", "detached", "stubborn"] {
        assert_eq!(env.server_status(name)["status"], "running", "{name}");
    }
}

#[test]
fn changing_port_or_args_replaces_and_reformatting_changes_nothing() {
    let (first, second) = (free_port(), free_port());
    let env = TestEnv::with_config(&config(&[server(
        "echo",
        first,
        "args = [\"--stderr\", \"one\"]",
    )]));
    env.run_within(60, &["apply"]).success();
    let shim = env.server_status("echo")["pids"][0].clone();

    // Same meaning, other layout and a comment: no restart.
    env.write(
        "mcpctl.toml",
        &format!("# reformatted\nversion=1\n[servers.echo]\nargs=['--stderr','one']\nport={first} # same\ncommand='{}'\n", echo_bin()),
    );
    env.run(&["plan", "--detailed-exitcode"]).code(0);
    env.run_within(60, &["apply"])
        .success()
        .stdout_has("No changes.");
    assert_eq!(env.server_status("echo")["pids"][0], shim);

    let text = env.read("mcpctl.toml").replace("'one'", "'two'");
    env.write("mcpctl.toml", &text);
    env.run(&["plan"])
        .success()
        .stdout_has("-/+ server \"echo\"")
        .stdout_has("- \"one\",")
        .stdout_has("+ \"two\",")
        .stdout_has("] # forces restart");
    env.run_within(60, &["apply"])
        .success()
        .stdout_has("Plan: 0 to start, 1 to restart");
    let after_args = env.server_status("echo")["pids"][0].clone();
    assert_ne!(after_args, shim);

    env.write(
        "mcpctl.toml",
        &env.read("mcpctl.toml")
            .replace(&format!("port={first} "), &format!("port={second} ")),
    );
    env.run(&["plan"])
        .success()
        .stdout_has(&format!("~ port = {first} -> {second} # forces restart"));
    env.run_within(60, &["apply"])
        .success()
        .stdout_has(&format!("http://127.0.0.1:{second}/mcp"));
    assert_ne!(env.server_status("echo")["pids"][0], after_args);
}

#[test]
fn a_crash_looping_server_is_bounded_reported_and_the_daemon_stays_responsive() {
    let (bad_port, good_port) = (free_port(), free_port());
    let env = TestEnv::with_config(&config(&[
        server(
            "bad",
            bad_port,
            "args = [\"--fail-at-start\", \"3\"]\nrestart = \"always\"",
        ),
        server("good", good_port, ""),
    ]));
    env.run_within(60, &["apply"])
        .failure()
        .stderr_has("bad: instance 0 failed to start: exit code 3 before it was ready")
        .stderr_has("failing at start with code 3");
    let status = wait_for("crash-loop", 60, || {
        let s = env.server_status("bad");
        if s["status"] == "crash-loop" {
            Ok(s)
        } else {
            Err(s.to_string())
        }
    });
    let restarts = status["restarts"].as_u64().unwrap();
    assert!((1..=5).contains(&restarts), "restarts {restarts}");
    // A crash loop is final for its task (it waits for a stop), so the count stays,
    // and the daemon answers meanwhile.
    assert_eq!(env.server_status("good")["status"], "running");
    // Its port says so to a load balancer's probe; the good one's is ready.
    let probe = |port: u16| crate::common::http(port, "GET", "/readyz", &[], b"").status;
    assert_eq!((probe(bad_port), probe(good_port)), (503, 200));
    env.run_within(10, &["status"])
        .success()
        .stdout_has("crash-loop");
    assert_eq!(
        env.server_status("bad")["restarts"].as_u64().unwrap(),
        restarts
    );
    // r12: a server that should run and does not is drift: plan shows it, and apply
    // tries again with a fresh budget, failing again as it fails.
    env.run(&["plan", "--detailed-exitcode"])
        .code(2)
        .stdout_has("+ server \"bad\"");
    env.run_within(60, &["apply"])
        .failure()
        .stdout_has("bad: starting 1 instance(s)")
        .stderr_has("bad: instance 1 failed to start");
    env.run_within(60, &["server", "restart", "bad"])
        .failure()
        .stderr_has("failed to start");
}

#[test]
fn a_server_that_never_answers_initialize_fails_with_its_log() {
    let env = TestEnv::with_config(&config(&[server(
        "mute",
        free_port(),
        "args = [\"--no-handshake\", \"--stderr\", \"ERROR cannot reach upstream\"]\nstart_timeout = \"1s\"\nrestart = \"never\"",
    )]));
    env.run_within(60, &["apply"])
        .failure()
        .stderr_has("mute: instance 0 failed to start: not ready after 1s")
        .stderr_has("ERROR cannot reach upstream");
    env.run(&["server", "logs", "mute", "--level", "error"])
        .success()
        .stdout_has("cannot reach upstream");
    let missing = TestEnv::with_config(&format!(
        "version = 1\n[servers.ghost]\ncommand = \"/nonexistent/mcp\"\nport = {}\nrestart = \"never\"\n",
        free_port()
    ));
    missing
        .run_within(60, &["apply"])
        .failure()
        .stderr_has("exit code 127")
        .stderr_has("cannot start `/nonexistent/mcp`");
}

/// The daemon runs each server under `mcpctl-shim`, or `mcpctl __shim` when the small
/// binary is not beside it: both run the command and pass its exit code on.
#[test]
fn both_shim_entry_points_run_the_server_and_pass_its_exit_code_on() {
    let me = std::process::id().to_string();
    let args = [
        "--stop-timeout-ms",
        "1000",
        "--daemon-pid",
        &me,
        "--",
        "sh",
        "-c",
        "exit 3",
    ];
    let small = std::process::Command::new(env!("CARGO_BIN_EXE_mcpctl-shim"))
        .args(args)
        .status()
        .unwrap();
    assert_eq!(small.code(), Some(3));
    let whole = std::process::Command::new(crate::common::bin())
        .arg("__shim")
        .args(args)
        .status()
        .unwrap();
    assert_eq!(whole.code(), Some(3));
    // Started by anything else, with anything else, it says how it is meant to run.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mcpctl-shim"))
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: mcpctl-shim"));
}
