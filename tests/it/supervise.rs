//! Supervision under what an operator tries (issue 12): killing each process, bad
//! bytes and floods on a child's pipes, a caller's pipes and variables, two first
//! commands at once. Regressions are named `r12_...`.

use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::common::{TestEnv, alive, bin, echo_bin, free_port, http, rss_kib, to_run, wait_for};
use crate::gateway::initialize;

fn config(port: u16, args: &str, restart: &str) -> String {
    format!(
        "version = 1\n[servers.echo]\ncommand = \"{}\"\nargs = [{args}]\nport = {port}\nrestart = \"{restart}\"\n",
        echo_bin()
    )
}

/// `tools/call NAME` in `session`; the JSON-RPC response.
fn call(port: u16, session: &str, name: &str, arguments: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": name, "arguments": arguments}});
    let headers = [
        ("MCP-Protocol-Version", "2025-06-18"),
        ("Mcp-Session-Id", session),
    ];
    http(port, "POST", "/mcp", &headers, body.to_string().as_bytes()).json()
}

/// Waits until `server status NAME` says `status`; that status report.
fn wait_status(env: &TestEnv, name: &str, status: &str) -> Value {
    wait_for(&format!("{name} to be {status}"), 30, || {
        let s = env.server_status(name);
        if s["status"] == status {
            Ok(s)
        } else {
            Err(s.to_string())
        }
    })
}

fn text(response: &Value) -> &str {
    response["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {response}"))
}

#[test]
fn r12_a_line_of_invalid_utf8_is_skipped_and_the_server_keeps_answering() {
    let port = free_port();
    let env = TestEnv::with_config(&config(port, "", "on-failure"));
    env.run_within(60, &["apply"]).success();
    let session = initialize(port);
    assert_eq!(
        text(&call(port, &session, "garbage", json!({}))),
        "garbage written"
    );
    let after = call(port, &session, "echo", json!({"text": "still here"}));
    assert_eq!(text(&after), "still here", "{after}");
    let status = env.server_status("echo");
    assert_eq!(status["restarts"], 0, "no restart was needed: {status}");
    let log = env.read(".mcpctl/logs/echo-0.log");
    assert!(log.contains("\u{fffd}"), "the bad line is logged:\n{log}");
}

#[test]
fn r12_a_50_mb_stderr_line_and_an_oversized_answer_leave_the_daemon_small() {
    let port = free_port();
    let env = TestEnv::with_config(&config(port, "", "on-failure"));
    env.command(&["apply"])
        .env("MCPCTL_MAX_MESSAGE_BYTES", (1 << 20).to_string())
        .output()
        .unwrap();
    let session = initialize(port);
    assert_eq!(
        text(&call(port, &session, "echo", json!({"text": "x"}))),
        "x"
    );
    let daemon = env.daemon_pid();
    let before = rss_kib(daemon);

    let flooded = call(port, &session, "flood", json!({"stderr": 50 << 20}));
    assert_eq!(text(&flooded), "", "{flooded}");
    let too_big = call(port, &session, "flood", json!({"reply": 4 << 20}));
    assert_eq!(too_big["error"]["code"], -32603, "{too_big}");
    assert!(
        too_big["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("larger than")),
        "{too_big}"
    );
    // The child and its other calls are unharmed.
    assert_eq!(
        text(&call(port, &session, "echo", json!({"text": "y"}))),
        "y"
    );
    let after = rss_kib(daemon);
    assert!(
        after < before + 16 * 1024,
        "daemon RSS {before} KiB before the floods, {after} KiB after"
    );
    let log = wait_for("the long line, cut, in the log", 30, || {
        let log = env.read(".mcpctl/logs/echo-0.log");
        // Log lines are kept to their first 16 KiB.
        if log.contains(&format!("cut at {}", 16 * 1024)) {
            Ok(log)
        } else {
            Err(log.chars().take(300).collect())
        }
    });
    assert!(log.len() < 1 << 20, "the log holds {} bytes", log.len());
}

#[test]
fn r12_sigkill_of_a_shim_ends_its_server_and_setsid_grandchild() {
    let port = free_port();
    let env = TestEnv::new();
    let pids = env.path().join("pids");
    env.write(
        "mcpctl.toml",
        &config(
            port,
            &format!(
                "\"--grandchild\", \"--setsid\", \"--pid-file\", \"{}\"",
                pids.display()
            ),
            "never",
        ),
    );
    env.run_within(60, &["apply"]).success();
    let [server, grandchild] = env.pids("pids")[..] else {
        panic!("the fixture wrote {:?}", env.pids("pids"));
    };
    let status = env.server_status("echo");
    // status names the server's own pid, and the shim's beside it.
    assert_eq!(status["pids"], json!([server]), "{status}");
    let shim = status["shim_pids"][0].as_u64().expect("a shim pid") as u32;
    assert_ne!(shim, server);
    assert!(alive(server) && alive(grandchild));

    Command::new("kill")
        .args(["-9", &shim.to_string()])
        .status()
        .unwrap();
    wait_for("the server and its grandchild to end", 15, || {
        match (alive(server), alive(grandchild)) {
            (false, false) => Ok(()),
            seen => Err(format!("alive (server, grandchild) = {seen:?}")),
        }
    });
    env.run_within(30, &["daemon", "stop"]).success();
}

#[test]
fn r12_servers_get_no_mcpctl_variables_and_apply_in_a_command_substitution_returns() {
    let port = free_port();
    let env = TestEnv::with_config(&config(port, "", "on-failure"));
    // fd 7 stands for any descriptor a caller leaves open (a CI runner's pipe, say).
    let script = "exec 7>caller-fd; x=$(\"$0\" apply); printf '%s' \"$x\"";
    let child = env.command(&[]);
    let mut child = Command::new("sh")
        .args(["-c", script, bin()])
        .current_dir(env.path())
        .envs(
            child
                .get_envs()
                .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))),
        )
        .env("MCPCTL_IDENTITY", env.path().join("xdg/identity.txt"))
        .env("MCPCTL_TEST_MARK", "leaked")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdin.take());
    wait_for(
        "x=$(mcpctl apply) to return (a daemon holding the caller's pipe keeps it waiting)",
        60,
        || match child.try_wait().unwrap() {
            Some(_) => Ok(()),
            None => Err("the shell still waiting".to_string()),
        },
    );
    let run = to_run(&["sh", "-c", script], &child.wait_with_output().unwrap());
    run.success()
        .stdout_has(&format!("http://127.0.0.1:{port}/mcp"));

    let server = env.server_status("echo")["pids"][0].as_u64().unwrap() as u32;
    let environ = std::fs::read(format!("/proc/{server}/environ")).unwrap();
    let names: Vec<String> = environ
        .split(|&b| b == 0)
        .map(|v| {
            String::from_utf8_lossy(v)
                .split('=')
                .next()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert!(
        names.iter().any(|n| n == "PATH"),
        "the daemon's environment is passed on"
    );
    let ours: Vec<&String> = names.iter().filter(|n| n.starts_with("MCPCTL_")).collect();
    assert!(ours.is_empty(), "the server got {ours:?}");

    for pid in [env.daemon_pid(), server] {
        let fd7 = std::fs::read_link(format!("/proc/{pid}/fd/7"));
        assert!(
            fd7.as_ref().map_or(true, |p| !p.ends_with("caller-fd")),
            "pid {pid} inherited the caller's fd 7"
        );
    }
}

#[test]
fn r12_two_first_applies_at_once_both_succeed_on_one_daemon() {
    for round in 0..4 {
        let port = free_port();
        let env = TestEnv::with_config(&config(port, "", "on-failure"));
        let spawn = || {
            env.command(&["apply"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn(), spawn());
        for child in [a, b] {
            let run = to_run(&["apply"], &child.wait_with_output().unwrap());
            assert_eq!(run.code, 0, "round {round}: {}\n{}", run.stdout, run.stderr);
        }
        let status = env.server_status("echo");
        assert_eq!(status["instances_running"], 1, "{status}");
    }
}

/// A local server that speaks HTTP: `python3 -m http.server` binding what it is told.
pub(crate) fn http_server(port: u16, bind: &str) -> String {
    format!(
        "version = 1\n[servers.web]\ncommand = \"python3\"\nargs = [\"-m\", \"http.server\", \"{{port}}\", \"--bind\", \"{bind}\"]\ntransport = \"streamable-http\"\nport = {port}\nrestart = \"never\"\n"
    )
}

#[test]
fn r12_a_local_http_server_listening_beyond_loopback_fails_its_start() {
    let port = free_port();
    let env = TestEnv::with_config(&http_server(port, "0.0.0.0"));
    env.run_within(60, &["apply"])
        .failure()
        .stderr_has("web: instance 0 failed to start: it listens on 0.0.0.0:")
        .stderr_has("make it bind 127.0.0.1 (`{host}` in its args");
    let status = env.server_status("web");
    assert_eq!(status["instances_running"], 0, "{status}");
}

#[test]
fn r12_a_local_http_server_binds_the_host_it_is_given_and_status_shows_its_inner_port() {
    let port = free_port();
    let env = TestEnv::with_config(&http_server(port, "{host}"));
    env.run_within(60, &["apply"]).success();
    let status = env.server_status("web");
    let inner = status["inner_ports"][0].as_u64().expect("an inner port") as u16;
    assert_ne!(inner, port);
    env.run(&["server", "status", "web"])
        .success()
        .stdout_has(&format!("Inner Port:    {inner}"));
    // Only the gateway's port is reachable beyond loopback, and nothing else.
    let listening = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let inner_hex = format!("0100007F:{inner:04X}");
    assert!(
        listening.contains(&inner_hex),
        "listens on 127.0.0.1:{inner}"
    );
    assert!(!listening.contains(&format!("00000000:{inner:04X}")));
}

#[test]
fn r12_a_stopped_server_times_its_calls_out_shows_unhealthy_and_is_restarted() {
    let port = free_port();
    let env = TestEnv::with_config(&format!(
        "{}call_timeout = \"1s\"\nhealth = {{ interval = \"300ms\", timeout = \"300ms\", failures = 3 }}\n",
        config(port, "", "on-failure")
    ));
    env.run_within(60, &["apply"]).success();
    let session = initialize(port);
    let server = env.server_status("echo")["pids"][0].as_u64().unwrap() as u32;
    Command::new("kill")
        .args(["-STOP", &server.to_string()])
        .status()
        .unwrap();

    let timed_out = call(port, &session, "echo", json!({"text": "anyone?"}));
    assert_eq!(timed_out["error"]["code"], -32001, "{timed_out}");
    assert!(
        timed_out["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("call_timeout")),
        "{timed_out}"
    );
    let restarted = wait_for("a new, running server process", 30, || {
        let s = env.server_status("echo");
        let pid = s["pids"][0].as_u64().unwrap_or(0) as u32;
        if s["status"] == "running" && pid != 0 && pid != server {
            Ok(s)
        } else {
            Err(s.to_string())
        }
    });
    assert!(restarted["restarts"].as_u64().unwrap() >= 1, "{restarted}");
    assert!(
        restarted["last_exit"]
            .as_str()
            .is_some_and(|e| e.contains("signal 9")),
        "{restarted}"
    );
    assert!(!alive(server), "the stopped process is gone");
    let fresh = initialize(port);
    assert_eq!(
        text(&call(port, &fresh, "echo", json!({"text": "back"}))),
        "back"
    );
}

#[test]
fn r12_an_unhealthy_server_shows_so_in_status() {
    let port = free_port();
    // Checks that never end in a restart while the test looks (100 misses).
    let env = TestEnv::with_config(&format!(
        "{}health = {{ interval = \"200ms\", timeout = \"200ms\", failures = 100 }}\n",
        config(port, "", "on-failure")
    ));
    env.run_within(60, &["apply"]).success();
    let server = env.server_status("echo")["pids"][0].as_u64().unwrap() as u32;
    Command::new("kill")
        .args(["-STOP", &server.to_string()])
        .status()
        .unwrap();
    let status = wait_status(&env, "echo", "unhealthy");
    assert!(
        status["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("health check")),
        "{status}"
    );
    Command::new("kill")
        .args(["-CONT", &server.to_string()])
        .status()
        .unwrap();
    wait_status(&env, "echo", "running");
}

#[test]
fn r12_instance_ids_are_never_reused_and_an_unknown_one_is_an_error() {
    let port = free_port();
    let env = TestEnv::with_config(&config(port, "", "on-failure"));
    env.run_within(60, &["apply"]).success();
    let scale = |n: u32| {
        let text = env.read("mcpctl.toml");
        let text = match text.find("instances = ") {
            Some(at) => {
                let end = at + text[at..].find('\n').unwrap();
                format!("{}instances = {n}{}", &text[..at], &text[end..])
            }
            None => format!("{text}instances = {n}\n"),
        };
        env.write("mcpctl.toml", &text);
        env.run_within(60, &["apply"])
    };
    scale(3).success().stdout_has("echo: 3 instance(s) (was 1)");
    scale(1).success().stdout_has("echo: 1 instance(s) (was 3)");
    scale(2).success().stdout_has("echo: 2 instance(s) (was 1)");
    let status = env.server_status("echo");
    assert_eq!(
        status["instance_ids"],
        json!([0, 3]),
        "the kept instance and a new id: {status}"
    );
    for id in ["0", "1", "2", "3"] {
        assert!(
            env.path()
                .join(format!(".mcpctl/logs/echo-{id}.log"))
                .exists(),
            "instance {id} has a log of its own"
        );
    }
    env.run(&["server", "logs", "echo", "--instance", "3"])
        .success()
        .stdout_has("mcp-echo ready");
    env.run(&["server", "logs", "echo", "--instance", "7"])
        .failure()
        .stderr_has("server `echo` has no instance 7 (instances with logs: 0, 1, 2, 3)");
}

#[test]
fn r12_an_in_place_stop_timeout_reaches_the_shim() {
    let port = free_port();
    let env = TestEnv::new();
    let pids = env.path().join("pids");
    let args = format!(
        "\"--ignore-sigterm\", \"--pid-file\", \"{}\"",
        pids.display()
    );
    let with_timeout =
        |t: &str| format!("{}stop_timeout = \"{t}\"\n", config(port, &args, "never"));
    env.write("mcpctl.toml", &with_timeout("10m"));
    env.run_within(60, &["apply"]).success();
    env.write("mcpctl.toml", &with_timeout("1s"));
    env.run_within(60, &["apply"])
        .success()
        .stdout_has("stop_timeout");
    let server = env.pids("pids")[0];
    // With the daemon gone, the shim times the stop by itself: with the new value.
    Command::new("kill")
        .args(["-9", &env.daemon_pid().to_string()])
        .status()
        .unwrap();
    wait_for(
        "the server that ignores SIGTERM to be killed after 1s",
        30,
        || {
            if alive(server) {
                Err("still alive".into())
            } else {
                Ok(())
            }
        },
    );
}

/// The environment of a process, as `NAME=value` strings.
fn environ(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap_or_default()
        .split(|&b| b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

#[test]
fn r12_env_secret_and_profile_edits_converge_what_they_change_unless_told_not_to() {
    let port = free_port();
    let env = TestEnv::with_config(&format!(
        "{}profile = \"p\"\n\n[profiles.p]\n",
        config(port, "", "on-failure")
    ));
    env.run_within(60, &["apply"]).success();
    let pid = || env.server_status("echo")["pids"][0].as_u64().unwrap() as u32;
    let first = pid();

    env.run_within(
        60,
        &["config", "env", "set", "GREETING", "hi", "--server", "echo"],
    )
    .success()
    .stdout_has("echo: instance 1 ready");
    let second = pid();
    assert_ne!(first, second, "the server was replaced");
    assert!(environ(second).contains(&"GREETING=hi".to_string()));

    env.run_within(
        60,
        &[
            "config",
            "env",
            "unset",
            "GREETING",
            "--server",
            "echo",
            "--no-apply",
        ],
    )
    .success()
    .stderr_has("not applied (--no-apply): `mcpctl apply` brings echo in line");
    assert_eq!(pid(), second, "--no-apply touches nothing that runs");
    env.run(&["plan", "--detailed-exitcode"]).code(2);
    // An edit made with --no-apply, made again without: the file does not change, the
    // server does.
    env.run_within(
        60,
        &[
            "config",
            "env",
            "set",
            "GREETING",
            "bye",
            "--server",
            "echo",
            "--no-apply",
        ],
    )
    .success();
    env.run_within(
        60,
        &[
            "config", "env", "set", "GREETING", "bye", "--server", "echo",
        ],
    )
    .success()
    .stdout_has("1 to restart");
    assert!(environ(pid()).contains(&"GREETING=bye".to_string()));
    env.run_within(
        60,
        &["config", "env", "unset", "GREETING", "--server", "echo"],
    )
    .success();

    env.run_within(60, &["config", "secret", "keygen", "--add"])
        .success();
    env.run_with_stdin(
        &["config", "secret", "set", "TOKEN", "--server", "echo"],
        "s3cret-value",
    )
    .success();
    let third = pid();
    assert_ne!(third, second);
    let vars = environ(third);
    assert!(
        vars.contains(&"TOKEN=s3cret-value".to_string()),
        "the secret reaches the server"
    );
    assert!(
        !vars.iter().any(|v| v.starts_with("GREETING=")),
        "the earlier unset is applied too"
    );
    env.run(&["plan", "--detailed-exitcode"]).code(0);

    env.run_within(60, &["config", "secret", "rekey"]).success();
    assert_eq!(
        pid(),
        third,
        "re-encrypting the same values restarts nothing"
    );

    env.write("p.json", r#"{"env": {"FROM_PROFILE": "1"}}"#);
    env.run_within(60, &["profile", "update", "p", "--config", "p.json"])
        .success();
    let fourth = pid();
    assert_ne!(fourth, third);
    assert!(environ(fourth).contains(&"FROM_PROFILE=1".to_string()));

    env.run_within(30, &["daemon", "stop"]).success();
    env.run_within(30, &["config", "env", "set", "LATER", "x"])
        .success()
        .stderr_has("no daemon runs: echo will take the change at the next `mcpctl apply`");
}

/// Live processes working in `dir` (servers run in their config's folder, and what
/// they start inherits it): pid and command name.
fn processes_in(dir: &std::path::Path) -> Vec<(u32, String)> {
    let dir = dir.canonicalize().unwrap();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if std::fs::read_link(format!("/proc/{pid}/cwd"))
            .ok()
            .as_deref()
            == Some(&dir)
            && alive(pid)
        {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            found.push((pid, comm.trim().to_string()));
        }
    }
    found
}

#[test]
fn r12_killing_the_server_the_shim_or_the_daemon_leaves_nothing_behind() {
    let port = free_port();
    let env = TestEnv::new();
    let pids = env.path().join("pids");
    let args = format!(
        "\"--grandchild\", \"--setsid\", \"--pid-file\", \"{}\"",
        pids.display()
    );
    env.write("mcpctl.toml", &config(port, &args, "always"));
    env.run_within(60, &["apply"]).success();
    let servers = || {
        processes_in(env.path())
            .into_iter()
            .filter(|(_, comm)| comm != "mcpctl")
            .collect::<Vec<_>>()
    };
    for victim in ["server", "shim", "daemon"] {
        let [server, grandchild] = env.pids("pids")[..] else {
            panic!("the fixture wrote {:?}", env.pids("pids"));
        };
        let status = env.server_status("echo");
        let pid = match victim {
            "server" => server,
            "shim" => status["shim_pids"][0].as_u64().unwrap() as u32,
            _ => env.daemon_pid(),
        };
        Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap();
        wait_for(&format!("the {victim}'s server tree to end"), 30, || {
            let left: Vec<_> = servers()
                .into_iter()
                .filter(|(p, _)| *p == server || *p == grandchild)
                .collect();
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("{left:?}"))
            }
        });
        if victim == "daemon" {
            wait_for("nothing of the server's left", 30, || {
                let left = servers();
                if left.is_empty() {
                    Ok(())
                } else {
                    Err(format!("{left:?}"))
                }
            });
            env.run_within(60, &["apply"]).success();
        } else {
            // restart = "always" brings a new one, with a new grandchild.
            wait_for("a restarted server", 30, || {
                let now = env.pids("pids");
                if now.len() == 2
                    && now[0] != server
                    && env.server_status("echo")["status"] == "running"
                {
                    Ok(())
                } else {
                    Err(format!("{now:?}"))
                }
            });
        }
    }
    env.run_within(30, &["daemon", "stop"]).success();
    let left = processes_in(env.path());
    assert!(left.is_empty(), "after daemon stop: {left:?}");
}

#[test]
fn r12_a_server_whose_start_failed_is_started_by_the_resync_once_it_can() {
    let port = free_port();
    let env = TestEnv::with_config(&config(port, "", "on-failure"));
    let squatter = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let run = env
        .command(&["apply"])
        .env("MCPCTL_RESYNC_SECS", "1")
        .output()
        .unwrap();
    to_run(&["apply"], &run)
        .failure()
        .stderr_has(&format!("echo: cannot serve on 127.0.0.1:{port}"));
    drop(squatter);
    // Level-triggered: nobody applies again, the daemon's timer converges it.
    wait_status(&env, "echo", "running");
    let session = initialize(port);
    assert_eq!(
        text(&call(port, &session, "echo", json!({"text": "late"}))),
        "late"
    );
}

#[test]
fn r12_an_inner_port_held_by_another_process_is_refused() {
    let port = free_port();
    let env = TestEnv::new();
    let port_file = env.path().join("inner-port");
    // The "server" only says which port it was given; the test takes it first.
    env.write(
        "mcpctl.toml",
        &format!(
            "version = 1\n[servers.web]\ncommand = \"sh\"\nargs = [\"-c\", \"echo {{port}} > {}; exec sleep 300\"]\ntransport = \"streamable-http\"\nport = {port}\nrestart = \"never\"\nstart_timeout = \"20s\"\n",
            port_file.display()
        ),
    );
    let apply = env
        .command(&["apply"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let inner: u16 = wait_for("the inner port", 20, || {
        std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .ok_or_else(|| "not yet".to_string())
    });
    let squatter = std::net::TcpListener::bind(("127.0.0.1", inner)).unwrap();
    let run = to_run(&["apply"], &apply.wait_with_output().unwrap());
    run.failure().stderr_has(&format!(
        "its inner port {inner} is held by a process that is not the server"
    ));
    drop(squatter);
}

#[test]
fn r12_a_long_call_on_a_one_at_a_time_server_is_not_a_failed_health_check() {
    let port = free_port();
    let env = TestEnv::with_config(&format!(
        "{}health = {{ interval = \"200ms\", timeout = \"200ms\", failures = 2 }}\n",
        config(port, "", "on-failure")
    ));
    env.run_within(60, &["apply"]).success();
    let session = initialize(port);
    // mcp-echo answers one request at a time: pings wait behind this call.
    let slept = call(port, &session, "sleep", json!({"ms": 2000}));
    assert!(text(&slept).starts_with("slept 2000 ms"), "{slept}");
    let status = env.server_status("echo");
    assert_eq!(status["restarts"], 0, "killed while busy: {status}");
}

#[test]
fn r12_a_server_that_closes_its_stdout_is_killed_and_restarted() {
    let port = free_port();
    let env = TestEnv::new();
    env.write(
        "server.py",
        "import json, os, sys, time\n\
         line = sys.stdin.readline()\n\
         msg = json.loads(line)\n\
         while msg.get('method') != 'initialize':\n\
         \x20   sys.stdout.write(json.dumps({'jsonrpc': '2.0', 'id': msg['id'], 'error': {'code': -32601, 'message': 'no'}}) + '\\n'); sys.stdout.flush()\n\
         \x20   msg = json.loads(sys.stdin.readline())\n\
         sys.stdout.write(json.dumps({'jsonrpc': '2.0', 'id': msg['id'], 'result': {'protocolVersion': '2025-06-18', 'capabilities': {}, 'serverInfo': {'name': 'closer', 'version': '1'}}}) + '\\n'); sys.stdout.flush()\n\
         time.sleep(0.5)\n\
         os.close(1)\n\
         time.sleep(300)\n",
    );
    env.write(
        "mcpctl.toml",
        &format!(
            "version = 1\n[servers.closer]\ncommand = \"python3\"\nargs = [\"server.py\"]\nport = {port}\nrestart = \"on-failure\"\n"
        ),
    );
    env.run_within(60, &["apply"]).success();
    let status = wait_for(
        "the closed stdout to be noticed and the server restarted",
        30,
        || {
            let s = env.server_status("closer");
            if s["restarts"].as_u64().unwrap_or(0) >= 1 {
                Ok(s)
            } else {
                Err(s.to_string())
            }
        },
    );
    assert!(
        status["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("stdout closed")),
        "{status}"
    );
}

#[test]
fn r12_a_stopped_daemon_is_an_error_naming_it_not_a_hang() {
    let port = free_port();
    let env = TestEnv::with_config(&config(port, "", "on-failure"));
    env.run_within(60, &["apply"]).success();
    let daemon = env.daemon_pid().to_string();
    Command::new("kill")
        .args(["-STOP", &daemon])
        .status()
        .unwrap();
    let out = env
        .command(&["status"])
        .env("MCPCTL_ASK_TIMEOUT_MS", "500")
        .output()
        .unwrap();
    Command::new("kill")
        .args(["-CONT", &daemon])
        .status()
        .unwrap();
    to_run(&["status"], &out)
        .failure()
        .stderr_has(&format!("the daemon {daemon} did not answer within 0.5 s"));
}

#[test]
fn r13_server_stop_ends_its_sessions_their_streams_and_per_session_children() {
    use std::io::{Read, Write};
    let port = free_port();
    let env = TestEnv::with_config(&format!(
        "{}sharing = \"per-session\"\n",
        config(port, "", "on-failure")
    ));
    env.run_within(60, &["apply"]).success();
    let session = initialize(port);
    let child: u32 = text(&call(port, &session, "whoami", json!({})))
        .parse()
        .unwrap();
    // A client holds the session's stream open (and with it, its connection).
    let mut stream = crate::common::connect(port);
    write!(
        stream,
        "GET /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\nMcp-Session-Id: {session}\r\nMCP-Protocol-Version: 2025-06-18\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    env.run_within(60, &["server", "stop", "echo"]).success();
    wait_for("the session's own child to end", 30, || {
        if alive(child) {
            Err("alive".into())
        } else {
            Ok(())
        }
    });
    // The stream ends: the rest of it reads to its end instead of waiting forever.
    let mut rest = Vec::new();
    let ended = stream.read_to_end(&mut rest);
    assert!(ended.is_ok(), "the stream did not end: {ended:?}");
}

#[test]
fn r13_server_stop_closes_its_idle_keep_alive_connections() {
    use std::io::{BufRead, BufReader, Read, Write};
    let port = free_port();
    let env = TestEnv::with_config(&config(port, "", "on-failure"));
    // Idle keep-alive connections would otherwise wait this long for their next request.
    let run = env
        .command(&["apply"])
        .env("MCPCTL_HEADER_TIMEOUT_MS", "3600000")
        .output()
        .unwrap();
    to_run(&["apply"], &run).success();
    let stream = crate::common::connect(port);
    let mut writer = stream.try_clone().unwrap();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    write!(
        writer,
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2025-06-18\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 "), "{status}");
    // The rest of the answer; the connection then sits idle, kept alive.
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
        if line == "\r\n" {
            break;
        }
    }
    let mut answer = vec![0u8; length];
    reader.read_exact(&mut answer).unwrap();
    env.run_within(60, &["server", "stop", "echo"]).success();
    reader
        .get_ref()
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut rest = Vec::new();
    let closed = reader.read_to_end(&mut rest);
    assert!(
        closed.is_ok(),
        "the stopped server kept an idle connection open: {closed:?}"
    );
}

#[test]
fn r13_with_more_connections_than_descriptors_the_control_socket_and_new_clients_are_served() {
    let port = free_port();
    let env = TestEnv::with_config(&config(port, "", "on-failure"));
    // 256 descriptors in all: the port takes at most half of them.
    let run = env
        .command_after("ulimit -n 256", &["apply"])
        .env("MCPCTL_HEADER_TIMEOUT_MS", "500")
        .output()
        .unwrap();
    to_run(&["apply"], &run).success();
    let daemon = env.daemon_pid();
    let descriptors = || {
        std::fs::read_dir(format!("/proc/{daemon}/fd"))
            .unwrap()
            .count()
    };
    let before = descriptors();
    let idle: Vec<std::net::TcpStream> = (0..400).map(|_| crate::common::connect(port)).collect();
    env.run_within(10, &["status"]).success();
    let session = initialize(port);
    assert_eq!(
        text(&call(
            port,
            &session,
            "echo",
            json!({"text": "still served"})
        )),
        "still served"
    );
    assert!(
        descriptors() <= 128 + before + 8,
        "the daemon holds {} descriptors",
        descriptors()
    );
    drop(idle);
    wait_for("the daemon to let the connections go", 30, || {
        let now = descriptors();
        if now <= before + 2 {
            Ok(())
        } else {
            Err(format!("{now} descriptors, {before} before"))
        }
    });
    env.run_within(10, &["status"]).success();
}

#[test]
fn r13_a_body_trickled_a_byte_at_a_time_is_cut_off_at_the_timeout() {
    use std::io::{Read, Write};
    let port = free_port();
    let env = TestEnv::with_config(&config(port, "", "on-failure"));
    let run = env
        .command(&["apply"])
        .env("MCPCTL_HEADER_TIMEOUT_MS", "1000")
        .output()
        .unwrap();
    to_run(&["apply"], &run).success();
    let mut stream = crate::common::connect(port);
    write!(
        stream,
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{"
    )
    .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let trickle = std::thread::spawn(move || {
        // A byte every 200 ms, for at most 20 s (or until the server hangs up).
        for _ in 0..100 {
            std::thread::sleep(std::time::Duration::from_millis(200));
            if writer.write_all(b" ").is_err() {
                return;
            }
        }
    });
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(15)))
        .unwrap();
    let mut answer = Vec::new();
    let read = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "the trickle was not cut off: {read:?} {answer}"
    );
    drop(stream);
    trickle.join().unwrap();
}

#[test]
fn r13_clients_holding_streams_never_take_the_last_connections_from_requests() {
    use std::io::{Read, Write};
    let port = free_port();
    let env = TestEnv::with_config(&config(port, "", "on-failure"));
    let run = env
        .command(&["apply"])
        .env("MCPCTL_MAX_CONNECTIONS", "8")
        .output()
        .unwrap();
    to_run(&["apply"], &run).success();
    let open_stream = |session: &str| {
        let mut s = crate::common::connect(port);
        write!(
            s,
            "GET /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\nMcp-Session-Id: {session}\r\nMCP-Protocol-Version: 2025-06-18\r\n\r\n"
        )
        .unwrap();
        let mut head = [0u8; 12];
        s.read_exact(&mut head).unwrap();
        (s, String::from_utf8_lossy(&head).into_owned())
    };
    // Six streams (three quarters of eight) are let in ...
    let streams: Vec<_> = (0..6)
        .map(|_| {
            let (s, head) = open_stream(&initialize(port));
            assert_eq!(head, "HTTP/1.1 200");
            s
        })
        .collect();
    // ... the seventh is told to come back, and requests are still served.
    let (_refused, head) = open_stream(&initialize(port));
    assert_eq!(head, "HTTP/1.1 503");
    let session = initialize(port);
    assert_eq!(
        text(&call(port, &session, "echo", json!({"text": "served"}))),
        "served"
    );
    drop(streams);
}

#[test]
fn r13_idle_and_half_sent_connections_are_bounded_and_closed_and_clients_still_served() {
    use std::io::{Read, Write};
    let port = free_port();
    let env = TestEnv::with_config(&config(port, "", "on-failure"));
    let run = env
        .command(&["apply"])
        .env("MCPCTL_MAX_CONNECTIONS", "16")
        .env("MCPCTL_HEADER_TIMEOUT_MS", "500")
        .output()
        .unwrap();
    to_run(&["apply"], &run).success();
    // More idle connections than the port takes, and requests that never finish.
    let idle: Vec<std::net::TcpStream> = (0..40).map(|_| crate::common::connect(port)).collect();
    let mut half: Vec<std::net::TcpStream> = (0..10)
        .map(|_| {
            let mut s = crate::common::connect(port);
            s.write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
                .unwrap();
            s
        })
        .collect();
    // A normal client is served (queued by the kernel until a slot frees).
    let session = initialize(port);
    assert_eq!(
        text(&call(port, &session, "echo", json!({"text": "through"}))),
        "through"
    );
    env.run_within(10, &["status"]).success();
    // The half-sent requests are closed by the server, not held open.
    for s in &mut half {
        s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        let mut rest = Vec::new();
        let read = s.read_to_end(&mut rest);
        assert!(read.is_ok(), "a half-sent request was held open: {read:?}");
    }
    drop(idle);
}
