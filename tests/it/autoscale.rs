//! Autoscaling (issue 14): the count follows the sessions within its bounds, shrinks
//! one at a time after the cooldown, and scales to zero and back on the next request.

use serde_json::json;

use crate::common::{TestEnv, alive, echo_bin, free_port, http, wait_for};
use crate::gateway::initialize;

fn server(port: u16, autoscale: &str) -> String {
    format!(
        "version = 1\n[servers.echo]\ncommand = \"{}\"\nport = {port}\n{autoscale}",
        echo_bin()
    )
}

fn running(env: &TestEnv) -> u64 {
    env.server_status("echo")["instances_running"]
        .as_u64()
        .unwrap_or(0)
}

/// `apply`, its daemon's autoscaler looking every 0.1 s (it reads counters; the
/// default is 1 s).
/// Waits (`secs` at most) for `name` to be idle, scaled to zero; its status then.
pub(crate) fn wait_scaled_to_zero(env: &TestEnv, name: &str, secs: u64) -> serde_json::Value {
    wait_for(&format!("{name} to scale to zero"), secs, || {
        let s = env.server_status(name);
        if s["status"] == "idle (scaled to zero)" {
            Ok(s)
        } else {
            Err(s.to_string())
        }
    })
}

pub(crate) fn apply_fast(env: &TestEnv) {
    let run = env
        .command(&["apply"])
        .env("MCPCTL_AUTOSCALE_SECS", "0.1")
        .output()
        .unwrap();
    crate::common::to_run(&["apply"], &run).success();
}

fn call_echo(port: u16, session: &str) -> serde_json::Value {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "hi"}}});
    let headers = [
        ("MCP-Protocol-Version", "2025-06-18"),
        ("Mcp-Session-Id", session),
    ];
    http(port, "POST", "/mcp", &headers, body.to_string().as_bytes()).json()
}

#[test]
fn six_sessions_grow_the_pool_to_three_and_closing_them_shrinks_it_to_one_within_bounds() {
    let port = free_port();
    let env = TestEnv::with_config(&server(port, ""));
    apply_fast(&env);
    let run = env.run_within(
        60,
        &[
            "server",
            "autoscale",
            "echo",
            "--min",
            "1",
            "--max",
            "3",
            "--target-sessions",
            "2",
            "--scale-down-after",
            "1s",
        ],
    );
    run.success();
    let file = env.read("mcpctl.toml");
    assert!(
        file.contains(
            "autoscale = { min = 1, max = 3, target_sessions = 2, scale_down_after = \"1s\" }"
        ),
        "{file}"
    );
    assert!(!file.contains("instances"), "{file}");
    let status = env.server_status("echo");
    assert_eq!(status["autoscale"], "1-3, 2 sessions/instance");
    assert_eq!(status["instances_running"], 1, "{status}\n{}", run.stdout);

    let sessions: Vec<String> = (0..6).map(|_| initialize(port)).collect();
    let mut seen = Vec::new();
    wait_for("6 sessions to grow the pool to 3", 30, || {
        let n = running(&env);
        seen.push(n);
        if n == 3 {
            Ok(())
        } else {
            Err(format!("{seen:?}"))
        }
    });
    let status = env.server_status("echo");
    assert_eq!(
        status["instances_desired"], 3,
        "what the autoscaler chose: {status}"
    );
    let reason = status["last_scale"]["reason"].as_str().unwrap_or_default();
    // Up as the sessions came (1 -> 3, or 1 -> 2 -> 3 if the readings caught them
    // half-made), never past what they need.
    assert_eq!(status["last_scale"]["to"], 3, "{status}");
    assert!(reason.contains("session(s)"), "{reason}");
    let need: u64 = reason
        .split(" session(s)")
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{reason}"));
    assert!(
        (5..=6).contains(&need),
        "3 instances for {need} sessions: {reason}"
    );
    // The count is observed state: within the bounds, no drift.
    env.run(&["plan", "--detailed-exitcode"]).success();
    for s in &sessions {
        assert_eq!(call_echo(port, s)["result"]["content"][0]["text"], "hi");
    }

    for s in &sessions {
        assert_eq!(
            http(port, "DELETE", "/mcp", &[("Mcp-Session-Id", s)], b"").status,
            204
        );
    }
    let mut seen = Vec::new();
    wait_for("the pool to shrink to 1", 60, || {
        let n = running(&env);
        seen.push(n);
        if n == 1 {
            Ok(())
        } else {
            Err(format!("{seen:?}"))
        }
    });
    let mut steps = seen.clone();
    steps.dedup();
    assert!(
        steps.iter().all(|n| (1..=3).contains(n)),
        "outside the bounds: {seen:?}"
    );
    assert!(
        steps.windows(2).all(|w| w[0] >= w[1]),
        "it must not flap back up: {seen:?}"
    );
    let log = env.read(".mcpctl/daemon.log");
    assert!(log.contains("echo: autoscale 3 -> 2 instance(s)"), "{log}");
    assert!(log.contains("echo: autoscale 2 -> 1 instance(s)"), "{log}");
    // Held at the minimum with no load at all.
    env.run(&["plan", "--detailed-exitcode"]).success();
    assert_eq!(running(&env), 1);
    env.run(&["daemon", "stop"]).success();
}

#[test]
fn min_zero_stops_every_process_when_idle_and_the_next_call_starts_one() {
    let port = free_port();
    let env = TestEnv::with_config(&server(
        port,
        "autoscale = { min = 0, max = 2, target_sessions = 5, idle_after = \"1s\" }\n",
    ));
    let plan = env.run(&["plan"]);
    plan.success();
    assert!(
        plan.stdout.contains("autoscale"),
        "plan shows the bounds: {}",
        plan.stdout
    );
    apply_fast(&env);
    let first = env.server_status("echo")["pids"][0].as_u64().unwrap() as u32;
    let status = wait_scaled_to_zero(&env, "echo", 30);
    assert_eq!(status["instances_running"], 0);
    assert!(
        status["pids"].as_array().is_some_and(Vec::is_empty),
        "{status}"
    );
    wait_for("its process to be gone", 10, || {
        if alive(first) {
            Err(format!("{first} runs"))
        } else {
            Ok(())
        }
    });
    let text = env.run(&["server", "status", "echo"]).stdout;
    assert!(text.contains("idle (scaled to zero)"), "{text}");
    // Nothing to converge: scaled to zero is not stopped.
    env.run(&["plan", "--detailed-exitcode"]).success();

    // The next client is answered, after one cold start.
    let session = initialize(port);
    assert_eq!(
        call_echo(port, &session)["result"]["content"][0]["text"],
        "hi"
    );
    let status = env.server_status("echo");
    assert_eq!(status["instances_running"], 1, "{status}");
    assert_eq!(status["pids"].as_array().map(Vec::len), Some(1));
    assert_ne!(status["pids"][0].as_u64(), Some(u64::from(first)));
    assert_eq!(status["last_scale"]["from"], 0, "{status}");
    assert_eq!(status["last_scale"]["to"], 1, "{status}");
    // Its wait is in the latency histogram: the initialize that waited was counted.
    let methods = status["traffic"]["methods"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let init = methods
        .iter()
        .find(|m| m["method"] == "initialize")
        .unwrap_or_else(|| panic!("{status}"));
    assert_eq!(init["requests"], 1, "{status}");
    env.run(&["daemon", "stop"]).success();
}

#[test]
fn a_slot_that_fails_keeps_its_restart_policy_and_is_not_replaced_by_the_autoscaler() {
    let port = free_port();
    let env = TestEnv::with_config(&server(
        port,
        "args = [\"--fail-at-start\", \"3\"]\nrestart = \"never\"\nautoscale = { min = 1, max = 3 }\n",
    ));
    let run = env
        .command(&["apply"])
        .env("MCPCTL_AUTOSCALE_SECS", "0.05")
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1), "its start fails");
    // Two seconds is forty readings: each would have started another instance.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while std::time::Instant::now() < until {
        let status = env.server_status("echo");
        assert_eq!(status["instance_ids"], json!([0]), "{status}");
    }
    let log = env.read(".mcpctl/daemon.log");
    assert!(!log.contains("echo: autoscale"), "{log}");
    assert_eq!(env.server_status("echo")["status"], "exited");
    env.run(&["daemon", "stop"]).success();
}

#[test]
fn a_slow_cold_start_does_not_hold_up_another_servers_and_a_replaced_idle_server_serves() {
    let (slow, fast) = (free_port(), free_port());
    let env = TestEnv::with_config(&format!(
        "version = 1\n[servers.slow]\ncommand = \"{echo}\"\nargs = [\"--start-delay-ms\", \"6000\"]\nport = {slow}\nstart_timeout = \"20s\"\nautoscale = {{ min = 0, max = 1, idle_after = \"1s\" }}\n[servers.fast]\ncommand = \"{echo}\"\nport = {fast}\nstart_timeout = \"3s\"\nautoscale = {{ min = 0, max = 1, idle_after = \"1s\" }}\n",
        echo = echo_bin()
    ));
    apply_fast(&env);
    for name in ["slow", "fast"] {
        wait_scaled_to_zero(&env, name, 60);
    }
    // The slow one's cold start takes 6 s; the fast one's, asked meanwhile, must not wait
    // for it (it would get 503 after its own 3 s start_timeout).
    let waiting = std::thread::spawn(move || initialize(slow));
    wait_for("the slow start to begin", 10, || {
        let s = env.server_status("slow");
        if s["instance_ids"].as_array().is_some_and(|a| !a.is_empty()) {
            Ok(())
        } else {
            Err(s.to_string())
        }
    });
    let session = initialize(fast);
    assert_eq!(
        call_echo(fast, &session)["result"]["content"][0]["text"],
        "hi"
    );
    let slow_session = waiting.join().unwrap();
    assert_eq!(
        call_echo(slow, &slow_session)["result"]["content"][0]["text"],
        "hi"
    );

    // Replaced while scaled to zero: its port is bound again at once.
    let ended = http(fast, "DELETE", "/mcp", &[("Mcp-Session-Id", &session)], b"");
    assert_eq!(ended.status, 204);
    wait_scaled_to_zero(&env, "fast", 60);
    let file = env.read("mcpctl.toml").replace(
        &format!("port = {fast}\n"),
        &format!("port = {fast}\nenv = {{ CHANGED = \"1\" }}\n"),
    );
    env.write("mcpctl.toml", &file);
    env.run_within(60, &["apply"]).success();
    let session = initialize(fast);
    assert_eq!(
        call_echo(fast, &session)["result"]["content"][0]["text"],
        "hi"
    );
    env.run(&["daemon", "stop"]).success();
}

#[test]
fn a_prober_on_a_kept_alive_connection_does_not_keep_it_awake() {
    use std::io::{Read, Write};
    let port = free_port();
    let env = TestEnv::with_config(&server(
        port,
        "autoscale = { min = 0, max = 1, idle_after = \"1s\" }\n",
    ));
    apply_fast(&env);
    let mut probe = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    probe
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let ask = format!("GET /readyz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    wait_for("it to scale to zero under the probes", 60, || {
        probe.write_all(ask.as_bytes()).map_err(|e| e.to_string())?;
        let mut buf = [0u8; 512];
        let n = probe.read(&mut buf).map_err(|e| e.to_string())?;
        let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !answer.starts_with("HTTP/1.1 200") {
            return Err(answer);
        }
        let s = env.server_status("echo");
        if s["status"] == "idle (scaled to zero)" {
            Ok(())
        } else {
            Err(s.to_string())
        }
    });
    env.run(&["daemon", "stop"]).success();
}
