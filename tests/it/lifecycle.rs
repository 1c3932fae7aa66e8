//! Imperative commands edit the file, then converge; logs; watch mode.

use crate::common::{TestEnv, alive, echo_bin, free_port, spawn_logged, wait_for};

/// One echo server on `port` that writes its pid to `pid_file` in the test folder.
fn pid_config(env: &TestEnv, port: u16, pid_file: &str) -> String {
    let dir = env.path().display().to_string();
    format!(
        "version = 1\n[servers.echo]\ncommand = \"{}\"\nargs = [\"--pid-file\", \"{dir}/{pid_file}\"]\nport = {port}\n",
        echo_bin()
    )
}

/// One echo server on `port`, and a profile `prod` that sets another port.
fn one(port: u16, extra: &str) -> String {
    format!(
        "version = 1\n\n[profiles.prod]\nport = {}\n\n[servers.echo]\ncommand = \"{}\"\nport = {port}\n{extra}",
        free_port(),
        echo_bin()
    )
}

#[test]
fn server_start_stop_restart_write_the_file_then_converge() {
    let (first, second, third) = (free_port(), free_port(), free_port());
    let env = TestEnv::with_config(&one(first, "state = \"stopped\"\n"));
    env.run_within(
        60,
        &["server", "start", "echo", "--port", &second.to_string()],
    )
    .success()
    .stdout_has("echo: instance 0 ready")
    .stdout_has(&format!("http://127.0.0.1:{second}/mcp"));
    let text = env.read("mcpctl.toml");
    assert!(
        text.contains(&format!("port = {second}\nstate = \"running\"\n")),
        "{text}"
    );
    let status = env.server_status("echo");
    assert_eq!(
        (status["status"].as_str(), status["port"].as_u64()),
        (Some("running"), Some(u64::from(second)))
    );
    let shim = status["pids"][0].clone();

    // restart replaces even with no change.
    env.run_within(60, &["server", "restart", "echo"])
        .success()
        .stdout_has("-/+ server \"echo\"");
    assert_ne!(env.server_status("echo")["pids"][0], shim);

    // The profile sets `port`, so --port goes into its per-server override.
    env.run_within(
        60,
        &[
            "server",
            "restart",
            "echo",
            "--profile",
            "prod",
            "--port",
            &third.to_string(),
        ],
    )
    .success();
    let text = env.read("mcpctl.toml");
    assert!(text.contains("profile = \"prod\""), "{text}");
    assert!(
        text.contains(&format!("[profiles.prod.servers.echo]\nport = {third}\n")),
        "{text}"
    );
    assert_eq!(env.server_status("echo")["port"], third);

    env.run_within(60, &["server", "stop", "echo"]).success();
    assert_eq!(env.server_status("echo")["status"], "stopped");
    env.run(&["plan", "--detailed-exitcode"]).code(0);

    let before = env.read("mcpctl.toml");
    env.run(&["server", "start", "nope"])
        .failure()
        .stderr_has("unknown server `nope`")
        .stderr_has("known servers: echo");
    env.run(&["server", "stop", "nope"])
        .failure()
        .stderr_has("known servers: echo");
    env.run(&["server", "status", "nope"])
        .failure()
        .stderr_has("known servers: echo");
    assert_eq!(env.read("mcpctl.toml"), before);
}

#[test]
fn server_stop_without_a_daemon_only_edits_the_file() {
    let env = TestEnv::new();
    let (team, own) = (free_port(), free_port());
    env.write("team.toml", &one(team, ""));
    env.run(&["-f", "team.toml", "server", "stop", "echo"])
        .success();
    assert!(env.read("team.toml").contains("state = \"stopped\""));
    env.write("mcpctl.toml", &one(own, ""));
    env.run_within(60, &["server", "start", "echo", "--config", "team.toml"])
        .success()
        .stdout_has(&format!("127.0.0.1:{team}/"));
    assert!(env.read("team.toml").contains("state = \"running\""));
    env.run_within(30, &["-f", "team.toml", "daemon", "stop"])
        .success();
    env.run(&["server", "stop", "echo"]).success();
    assert!(env.read("mcpctl.toml").contains("state = \"stopped\""));
    assert!(!env.path().join(".mcpctl/daemon.sock").exists());
    env.run(&["status"]).success().stdout_has("stopped");
    env.run(&["daemon", "status"])
        .failure()
        .stderr_has("no daemon is running");
}

#[test]
fn logs_capture_stderr_and_mcp_messages_with_levels() {
    let extra = "args = [\"--stderr\", \"ERROR disk on fire\", \"--stderr\", \"debug details\", \"--notify\", \"warning:cache is cold\"]\n";
    let env = TestEnv::with_config(&one(free_port(), extra));
    env.run_within(60, &["apply"]).success();
    let all = wait_for("the MCP log message", 20, || {
        let run = env.run(&["server", "logs", "echo"]);
        if run.stdout.contains("cache is cold") {
            Ok(run.stdout)
        } else {
            Err(run.stdout)
        }
    });
    assert!(all.contains(" stderr ERROR disk on fire\n"), "{all}");
    assert!(all.contains(" mcp WARN cache is cold\n"), "{all}");
    let warn = env.run(&["server", "logs", "echo", "--level", "warn"]);
    warn.success();
    assert!(
        warn.stdout.contains("disk on fire") && warn.stdout.contains("cache is cold"),
        "{}",
        warn.stdout
    );
    assert!(
        !warn.stdout.contains("debug details") && !warn.stdout.contains("ready"),
        "{}",
        warn.stdout
    );
    let last = env.run(&["server", "logs", "echo", "--lines", "1"]);
    assert_eq!(last.stdout.lines().count(), 1, "{}", last.stdout);
    env.run(&["server", "logs", "nope"])
        .failure()
        .stderr_has("unknown server `nope`");
}

#[test]
fn apply_watch_converges_on_save_and_keeps_servers_on_a_broken_save() {
    let env = TestEnv::new();
    let port = free_port();
    let config = |pid_file: &str| pid_config(&env, port, pid_file);
    env.write("mcpctl.toml", &config("one.pids"));
    let watch = spawn_logged(&env, &["apply", "--watch"], "watch.log");
    let first = wait_for("the first apply", 60, || {
        env.pids("one.pids")
            .first()
            .copied()
            .ok_or_else(|| env.read("watch.log"))
    });

    // An edit that changes args is applied without a command.
    env.write("mcpctl.toml", &config("two.pids"));
    let second = wait_for("the edit to be applied", 60, || {
        env.pids("two.pids")
            .first()
            .copied()
            .ok_or_else(|| env.read("watch.log"))
    });
    assert!(!alive(first));

    // A broken save is reported with file:line:col; the server keeps running.
    env.write("mcpctl.toml", &(config("three.pids") + "port = \"oops\"\n"));
    wait_for("the broken save to be reported", 60, || {
        let log = env.read("watch.log");
        if log.contains("mcpctl.toml:6:") {
            Ok(())
        } else {
            Err(log)
        }
    });
    assert!(alive(second));
    assert!(env.pids("three.pids").is_empty());
    env.run(&["plan", "--detailed-exitcode"]).failure();

    drop(watch);
}

#[test]
fn the_daemon_watch_option_converges_on_save() {
    let env = TestEnv::new();
    let port = free_port();
    let config = |pid_file: &str| pid_config(&env, port, pid_file);
    env.write("mcpctl.toml", &config("one.pids"));
    let mut daemon = spawn_logged(&env, &["daemon", "--watch"], "daemon.out");
    // In the foreground the daemon converges by itself at start.
    let first = wait_for("the initial apply", 60, || {
        env.pids("one.pids")
            .first()
            .copied()
            .ok_or_else(|| env.read("daemon.out"))
    });
    env.write("mcpctl.toml", &(config("two.pids") + "bad = 1\n"));
    wait_for("the broken save to be reported", 60, || {
        let out = env.read("daemon.out");
        if out.contains("unknown field `bad`") {
            Ok(())
        } else {
            Err(out)
        }
    });
    assert!(alive(first));
    // Saved the way many editors do: a new file renamed over the old one.
    env.write("mcpctl.toml.swp", &config("two.pids"));
    std::fs::rename(
        env.path().join("mcpctl.toml.swp"),
        env.path().join("mcpctl.toml"),
    )
    .unwrap();
    wait_for("the fixed save to be applied", 60, || {
        env.pids("two.pids")
            .first()
            .copied()
            .ok_or_else(|| env.read("daemon.out"))
    });
    env.run_within(30, &["daemon", "stop"]).success();
    let status = daemon.0.wait().unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn two_configs_in_one_folder_each_have_their_own_daemon() {
    let (own, team_port) = (free_port(), free_port());
    let env = TestEnv::with_config(&one(own, ""));
    env.write("team.toml", &one(team_port, ""));
    env.run_within(60, &["apply"]).success();
    env.run_within(60, &["-f", "team.toml", "apply"]).success();
    assert_eq!(env.server_status("echo")["port"], own);
    let team = env.run(&[
        "-f",
        "team.toml",
        "server",
        "status",
        "echo",
        "--format",
        "json",
    ]);
    let team: serde_json::Value = serde_json::from_str(&team.stdout).unwrap();
    assert_eq!(
        (team["port"].as_u64(), team["status"].as_str()),
        (Some(u64::from(team_port)), Some("running"))
    );
    assert!(env.path().join(".mcpctl/team.toml/daemon.sock").exists());
    env.run_within(30, &["-f", "team.toml", "daemon", "stop"])
        .success();
    assert_eq!(
        env.server_status("echo")["status"],
        "running",
        "the other daemon is untouched"
    );
}

#[test]
fn a_client_arriving_while_the_server_starts_is_served_once_it_is_ready() {
    let port = free_port();
    let env = TestEnv::with_config(&format!(
        "version = 1\n[servers.echo]\ncommand = \"{}\"\nargs = [\"--start-delay-ms\", \"1500\"]\nport = {port}\n",
        echo_bin()
    ));
    let daemon = spawn_logged(&env, &["daemon"], "daemon.out");
    // The port is bound before the process starts, and the process takes 1.5 s to start:
    // this initialize arrives while the server is "starting", and waits for it.
    wait_for("the port", 60, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())
    });
    crate::gateway::initialize(port);
    // It waited asleep: a polling wait would have spent about those 1.5 s of CPU.
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", daemon.0.id())).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let cpu_ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    assert!(cpu_ticks < 50, "the daemon used {cpu_ticks} ticks of CPU");
    env.run_within(30, &["daemon", "stop"]).success();
}
