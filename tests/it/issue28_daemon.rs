//! Regressions of issue 28, "What careful users broke", in the daemon: each test is
//! named after the defect it pins down.

use serde_json::Value;

use crate::common::{TestEnv, echo_bin, free_port, wait_for};

fn status_of(env: &TestEnv) -> Vec<Value> {
    let run = env
        .run(&["status", "--format", "json"])
        .success()
        .stdout
        .clone();
    serde_json::from_str::<Vec<Value>>(&run).unwrap_or_default()
}

#[test]
fn issue28_a_server_removed_while_crash_looping_is_stopped_and_its_port_freed() {
    let (bad, good) = (free_port(), free_port());
    let both = format!(
        "version = 1\n[servers.bad]\ncommand = \"sh\"\nargs = [\"-c\", \"exit 3\"]\nport = {bad}\n\
         [servers.good]\ncommand = \"{}\"\nport = {good}\n",
        echo_bin()
    );
    let env = TestEnv::with_config(&both);
    env.run_within(60, &["apply"]).failure();
    wait_for("bad to loop crashing", 30, || {
        let s = env.server_status("bad");
        if s["status"] == "crash-loop" {
            Ok(())
        } else {
            Err(s.to_string())
        }
    });
    env.write(
        "mcpctl.toml",
        &format!(
            "version = 1\n[servers.good]\ncommand = \"{}\"\nport = {good}\n",
            echo_bin()
        ),
    );
    env.run(&["plan"])
        .success()
        .stdout_has("server \"bad\" will be stopped");
    env.run_within(60, &["apply"]).success();
    assert!(
        !status_of(&env).iter().any(|s| s["server"] == "bad"),
        "bad is gone"
    );
    std::net::TcpListener::bind(("127.0.0.1", bad)).expect("its port is free again");
    env.run(&["plan", "--detailed-exitcode"]).success();
    env.run_within(30, &["daemon", "stop"]).success();
}

#[test]
fn issue28_a_memory_limit_restart_is_named_once_the_server_runs_again() {
    let hog = free_port();
    let env = TestEnv::with_config(&format!(
        "version = 1\n{}limits = {{ memory = \"32MiB\" }}\n",
        crate::operations::server("hog", hog, r#""--hold-mib", "64""#),
    ));
    crate::operations::apply_sampled(&env);
    // Restarted for its memory, and running again: the reason is still there.
    let status = wait_for("the hog running again after a restart", 60, || {
        let s = env.server_status("hog");
        if s["restarts"].as_u64().unwrap_or(0) >= 1 && s["status"] == "running" {
            Ok(s)
        } else {
            Err(s.to_string())
        }
    });
    let why = status["last_restart"].as_str().unwrap_or_default();
    assert!(why.contains("limits.memory (32.0 MiB)"), "{status}");
    env.run(&["server", "status", "hog"])
        .success()
        .stdout_has("Last Restart:")
        .stdout_has("limits.memory");
    env.run_within(30, &["daemon", "stop"]).success();
}

#[test]
fn issue28_status_shows_what_runs_and_flags_what_the_file_changed() {
    let (port, moved) = (free_port(), free_port());
    let config = |p: u16| {
        format!(
            "version = 1\n[servers.echo]\ncommand = \"{}\"\nport = {p}\n",
            echo_bin()
        )
    };
    let env = TestEnv::with_config(&config(port));
    env.run_within(60, &["apply"]).success();
    env.write("mcpctl.toml", &config(moved));
    let s = env.server_status("echo");
    assert_eq!(s["port"], port, "the port that runs: {s}");
    assert!(
        s["http_endpoint"]
            .as_str()
            .unwrap_or_default()
            .contains(&port.to_string()),
        "{s}"
    );
    assert_eq!(s["pending"], serde_json::json!(["port"]), "{s}");
    env.run(&["status"])
        .success()
        .stdout_has(&port.to_string())
        .stdout_has("not applied yet")
        .stdout_has("echo: port");
    env.run(&["server", "status", "echo"])
        .success()
        .stdout_has("port (in the file, not applied)");
    env.run_within(60, &["apply"]).success();
    let s = env.server_status("echo");
    assert_eq!(s["port"], moved);
    assert!(s.get("pending").is_none(), "{s}");
    env.run_within(30, &["daemon", "stop"]).success();
}

#[test]
fn issue28_an_idle_session_without_delete_does_not_keep_a_min_zero_server_awake() {
    let port = free_port();
    let env = TestEnv::with_config(&format!(
        "version = 1\n[servers.echo]\ncommand = \"{}\"\nport = {port}\n\
         autoscale = {{ min = 0, max = 1, idle_after = \"1s\" }}\n",
        echo_bin()
    ));
    crate::autoscale::apply_fast(&env);
    // A client that initializes and never comes back (no DELETE, no stream).
    let _left = crate::gateway::initialize(port);
    crate::autoscale::wait_scaled_to_zero(&env, "echo", 30);
    // A new client is served (one cold start).
    let session = crate::gateway::initialize(port);
    let call = serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "awake"}}});
    let reply = crate::common::http(
        port,
        "POST",
        "/mcp",
        &[
            ("Mcp-Session-Id", &session),
            ("MCP-Protocol-Version", "2025-06-18"),
        ],
        call.to_string().as_bytes(),
    );
    assert_eq!(reply.json()["result"]["content"][0]["text"], "awake");
    env.run_within(30, &["daemon", "stop"]).success();
}

#[test]
fn issue28_a_refused_apply_does_not_move_the_metrics_listener() {
    let (port, first, second) = (free_port(), free_port(), free_port());
    let config = |metrics: u16| {
        format!(
            "version = 1\n[daemon]\nmetrics = \"127.0.0.1:{metrics}\"\n[servers.echo]\ncommand = \"{}\"\nport = {port}\n",
            echo_bin()
        )
    };
    let env = TestEnv::with_config(&config(first));
    env.run_within(60, &["apply"]).success();
    assert_eq!(
        crate::common::http(first, "GET", "/metrics", &[], b"").status,
        200
    );
    // The daemon refuses an apply that names a server the file lacks: nothing moves.
    env.write("mcpctl.toml", &config(second));
    let socket = env.path().join(".mcpctl/daemon.sock");
    let mut stream = std::os::unix::net::UnixStream::connect(&socket).expect("the daemon's socket");
    use std::io::{BufRead, Write};
    writeln!(stream, r#"{{"request": "apply", "only": ["ghost"]}}"#).unwrap();
    let mut reply = String::new();
    std::io::BufReader::new(&stream)
        .read_line(&mut reply)
        .unwrap();
    assert!(reply.contains("ghost"), "{reply}");
    assert_eq!(
        crate::common::http(first, "GET", "/metrics", &[], b"").status,
        200,
        "still where the last applied file put it"
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", second)).is_err());
    env.run_within(30, &["daemon", "stop"]).success();
}

/// `git` (asked where a watched file stands) no longer runs on the daemon's runtime:
/// while it is slow, the gateway still answers.
#[test]
fn issue28_a_slow_git_during_a_watch_apply_does_not_stall_the_gateway() {
    let env = TestEnv::new();
    let (port, other) = (free_port(), free_port());
    // A `git` that waits for the test's word before it answers.
    let real = std::process::Command::new("sh")
        .args(["-c", "command -v git"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let bin = env.path().join("slowbin");
    std::fs::create_dir_all(&bin).unwrap();
    let started = env.path().join("git.started");
    let release = env.path().join("git.release");
    let script = format!(
        "#!/bin/sh\ntouch '{}'\nn=0\nwhile [ ! -f '{}' ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n+1)); done\n{}\n",
        started.display(),
        release.display(),
        if real.is_empty() {
            "exit 1".to_string()
        } else {
            format!("exec '{real}' \"$@\"")
        }
    );
    std::fs::write(bin.join("git"), script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("git"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = |extra: &str| {
        format!(
            "version = 1\n[servers.echo]\ncommand = \"{}\"\nport = {port}\n{extra}",
            echo_bin()
        )
    };
    env.write("mcpctl.toml", &config(""));
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let log = std::fs::File::create(env.path().join("daemon.out")).unwrap();
    let _daemon = crate::common::KillOnDrop(
        env.command(&["daemon", "--watch"])
            .env("PATH", &path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The first apply asks git too: let it through, then wait for the server.
    wait_for("the first git", 60, || {
        if started.exists() {
            Ok(())
        } else {
            Err(env.read("daemon.out"))
        }
    });
    std::fs::write(&release, "").unwrap();
    let session = wait_for("the echo server", 60, || {
        std::panic::catch_unwind(|| crate::gateway::initialize(port))
            .map_err(|_| env.read("daemon.out"))
    });
    std::fs::remove_file(&release).unwrap();
    std::fs::remove_file(&started).unwrap();
    // A save: the watch applies it and asks git, which now waits.
    env.write(
        "mcpctl.toml",
        &config(&format!(
            "[servers.other]\ncommand = \"{}\"\nport = {other}\n",
            echo_bin()
        )),
    );
    wait_for("the watch's git", 60, || {
        if started.exists() {
            Ok(())
        } else {
            Err(env.read("daemon.out"))
        }
    });
    // The gateway answers meanwhile (the connection reads for 30 s at most).
    let call = serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "not stalled"}}});
    let reply = crate::common::http(
        port,
        "POST",
        "/mcp",
        &[
            ("Mcp-Session-Id", &session),
            ("MCP-Protocol-Version", "2025-06-18"),
        ],
        call.to_string().as_bytes(),
    );
    std::fs::write(&release, "").unwrap();
    assert_eq!(reply.json()["result"]["content"][0]["text"], "not stalled");
    env.run_within(30, &["daemon", "stop"]).success();
}

#[test]
fn issue28_per_session_children_of_clients_that_leave_are_bounded_in_time() {
    let port = free_port();
    let env = TestEnv::with_config(&format!(
        "version = 1\n[servers.own]\ncommand = \"{}\"\nport = {port}\nsharing = \"per-session\"\nsession_idle = \"1s\"\n",
        echo_bin()
    ));
    env.run_within(60, &["apply"]).success();
    // Clients that open a session and never end it (no DELETE).
    for _ in 0..3 {
        crate::gateway::initialize(port);
    }
    let s = env.server_status("own");
    assert_eq!(s["session_instances"], 3, "{s}");
    wait_for("the idle sessions' processes to end", 30, || {
        let s = env.server_status("own");
        if s["session_instances"] == 0 {
            Ok(())
        } else {
            Err(s.to_string())
        }
    });
    env.run_within(30, &["daemon", "stop"]).success();
}

/// The daemon holds every server's secrets, copies included: no other process of its
/// user (its servers) may read its memory or environment (README, "Secrets": what is
/// true of memory). Run as `nobody`, so "its user" is not root.
#[test]
fn issue28_the_daemon_is_not_readable_by_other_processes_of_its_user() {
    let port = free_port();
    let env = TestEnv::with_config(&format!(
        "version = 1\n[servers.echo]\ncommand = \"{}\"\nport = {port}\n",
        echo_bin()
    ));
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    std::fs::set_permissions(env.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let as_nobody = "exec setpriv --reuid 65534 --regid 65534 --clear-groups \"$0\" \"$@\"";
    let applied = env.command_after(as_nobody, &["apply"]).output().unwrap();
    crate::common::to_run(&["apply"], &applied).success();
    let daemon = env.daemon_pid();
    let owner = |pid: u32| {
        std::fs::metadata(format!("/proc/{pid}"))
            .map(|m| m.uid())
            .unwrap_or(u32::MAX)
    };
    // Its process is nobody's, but a process that may not be inspected has its /proc
    // entries owned by root.
    let environ = std::fs::metadata(format!("/proc/{daemon}/environ")).unwrap();
    assert_eq!(
        environ.uid(),
        0,
        "not dumpable (its /proc/PID is {})",
        owner(daemon)
    );
    let read = std::process::Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "cat",
        ])
        .arg(format!("/proc/{daemon}/environ"))
        .output()
        .unwrap();
    assert!(
        !read.status.success(),
        "another process of its user read the daemon's environment"
    );
    let stopped = env
        .command_after(as_nobody, &["daemon", "stop"])
        .output()
        .unwrap();
    crate::common::to_run(&["daemon", "stop"], &stopped).success();
}

/// `daemon stop` stops instances that are draining too (it ignored them: they outlived
/// the daemon until their shim's death signal ran its stop timeout).
#[test]
fn issue28_daemon_stop_stops_draining_instances_before_it_returns() {
    let port = free_port();
    let env = TestEnv::with_config(&format!(
        "version = 1\n[servers.echo]\ncommand = \"{}\"\nargs = [\"--ignore-sigterm\"]\nport = {port}\n\
         instances = 2\nstop_timeout = \"4s\"\ndrain_timeout = \"60s\"\n",
        echo_bin()
    ));
    env.run_within(60, &["apply"]).success();
    // A session on each instance, so the one scaled away drains for a long time.
    let _a = crate::gateway::initialize(port);
    let _b = crate::gateway::initialize(port);
    let pids: Vec<u64> = env.server_status("echo")["pids"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    assert_eq!(pids.len(), 2, "{pids:?}");
    let _scale = crate::common::spawn_logged(
        &env,
        &["server", "scale", "echo", "--instances", "1"],
        "scale.out",
    );
    wait_for("an instance draining", 30, || {
        let s = env.server_status("echo");
        if s["instances_draining"] == 1 {
            Ok(())
        } else {
            Err(s.to_string())
        }
    });
    env.run_within(60, &["daemon", "stop"]).success();
    // Stopped by the daemon before it returned, its stop timeout included: none is left.
    let left = crate::common::left_alive(&pids.iter().map(|p| *p as u32).collect::<Vec<_>>(), 1);
    assert!(left.is_empty(), "{left:?} outlived daemon stop");
}

/// From the attack: the log tail a failed start prints is escaped (a server's OSC 52 or
/// screen clear never reaches the operator's terminal).
#[test]
fn issue28_a_failed_starts_log_tail_is_shown_escaped() {
    let port = free_port();
    let env = TestEnv::with_config(&format!(
        "version = 1\n[servers.evil]\ncommand = \"sh\"\nargs = [\"-c\", \"printf 'E1 \\\\033]52;c;ZXZpbA==\\\\007 \\\\033[2J \\\\342\\\\200\\\\256 done\\\\n' >&2; exit 2\"]\nport = {port}\nrestart = \"never\"\n"
    ));
    let run = env.run_within(60, &["apply"]);
    run.failure();
    assert!(run.stderr.contains("E1 "), "{}", run.stderr);
    assert!(
        !run.stderr.contains('\u{1b}'),
        "no raw ESC: {:?}",
        run.stderr
    );
    assert!(
        !run.stderr.contains('\u{7}'),
        "no raw BEL: {:?}",
        run.stderr
    );
    assert!(
        !run.stderr.contains('\u{202e}'),
        "no raw bidi override: {:?}",
        run.stderr
    );
    assert!(run.stderr.contains("\\u{1b}]52"), "{}", run.stderr);
    env.run_within(30, &["daemon", "stop"]).success();
}

/// From the attack (high): a client that never reads a large JSON answer held it in the
/// daemon for as long as it liked. A write that makes no progress for the stall limit
/// now closes the connection, and what waited for it is freed.
#[test]
fn issue28_a_client_that_never_reads_a_json_answer_is_cut_after_the_stall_limit() {
    let port = free_port();
    let env = TestEnv::with_config(&format!(
        "version = 1\n[servers.echo]\ncommand = \"{}\"\nport = {port}\n",
        echo_bin()
    ));
    let applied = env
        .command(&["apply"])
        .env("MCPCTL_WRITE_STALL_MS", "1000")
        .output()
        .unwrap();
    crate::common::to_run(&["apply"], &applied).success();
    let session = crate::gateway::initialize(port);
    // A connection that is never read (the answer outgrows what the kernel buffers).
    let mut stalled = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    use std::io::Write;
    let call = serde_json::json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": {"name": "flood", "arguments": {"reply": 15_000_000}}})
    .to_string();
    write!(
        stalled,
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nAccept: application/json\r\nMcp-Session-Id: {session}\r\nContent-Length: {}\r\n\r\n{call}",
        call.len()
    )
    .unwrap();
    // The daemon closes it on its own (its open connections drop to the others'), well
    // before the client would have read anything.
    wait_for("the stalled connection closed by the daemon", 60, || {
        let open = env.server_status("echo")["traffic"]["connections"]
            .as_u64()
            .unwrap_or(99);
        if open == 0 {
            Ok(())
        } else {
            Err(open.to_string())
        }
    });
    assert!(
        crate::gateway::closed_by_server(&mut stalled, 10),
        "the connection is closed"
    );
    // Everyone else is still served.
    let again = crate::gateway::initialize(port);
    assert!(!again.is_empty());
    env.run_within(30, &["daemon", "stop"]).success();
}
