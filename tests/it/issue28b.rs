//! Regressions of issue 28, "What careful users broke" (the second batch): each test
//! is named after the defect it pins down.

use std::process::Command;

use serde_json::{Value, json};

use crate::common::{TestEnv, echo_bin, free_port, http, wait_for};

/// One `mcp-echo` server on `port`, with `extra` lines in its block.
fn echo_server(port: u16, extra: &str) -> String {
    format!(
        "version = 1\n[servers.echo]\ncommand = \"{}\"\nport = {port}\n{extra}",
        echo_bin()
    )
}

fn post(port: u16, session: Option<&str>, body: &Value) -> crate::common::HttpReply {
    let mut headers = vec![("MCP-Protocol-Version", "2025-06-18")];
    if let Some(s) = session {
        headers.push(("Mcp-Session-Id", s));
    }
    http(port, "POST", "/mcp", &headers, body.to_string().as_bytes())
}

fn init_body() -> Value {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
}

/// A 2025 session on `port`, whatever the server; its id.
fn open_session(port: u16) -> String {
    let reply = post(port, None, &init_body());
    assert_eq!(reply.status, 200, "{}", reply.body);
    let session = reply
        .header("mcp-session-id")
        .expect("a session id")
        .to_string();
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(post(port, Some(&session), &initialized).status, 202);
    session
}

/// Waits until `server status NAME` says `status` and `check` holds; that report.
fn wait_status(env: &TestEnv, name: &str, status: &str, check: impl Fn(&Value) -> bool) -> Value {
    wait_for(&format!("{name} to be {status}"), 30, || {
        let s = env.server_status(name);
        if s["status"] == status && check(&s) {
            Ok(s)
        } else {
            Err(s.to_string())
        }
    })
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill {sig} {pid}");
}

#[test]
fn issue28_a_stopped_server_with_a_call_in_flight_takes_no_new_sessions() {
    let port = free_port();
    let env = TestEnv::with_config(&echo_server(
        port,
        "call_timeout = \"60s\"\nhealth = { interval = \"200ms\", timeout = \"200ms\", failures = 3 }\n",
    ));
    env.run_within(60, &["apply"]).success();
    let session = crate::gateway::initialize(port);
    let server = env.server_status("echo")["pids"][0].as_u64().unwrap() as u32;
    signal(server, "-STOP");
    let in_flight = std::thread::spawn({
        let session = session.clone();
        move || {
            let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                "params": {"name": "echo", "arguments": {"text": "still here"}}});
            post(port, Some(&session), &call).json()
        }
    });
    let status = wait_status(&env, "echo", "unhealthy", |s| {
        s["last_error"].as_str().is_some_and(|e| e.contains("busy"))
    });
    assert_eq!(status["restarts"], 0, "its call is not cut short: {status}");
    // A new session is refused at once instead of waiting on the stopped process.
    let refused = http(
        port,
        "POST",
        "/mcp",
        &[],
        init_body().to_string().as_bytes(),
    );
    assert_eq!(refused.status, 503, "{}", refused.body);
    signal(server, "-CONT");
    let answered = in_flight.join().unwrap();
    assert_eq!(
        answered["result"]["content"][0]["text"], "still here",
        "{answered}"
    );
    wait_status(&env, "echo", "running", |_| true);
    crate::gateway::initialize(port);
}

/// The status line of a raw HTTP/1.1 request written as is to 127.0.0.1:`port`.
fn raw_status(port: u16, request: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = crate::common::connect(port);
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    text.lines().next().unwrap_or_default().to_string()
}

#[test]
fn issue28_an_absolute_form_target_and_a_second_host_are_refused() {
    let port = free_port();
    let env = TestEnv::with_config(&echo_server(port, ""));
    env.run_within(60, &["apply"]).success();
    let body = init_body().to_string();
    let request = |target: &str, hosts: &[&str]| {
        let mut head = format!("POST {target} HTTP/1.1\r\n");
        for host in hosts {
            head.push_str(&format!("Host: {host}\r\n"));
        }
        format!(
            "{head}Connection: close\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let here = format!("127.0.0.1:{port}");
    let absolute = raw_status(port, &request("http://evil.example/mcp", &[&here]));
    assert!(absolute.contains(" 403 "), "{absolute}");
    let two = raw_status(port, &request("/mcp", &[&here, "evil.example"]));
    assert!(two.contains(" 400 "), "{two}");
    let two = raw_status(port, &request("/mcp", &["evil.example", &here]));
    assert!(two.contains(" 400 "), "{two}");
    // The plain form still works.
    let plain = raw_status(port, &request("/mcp", &[&here]));
    assert!(plain.contains(" 200 "), "{plain}");
}

/// `net.core.somaxconn`, the largest listen backlog the kernel grants.
fn somaxconn() -> usize {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(128)
}

#[test]
fn issue28_a_burst_of_connects_fits_the_listen_backlog() {
    let port = free_port();
    let env = TestEnv::with_config(&echo_server(port, ""));
    env.run_within(60, &["apply"]).success();
    // With the daemon stopped nothing is accepted: only the kernel's queue (the
    // backlog) holds the burst, and a connect beyond it would hang in SYN retries.
    let burst = somaxconn().min(2000) - 1;
    let daemon = env.daemon_pid();
    signal(daemon, "-STOP");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut held = Vec::with_capacity(burst);
    let mut refused = None;
    for n in 0..burst {
        match std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(3)) {
            Ok(stream) => held.push(stream),
            Err(e) => {
                refused = Some(format!("connect {n} of {burst}: {e}"));
                break;
            }
        }
    }
    signal(daemon, "-CONT");
    assert_eq!(refused, None, "the backlog should hold {burst} connects");
    drop(held);
    crate::gateway::initialize(port);
}

#[test]
fn issue28_a_slow_starting_modern_server_is_found_modern_and_starts() {
    let port = free_port();
    // Discover is answered after the probe's 5 s of grace, when `initialize` has gone.
    let env = TestEnv::with_config(&echo_server(
        port,
        "args = [\"--modern\", \"--discover-delay-ms\", \"6500\"]\nstart_timeout = \"40s\"\n",
    ));
    env.run_within(60, &["apply"]).success();
    let status = env.server_status("echo");
    assert_eq!(status["protocol"], "2026-07-28", "{status}");
    assert_eq!(status["restarts"], 0, "{status}");
    // A 2025 client reaches it through the bridge.
    let session = open_session(port);
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "late but modern"}}});
    let answered = post(port, Some(&session), &call).json();
    assert_eq!(
        answered["result"]["content"][0]["text"], "late but modern",
        "{answered}"
    );
}

#[test]
fn issue28_a_session_drained_by_a_scale_down_gets_404_at_once() {
    let port = free_port();
    let env = TestEnv::with_config(&echo_server(
        port,
        "instances = 2\ndrain_timeout = \"1s\"\n",
    ));
    env.run_within(60, &["apply"]).success();
    // Least-loaded placement: one session on each instance.
    let sessions = [open_session(port), open_session(port)];
    env.run_within(60, &["server", "scale", "echo", "--instances", "1"])
        .success();
    wait_status(&env, "echo", "running", |s| {
        s["instances_running"] == 1 && s["instances_draining"] == 0
    });
    let list = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"});
    let mut statuses: Vec<(u16, String)> = sessions
        .iter()
        .map(|s| {
            let reply = post(port, Some(s), &list);
            (reply.status, reply.body)
        })
        .collect();
    statuses.sort();
    assert_eq!(statuses[0].0, 200, "{statuses:?}");
    assert!(statuses[0].1.contains("\"tools\""), "{statuses:?}");
    assert_eq!(
        statuses[1].0, 404,
        "the drained session, at once: {statuses:?}"
    );
}

#[test]
fn issue28_requests_waiting_on_a_cold_start_wait_for_its_restart_when_it_is_killed() {
    let port = free_port();
    let env = TestEnv::with_config(&echo_server(
        port,
        "args = [\"--start-delay-ms\", \"1500\"]\nrestart = \"on-failure\"\nstart_timeout = \"30s\"\n\
         autoscale = { min = 0, max = 1, idle_after = \"1s\" }\n",
    ));
    crate::autoscale::apply_fast(&env);
    crate::autoscale::wait_scaled_to_zero(&env, "echo", 30);
    let waiters: Vec<_> = (0..50)
        .map(|_| std::thread::spawn(move || post(port, None, &init_body()).status))
        .collect();
    // The cold start they asked for, killed while it starts.
    let shim = wait_for("an instance starting", 20, || {
        let s = env.server_status("echo");
        match s["shim_pids"][0].as_u64() {
            Some(pid) if s["status"] == "starting" => Ok(pid as u32),
            _ => Err(s.to_string()),
        }
    });
    signal(shim, "-KILL");
    let statuses: Vec<u16> = waiters.into_iter().map(|w| w.join().unwrap()).collect();
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    let status = env.server_status("echo");
    assert!(status["restarts"].as_u64() >= Some(1), "{status}");
}

/// Whether `fd` of this process has `O_NONBLOCK`, from `/proc/self/fdinfo`.
fn nonblocking(fd: &impl std::os::fd::AsRawFd) -> bool {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).unwrap();
    let flags = info
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
        .unwrap();
    flags & 0o4000 != 0
}

#[test]
fn issue28_connect_answers_what_was_asked_before_eof_and_null_ids_and_restores_blocking_stdio() {
    use std::io::{Read, Write};
    let port = free_port();
    let env = TestEnv::with_config(&echo_server(port, ""));
    env.run_within(60, &["apply"]).success();
    // The client's ends share their open file descriptions with the bridge's.
    let (stdin, mut to_bridge) = std::io::pipe().unwrap();
    let (mut from_bridge, stdout) = std::io::pipe().unwrap();
    let (stdin_seen, stdout_seen) = (stdin.try_clone().unwrap(), stdout.try_clone().unwrap());
    let mut bridge = crate::common::KillOnDrop(
        env.command(&["connect", "echo"])
            .stdin(stdin)
            .stdout(stdout)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let messages = [
        init_body().to_string(),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string(),
        json!({"jsonrpc": "2.0", "id": "slow", "method": "tools/call",
            "params": {"name": "sleep", "arguments": {"ms": 500}}})
        .to_string(),
        json!({"jsonrpc": "2.0", "id": null, "method": "tools/list"}).to_string(),
    ];
    // Everything at once, then EOF: nothing waits for an answer first.
    to_bridge
        .write_all((messages.join("\n") + "\n").as_bytes())
        .unwrap();
    drop(to_bridge);
    let exited = wait_for("connect to exit after EOF", 30, || {
        bridge
            .0
            .try_wait()
            .unwrap()
            .ok_or("still running".to_string())
    });
    assert!(exited.success(), "{exited}");
    drop(bridge);
    assert!(!nonblocking(&stdin_seen), "stdin left non-blocking");
    assert!(!nonblocking(&stdout_seen), "stdout left non-blocking");
    // The last writer: the read below ends at EOF.
    drop(stdout_seen);
    let mut out = String::new();
    from_bridge.read_to_string(&mut out).unwrap();
    let answers: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let answer = |id: Value| answers.iter().find(|a| a["id"] == id).cloned();
    let slow = answer(json!("slow")).unwrap_or_else(|| panic!("no answer to `slow`: {out}"));
    assert!(
        slow["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("slept 500 ms")),
        "{slow}"
    );
    let null = answer(Value::Null).unwrap_or_else(|| panic!("no answer to id null: {out}"));
    assert_eq!(null["error"]["code"], -32600, "{null}");
}

#[test]
fn issue28_every_port_together_takes_at_most_the_daemon_wide_connections() {
    let (a, b) = (free_port(), free_port());
    let env = TestEnv::with_config(&format!(
        "{}\n[servers.other]\ncommand = \"{}\"\nport = {b}\n",
        echo_server(a, ""),
        echo_bin()
    ));
    let run = env
        .command(&["apply"])
        .env("MCPCTL_MAX_CONNECTIONS_TOTAL", "8")
        .env("MCPCTL_HEADER_TIMEOUT_MS", "60000")
        .output()
        .unwrap();
    crate::common::to_run(&["apply"], &run).success();
    // Six idle connections on each port: twelve, where the daemon takes eight.
    let idle: Vec<std::net::TcpStream> = [a, b]
        .iter()
        .flat_map(|&port| (0..6).map(move |_| crate::common::connect(port)))
        .collect();
    let open = || {
        ["echo", "other"]
            .iter()
            .map(|name| {
                env.server_status(name)["traffic"]["connections"]
                    .as_u64()
                    .unwrap_or(0)
            })
            .sum::<u64>()
    };
    wait_for("the daemon to hold 8 connections", 30, || match open() {
        8 => Ok(()),
        n => Err(format!("{n} open")),
    });
    // Each status is a round trip through the daemon's one thread: its accept loops
    // have had their turns, and still hold no more.
    for _ in 0..5 {
        assert_eq!(open(), 8);
    }
    // A new client waits in the kernel's queue, and is served once they close.
    let waiting = std::thread::spawn(move || post(a, None, &init_body()).status);
    drop(idle);
    assert_eq!(waiting.join().unwrap(), 200);
}

#[test]
fn issue28_a_server_asking_for_roots_at_start_is_told_so_in_status() {
    let port = free_port();
    let env = TestEnv::with_config(&echo_server(port, "args = [\"--roots-at-start\"]\n"));
    env.run_within(60, &["apply"]).success();
    let status = wait_for("the unprompted roots/list to be noticed", 30, || {
        let s = env.server_status("echo");
        match s["warnings"][0].as_str() {
            Some(w) if w.contains("roots outside any call") => Ok(s),
            _ => Err(s.to_string()),
        }
    });
    assert_eq!(status["status"], "running", "{status}");
    env.run(&["server", "status", "echo"])
        .success()
        .stdout_has("Warning:")
        .stdout_has("reads its roots once at start sees none");
    env.run(&["status"])
        .success()
        .stderr_has("warning: server `echo`: it asked for roots outside any call");
}

#[test]
fn issue28_a_refused_handshake_is_the_reason_given_not_the_exit_it_caused() {
    let port = free_port();
    let env = TestEnv::new();
    // Refuses every request, initialize included, and exits 0 when its stdin closes.
    env.write(
        "refuser.py",
        "import json, sys\n\
         for line in sys.stdin:\n\
         \x20   msg = json.loads(line)\n\
         \x20   if 'id' in msg and 'method' in msg:\n\
         \x20       err = {'code': -32602, 'message': 'this server wants another version'}\n\
         \x20       sys.stdout.write(json.dumps({'jsonrpc': '2.0', 'id': msg['id'], 'error': err}) + '\\n')\n\
         \x20       sys.stdout.flush()\n",
    );
    env.write(
        "mcpctl.toml",
        &format!(
            "version = 1\n[servers.refuser]\ncommand = \"python3\"\nargs = [\"refuser.py\"]\nport = {port}\nrestart = \"never\"\n"
        ),
    );
    env.run_within(60, &["apply"])
        .failure()
        .stderr_has("initialize failed")
        .stderr_has("this server wants another version");
}

/// From the attack: a client that ends its bridge with a signal (SIGTERM, as most do)
/// gets its stdio's blocking mode back too.
#[test]
fn issue28_connect_ended_by_a_signal_restores_blocking_stdio() {
    let port = free_port();
    let env = TestEnv::with_config(&echo_server(port, ""));
    env.run_within(60, &["apply"]).success();
    for sig in ["-TERM", "-INT", "-HUP"] {
        let (stdin, to_bridge) = std::io::pipe().unwrap();
        let (from_bridge, stdout) = std::io::pipe().unwrap();
        let (stdin_seen, stdout_seen) = (stdin.try_clone().unwrap(), stdout.try_clone().unwrap());
        let mut bridge = crate::common::KillOnDrop(
            env.command(&["connect", "echo"])
                .stdin(stdin)
                .stdout(stdout)
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        // Running, its stdio made non-blocking.
        wait_for("the bridge to take its stdio", 30, || {
            if nonblocking(&stdin_seen) {
                Ok(())
            } else {
                Err("blocking still".to_string())
            }
        });
        signal(bridge.0.id(), sig);
        let exited = wait_for("connect to exit on the signal", 30, || {
            bridge
                .0
                .try_wait()
                .unwrap()
                .ok_or("still running".to_string())
        });
        assert!(exited.success(), "{sig}: {exited}");
        assert!(!nonblocking(&stdin_seen), "{sig}: stdin left non-blocking");
        assert!(
            !nonblocking(&stdout_seen),
            "{sig}: stdout left non-blocking"
        );
        drop((to_bridge, from_bridge));
    }
}

/// From the attack: in a pool of two, a child stopped with a call in flight (and so
/// silent) no longer gets the new sessions because it has fewer of them: new work
/// prefers an instance that is not stuck, without waiting for a missed health check.
#[test]
fn issue28_new_sessions_avoid_a_stopped_instance_before_its_health_check_misses() {
    let port = free_port();
    let env = TestEnv::with_config(&echo_server(port, "instances = 2\n"));
    env.run_within(60, &["apply"]).success();
    let call = |port: u16, s: &str, name: &str, args: Value| {
        let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": name, "arguments": args}});
        post(port, Some(s), &body).json()
    };
    let pid_of =
        |s: &str| call(port, s, "whoami", json!({}))["result"]["content"][0]["text"].clone();
    // One session on X, two on Y: the least loaded is X.
    let caller = open_session(port);
    let x = pid_of(&caller);
    let mut on_y = Vec::new();
    for _ in 0..8 {
        let s = open_session(port);
        if pid_of(&s) != x {
            on_y.push(s);
        }
        if on_y.len() == 2 {
            break;
        }
    }
    assert_eq!(on_y.len(), 2, "two sessions on the other instance");
    // A long call on X, then X stopped: it writes nothing from now on.
    let slow = std::thread::spawn(move || {
        let body = json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call",
            "params": {"name": "sleep", "arguments": {"ms": 6000}}});
        post(port, Some(&caller), &body).status
    });
    let x_pid: u32 = x.as_str().unwrap().parse().unwrap();
    signal(x_pid, "-STOP");
    // Set-up, not an assertion: X must have been silent longer than the pool's hint.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let fresh = open_session(port);
    let answered = call(port, &fresh, "whoami", json!({}));
    signal(x_pid, "-CONT");
    assert_ne!(
        answered["result"]["content"][0]["text"], x,
        "a new session went to the stopped one: {answered}"
    );
    assert!(answered.get("result").is_some(), "{answered}");
    let _ = slow.join();
}
