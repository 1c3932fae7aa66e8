//! `mcpctl connect NAME`: the stdio bridge to a server on the daemon, driven by the
//! official Python SDK's stdio client and by hand over its pipes.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{TestEnv, bin, echo_bin, free_port, wait_for};
use crate::sdk::{run_bounded, sdk_python, sdk_python_for};

fn echo_config(port: u16, extra: &str) -> String {
    format!(
        "version = 1\n[servers.echo]\ncommand = \"{}\"\nport = {port}\n{extra}",
        echo_bin()
    )
}

/// `stdio_client.py MODE CLIENTS mcpctl -f FILE connect NAME`: what it saw, asserted ok.
fn sdk_over_connect(env: &TestEnv, mode: &str, clients: usize, name: &str) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/stdio_client.py");
    let config = env.path().join("mcpctl.toml");
    let mut cmd = Command::new(sdk_python());
    cmd.arg(script)
        .arg(mode)
        .arg(clients.to_string())
        .arg(bin())
        .arg("-f")
        .arg(&config)
        .args(["connect", name])
        .current_dir(env.path())
        .env("XDG_CONFIG_HOME", env.path().join("xdg"))
        .env_remove("MCPCTL_IDENTITY");
    let seen = run_bounded(cmd, 120).unwrap_or_else(|e| panic!("SDK over connect, {mode}: {e}"));
    let seen: Value = serde_json::from_str(seen.trim()).unwrap_or_else(|e| panic!("{e}: {seen}"));
    assert_eq!(seen["ok"], true, "{mode}: {seen}");
    seen
}

fn server_pid(env: &TestEnv, name: &str) -> String {
    let status = env.server_status(name);
    status["pids"][0]
        .as_u64()
        .unwrap_or_else(|| panic!("no pid in {status}"))
        .to_string()
}

#[test]
fn the_python_sdk_lists_and_calls_tools_through_connect_and_two_clients_share_one_process() {
    let (port, modern) = (free_port(), free_port());
    let env = TestEnv::with_config(&echo_config(
        port,
        &format!(
            "[servers.modern]\ncommand = \"{}\"\nargs = [\"--modern\"]\nport = {modern}\n",
            echo_bin()
        ),
    ));
    if sdk_python_for(
        "the_python_sdk_lists_and_calls_tools_through_connect_and_two_clients_share_one_process",
    )
    .is_none()
    {
        return;
    }
    env.run_within(60, &["apply"]).success();
    let pid = server_pid(&env, "echo");
    // Two clients connected at once, each through its own `mcpctl connect`: both are
    // answered by the one process the daemon supervises.
    let seen = sdk_over_connect(&env, "legacy", 2, "echo");
    for client in seen["clients"].as_array().unwrap() {
        assert_eq!(client["whoami"], pid.as_str(), "{seen}");
        assert_eq!(client["protocol_version"], "2025-11-25", "{seen}");
    }
    // A 2026-07-28 client passes through the same bridge, to a child of either era
    // (the modern child's `confirm` is an input_required round through the bridge).
    let seen = sdk_over_connect(&env, "2026-07-28", 1, "echo");
    assert_eq!(seen["clients"][0]["whoami"], pid.as_str(), "{seen}");
    assert_eq!(seen["clients"][0]["protocol_version"], "2026-07-28");
    let seen = sdk_over_connect(&env, "2026-07-28", 2, "modern");
    let modern_pid = server_pid(&env, "modern");
    for client in seen["clients"].as_array().unwrap() {
        assert_eq!(client["whoami"], modern_pid.as_str(), "{seen}");
    }
    sdk_over_connect(&env, "legacy", 1, "modern");
    assert_eq!(
        server_pid(&env, "echo"),
        pid,
        "the server was not restarted"
    );
}

#[test]
fn connect_sends_the_bearer_from_the_identity_when_auth_is_on() {
    let port = free_port();
    let env = TestEnv::new();
    env.run(&["init"]).success();
    let text = env.read("mcpctl.toml")
        + &format!(
            "\n[servers.guarded]\ncommand = \"{}\"\nport = {port}\nauth = {{ bearer = \"CLIENT_TOKEN\" }}\n",
            echo_bin()
        );
    env.write("mcpctl.toml", &text);
    env.set_secret("CLIENT_TOKEN", Some("guarded"), "connect-bearer-s3cret")
        .success();
    env.run_within(60, &["apply"]).success();
    let mut bridge = Bridge::open(&env, "guarded");
    let answer = bridge.ask(&initialize(1));
    assert!(answer["result"]["serverInfo"].is_object(), "{answer}");
    bridge.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));

    // The bearer is rotated (and applied) while the bridge runs: its next request
    // is refused (401), so it reads the bearer again and the client goes on.
    env.set_secret("CLIENT_TOKEN", Some("guarded"), "rotated-bearer-s3cret")
        .success();
    env.run_within(60, &["apply"]).success();
    let listed = bridge.ask(&json!({"jsonrpc": "2.0", "id": "after", "method": "tools/list"}));
    assert!(listed["result"]["tools"].is_array(), "{listed}");
    let (code, stderr) = bridge.close();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("connect-bearer-s3cret"), "{stderr}");
    assert!(!stderr.contains("rotated-bearer-s3cret"), "{stderr}");
}

#[test]
fn connect_starts_the_daemon_and_the_server_and_its_clients_share_that_process() {
    let port = free_port();
    let env = TestEnv::with_config(&echo_config(port, ""));
    // No daemon: the first `connect` starts it, and the server with it.
    let mut first = Bridge::open(&env, "echo");
    assert!(first.ask(&initialize(1))["result"].is_object());
    let pid = server_pid(&env, "echo");
    let mut second = Bridge::open(&env, "echo");
    assert!(second.ask(&initialize(1))["result"].is_object());
    for bridge in [&mut first, &mut second] {
        bridge.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "whoami", "arguments": {}}});
        let answer = bridge.ask(&call);
        assert_eq!(
            answer["result"]["content"][0]["text"],
            pid.as_str(),
            "{answer}"
        );
    }
    let (code, stderr) = first.close();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("starting `echo`"), "{stderr}");
    assert_eq!(second.close().0, Some(0));

    // A server the running daemon does not run yet (added, not applied) is started.
    let later = free_port();
    let text = env.read("mcpctl.toml")
        + &format!(
            "[servers.later]\ncommand = \"{}\"\nport = {later}\n",
            echo_bin()
        );
    env.write("mcpctl.toml", &text);
    let mut bridge = Bridge::open(&env, "later");
    assert!(bridge.ask(&initialize(1))["result"].is_object());
    assert_eq!(env.server_status("later")["status"], "running");
    assert_eq!(server_pid(&env, "echo"), pid, "echo was left as it was");
    assert_eq!(bridge.close().0, Some(0));
}

#[test]
fn connect_says_why_within_its_bound_when_the_server_cannot_start() {
    let (failing, silent) = (free_port(), free_port());
    let env = TestEnv::with_config(&format!(
        "version = 1\n[servers.failing]\ncommand = \"{echo}\"\nargs = [\"--fail-at-start\", \"3\"]\nport = {failing}\n\
         [servers.silent]\ncommand = \"{echo}\"\nargs = [\"--no-handshake\"]\nport = {silent}\n",
        echo = echo_bin()
    ));
    let mut bridge = Bridge::open(&env, "failing");
    let answer = bridge.ask(&initialize("f"));
    assert_eq!(answer["id"], "f");
    assert_eq!(answer["error"]["code"], -32000, "{answer}");
    let (code, stderr) = bridge.close();
    assert_eq!(code, Some(1));
    assert!(stderr.contains("mcpctl connect failing:"), "{stderr}");

    // A server that never answers its handshake: the bridge gives up at its bound.
    let mut bridge = Bridge::spawn(
        env.command(&["connect", "silent"])
            .env("MCPCTL_CONNECT_TIMEOUT_MS", "1500"),
    );
    let answer = bridge.ask(&initialize("s"));
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("did not start within"), "{answer}");
    let (code, stderr) = bridge.close();
    assert_eq!(code, Some(1));
    assert!(stderr.contains("did not start within 1.5s"), "{stderr}");
}

#[test]
fn connect_answers_a_json_rpc_error_when_there_is_nothing_to_reach() {
    let port = free_port();
    let env = TestEnv::with_config(&echo_config(port, ""));
    // An unknown server names those the file has (and starts nothing).
    let mut bridge = Bridge::open(&env, "nope");
    let answer = bridge.ask(&initialize(7));
    assert_eq!(answer["id"], 7);
    assert_eq!(answer["error"]["code"], -32000, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("no server `nope`") && message.contains("echo"),
        "{message}"
    );
    let (code, stderr) = bridge.close();
    assert_eq!(code, Some(1));
    assert!(stderr.contains("mcpctl connect nope: "), "{stderr}");
    assert!(!env.path().join(".mcpctl/daemon.sock").exists());

    // No config file at all: said on stderr and in each answer.
    let empty = TestEnv::new();
    let mut bridge = Bridge::open(&empty, "echo");
    let answer = bridge.ask(&initialize("a"));
    assert_eq!(answer["id"], "a");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("no mcpctl.toml"), "{answer}");
    let (code, stderr) = bridge.close();
    assert_eq!(code, Some(1));
    assert!(stderr.contains("mcpctl connect echo: "), "{stderr}");

    // A server stopped while bridged is gone for good: the call that finds out is
    // answered, then the bridge exits 1 by itself (stdin still open).
    env.run_within(60, &["apply"]).success();
    let mut bridge = Bridge::open(&env, "echo");
    assert!(bridge.ask(&initialize(1))["result"].is_object());
    bridge.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    let listed = bridge.ask(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}));
    assert!(listed["result"]["tools"].is_array(), "{listed}");
    env.run_within(60, &["server", "stop", "echo"]).success();
    let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "x"}}});
    let answer = bridge.ask(&call);
    assert_eq!(answer["id"], 3);
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("is stopped"), "{answer}");
    let (code, stderr) = bridge.wait_exit();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("mcpctl connect echo: exiting"), "{stderr}");

    // A server whose file says stopped is not started behind the user's back.
    let mut bridge = Bridge::open(&env, "echo");
    let answer = bridge.ask(&initialize(4));
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("is stopped"), "{message}");
    bridge.close();
    assert_eq!(env.server_status("echo")["status"], "stopped");
}

#[test]
fn connect_exits_when_its_stdout_closes() {
    let env = TestEnv::with_config(&echo_config(free_port(), ""));
    // With an answer to write, or idle: the client is gone, so is the bridge.
    for line in [Some("{not json\n"), None] {
        let mut child = env
            .command(&["connect", "nope"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let mut stdin = child.stdin.take().unwrap();
        if let Some(line) = line {
            // It may have gone already: the write may fail.
            let _ = stdin.write_all(line.as_bytes());
        }
        let status = exited(&mut child, &format!("its stdout closed ({line:?} sent)"));
        assert_eq!(status.code(), Some(0), "a broken pipe is no error");
        drop(stdin);
    }
}

#[test]
fn connect_speaks_over_a_socket_pair_as_node_clients_give_it() {
    use std::os::unix::net::UnixStream;
    let port = free_port();
    let env = TestEnv::with_config(&echo_config(port, ""));
    env.run_within(60, &["apply"]).success();
    // Node's child_process gives a child one end of a socket pair as its stdio.
    let (ours, theirs) = UnixStream::pair().unwrap();
    let mut child = env
        .command(&["connect", "echo"])
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(
            theirs.try_clone().unwrap(),
        )))
        .stdout(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    ours.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut writer = ours.try_clone().unwrap();
    let mut reader = BufReader::new(ours);
    writer
        .write_all(format!("{}\n", initialize(1)).as_bytes())
        .unwrap();
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let answer: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert!(answer["result"]["serverInfo"].is_object(), "{answer}");
    writer.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(exited(&mut child, "its input ended").code(), Some(0));
}

/// How `child` exited, within 10 s of `after`.
fn exited(child: &mut Child, after: &str) -> std::process::ExitStatus {
    wait_for(&format!("mcpctl connect to exit after {after}"), 10, || {
        child
            .try_wait()
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "still running".to_string())
    })
}

#[test]
fn an_oversized_request_is_answered_with_its_id() {
    let env = TestEnv::with_config(&echo_config(free_port(), ""));
    let mut bridge = Bridge::open(&env, "nope");
    let big = "z".repeat(5 << 20);
    bridge.send_raw(&format!(
        r#"{{"jsonrpc":"2.0","id":"big","method":"tools/call","params":{{"name":"echo","arguments":{{"text":"{big}"}}}}}}"#
    ));
    let answer = bridge.next();
    assert_eq!(answer["id"], "big", "{answer}");
    assert_eq!(answer["error"]["code"], -32600, "{answer}");
    // The id after the params is read from the end of the line.
    bridge.send_raw(&format!(
        r#"{{"jsonrpc":"2.0","method":"tools/call","params":{{"text":"{big}"}},"id":12}}"#
    ));
    assert_eq!(bridge.next()["id"], 12);
    bridge.close();
}

#[test]
fn connect_answers_bad_lines_and_keeps_ids_exact() {
    let port = free_port();
    let env = TestEnv::with_config(&echo_config(port, ""));
    env.run_within(60, &["apply"]).success();
    let mut bridge = Bridge::open(&env, "echo");
    bridge.send_raw("{not json");
    let answer = bridge.next();
    assert_eq!(answer["error"]["code"], -32700, "{answer}");
    assert_eq!(answer["id"], Value::Null);
    bridge.send_raw(
        r#"{"jsonrpc":"2.0","id":18446744073709551616,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
    );
    let line = bridge.next_line();
    assert!(line.contains(r#""id":18446744073709551616"#), "{line}");
    let (code, _) = bridge.close();
    assert_eq!(code, Some(0));
}

fn initialize(id: impl Into<Value>) -> Value {
    json!({"jsonrpc": "2.0", "id": id.into(), "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "t", "version": "1"}}})
}

/// `mcpctl connect NAME` over its pipes, each read bounded.
struct Bridge {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Bridge {
    fn open(env: &TestEnv, name: &str) -> Self {
        Self::spawn(&mut env.command(&["connect", name]))
    }

    fn spawn(command: &mut Command) -> Self {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self {
            child,
            stdin,
            lines,
        }
    }

    fn send_raw(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    fn send(&mut self, msg: &Value) {
        self.send_raw(&msg.to_string());
    }

    fn next_line(&mut self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(30))
            .expect("an answer from mcpctl connect within 30 s")
    }

    fn next(&mut self) -> Value {
        let line = self.next_line();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    /// Sends a request; its answer (other messages before it are skipped).
    fn ask(&mut self, msg: &Value) -> Value {
        self.send(msg);
        loop {
            let answer = self.next();
            if answer.get("id") == msg.get("id") && answer.get("method").is_none() {
                return answer;
            }
        }
    }

    /// Closes stdin; the exit code (within 10 s) and stderr.
    fn close(mut self) -> (Option<i32>, String) {
        drop(self.stdin.take());
        self.wait_exit()
    }

    /// Waits (10 s at most) for the bridge to exit with stdin still open.
    fn wait_exit(mut self) -> (Option<i32>, String) {
        let status = exited(&mut self.child, "the end of its work");
        let mut stderr = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut err, &mut stderr);
        }
        (status.code(), stderr)
    }
}

#[test]
fn connect_reaches_a_tls_server_through_the_roots_it_is_given() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    let port = free_port();
    let env = TestEnv::with_config(&echo_config(
        port,
        "tls = { cert = \"tls/cert.pem\", key = \"tls/key.pem\" }\n",
    ));
    std::fs::create_dir_all(env.path().join("tls")).unwrap();
    for file in ["cert.pem", "key.pem"] {
        std::fs::copy(fixtures.join(file), env.path().join("tls").join(file)).unwrap();
    }
    env.run_within(60, &["apply"]).success();
    let mut bridge = Bridge::spawn(
        env.command(&["connect", "echo"])
            .env("SSL_CERT_FILE", fixtures.join("ca.pem")),
    );
    let answer = bridge.ask(&initialize(1));
    assert!(answer["result"]["serverInfo"].is_object(), "{answer}");
    assert_eq!(bridge.close().0, Some(0));
    // Without the CA the certificate is not trusted: an error, never plain text.
    let mut bridge = Bridge::spawn(
        env.command(&["connect", "echo"])
            .env("SSL_CERT_FILE", env.path().join("tls/cert.pem")),
    );
    let answer = bridge.ask(&initialize(2));
    assert_eq!(answer["error"]["code"], -32000, "{answer}");
    let (_, stderr) = bridge.close();
    assert!(stderr.contains("https://127.0.0.1"), "{stderr}");
}

#[test]
fn a_restarted_server_gets_a_new_session_and_the_client_goes_on() {
    let port = free_port();
    let env = TestEnv::with_config(&echo_config(port, ""));
    env.run_within(60, &["apply"]).success();
    let mut bridge = Bridge::open(&env, "echo");
    assert!(bridge.ask(&initialize(1))["result"].is_object());
    bridge.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    let before = server_pid(&env, "echo");
    env.run_within(60, &["server", "restart", "echo"]).success();
    assert_ne!(server_pid(&env, "echo"), before, "restarted");
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "after the restart"}}});
    let answer = bridge.ask(&call);
    assert_eq!(
        answer["result"]["content"][0]["text"], "after the restart",
        "{answer}"
    );
    let (code, stderr) = bridge.close();
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn a_restart_during_a_call_fails_that_call_only_and_the_bridge_goes_on() {
    let port = free_port();
    let env = TestEnv::with_config(&echo_config(port, ""));
    env.run_within(60, &["apply"]).success();
    let mut bridge = Bridge::open(&env, "echo");
    assert!(bridge.ask(&initialize(1))["result"].is_object());
    bridge.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    // A call in flight while the server is replaced: it fails, the bridge stays.
    let slow = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "sleep", "arguments": {"ms": 5000}}});
    bridge.send(&slow);
    crate::common::wait_for("the call to be in flight", 30, || {
        let logs = env.run(&["server", "logs", "echo", "-n", "50"]);
        if logs.stdout.contains("sleeping 5000 ms") {
            Ok(())
        } else {
            Err(logs.stdout)
        }
    });
    env.run_within(60, &["server", "restart", "echo"]).success();
    let failed = loop {
        let answer = bridge.next();
        if answer["id"] == 2 {
            break answer;
        }
    };
    assert!(failed.get("error").is_some(), "{failed}");
    let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "still here"}}});
    let answer = bridge.ask(&call);
    assert_eq!(
        answer["result"]["content"][0]["text"], "still here",
        "{answer}"
    );
    let (code, stderr) = bridge.close();
    assert_eq!(code, Some(0), "{stderr}");
}

/// From the attack: a client that exits closes both of connect's pipes at once; the
/// bridge ended its session and exits (it hung, its own borrow blocking its writer).
#[test]
fn issue28_connect_exits_when_its_client_closes_both_pipes() {
    let port = free_port();
    let env = TestEnv::with_config(&echo_config(port, ""));
    env.run_within(60, &["apply"]).success();
    let mut child = Command::new(bin())
        .args(["-f"])
        .arg(env.path().join("mcpctl.toml"))
        .args(["connect", "echo"])
        .env("XDG_CONFIG_HOME", env.path().join("xdg"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    writeln!(stdin, "{init}").unwrap();
    let mut answer = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut answer)
        .unwrap();
    assert!(answer.contains("\"result\""), "{answer}");
    // Both pipes closed (the reader end of stdout went with the BufReader).
    drop(stdin);
    let exited = wait_for("connect to exit", 20, || match child.try_wait() {
        Ok(Some(status)) => Ok(status),
        _ => Err("running".to_string()),
    });
    assert!(exited.success(), "{exited}");
    env.run_within(30, &["daemon", "stop"]).success();
}
