//! Operations (issue 14): what the daemon measures of its servers, as `server status`
//! and `server monitor` show it.

use serde_json::{Value, json};

use crate::common::{TestEnv, echo_bin, free_port, http, rss_kib, to_run, wait_for};
use crate::gateway::initialize;

pub(crate) fn server(name: &str, port: u16, args: &str) -> String {
    format!(
        "[servers.{name}]\ncommand = \"{}\"\nargs = [{args}]\nport = {port}\n",
        echo_bin()
    )
}

/// `apply` with samples every 0.2 s.
pub(crate) fn apply_sampled(env: &TestEnv) {
    let run = env
        .command(&["apply"])
        .env("MCPCTL_SAMPLE_SECS", "0.2")
        .output()
        .unwrap();
    to_run(&["apply"], &run).success();
}

#[test]
fn a_busy_server_shows_more_cpu_than_an_idle_one_and_its_memory_as_proc_does() {
    let (busy, idle) = (free_port(), free_port());
    let env = TestEnv::with_config(&format!(
        "version = 1\n{}{}",
        server("busy", busy, r#""--spin", "--hold-mib", "64""#),
        server("idle", idle, "")
    ));
    apply_sampled(&env);
    let usage = |name: &str| env.server_status(name)["usage"].clone();
    // Both show once a sample has seen the server spin and hold its memory (on a
    // loaded machine the first samples may come before it touched it all).
    let busy_usage = wait_for("the busy server's CPU and memory to show", 30, || {
        let u = usage("busy");
        let held = u["rss_bytes"].as_f64().unwrap_or(0.0) > 64.0 * 1024.0 * 1024.0;
        match u["cpu_percent"].as_f64() {
            Some(cpu) if cpu > 30.0 && held => Ok(u),
            _ => Err(u.to_string()),
        }
    });
    let idle_usage = usage("idle");
    assert!(
        idle_usage["cpu_percent"].as_f64().unwrap() < busy_usage["cpu_percent"].as_f64().unwrap(),
        "idle {idle_usage} vs busy {busy_usage}"
    );
    // The tree is the shim and the server; /proc says the same, within 10 %.
    let status = env.server_status("busy");
    let pids: Vec<u32> = ["pids", "shim_pids"]
        .iter()
        .flat_map(|k| status[k].as_array().unwrap().clone())
        .map(|p| p.as_u64().unwrap() as u32)
        .collect();
    let reported = status["usage"]["rss_bytes"].as_f64().unwrap();
    let from_proc: f64 = pids.iter().map(|p| rss_kib(*p) as f64 * 1024.0).sum();
    assert!(reported > 64.0 * 1024.0 * 1024.0, "{status}");
    assert!(
        (reported - from_proc).abs() / from_proc < 0.10,
        "reported {reported}, /proc {from_proc}"
    );
    assert_eq!(status["usage"]["processes"], 2, "{status}");
    assert!(
        status["usage"]["open_fds"].as_u64().unwrap() >= 6,
        "{status}"
    );
    let text = env.run(&["server", "status", "busy"]);
    text.success().stdout_has("CPU:").stdout_has("Memory:");
}

#[test]
fn after_n_calls_the_request_count_is_exactly_n_and_the_bytes_add_up() {
    let port = free_port();
    let env = TestEnv::with_config(&format!("version = 1\n{}", server("echo", port, "")));
    apply_sampled(&env);
    let session = initialize(port);
    let mut sent = 0usize;
    const N: u64 = 25;
    for i in 0..N {
        let body = json!({"jsonrpc": "2.0", "id": i, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": format!("call {i}")}}})
        .to_string();
        sent += body.len();
        let headers = [
            ("MCP-Protocol-Version", "2025-06-18"),
            ("Mcp-Session-Id", session.as_str()),
        ];
        let reply = http(port, "POST", "/mcp", &headers, body.as_bytes());
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let traffic = env.server_status("echo")["traffic"].clone();
    let method = |name: &str| -> Value {
        traffic["methods"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["method"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {traffic}"))
    };
    assert_eq!(method("tools/call")["requests"], N, "{traffic}");
    assert_eq!(method("tools/call")["errors"], 0, "{traffic}");
    assert_eq!(method("initialize")["requests"], 1, "{traffic}");
    let buckets: u64 = method("tools/call")["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_u64().unwrap())
        .sum();
    assert_eq!(buckets, N, "every call is in one bucket");
    let bytes_in = traffic["bytes_in"].as_u64().unwrap() as usize;
    // The bodies, and each request's head (well under 1 KiB) besides.
    assert!(bytes_in > sent, "{bytes_in} in, {sent} sent");
    assert!(
        bytes_in < sent + (N as usize + 2) * 1024,
        "{bytes_in} in, {sent} sent"
    );
    assert!(traffic["bytes_out"].as_u64().unwrap() > 0, "{traffic}");
    assert!(traffic["p50_ms"].as_f64().is_some(), "{traffic}");
    assert_eq!(traffic["sessions"], 1, "{traffic}");
    wait_for("the connections to close", 30, || {
        let open = env.server_status("echo")["traffic"]["connections"].clone();
        if open == 0 {
            Ok(())
        } else {
            Err(open.to_string())
        }
    });
}

/// `/metrics` as the Prometheus project's own parser reads it: family -> (type, samples).
fn parse_metrics(text: &str) -> Value {
    use std::io::Write;
    let script = "import sys, json\n\
from prometheus_client.openmetrics.parser import text_string_to_metric_families\n\
out = {f.name: {'type': f.type, 'samples': [[s.name, s.labels, s.value] for s in f.samples]}\n\
       for f in text_string_to_metric_families(sys.stdin.read())}\n\
print(json.dumps(out))\n";
    let mut child = std::process::Command::new(crate::sdk::sdk_python())
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the parser refused it: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn metrics_parse_with_the_prometheus_parser_and_have_every_family() {
    if crate::sdk::sdk_python_for("metrics_parse_with_the_prometheus_parser_and_have_every_family")
        .is_none()
    {
        return;
    }
    let (port, metrics) = (free_port(), free_port());
    let env = TestEnv::with_config(&format!(
        "version = 1\n[daemon]\nmetrics = \"127.0.0.1:{metrics}\"\n{}",
        server("echo", port, "")
    ));
    apply_sampled(&env);
    let session = initialize(port);
    for i in 0..3 {
        let body = json!({"jsonrpc": "2.0", "id": i, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "x"}}});
        let headers = [
            ("MCP-Protocol-Version", "2025-06-18"),
            ("Mcp-Session-Id", session.as_str()),
        ];
        http(port, "POST", "/mcp", &headers, body.to_string().as_bytes());
    }
    wait_for("a sample of the instance", 30, || {
        let status = env.server_status("echo");
        if status["usage"].is_object() {
            Ok(())
        } else {
            Err(status.to_string())
        }
    });
    let reply = http(metrics, "GET", "/metrics", &[], b"");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "{:?}",
        reply.header("content-type")
    );
    let families = parse_metrics(&reply.body);
    for (name, kind) in [
        ("mcpctl_build_info", "gauge"),
        ("mcpctl_daemon_cpu_seconds", "counter"),
        ("mcpctl_daemon_resident_memory_bytes", "gauge"),
        ("mcpctl_process_cpu_seconds", "counter"),
        ("mcpctl_process_resident_memory_bytes", "gauge"),
        ("mcpctl_process_open_fds", "gauge"),
        ("mcpctl_instances", "gauge"),
        ("mcpctl_restarts", "counter"),
        ("mcpctl_sessions", "gauge"),
        ("mcpctl_requests_in_flight", "gauge"),
        ("mcpctl_connections", "gauge"),
        ("mcpctl_accepted_connections", "counter"),
        ("mcpctl_network_receive_bytes", "counter"),
        ("mcpctl_network_transmit_bytes", "counter"),
        ("mcpctl_requests", "counter"),
        ("mcpctl_request_errors", "counter"),
        ("mcpctl_request_duration_seconds", "histogram"),
    ] {
        assert_eq!(families[name]["type"], kind, "{name} in {families}");
    }
    let calls = families["mcpctl_requests"]["samples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s[1]["method"] == "tools/call" && s[1]["server"] == "echo")
        .cloned()
        .unwrap_or_else(|| panic!("{families}"));
    assert_eq!(calls[0], "mcpctl_requests_total");
    assert_eq!(calls[2], 3.0);
    let running = families["mcpctl_instances"]["samples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s[1]["state"] == "running")
        .cloned()
        .unwrap();
    assert_eq!(running[2], 1.0, "{running}");
    // Tool names never become labels.
    assert!(!reply.body.contains("tool="), "{}", reply.body);
}

#[test]
fn monitor_prints_one_json_object_per_sample_and_refuses_what_it_does_not_know() {
    let port = free_port();
    let env = TestEnv::with_config(&format!("version = 1\n{}", server("echo", port, "")));
    // No daemon yet: a clear error, not a hang.
    env.run(&["server", "monitor", "--count", "1"])
        .failure()
        .stderr_has("no daemon");
    apply_sampled(&env);
    let run = env.run_within(
        30,
        &[
            "server",
            "monitor",
            "echo",
            "--interval",
            "0.3",
            "--count",
            "3",
        ],
    );
    run.success();
    let samples: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(samples.len(), 3, "{}", run.stdout);
    let last = &samples[2]["servers"][0];
    assert_eq!(last["name"], "echo");
    assert!(last["instances"][0]["pid"].as_u64().is_some(), "{last}");
    assert!(last["instances"][0]["cpu_percent"].is_number(), "{last}");
    assert!(last["rss_bytes"].as_u64().unwrap() > 0, "{last}");
    assert!(last["requests_per_sec"].is_number(), "{last}");
    let memory_only = env.run(&["server", "monitor", "--metrics", "memory", "--count", "1"]);
    let only: Value = serde_json::from_str(memory_only.stdout.trim()).unwrap();
    assert!(only["servers"][0].get("cpu_percent").is_none(), "{only}");
    assert!(only["servers"][0].get("rss_bytes").is_some(), "{only}");
    env.run(&["server", "monitor", "--metrics", "cpu,disk"])
        .failure()
        .stderr_has("disk")
        .stderr_has("response-time");
    env.run(&["server", "monitor", "ghost", "--count", "1"])
        .failure()
        .stderr_has("unknown server `ghost`");
    env.run(&["server", "monitor", "--interval", "0"])
        .failure()
        .stderr_has("--interval");
}

/// `tools/call NAME` in `session`; the text of its answer, or the error.
fn call_text(port: u16, session: &str, name: &str, arguments: Value) -> Result<String, String> {
    let body = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": {"name": name, "arguments": arguments}});
    let headers = [
        ("MCP-Protocol-Version", "2025-06-18"),
        ("Mcp-Session-Id", session),
    ];
    let reply = http(port, "POST", "/mcp", &headers, body.to_string().as_bytes()).json();
    reply["result"]["content"][0]["text"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| reply.to_string())
}

fn running(env: &TestEnv) -> u64 {
    env.server_status("echo")["instances_running"]
        .as_u64()
        .unwrap()
}

#[test]
fn scale_1_3_1_follows_and_a_removed_instance_finishes_its_call_before_it_stops() {
    let port = free_port();
    let env = TestEnv::with_config(&format!(
        "version = 1\n{}drain_timeout = \"6s\"\n",
        server("echo", port, "")
    ));
    env.run_within(60, &["apply"]).success();
    env.run_within(60, &["server", "scale", "echo", "--instances", "3"])
        .success();
    assert_eq!(running(&env), 3);
    assert!(env.read("mcpctl.toml").contains("instances = 3"));
    // One session per instance (new sessions go to the least loaded).
    let sessions: Vec<(String, String)> = (0..3)
        .map(|_| {
            let s = initialize(port);
            let pid = call_text(port, &s, "whoami", json!({})).unwrap();
            (s, pid)
        })
        .collect();
    let mut pids: Vec<&String> = sessions.iter().map(|(_, p)| p).collect();
    pids.sort();
    pids.dedup();
    assert_eq!(pids.len(), 3, "{sessions:?}");
    // Every session in a long call while the scale-down runs.
    let calls: Vec<_> = sessions
        .iter()
        .map(|(s, _)| {
            let s = s.clone();
            std::thread::spawn(move || call_text(port, &s, "sleep", json!({"ms": 2500})))
        })
        .collect();
    wait_for("the calls to be in flight", 30, || {
        let logs = env.run(&["server", "logs", "echo", "-n", "200"]);
        if logs.stdout.contains("sleeping 2500 ms") {
            Ok(())
        } else {
            Err(logs.stdout)
        }
    });
    let scale = env
        .command(&["server", "scale", "echo", "--instances", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("two instances to drain", 30, || {
        let status = env.server_status("echo");
        if status["instances_draining"] == 2 && status["instances_running"] == 1 {
            // A planned drain is no degradation.
            assert_eq!(status["status"], "running", "{status}");
            Ok(())
        } else {
            Err(status.to_string())
        }
    });
    for (call, (_, pid)) in calls.into_iter().zip(&sessions) {
        let answer = call.join().unwrap();
        assert_eq!(
            answer,
            Ok(format!("slept 2500 ms in {pid}")),
            "a drained call was cut"
        );
    }
    let out = scale.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("draining 2 instance(s)"), "{stdout}");
    assert_eq!(running(&env), 1);
    assert!(env.read("mcpctl.toml").contains("instances = 1"));
    // And plan sees nothing to do.
    env.run(&["plan", "--detailed-exitcode"]).success();
}

#[test]
fn a_server_over_its_memory_limit_is_restarted_with_the_reason_and_nofile_is_its_limit() {
    let (hog, small) = (free_port(), free_port());
    let env = TestEnv::with_config(&format!(
        "version = 1\n{}limits = {{ memory = \"32MiB\" }}\n{}limits = {{ nofile = 64 }}\n",
        server("hog", hog, r#""--hold-mib", "64""#),
        server("small", small, "")
    ));
    apply_sampled(&env);
    let status = wait_for("the hog to be restarted for its memory", 60, || {
        let s = env.server_status("hog");
        let why = s["last_error"].as_str().unwrap_or_default();
        if s["restarts"].as_u64().unwrap_or(0) >= 1 && why.contains("limits.memory (32.0 MiB)") {
            Ok(s)
        } else {
            Err(s.to_string())
        }
    });
    assert!(
        status["last_error"]
            .as_str()
            .unwrap()
            .contains("stayed above"),
        "{status}"
    );
    let logs = env.run(&["server", "logs", "hog", "-n", "500"]);
    assert!(logs.stdout.contains("limits.memory"), "{}", logs.stdout);
    // The small one is left alone, and runs with 64 descriptors at most.
    let small_status = env.server_status("small");
    assert_eq!(small_status["restarts"], 0, "{small_status}");
    let pid = small_status["pids"][0].as_u64().unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert!(
        open_files.split_whitespace().filter(|w| *w == "64").count() == 2,
        "{open_files}"
    );
}

#[test]
fn validate_says_plainly_which_limits_this_machines_cgroups_cannot_enforce() {
    let env = TestEnv::with_config(&format!(
        "version = 1\n{}limits = {{ memory = \"64MiB\", cpu = 1.5 }}\n",
        server("echo", free_port(), "")
    ));
    let run = env.run(&["validate"]);
    run.success();
    // The same probe the daemon makes, run here: the message must match this machine.
    let support = mcpctl::cgroup::support();
    match &support.cpu {
        Err(why) => assert!(
            run.stderr
                .contains(&format!("`limits.cpu = 1.5` is not enforced: {why}")),
            "{}",
            run.stderr
        ),
        Ok(()) => assert!(!run.stderr.contains("limits.cpu"), "{}", run.stderr),
    }
    match &support.memory {
        Err(why) => assert!(
            run.stderr.contains("enforced by restarts only") && run.stderr.contains(why.as_str()),
            "{}",
            run.stderr
        ),
        Ok(()) => assert!(!run.stderr.contains("limits.memory"), "{}", run.stderr),
    }
    // Nothing to say without limits.
    let plain = TestEnv::with_config(&format!("version = 1\n{}", server("echo", free_port(), "")));
    let run = plain.run(&["validate"]);
    run.success();
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
}
