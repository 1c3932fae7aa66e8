//! A short soak (issue 28's acceptance; issue 25 makes it long): well-behaved clients
//! call a pool of two instances while attackers and faults run at once: a client that
//! opens `/sse`, posts calls with 1 MB answers and never reads; one instance stopped
//! with SIGSTOP, then continued; the other killed. Every call ends (an answer or an
//! error, never a hang), most succeed, the daemon's memory stays bounded, and after the
//! faults a new client is served. Bounded in calls and time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde_json::{Value, json};

use crate::common::{TestEnv, echo_bin, free_port, http, rss_kib, wait_for};

const WORKERS: usize = 6;
const CALLS: usize = 150;

fn init(port: u16) -> Option<String> {
    let body = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "soak", "version": "1"}}});
    let reply = http(port, "POST", "/mcp", &[], body.to_string().as_bytes());
    reply.header("mcp-session-id").map(str::to_string)
}

fn echo(port: u16, session: &str, text: &str) -> (u16, Value) {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": text}}});
    let reply = http(
        port,
        "POST",
        "/mcp",
        &[
            ("Mcp-Session-Id", session),
            ("MCP-Protocol-Version", "2025-06-18"),
        ],
        body.to_string().as_bytes(),
    );
    let json = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
    (reply.status, json)
}

fn pids(env: &TestEnv) -> Vec<u32> {
    env.server_status("pool")["pids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_u64().map(|p| p as u32))
                .collect()
        })
        .unwrap_or_default()
}

fn signal(pid: u32, sig: &str) {
    let _ = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status();
}

#[test]
fn calls_go_on_through_a_stalled_reader_a_stopped_child_and_a_killed_one() {
    let port = free_port();
    let env = TestEnv::with_config(&format!(
        "version = 1\n[servers.pool]\ncommand = \"{}\"\nport = {port}\ninstances = 2\n\
         call_timeout = \"2s\"\nhealth = {{ interval = \"300ms\", timeout = \"300ms\", failures = 2 }}\n",
        echo_bin()
    ));
    env.run_within(60, &["apply"]).success();
    let daemon = env.daemon_pid();
    let ok = Arc::new(AtomicUsize::new(0));
    let ended = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // Well-behaved clients: each call ends (answered or refused); a lost session is
    // opened again, as the spec provides.
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (ok, ended) = (Arc::clone(&ok), Arc::clone(&ended));
            std::thread::spawn(move || {
                let mut session = init(port);
                for i in 0..CALLS {
                    let Some(s) = session.clone() else {
                        session = init(port);
                        ended.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    let text = format!("{w}-{i}");
                    let (status, reply) = echo(port, &s, &text);
                    ended.fetch_add(1, Ordering::Relaxed);
                    if reply["result"]["content"][0]["text"] == text.as_str() {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else if status == 404 || reply.get("error").is_some() {
                        session = init(port);
                    }
                }
            })
        })
        .collect();
    // The attacker: never reads its /sse stream, posts calls with 1 MB answers.
    let attacker = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let (stalled, endpoint) = crate::gateway::stalled_sse_session(port);
            for i in 0..40 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let call = json!({"jsonrpc": "2.0", "id": i + 1, "method": "tools/call",
                    "params": {"name": "flood", "arguments": {"reply": 1 << 20}}});
                let status = http(port, "POST", &endpoint, &[], call.to_string().as_bytes()).status;
                if status == 404 {
                    break;
                }
            }
            drop(stalled);
        })
    };
    // Faults: one instance stopped, then continued; the other killed.
    wait_for("calls under way", 30, || {
        if ended.load(Ordering::Relaxed) > 50 {
            Ok(())
        } else {
            Err("not yet".into())
        }
    });
    let before = pids(&env);
    assert_eq!(before.len(), 2, "{before:?}");
    signal(before[0], "-STOP");
    wait_for("more calls while one child is stopped", 60, || {
        if ended.load(Ordering::Relaxed) > 300 {
            Ok(())
        } else {
            Err(ended.load(Ordering::Relaxed).to_string())
        }
    });
    signal(before[0], "-CONT");
    signal(before[1], "-KILL");
    for w in workers {
        w.join().expect("a worker ended");
    }
    stop.store(true, Ordering::Relaxed);
    attacker.join().expect("the attacker ended");
    let (ok, ended) = (ok.load(Ordering::Relaxed), ended.load(Ordering::Relaxed));
    assert_eq!(ended, WORKERS * CALLS, "every call ended");
    assert!(ok * 10 >= ended * 8, "most calls answered: {ok} of {ended}");
    let rss = rss_kib(daemon);
    assert!(rss < 300 * 1024, "the daemon stayed small: {rss} KiB");
    // After the faults, a new client is served.
    wait_for("a new client served", 60, || {
        let s = init(port).ok_or("no session")?;
        let (_, reply) = echo(port, &s, "after");
        if reply["result"]["content"][0]["text"] == "after" {
            Ok(())
        } else {
            Err(reply.to_string())
        }
    });
    env.run_within(30, &["daemon", "stop"]).success();
    let left = crate::common::left_alive(&before, 10);
    assert!(left.is_empty(), "{left:?} outlived the daemon");
}
