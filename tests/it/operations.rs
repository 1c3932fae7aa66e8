//! Operations (issue 14): what the daemon measures of its servers, as `server status`
//! and `server monitor` show it.

use serde_json::{Value, json};

use crate::common::{TestEnv, echo_bin, free_port, http, rss_kib, to_run, wait_for};
use crate::gateway::initialize;

fn server(name: &str, port: u16, args: &str) -> String {
    format!(
        "[servers.{name}]\ncommand = \"{}\"\nargs = [{args}]\nport = {port}\n",
        echo_bin()
    )
}

/// `apply` with samples every 0.2 s.
fn apply_sampled(env: &TestEnv) {
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
    let busy_usage = wait_for("the busy server's CPU to show", 30, || {
        let u = usage("busy");
        match u["cpu_percent"].as_f64() {
            Some(cpu) if cpu > 30.0 => Ok(u),
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
