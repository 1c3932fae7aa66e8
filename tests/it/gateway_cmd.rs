//! `mcpctl gateway`: one server from flags, in the foreground, no daemon and no file.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{alive, bin, echo_bin, free_port, http, wait_for};

/// A gateway that a failing test does not leave running: killed when dropped.
pub(crate) struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        self.0.as_ref().unwrap()
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        self.0.as_mut().unwrap()
    }
}

impl Running {
    fn take(mut self) -> Child {
        self.0.take().unwrap()
    }
}

/// `mcpctl gateway ARGS` in a temp folder, with `env` added.
pub(crate) fn gateway(args: &[&str], env: &[(&str, &str)]) -> (Running, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(bin())
        .arg("gateway")
        .args(args)
        .current_dir(dir.path())
        .env_remove("MCPCTL_LOG")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (Running(Some(child)), dir)
}

pub(crate) fn initialize(port: u16, headers: &[(&str, &str)]) -> crate::common::HttpReply {
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    http(port, "POST", "/mcp", headers, init.to_string().as_bytes())
}

pub(crate) fn wait_serving(port: u16, child: &mut Child) {
    wait_for("the gateway to answer initialize", 60, || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the gateway exited early: {status}");
        }
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(_) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    });
}

/// SIGTERM, then the exit code and stderr (bounded).
pub(crate) fn terminate(running: Running) -> (i32, String) {
    let mut child = running.take();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the gateway did not end on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn call(port: u16, session: &str, headers: &[(&str, &str)], name: &str) -> serde_json::Value {
    let mut all = vec![("Mcp-Session-Id", session)];
    all.extend_from_slice(headers);
    let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": name, "arguments": {"text": "via the gateway"}}});
    http(port, "POST", "/mcp", &all, body.to_string().as_bytes()).json()
}

#[test]
fn it_serves_one_stdio_server_and_ends_it_with_itself_on_sigterm() {
    let port = free_port();
    let port_arg = port.to_string();
    let (mut child, _dir) = gateway(&["--port", &port_arg, "--", echo_bin()], &[]);
    wait_serving(port, &mut child);
    let reply = initialize(port, &[]);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let session = reply.header("mcp-session-id").unwrap().to_string();
    let echoed = call(port, &session, &[], "echo");
    assert_eq!(echoed["result"]["content"][0]["text"], "via the gateway");
    let server: u32 = call(port, &session, &[], "whoami")["result"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // /sse is served too.
    let sse = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    drop(sse);
    let (code, stderr) = terminate(child);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!("SSE http://127.0.0.1:{port}/sse")),
        "{stderr}"
    );
    assert!(
        stderr.contains("mcp-echo ready"),
        "the server's log is on stderr: {stderr}"
    );
    wait_for("the server to end with the gateway", 10, || {
        if alive(server) {
            Err("alive".into())
        } else {
            Ok(())
        }
    });
}

#[test]
fn a_server_that_cannot_start_exits_1_with_its_log() {
    let port = free_port().to_string();
    let (child, _dir) = gateway(
        &["--port", &port, "--", echo_bin(), "--fail-at-start", "4"],
        &[],
    );
    let out = child.take().wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("instance 0 failed to start: exit code 4"),
        "{stderr}"
    );
    assert!(stderr.contains("failing at start with code 4"), "{stderr}");
}

#[test]
fn a_bearer_from_the_environment_guards_it_and_never_reaches_the_server() {
    let port = free_port();
    let port_arg = port.to_string();
    let token = "gateway-token-7f3a";
    let (mut child, _dir) = gateway(
        &[
            "--port",
            &port_arg,
            "--auth-bearer-env",
            "GW_TOKEN",
            "--",
            echo_bin(),
        ],
        &[("GW_TOKEN", token)],
    );
    wait_serving(port, &mut child);
    assert_eq!(initialize(port, &[]).status, 401);
    // The probes need no bearer (a kubelet has none) and tell nothing else.
    let health = http(port, "GET", "/healthz", &[], b"");
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    // Ready once its server is (the port is bound first; on a loaded machine that
    // can be a moment later).
    wait_for("/readyz to answer 200 without a bearer", 30, || {
        let ready = http(port, "GET", "/readyz", &[], b"");
        match (ready.status, ready.body.as_str()) {
            (200, "ready\n") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    assert_eq!(http(port, "GET", "/readyz/../mcp", &[], b"").status, 401);
    let auth = format!("Bearer {token}");
    let reply = initialize(port, &[("Authorization", &auth)]);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let session = reply.header("mcp-session-id").unwrap().to_string();
    let server = call(port, &session, &[("Authorization", &auth)], "whoami");
    let pid = server["result"]["content"][0]["text"].as_str().unwrap();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(
        !String::from_utf8_lossy(&environ).contains(token),
        "the server got the clients' token"
    );
    assert_eq!(terminate(child).0, 0);
    // An empty token would let nobody in: refused at start.
    let (child, _dir) = gateway(
        &[
            "--port",
            &port_arg,
            "--auth-bearer-env",
            "GW_TOKEN",
            "--",
            echo_bin(),
        ],
        &[("GW_TOKEN", " ")],
    );
    let out = child.take().wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the variable is empty"));
}

#[test]
fn a_remote_server_is_served_through_the_same_guard() {
    let (up, port) = (free_port(), free_port());
    let (up_arg, port_arg) = (up.to_string(), port.to_string());
    let (mut upstream, _a) = gateway(&["--port", &up_arg, "--", echo_bin()], &[]);
    wait_serving(up, &mut upstream);
    let url = format!("http://127.0.0.1:{up}/mcp");
    let (mut proxy, _b) = gateway(&["--port", &port_arg, "--url", &url], &[]);
    wait_serving(port, &mut proxy);
    let reply = initialize(port, &[]);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let session = reply.header("mcp-session-id").unwrap().to_string();
    assert_eq!(
        call(port, &session, &[], "echo")["result"]["content"][0]["text"],
        "via the gateway"
    );
    // The guard: a foreign page's Origin is refused before anything is proxied.
    let foreign = initialize(port, &[("Origin", "https://evil.example")]);
    assert_eq!(foreign.status, 403);
    assert_eq!(terminate(proxy).0, 0);
    assert_eq!(terminate(upstream).0, 0);
}

#[test]
fn flags_are_checked_like_a_file() {
    let out = Command::new(bin())
        .args(["gateway", "--bind", "0.0.0.0", "--port", "1", "--", "x"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("beyond this machine, without `auth`"),
        "{stderr}"
    );
    let out = Command::new(bin()).args(["gateway"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "a usage error");
    let out = Command::new(bin())
        .args([
            "gateway",
            "--auth-bearer-env",
            "MCPCTL_TEST_UNSET_VAR",
            "--",
            "x",
        ])
        .env_remove("MCPCTL_TEST_UNSET_VAR")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("the variable is not set"));
}

#[test]
fn json_log_writes_every_line_as_a_json_object_naming_server_and_stream() {
    let port = free_port();
    let port_arg = port.to_string();
    let (mut child, _dir) = gateway(&["--port", &port_arg, "--json-log", "--", echo_bin()], &[]);
    wait_serving(port, &mut child);
    assert_eq!(initialize(port, &[]).status, 200);
    let (code, stderr) = terminate(child);
    assert_eq!(code, 0, "{stderr}");
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    for event in &events {
        assert!(event["timestamp"].is_string(), "{event}");
        assert!(event["level"].is_string(), "{event}");
        assert!(event["message"].is_string(), "{event}");
    }
    let endpoint = format!("http://127.0.0.1:{port}/mcp");
    assert!(
        events
            .iter()
            .any(|e| e["message"].as_str().is_some_and(|m| m.contains(&endpoint))),
        "the endpoints are logged: {stderr}"
    );
    let ready = events
        .iter()
        .find(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.contains("mcp-echo ready"))
        })
        .unwrap_or_else(|| panic!("the server's own line: {stderr}"));
    assert_eq!(ready["target"], "mcpctl::server", "{ready}");
    assert_eq!(ready["stream"], "stderr", "{ready}");
    assert_eq!(ready["server"], "server#0", "{ready}");
    assert_eq!(ready["level"], "INFO", "{ready}");

    // A server that fails at start: its ERROR line at that level, and the gateway's
    // last word JSON too.
    let port = free_port();
    let port_arg = port.to_string();
    let (child, _dir) = gateway(
        &[
            "--port",
            &port_arg,
            "--json-log",
            "--",
            echo_bin(),
            "--fail-at-start",
            "3",
        ],
        &[],
    );
    let out = child.take().wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    assert!(
        events.iter().any(|e| e["level"] == "ERROR"
            && e["target"] == "mcpctl::server"
            && e["message"]
                .as_str()
                .is_some_and(|m| m.contains("failing at start"))),
        "{stderr}"
    );
    assert_eq!(events.last().unwrap()["level"], "ERROR", "{stderr}");
}

#[test]
fn a_server_in_a_crash_loop_ends_the_gateway_with_exit_1_and_every_ending_is_logged() {
    let port = free_port();
    let port_arg = port.to_string();
    // Ready at once, gone half a second later, again and again.
    let script = format!("exec timeout 0.5 {}", echo_bin());
    let (child, _dir) = gateway(&["--port", &port_arg, "--", "sh", "-c", &script], &[]);
    let mut child = child.take();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway outlived its crash loop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("restarting in"), "{stderr}");
    assert!(stderr.contains("crash loop"), "{stderr}");
    assert!(stderr.contains("will not be restarted"), "{stderr}");
}

#[test]
fn sigterm_while_the_server_starts_ends_the_gateway_at_once_with_exit_0() {
    let port = free_port();
    let port_arg = port.to_string();
    let (mut child, _dir) = gateway(
        &[
            "--port",
            &port_arg,
            "--",
            echo_bin(),
            "--start-delay-ms",
            "120000",
        ],
        &[],
    );
    wait_serving(port, &mut child);
    let (code, stderr) = terminate(child);
    assert_eq!(code, 0, "{stderr}");
}

/// Two replicas sharing `key`, each advertising its own port.
fn replica(port: u16, key: &str) -> (Running, tempfile::TempDir) {
    replica_with(port, key, &[], &[])
}

/// [`replica`] with more flags and environment.
fn replica_with(
    port: u16,
    key: &str,
    flags: &[&str],
    env: &[(&str, &str)],
) -> (Running, tempfile::TempDir) {
    let port_text = port.to_string();
    let me = format!("http://127.0.0.1:{port}");
    let mut args = vec![
        "--port",
        &port_text,
        "--session-key-env",
        "MCPCTL_TEST_SESSION_KEY",
        "--advertise",
        &me,
    ];
    args.extend_from_slice(flags);
    args.extend(["--", echo_bin()]);
    let mut all = vec![("MCPCTL_TEST_SESSION_KEY", key)];
    all.extend_from_slice(env);
    gateway(&args, &all)
}

#[test]
fn a_session_minted_by_one_replica_is_answered_by_its_child_through_another() {
    const KEY: &str = "a key the replicas share, 32 bytes or more";
    let (a_port, b_port, c_port) = (free_port(), free_port(), free_port());
    let (mut a, _da) = replica(a_port, KEY);
    let (mut b, _db) = replica(b_port, KEY);
    let (mut c, _dc) = replica(c_port, "another key, of 32 bytes or more too");
    for (port, child) in [(a_port, &mut a), (b_port, &mut b), (c_port, &mut c)] {
        wait_serving(port, child);
    }
    let reply = initialize(a_port, &[]);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let session = reply.header("mcp-session-id").unwrap().to_string();
    let a_child = call(a_port, &session, &[], "whoami")["result"]["content"][0]["text"].clone();
    // Through B: A's child answers, every id as sent.
    let ids = [
        json!(7),
        json!(-1),
        json!(9_007_199_254_740_993_u64),
        json!("str"),
        json!("ünï \"code\""),
        json!(0),
    ];
    for id in &ids {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "whoami", "arguments": {}}});
        let headers = [("Mcp-Session-Id", session.as_str())];
        let reply = http(
            b_port,
            "POST",
            "/mcp",
            &headers,
            body.to_string().as_bytes(),
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        let answer = reply.json();
        assert_eq!(&answer["id"], id, "{answer}");
        assert_eq!(answer["result"]["content"][0]["text"], a_child, "{answer}");
    }
    let b_session = initialize(b_port, &[])
        .header("mcp-session-id")
        .unwrap()
        .to_string();
    let b_child = call(b_port, &b_session, &[], "whoami")["result"]["content"][0]["text"].clone();
    assert_ne!(a_child, b_child, "each replica has its own child");
    // A stream of progress, forwarded as it comes.
    let progress = json!({"jsonrpc": "2.0", "id": "p", "method": "tools/call",
        "params": {"name": "progress", "arguments": {"steps": 2}, "_meta": {"progressToken": 5}}});
    let mut stream = crate::gateway::SseClient::post(b_port, &session, &progress);
    for step in 1..=2 {
        let note: serde_json::Value = serde_json::from_str(&stream.next().1).unwrap();
        assert_eq!(note["params"]["progress"], step, "{note}");
    }
    let result: serde_json::Value = serde_json::from_str(&stream.next().1).unwrap();
    assert_eq!(result["id"], "p");
    // Sealed with another key: refused, by either side.
    let headers = [("Mcp-Session-Id", session.as_str())];
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string();
    assert_eq!(
        http(c_port, "POST", "/mcp", &headers, body.as_bytes()).status,
        404
    );
    let foreign = initialize(c_port, &[])
        .header("mcp-session-id")
        .unwrap()
        .to_string();
    let headers = [("Mcp-Session-Id", foreign.as_str())];
    assert_eq!(
        http(a_port, "POST", "/mcp", &headers, body.as_bytes()).status,
        404
    );
    assert_eq!(
        http(b_port, "POST", "/mcp", &headers, body.as_bytes()).status,
        404
    );
    // Ending it through B ends it at A.
    let headers = [("Mcp-Session-Id", session.as_str())];
    assert_eq!(http(b_port, "DELETE", "/mcp", &headers, b"").status, 204);
    assert_eq!(
        http(a_port, "POST", "/mcp", &headers, body.as_bytes()).status,
        404
    );
}

#[test]
fn replica_flags_are_checked() {
    let out = Command::new(bin())
        .args(["gateway", "--session-key-env", "K", "--", "x"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "--advertise is required with it"
    );
    let out = Command::new(bin())
        .args([
            "gateway",
            "--session-key-env",
            "K",
            "--advertise",
            "http://127.0.0.1:1",
            "--",
            "x",
        ])
        .env("K", "short")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("give at least 32 random ones"), "{stderr}");
}

#[test]
fn allow_no_auth_serves_beyond_loopback_without_a_bearer_and_says_so() {
    // Bound to every address, reached on 127.0.0.1 only.
    let port = free_port();
    let port_arg = port.to_string();
    let (mut child, _dir) = gateway(
        &[
            "--port",
            &port_arg,
            "--bind",
            "0.0.0.0",
            "--allow-no-auth",
            "--",
            echo_bin(),
        ],
        &[],
    );
    wait_serving(port, &mut child);
    assert_eq!(initialize(port, &[]).status, 200);
    let (code, stderr) = terminate(child);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("--allow-no-auth: anyone who can reach 0.0.0.0"),
        "{stderr}"
    );
}

/// A 2026-07-28 `tools/call NAME` (with `capabilities`), and its routing headers.
fn modern(id: u64, name: &str, arguments: serde_json::Value) -> serde_json::Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": name, "arguments": arguments, "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}},
            "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"}}}})
}

#[test]
fn replicas_forward_sse_messages_and_modern_retries_and_never_trust_an_address_alone() {
    const KEY: &str = "a key the replicas share, 32 bytes or more";
    let token = "replica-bearer-7f3a9c";
    let auth = format!("Bearer {token}");
    let (a_port, b_port) = (free_port(), free_port());
    let bearer = ["--auth-bearer-env", "TOK"];
    // Every forward proves its peer afresh (the default trusts a proof for 5 s).
    let env = [("TOK", token), ("MCPCTL_REPLICA_PROOF_MS", "0")];
    let (mut a, _da) = replica_with(a_port, KEY, &bearer, &env);
    let (mut b, _db) = replica_with(b_port, KEY, &bearer, &env);
    wait_serving(a_port, &mut a);
    wait_serving(b_port, &mut b);

    // Legacy SSE: the stream on A, its messages posted to B.
    let mut stream =
        crate::gateway::SseClient::open(a_port, "GET", "/sse", &[("Authorization", &auth)], "");
    let (event, endpoint) = stream.next();
    assert_eq!(event, "endpoint");
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let posted = http(
        b_port,
        "POST",
        &endpoint,
        &[("Authorization", &auth)],
        init.to_string().as_bytes(),
    );
    assert_eq!(posted.status, 202, "{}", posted.body);
    let answer: serde_json::Value = serde_json::from_str(&stream.next().1).unwrap();
    assert_eq!(answer["id"], 1, "{answer}");
    assert_eq!(answer["result"]["serverInfo"]["name"], "mcp-echo");

    // A 2026-07-28 call parked on a question at A, its retry balanced to B.
    let headers = [
        ("Authorization", auth.as_str()),
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Mcp-Method", "tools/call"),
        ("Mcp-Name", "confirm"),
    ];
    let ask = modern(1, "confirm", json!({"text": "deploy"}));
    let asked = http(a_port, "POST", "/mcp", &headers, ask.to_string().as_bytes());
    assert_eq!(asked.status, 200, "{}", asked.body);
    let result = asked.json()["result"].clone();
    assert_eq!(result["resultType"], "input_required", "{result}");
    let key = result["inputRequests"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let mut retry = modern(2, "confirm", json!({"text": "deploy"}));
    retry["params"]["requestState"] = result["requestState"].clone();
    retry["params"]["inputResponses"] =
        json!({key: {"action": "accept", "content": {"yes": true}}});
    let done = http(
        b_port,
        "POST",
        "/mcp",
        &headers,
        retry.to_string().as_bytes(),
    );
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(
        done.json()["result"]["content"][0]["text"],
        "accept {\"yes\":true}"
    );

    // A stray session header on a 2026-07-28 request does not route it.
    let stray = [
        ("Authorization", auth.as_str()),
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Mcp-Method", "tools/call"),
        ("Mcp-Name", "echo"),
        ("Mcp-Session-Id", "garbage"),
    ];
    let echo = modern(3, "echo", json!({"text": "stray"}));
    let answered = http(b_port, "POST", "/mcp", &stray, echo.to_string().as_bytes());
    assert_eq!(answered.status, 200, "{}", answered.body);

    // A session of A; A goes; something else takes its address. B asks it to prove
    // the key before it sends anything, and the client is told to start over.
    let session = initialize(a_port, &[("Authorization", &auth)])
        .header("mcp-session-id")
        .unwrap()
        .to_string();
    drop(stream);
    let _ = terminate(a);
    let impostor = std::net::TcpListener::bind(("127.0.0.1", a_port)).unwrap();
    let seen = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let mut got = String::new();
        impostor.set_nonblocking(false).unwrap();
        if let Ok((mut conn, _)) = impostor.accept() {
            conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 4096];
            let n = conn.read(&mut buf).unwrap_or(0);
            got = String::from_utf8_lossy(&buf[..n]).into_owned();
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello");
        }
        got
    });
    let body = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "private data"}}});
    let headers = [
        ("Mcp-Session-Id", session.as_str()),
        ("Authorization", auth.as_str()),
    ];
    let reply = http(
        b_port,
        "POST",
        "/mcp",
        &headers,
        body.to_string().as_bytes(),
    );
    assert_eq!(reply.status, 404, "{}", reply.body);
    assert!(reply.body.contains("initialize again"), "{}", reply.body);
    let got = seen.join().unwrap();
    assert!(
        got.starts_with("GET /.well-known/mcpctl-replica?nonce="),
        "{got}"
    );
    assert!(
        !got.contains(token) && !got.contains("private data"),
        "{got}"
    );
    // An impostor that relays the challenge to a live replica (B itself) gets B's
    // answer, which names B: still refused, and it never sees the request.
    let impostor = std::net::TcpListener::bind(("127.0.0.1", a_port)).unwrap();
    let relay = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let mut seen = Vec::new();
        impostor.set_nonblocking(true).unwrap();
        let until = std::time::Instant::now() + Duration::from_secs(3);
        while std::time::Instant::now() < until {
            let Ok((mut conn, _)) = impostor.accept() else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            conn.set_nonblocking(false).unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 4096];
            let n = conn.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]).into_owned();
            let path = request.split(' ').nth(1).unwrap_or("/").to_string();
            let answer = if path.starts_with("/.well-known/") {
                http(b_port, "GET", &path, &[], b"").body
            } else {
                "forged".into()
            };
            let _ = conn.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{answer}",
                    answer.len()
                )
                .as_bytes(),
            );
            seen.push(request);
        }
        seen
    });
    let reply = http(
        b_port,
        "POST",
        "/mcp",
        &headers,
        body.to_string().as_bytes(),
    );
    assert_eq!(reply.status, 404, "{}", reply.body);
    let relayed = relay.join().unwrap();
    assert!(
        relayed
            .iter()
            .any(|r| r.contains("/.well-known/mcpctl-replica")),
        "the challenge was relayed: {relayed:?}"
    );
    assert!(
        relayed
            .iter()
            .all(|r| !r.contains(token) && !r.contains("private data")),
        "{relayed:?}"
    );
    // And a replica that is simply gone: 404 as well, at once.
    let reply = http(
        b_port,
        "POST",
        "/mcp",
        &headers,
        body.to_string().as_bytes(),
    );
    assert_eq!(reply.status, 404, "{}", reply.body);
}

/// Issue 28: a replica told to end (SIGTERM, as Kubernetes does on a roll) lets its
/// calls in flight finish before it stops its server.
#[test]
fn issue28_sigterm_lets_calls_in_flight_finish_first() {
    let port = free_port();
    let port_arg = port.to_string();
    let (mut child, _dir) = gateway(&["--port", &port_arg, "--", echo_bin()], &[]);
    wait_serving(port, &mut child);
    // Its log (the server's stderr is teed there), read as it comes.
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let stderr = child.0.as_mut().and_then(|c| c.stderr.take()).unwrap();
    let reader = {
        let log = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                log.lock().unwrap().push_str(&(line + "\n"));
            }
        })
    };
    let session = initialize(port, &[])
        .header("mcp-session-id")
        .unwrap()
        .to_string();
    let caller = std::thread::spawn(move || {
        let slow = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
            "params": {"name": "sleep", "arguments": {"ms": 1500}}});
        http(
            port,
            "POST",
            "/mcp",
            &[("Mcp-Session-Id", &session)],
            slow.to_string().as_bytes(),
        )
    });
    wait_for("the call to reach the server", 30, || {
        let text = log.lock().unwrap().clone();
        if text.contains("sleeping 1500 ms") {
            Ok(())
        } else {
            Err(text)
        }
    });
    let pid = child.id();
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let answer = caller.join().unwrap().json();
    assert!(
        answer["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .starts_with("slept 1500 ms"),
        "the call finished: {answer}"
    );
    let (code, _) = terminate(child);
    assert_eq!(code, 0, "{}", log.lock().unwrap());
    let _ = reader.join();
}
