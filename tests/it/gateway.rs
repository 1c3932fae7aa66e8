//! The gateway's first slice: `/mcp` in front of a real stdio server, many sessions
//! over one child, and the status codes of bad requests.

use serde_json::json;

use crate::common::{TestEnv, echo_bin, free_port, http};

fn serve(port: u16) -> TestEnv {
    let env = TestEnv::with_config(&echo_config(port));
    env.run_within(60, &["apply"]).success();
    env
}

/// One `mcp-echo` server on `port`.
fn echo_config(port: u16) -> String {
    format!(
        "version = 1\n[servers.echo]\ncommand = \"{}\"\nport = {port}\n",
        echo_bin()
    )
}

fn post(port: u16, session: Option<&str>, body: &serde_json::Value) -> crate::common::HttpReply {
    let mut headers = vec![("MCP-Protocol-Version", "2025-06-18")];
    if let Some(s) = session {
        headers.push(("Mcp-Session-Id", s));
    }
    http(port, "POST", "/mcp", &headers, body.to_string().as_bytes())
}

pub(crate) fn initialize(port: u16) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let reply = http(port, "POST", "/mcp", &[], init.to_string().as_bytes());
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["result"]["protocolVersion"], "2025-06-18");
    assert_eq!(reply.json()["result"]["serverInfo"]["name"], "mcp-echo");
    let session = reply
        .header("mcp-session-id")
        .expect("a session id")
        .to_string();
    assert_eq!(session.len(), 32, "128 bits in hex");
    assert_eq!(
        post(
            port,
            Some(&session),
            &json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
        )
        .status,
        202
    );
    session
}

#[test]
fn a_stdio_server_answers_over_http_with_the_clients_own_ids() {
    let port = free_port();
    let env = serve(port);
    let session = initialize(port);
    let list = post(
        port,
        Some(&session),
        &json!({"jsonrpc": "2.0", "id": "list-1", "method": "tools/list"}),
    );
    assert_eq!(list.status, 200);
    assert_eq!(list.json()["id"], "list-1");
    assert!(list.body.contains("\"echo\""));
    let call = post(
        port,
        Some(&session),
        &json!({"jsonrpc": "2.0", "id": 42, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "hi there"}}}),
    );
    assert_eq!(call.json()["id"], 42);
    assert_eq!(call.json()["result"]["content"][0]["text"], "hi there");
    let ping = post(
        port,
        Some(&session),
        &json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
    );
    assert_eq!(ping.json()["result"], json!({}));
    env.run(&["server", "status", "echo"])
        .success()
        .stdout_has(&format!("http://127.0.0.1:{port}/sse"));
}

#[test]
fn sixteen_sessions_share_one_child_and_every_answer_reaches_its_asker() {
    let port = free_port();
    let _env = serve(port);
    let threads: Vec<_> = (0..16)
        .map(|s| {
            std::thread::spawn(move || {
                let session = initialize(port);
                for call in 0..25 {
                    let text = format!("session {s} call {call}");
                    // Every session uses the same ids: the gateway must keep them apart.
                    let body = json!({"jsonrpc": "2.0", "id": call, "method": "tools/call",
                        "params": {"name": "echo", "arguments": {"text": text}}});
                    let reply = post(port, Some(&session), &body);
                    assert_eq!(reply.json()["id"], call);
                    assert_eq!(reply.json()["result"]["content"][0]["text"], text);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a session failed");
    }
}

#[test]
fn bad_requests_get_the_right_status_and_others_keep_working() {
    let port = free_port();
    let _env = serve(port);
    let session = initialize(port);
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let foreign = http(
        port,
        "POST",
        "/mcp",
        &[
            ("Origin", "https://evil.example"),
            ("Mcp-Session-Id", &session),
        ],
        list.to_string().as_bytes(),
    );
    assert_eq!(foreign.status, 403);
    let rebound = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let body = list.to_string();
        write!(s, "POST /mcp HTTP/1.1\r\nHost: rebind.evil.example\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    assert!(rebound.starts_with("HTTP/1.1 403"), "{rebound}");
    assert_eq!(post(port, None, &list).status, 400);
    assert_eq!(
        post(port, Some("0123456789abcdef0123456789abcdef"), &list).status,
        404
    );
    let garbage = http(
        port,
        "POST",
        "/mcp",
        &[("Mcp-Session-Id", &session)],
        b"{not json",
    );
    assert_eq!(garbage.status, 400);
    assert_eq!(garbage.json()["error"]["code"], -32700);
    let huge = vec![b' '; 10 * 1024 * 1024];
    assert_eq!(
        http(port, "POST", "/mcp", &[("Mcp-Session-Id", &session)], &huge).status,
        413
    );
    let bad_version = http(
        port,
        "POST",
        "/mcp",
        &[
            ("Mcp-Session-Id", &session),
            ("MCP-Protocol-Version", "1999-01-01"),
        ],
        list.to_string().as_bytes(),
    );
    assert_eq!(bad_version.status, 400);
    assert_eq!(http(port, "GET", "/mcp", &[], b"").status, 400);
    // Still serving the good session.
    assert_eq!(post(port, Some(&session), &list).status, 200);
    assert_eq!(
        http(port, "DELETE", "/mcp", &[("Mcp-Session-Id", &session)], b"").status,
        204
    );
    assert_eq!(post(port, Some(&session), &list).status, 404);
}

#[test]
fn a_taken_port_fails_the_start_before_anything_runs() {
    let blocker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = blocker.local_addr().unwrap().port();
    let env = TestEnv::with_config(&format!(
        "version = 1\n[servers.echo]\ncommand = \"{}\"\nport = {port}\n",
        echo_bin()
    ));
    env.run_within(60, &["apply"])
        .failure()
        .stderr_has(&format!("echo: cannot serve on 127.0.0.1:{port}"));
    assert_eq!(env.server_status("echo")["status"], "not running");
}

/// rmcp's client, written by others, against our `/mcp`.
#[tokio::test]
async fn an_independent_mcp_client_initializes_lists_and_calls() {
    use rmcp::ServiceExt;
    use rmcp::model::CallToolRequestParams;
    use rmcp::transport::StreamableHttpClientTransport;

    let port = free_port();
    let _env = serve(port);
    let transport = StreamableHttpClientTransport::from_uri(format!("http://127.0.0.1:{port}/mcp"));
    let client = ().serve(transport).await.expect("initialize through the gateway");
    let info = client.peer_info().expect("server info");
    assert_eq!(
        info.server_info.as_ref().map(|i| i.name.as_str()),
        Some("mcp-echo")
    );
    let tools = client.list_all_tools().await.expect("tools/list");
    assert!(tools.iter().any(|t| t.name == "echo"), "{tools:?}");
    let args = json!({"text": "from rmcp"}).as_object().cloned().unwrap();
    let result = client
        .call_tool(CallToolRequestParams::new("echo").with_arguments(args))
        .await
        .expect("tools/call");
    let text = serde_json::to_value(&result.content).unwrap();
    assert_eq!(text[0]["text"], "from rmcp", "{text}");
    client.cancel().await.expect("clean close");
}

/// A minimal legacy-SSE client: GET /sse over a raw socket, de-chunked, split into events.
pub(crate) struct SseClient {
    reader: std::io::BufReader<std::net::TcpStream>,
    pending: String,
}

impl SseClient {
    pub(crate) fn connect(port: u16) -> Self {
        Self::open(port, "GET", "/sse", &[], "")
    }

    /// A POST to /mcp whose answer is expected as an event stream.
    pub(crate) fn post(port: u16, session: &str, body: &serde_json::Value) -> Self {
        Self::open(
            port,
            "POST",
            "/mcp",
            &[
                ("Mcp-Session-Id", session),
                ("Content-Type", "application/json"),
            ],
            &body.to_string(),
        )
    }

    pub(crate) fn open(
        port: u16,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Self {
        use std::io::{BufRead, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        write!(stream, "{request}\r\n{body}").unwrap();
        let mut reader = std::io::BufReader::new(stream);
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
        }
        Self {
            reader,
            pending: String::new(),
        }
    }

    /// The next `(event, data)`, skipping keep-alive comments.
    pub(crate) fn next(&mut self) -> (String, String) {
        self.next_within(std::time::Duration::from_secs(30))
            .expect("an event within 30 s")
    }

    /// The next `(event, data)` if one arrives within `wait` (zero: already there).
    pub(crate) fn next_within(&mut self, wait: std::time::Duration) -> Option<(String, String)> {
        use std::io::{BufRead, Read};
        let stream = self.reader.get_ref();
        stream.set_nonblocking(wait.is_zero()).unwrap();
        if !wait.is_zero() {
            stream.set_read_timeout(Some(wait)).unwrap();
        }
        loop {
            if let Some(end) = self.pending.find("\n\n") {
                let block: String = self.pending.drain(..end + 2).collect();
                let mut event = String::from("message");
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if !data.is_empty() {
                    return Some((event, data));
                }
                continue;
            }
            let mut size = String::new();
            match self.reader.read_line(&mut size) {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None;
                }
                Err(e) => panic!("reading the event stream: {e}"),
            }
            let size = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
            let mut chunk = vec![0; size + 2];
            self.reader.get_ref().set_nonblocking(false).unwrap();
            self.reader.read_exact(&mut chunk).unwrap();
            self.pending
                .push_str(&String::from_utf8_lossy(&chunk[..size]));
            // Servers may end lines with CRLF (uvicorn does).
            self.pending = self.pending.replace("\r\n", "\n");
        }
    }
}

#[test]
fn the_legacy_sse_transport_serves_a_session_beside_streamable_http() {
    let port = free_port();
    let _env = serve(port);
    let http_session = initialize(port);
    let mut sse = SseClient::connect(port);
    let (event, endpoint) = sse.next();
    assert_eq!(event, "endpoint");
    assert!(endpoint.starts_with("/messages?sessionId="), "{endpoint}");
    let send = |body: serde_json::Value| {
        http(port, "POST", &endpoint, &[], body.to_string().as_bytes()).status
    };
    let init = json!({"jsonrpc": "2.0", "id": "i", "method": "initialize",
        "params": {"protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "sse", "version": "1"}}});
    assert_eq!(send(init), 202);
    let (event, data) = sse.next();
    assert_eq!(event, "message");
    let reply: serde_json::Value = serde_json::from_str(&data).unwrap();
    assert_eq!(
        (
            reply["id"].as_str(),
            reply["result"]["protocolVersion"].as_str()
        ),
        (Some("i"), Some("2024-11-05"))
    );
    assert_eq!(
        send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})),
        202
    );
    assert_eq!(
        send(
            json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "over sse"}}})
        ),
        202
    );
    let reply: serde_json::Value = serde_json::from_str(&sse.next().1).unwrap();
    assert_eq!(reply["id"], 9);
    assert_eq!(reply["result"]["content"][0]["text"], "over sse");
    // The Streamable HTTP session is unaffected, and bad SSE posts are refused.
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    assert_eq!(post(port, Some(&http_session), &list).status, 200);
    assert_eq!(
        http(
            port,
            "POST",
            "/messages?sessionId=nope",
            &[],
            list.to_string().as_bytes()
        )
        .status,
        404
    );
    assert_eq!(
        http(port, "POST", "/messages", &[], list.to_string().as_bytes()).status,
        400
    );
    assert_eq!(http(port, "POST", &endpoint, &[], b"{broken").status, 400);
    // Closing the stream ends the session.
    drop(sse);
    crate::common::wait_for("the SSE session to end", 10, || {
        let status = http(port, "POST", &endpoint, &[], list.to_string().as_bytes()).status;
        if status == 404 {
            Ok(())
        } else {
            Err(status.to_string())
        }
    });
}

#[test]
fn a_legacy_post_is_acknowledged_after_a_fast_answer_and_before_a_slow_one() {
    let port = free_port();
    let env = TestEnv::with_config(&echo_config(port));
    // A hold far longer than a fast answer takes, however loaded the machine, and far
    // shorter than the slow call.
    let output = env
        .command(&["apply"])
        .env("MCPCTL_SSE_ACK_HOLD_MS", "1000")
        .output()
        .unwrap();
    crate::common::to_run(&["apply"], &output).success();
    let mut sse = SseClient::connect(port);
    let (_, endpoint) = sse.next();
    let send = |body: serde_json::Value| {
        http(port, "POST", &endpoint, &[], body.to_string().as_bytes()).status
    };
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "sse", "version": "1"}}});
    assert_eq!(send(init), 202);
    sse.next();
    let no_wait = std::time::Duration::ZERO;
    // A fast call: its answer is on the stream before the POST returns, so reading the
    // stream right after the 202 finds it without waiting.
    let echo = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "first"}}});
    assert_eq!(send(echo), 202);
    let (_, data) = sse
        .next_within(no_wait)
        .expect("the answer before the acknowledgement");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&data).unwrap()["id"],
        1
    );
    // A slow call is acknowledged long before its answer: a POST never waits for it.
    let sleep = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "sleep", "arguments": {"ms": 4000}}});
    assert_eq!(send(sleep), 202);
    assert_eq!(
        sse.next_within(no_wait),
        None,
        "acknowledged before the answer"
    );
    let (_, data) = sse.next();
    let reply: serde_json::Value = serde_json::from_str(&data).unwrap();
    assert_eq!(reply["id"], 2);
    assert!(
        reply["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("slept 4000 ms")
    );
}

fn whoami(port: u16, session: &str) -> serde_json::Value {
    post(port, Some(session), &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}})).json()
}

#[test]
fn a_pool_spreads_sessions_and_a_dying_instance_fails_only_its_own() {
    let port = free_port();
    let env = TestEnv::with_config(&format!(
        "version = 1\n[servers.pool]\ncommand = \"{}\"\nport = {port}\ninstances = 3\n",
        echo_bin()
    ));
    env.run_within(60, &["apply"])
        .success()
        .stdout_has("pool: instance 2 ready");
    let sessions: Vec<String> = (0..3).map(|_| initialize(port)).collect();
    let pids: Vec<String> = sessions
        .iter()
        .map(|s| {
            whoami(port, s)["result"]["content"][0]["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut distinct = pids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        3,
        "least-loaded placement puts one session on each instance: {pids:?}"
    );

    std::process::Command::new("kill")
        .args(["-9", &pids[0]])
        .status()
        .unwrap();
    let failed = crate::common::wait_for("the killed instance's session to fail", 20, || {
        let reply = whoami(port, &sessions[0]);
        if reply.get("error").is_some() {
            Ok(reply)
        } else {
            Err(reply.to_string())
        }
    });
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("initialize again"),
        "{failed}"
    );
    for (session, pid) in sessions.iter().zip(&pids).skip(1) {
        assert_eq!(
            whoami(port, session)["result"]["content"][0]["text"].as_str(),
            Some(pid.as_str())
        );
    }
    assert_eq!(
        post(
            port,
            Some(&sessions[0]),
            &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        )
        .status,
        404
    );
    let again = initialize(port);
    assert!(whoami(port, &again)["result"].is_object());
    crate::common::wait_for("the instance to be replaced by policy", 30, || {
        let s = env.server_status("pool");
        if s["restarts"] == 1 && s["instances_running"] == 3 {
            Ok(())
        } else {
            Err(s.to_string())
        }
    });
}

#[test]
fn a_bearer_token_guards_every_route_and_never_reaches_the_server() {
    let port = free_port();
    let env = TestEnv::new();
    env.run(&["init"]).success();
    let mut text = env.read("mcpctl.toml");
    text.push_str(&format!(
        "\n[servers.guarded]\ncommand = \"{}\"\nargs = [\"--print-env\", \"CLIENT_TOKEN\"]\nport = {port}\nauth = {{ bearer = \"CLIENT_TOKEN\" }}\n",
        echo_bin()
    ));
    env.write("mcpctl.toml", &text);
    // The secret must exist first: auth naming a missing secret is refused.
    env.run(&["validate"])
        .failure()
        .stderr_has("names secret `CLIENT_TOKEN`");
    env.set_secret("CLIENT_TOKEN", Some("guarded"), "s3cret-bearer-token")
        .success();
    env.run_within(60, &["apply"]).success();

    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
    .to_string();
    let none = http(port, "POST", "/mcp", &[], init.as_bytes());
    assert_eq!(none.status, 401);
    assert_eq!(
        none.header("www-authenticate"),
        Some("Bearer realm=\"mcpctl\"")
    );
    assert_eq!(
        http(
            port,
            "POST",
            "/mcp",
            &[("Authorization", "Bearer wrong")],
            init.as_bytes()
        )
        .status,
        401
    );
    assert_eq!(http(port, "GET", "/sse", &[], b"").status, 401);
    // Issue 13, 3: the scheme is case-insensitive (RFC 9110); the token is not.
    for scheme in ["bearer", "BEARER", "bEaReR"] {
        let value = format!("{scheme} s3cret-bearer-token");
        let reply = http(
            port,
            "POST",
            "/mcp",
            &[("Authorization", &value)],
            init.as_bytes(),
        );
        assert_eq!(reply.status, 200, "{value}: {}", reply.body);
    }
    for value in ["bearer S3CRET-BEARER-TOKEN", "Basic s3cret-bearer-token"] {
        let reply = http(
            port,
            "POST",
            "/mcp",
            &[("Authorization", value)],
            init.as_bytes(),
        );
        assert_eq!(reply.status, 401, "{value}");
    }
    let ok = http(
        port,
        "POST",
        "/mcp",
        &[("Authorization", "Bearer s3cret-bearer-token")],
        init.as_bytes(),
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    // A session id alone is no credential.
    let session = ok.header("mcp-session-id").unwrap().to_string();
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).to_string();
    assert_eq!(
        http(
            port,
            "POST",
            "/mcp",
            &[("Mcp-Session-Id", &session)],
            list.as_bytes()
        )
        .status,
        401
    );
    // The server never saw the clients' token.
    let log = crate::common::wait_for("the server's env line", 20, || {
        let log = std::fs::read_to_string(env.path().join(".mcpctl/logs/guarded-0.log"))
            .unwrap_or_default();
        if log.contains("CLIENT_TOKEN=") {
            Ok(log)
        } else {
            Err(log)
        }
    });
    assert!(log.contains("stderr CLIENT_TOKEN=\n"), "{log}");
}

fn initialize_with(port: u16, capabilities: serde_json::Value) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": capabilities, "clientInfo": {"name": "t", "version": "1"}}});
    let reply = http(port, "POST", "/mcp", &[], init.to_string().as_bytes());
    reply
        .header("mcp-session-id")
        .expect("a session")
        .to_string()
}

#[test]
fn a_sampling_request_reaches_only_the_session_whose_call_raised_it() {
    let port = free_port();
    let _env = serve(port);
    let run = |who: &'static str| {
        std::thread::spawn(move || {
            let session = initialize_with(port, json!({"sampling": {}}));
            let call = json!({"jsonrpc": "2.0", "id": format!("call-{who}"), "method": "tools/call",
                "params": {"name": "sample", "arguments": {"text": format!("prompt from {who}")}}});
            let mut stream = SseClient::post(port, &session, &call);
            let request: serde_json::Value = serde_json::from_str(&stream.next().1).unwrap();
            assert_eq!(request["method"], "sampling/createMessage");
            assert_eq!(
                request["params"]["messages"][0]["content"]["text"],
                format!("prompt from {who}")
            );
            let answer = json!({"jsonrpc": "2.0", "id": request["id"], "result": {"role": "assistant", "model": "m",
                "content": {"type": "text", "text": format!("{who} answered")}}});
            assert_eq!(post(port, Some(&session), &answer).status, 202);
            let result: serde_json::Value = serde_json::from_str(&stream.next().1).unwrap();
            assert_eq!(result["id"], format!("call-{who}"));
            assert_eq!(
                result["result"]["content"][0]["text"],
                format!("{who} answered")
            );
        })
    };
    let (a, b) = (run("alpha"), run("beta"));
    a.join().expect("alpha");
    b.join().expect("beta");

    // A client that cannot sample is not asked: the server gets a clean refusal.
    let plain = initialize(port);
    let call = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "sample", "arguments": {"text": "x"}}});
    let reply = post(port, Some(&plain), &call).json();
    assert!(
        reply["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("asking failed"),
        "{reply}"
    );
}

#[test]
fn another_session_cannot_answer_a_question_put_to_this_one() {
    let port = free_port();
    let _env = serve(port);
    let victim = initialize_with(port, json!({"sampling": {}}));
    let attacker = initialize(port);
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "sample", "arguments": {"text": "for the victim"}}});
    let mut stream = SseClient::post(port, &victim, &call);
    let request: serde_json::Value = serde_json::from_str(&stream.next().1).unwrap();
    assert_eq!(request["method"], "sampling/createMessage");
    // The attacker knows (or guesses) the id and answers first.
    let forged = json!({"jsonrpc": "2.0", "id": request["id"], "result": {"role": "assistant", "model": "m",
        "content": {"type": "text", "text": "forged"}}});
    post(port, Some(&attacker), &forged);
    let answer = json!({"jsonrpc": "2.0", "id": request["id"], "result": {"role": "assistant", "model": "m",
        "content": {"type": "text", "text": "the victim's own"}}});
    assert_eq!(post(port, Some(&victim), &answer).status, 202);
    let result: serde_json::Value = serde_json::from_str(&stream.next().1).unwrap();
    let text = result["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains("the victim's own"), "{result}");
    assert!(!text.contains("forged"), "{result}");
}

#[test]
fn progress_reaches_the_caller_with_its_own_token() {
    let port = free_port();
    let _env = serve(port);
    for token in [json!("tok-a"), json!(7)] {
        let session = initialize(port);
        let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "progress", "arguments": {"steps": 3}, "_meta": {"progressToken": token}}});
        let mut stream = SseClient::post(port, &session, &call);
        for step in 1..=3 {
            let note: serde_json::Value = serde_json::from_str(&stream.next().1).unwrap();
            assert_eq!(note["method"], "notifications/progress");
            assert_eq!(note["params"]["progressToken"], token);
            assert_eq!(note["params"]["progress"], step);
        }
        let result: serde_json::Value = serde_json::from_str(&stream.next().1).unwrap();
        assert_eq!(result["result"]["content"][0]["text"], "3 steps");
    }
}

#[test]
fn the_get_stream_carries_the_notifications_a_session_asked_for() {
    let port = free_port();
    let _env = serve(port);
    let listener = initialize(port);
    let set_level = json!({"jsonrpc": "2.0", "id": 1, "method": "logging/setLevel", "params": {"level": "warning"}});
    assert_eq!(
        post(port, Some(&listener), &set_level).json()["result"],
        json!({})
    );
    let mut stream = SseClient::open(port, "GET", "/mcp", &[("Mcp-Session-Id", &listener)], "");
    // Another session's calls make the child log: only what is severe enough arrives.
    let caller = initialize(port);
    for (level, text) in [("debug", "too chatty"), ("error", "disk on fire")] {
        let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "log", "arguments": {"level": level, "text": text}}});
        assert!(post(port, Some(&caller), &call).json()["result"].is_object());
    }
    let note: serde_json::Value = serde_json::from_str(&stream.next().1).unwrap();
    assert_eq!(note["method"], "notifications/message");
    assert_eq!(note["params"]["data"], "disk on fire");
    assert_eq!(
        http(port, "GET", "/mcp", &[("Mcp-Session-Id", "0000")], b"").status,
        404
    );
}

#[test]
fn a_cancelled_call_ends_with_a_cancellation_error() {
    let port = free_port();
    let _env = serve(port);
    let session = initialize(port);
    let slow = {
        let session = session.clone();
        std::thread::spawn(move || {
            let call = json!({"jsonrpc": "2.0", "id": "slow-1", "method": "tools/call", "params": {"name": "sleep", "arguments": {"ms": 2000}}});
            http(
                port,
                "POST",
                "/mcp",
                &[("Mcp-Session-Id", &session), ("Accept", "application/json")],
                call.to_string().as_bytes(),
            )
            .json()
        })
    };
    // Until the call is known upstream, a cancel is a no-op: repeat it (wait_for's
    // poll paces the repeats) until the call ends, well before its 2 s are up.
    let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "slow-1", "reason": "changed my mind"}});
    crate::common::wait_for("the cancelled call to end", 30, || {
        let status = post(port, Some(&session), &cancel).status;
        assert_eq!(status, 202);
        if slow.is_finished() {
            Ok(())
        } else {
            Err("the call still running".to_string())
        }
    });
    let reply = slow.join().unwrap();
    assert_eq!(reply["id"], "slow-1");
    assert_eq!(reply["error"]["code"], -32800, "{reply}");
    // The session goes on.
    let list = post(
        port,
        Some(&session),
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    );
    assert_eq!(list.status, 200);
}

#[test]
fn a_remote_server_is_proxied_with_injected_headers_and_never_the_clients_token() {
    let (upstream_port, port) = (free_port(), free_port());
    let env = TestEnv::new();
    let secret = |file: &str, key: &str, server: &str, value: &str| {
        env.run_with_stdin(
            &[
                "-f", file, "config", "secret", "set", key, "--server", server,
            ],
            value,
        )
        .success();
    };
    // Upstream: a stdio server behind its own gateway, which demands a token.
    env.run(&["-f", "up/mcpctl.toml", "init"]).success();
    let mut up = env.read("up/mcpctl.toml");
    up.push_str(&format!(
        "\n[servers.echo]\ncommand = \"{}\"\nport = {upstream_port}\n",
        echo_bin()
    ));
    env.write("up/mcpctl.toml", &up);
    secret(
        "up/mcpctl.toml",
        "UPSTREAM_TOKEN",
        "echo",
        "upstream-secret",
    );
    env.write(
        "up/mcpctl.toml",
        &(env.read("up/mcpctl.toml") + "auth = { bearer = \"UPSTREAM_TOKEN\" }\n"),
    );
    env.run_within(60, &["-f", "up/mcpctl.toml", "apply"])
        .success();

    // The remote server: proxied, with its own client token and the upstream's injected.
    env.run(&["-f", "gw/mcpctl.toml", "init"]).success();
    let mut gw = env.read("gw/mcpctl.toml");
    gw.push_str(&format!(
        "\n[servers.far]\nmode = \"remote\"\nurl = \"http://127.0.0.1:{upstream_port}/mcp\"\nport = {port}\n"
    ));
    env.write("gw/mcpctl.toml", &gw);
    secret("gw/mcpctl.toml", "UPSTREAM", "far", "upstream-secret");
    secret("gw/mcpctl.toml", "CLIENT", "far", "client-secret");
    env.write(
        "gw/mcpctl.toml",
        &(env.read("gw/mcpctl.toml") + "headers = { Authorization = \"Bearer ${UPSTREAM}\" }\nauth = { bearer = \"CLIENT\" }\n"),
    );
    env.run_within(60, &["-f", "gw/mcpctl.toml", "apply"])
        .success();

    let client_auth = [("Authorization", "Bearer client-secret")];
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let reply = http(
        port,
        "POST",
        "/mcp",
        &client_auth,
        init.to_string().as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let session = reply.header("mcp-session-id").unwrap().to_string();
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "far away"}}});
    let reply = http(
        port,
        "POST",
        "/mcp",
        &[client_auth[0], ("Mcp-Session-Id", &session)],
        call.to_string().as_bytes(),
    );
    assert_eq!(reply.json()["result"]["content"][0]["text"], "far away");
    // The proxy still guards its own door.
    assert_eq!(
        http(port, "POST", "/mcp", &[], init.to_string().as_bytes()).status,
        401
    );
    // Had the client's token been passed upstream, the upstream would have refused it.
    let direct = http(
        upstream_port,
        "POST",
        "/mcp",
        &client_auth,
        init.to_string().as_bytes(),
    );
    assert_eq!(direct.status, 401);
    for f in ["up/mcpctl.toml", "gw/mcpctl.toml"] {
        env.run_within(30, &["-f", f, "daemon", "stop"]).success();
    }
}

/// A config whose server `web` speaks Streamable HTTP itself: each instance another
/// mcpctl serving the echo fixture on the inner port it is given.
fn nested_gateways(port: u16, instances: u32) -> TestEnv {
    let env = TestEnv::new();
    let wrapper = crate::common::repo_root().join("bench/mcpctl-gateway.sh");
    env.write(
        "mcpctl.toml",
        &format!(
            "version = 1\n[servers.web]\ncommand = \"sh\"\nargs = [\"{}\", \"{{port}}\", \"{}\"]\ntransport = \"streamable-http\"\ninstances = {instances}\nport = {port}\nenv = {{ MCPCTL = \"{}\" }}\n",
            wrapper.display(),
            echo_bin(),
            crate::common::bin()
        ),
    );
    env
}

/// Issue 28: another local user called a local HTTP server's inner port on loopback,
/// around `auth`. Behind `auth` it now runs in a network namespace of its own: the
/// gateway reaches it (through its shim), nothing else on the machine does.
#[test]
fn r28_a_local_http_server_behind_auth_is_out_of_reach_of_every_other_process() {
    let port = free_port();
    let env = nested_gateways(port, 1);
    let web = env.read("mcpctl.toml").replace("version = 1\n", "");
    std::fs::remove_file(env.path().join("mcpctl.toml")).unwrap();
    env.run(&["init"]).success();
    env.write(
        "mcpctl.toml",
        &format!(
            "{}\n{web}auth = {{ bearer = \"CLIENT_TOKEN\" }}\n",
            env.read("mcpctl.toml")
        ),
    );
    env.set_secret("CLIENT_TOKEN", Some("web"), "s3cret-bearer-token")
        .success();
    env.run(&["plan"])
        .success()
        .stdout_has("network")
        .stdout_has("isolated");
    env.run_within(60, &["apply"])
        .success()
        .stdout_has("web: instance 0 ready");
    let bearer = [("Authorization", "Bearer s3cret-bearer-token")];
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let opened = http(port, "POST", "/mcp", &bearer, init.to_string().as_bytes());
    assert_eq!(opened.status, 200, "{}", opened.body);
    let session = opened.header("mcp-session-id").unwrap().to_string();
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "inside"}}});
    let reply = http(
        port,
        "POST",
        "/mcp",
        &[bearer[0], ("Mcp-Session-Id", &session)],
        call.to_string().as_bytes(),
    );
    assert_eq!(reply.json()["result"]["content"][0]["text"], "inside");
    // The inner port: what another local user would call without the bearer.
    let status = env.server_status("web");
    let inner = status["inner_ports"][0].as_u64().expect("an inner port") as u16;
    let direct = std::net::TcpStream::connect(("127.0.0.1", inner));
    assert!(
        direct.is_err(),
        "the inner port {inner} is reachable on the machine's loopback"
    );
    assert_eq!(status["network"], "isolated", "{status}");
    env.run_within(30, &["daemon", "stop"]).success();
}

/// In a network of its own, a server that binds every interface (as server-everything's
/// HTTP mode does) is as safe as one on loopback, so it runs.
#[test]
fn r28_an_isolated_http_server_may_bind_every_interface() {
    let port = free_port();
    let env = TestEnv::with_config(&format!(
        "{}network = \"isolated\"\n",
        crate::supervise::http_server(port, "0.0.0.0")
    ));
    env.run_within(60, &["apply"]).success();
    let status = env.server_status("web");
    assert_eq!(status["instances_running"], 1, "{status}");
    // Served through the gateway (python's http.server answers a GET of /mcp with 404).
    let through = http(port, "GET", "/mcp", &[], b"");
    assert_eq!(through.status, 404, "{}", through.body);
    env.run_within(30, &["daemon", "stop"]).success();
}

/// A local server that speaks Streamable HTTP itself (here: another mcpctl serving the
/// echo fixture on the port it is given) runs on an inner port behind the gateway.
#[test]
fn a_local_http_server_runs_on_an_inner_port_behind_the_gateway() {
    let port = free_port();
    let env = nested_gateways(port, 1);
    env.run_within(60, &["apply"])
        .success()
        .stdout_has("web: instance 0 ready");
    let session = initialize(port);
    let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "through two gateways"}}});
    assert_eq!(
        post(port, Some(&session), &call).json()["result"]["content"][0]["text"],
        "through two gateways"
    );
    env.run_within(30, &["daemon", "stop"]).success();
}

/// A pool of servers that speak HTTP: each instance on its own inner port, each new
/// session on the instance with the fewest, and kept there.
#[test]
fn a_pool_of_local_http_servers_pins_each_session_to_one_instance() {
    let port = free_port();
    let env = nested_gateways(port, 2);
    env.run_within(60, &["apply"])
        .success()
        .stdout_has("web: instance 1 ready");
    let pid_of = |session: &str| whoami(port, session)["result"]["content"][0]["text"].clone();
    let (a, b) = (initialize(port), initialize(port));
    let (pa, pb) = (pid_of(&a), pid_of(&b));
    assert_ne!(pa, pb, "two sessions, two instances");
    for _ in 0..3 {
        assert_eq!(pid_of(&a), pa, "a session stays on its instance");
        assert_eq!(pid_of(&b), pb);
    }
    env.run_within(30, &["daemon", "stop"]).success();
}

#[test]
fn per_session_sharing_gives_each_session_a_process_of_its_own() {
    let port = free_port();
    let env = TestEnv::with_config(&format!(
        "version = 1\n[servers.own]\ncommand = \"{}\"\nport = {port}\nsharing = \"per-session\"\n",
        echo_bin()
    ));
    env.run_within(60, &["apply"]).success();
    let pid_of = |session: &str| {
        whoami(port, session)["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .parse::<u32>()
            .unwrap()
    };
    let (a, b) = (initialize(port), initialize(port));
    let (pa, pb) = (pid_of(&a), pid_of(&b));
    assert_ne!(pa, pb, "two sessions, two processes");
    assert_eq!(pid_of(&a), pa, "a session stays on its process");
    // Status lists the sessions' own instances beside the standing one.
    let status: serde_json::Value =
        serde_json::from_str(&env.run(&["status", "--format", "json"]).stdout).unwrap();
    assert_eq!(status[0]["session_instances"], 2, "{status}");
    assert_eq!(status[0]["pids"].as_array().unwrap().len(), 3, "{status}");
    // Ending a session stops its process; the other goes on.
    assert_eq!(
        http(port, "DELETE", "/mcp", &[("Mcp-Session-Id", &a)], b"").status,
        204
    );
    crate::common::wait_for("the ended session's process to stop", 30, || {
        if crate::common::alive(pa) {
            Err(format!("{pa} alive"))
        } else {
            Ok(())
        }
    });
    assert_eq!(pid_of(&b), pb);
    let status: serde_json::Value =
        serde_json::from_str(&env.run(&["status", "--format", "json"]).stdout).unwrap();
    assert_eq!(status[0]["session_instances"], 1, "{status}");
}

#[test]
fn a_remote_server_that_cannot_be_reached_fails_its_start() {
    // Nothing listens there: no test is handed it again.
    let (closed, port) = (free_port(), free_port());
    let env = TestEnv::with_config(&format!(
        "version = 1\n[servers.gone]\nmode = \"remote\"\nurl = \"http://127.0.0.1:{closed}/mcp\"\nport = {port}\nrestart = \"never\"\n"
    ));
    env.run_within(60, &["apply"])
        .failure()
        .stderr_has(&format!(
            "gone: instance 0 failed to start: 127.0.0.1:{closed} unreachable"
        ));
}

#[test]
fn large_calls_in_flight_together_do_not_stall_the_child() {
    // The child answers one call before it reads the next. Requests and replies larger
    // than a pipe holds: a gateway that wrote every queued request before reading any
    // reply would wait on the child while the child waits on it.
    let port = free_port();
    let _env = serve(port);
    let threads: Vec<_> = (0..4)
        .map(|s| {
            std::thread::spawn(move || {
                let session = initialize(port);
                let text = format!("{s}").repeat(300_000);
                let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                    "params": {"name": "echo", "arguments": {"text": text}}});
                let reply = post(port, Some(&session), &body);
                assert_eq!(
                    reply.status,
                    200,
                    "{}",
                    &reply.body[..200.min(reply.body.len())]
                );
                assert!(reply.json()["result"]["content"][0]["text"] == text.as_str());
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a large call failed");
    }
}

#[test]
fn a_legacy_sse_endpoint_on_the_upstreams_address_is_rewritten_to_go_through_the_gateway() {
    use std::io::{BufRead, BufReader, Write};
    // A legacy SSE server that names its message URL absolutely (as some do).
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream_port = upstream.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in upstream.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(&stream);
                let mut line = String::new();
                // Readiness checks connect and hang up: nothing to answer.
                while reader.read_line(&mut line).unwrap_or(0) > 2 {
                    line.clear();
                }
                let mut stream = &stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n\
                     event: endpoint\ndata: http://127.0.0.1:{upstream_port}/messages?sessionId=abc\n\n\
                     event: message\ndata: {{\"seen\":\"http://127.0.0.1:{upstream_port}/kept\"}}\n\n"
                );
            });
        }
    });
    let port = free_port();
    let env = TestEnv::with_config(&format!(
        "version = 1\n[servers.old]\nmode = \"remote\"\nurl = \"http://127.0.0.1:{upstream_port}/sse\"\ntransport = \"sse\"\nport = {port}\n"
    ));
    env.run_within(60, &["apply"]).success();
    let reply = http(port, "GET", "/sse", &[], b"");
    assert_eq!(reply.status, 200, "{}", reply.body);
    // The body is chunked: take the chunks' contents.
    let mut events = String::new();
    let mut rest = reply.body.as_str();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || after.len() < size {
            break;
        }
        events.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    // The endpoint names a path on the gateway; later events pass as they came.
    assert_eq!(
        events,
        format!(
            "event: endpoint\ndata: /messages?sessionId=abc\n\n\
             event: message\ndata: {{\"seen\":\"http://127.0.0.1:{upstream_port}/kept\"}}\n\n"
        )
    );
}

/// Reads a raw HTTP response until its chunked body ends (or the connection closes),
/// for at most `secs`; `None` when it is still open by then.
fn read_to_end_of_stream(stream: &mut std::net::TcpStream, secs: u64) -> Option<Vec<u8>> {
    use std::io::Read;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    stream
        .set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = vec![0; 1 << 16];
    while std::time::Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return Some(seen),
            Ok(n) => {
                seen.extend_from_slice(&buf[..n]);
                if seen.ends_with(b"\r\n0\r\n\r\n") {
                    return Some(seen);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(seen),
        }
    }
    None
}

/// A legacy SSE session whose client reads its stream only as far as the endpoint
/// event, and never again: the connection and the endpoint to POST to.
pub(crate) fn stalled_sse_session(port: u16) -> (std::net::TcpStream, String) {
    use std::io::{Read, Write};
    let mut stalled = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stalled,
        "GET /sse HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !String::from_utf8_lossy(&head).contains("sessionId=") || !head.ends_with(b"\n\n") {
        stalled.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let at = text.find("/messages?sessionId=").unwrap();
    let endpoint = text[at..].lines().next().unwrap().trim().to_string();
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "stalled", "version": "1"}}});
    assert_eq!(
        http(port, "POST", &endpoint, &[], init.to_string().as_bytes()).status,
        202
    );
    (stalled, endpoint)
}

/// Reads what the server sent until it closes the connection (EOF or reset), for at
/// most `secs`: whether it did. The end of a chunked body does not count.
pub(crate) fn closed_by_server(stream: &mut std::net::TcpStream, secs: u64) -> bool {
    use std::io::Read;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    stream
        .set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .unwrap();
    let mut buf = vec![0; 1 << 16];
    while std::time::Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

/// Issue 28, 1: a client that never reads its `/sse` stream while its calls return
/// megabytes is cut off by the bytes queued for it, not after 256 answers: the
/// daemon stays small, the session ends, the server hangs up on the connection, and
/// another client is served throughout.
#[test]
fn issue_28_a_client_that_never_reads_big_answers_is_hung_up_on_and_memory_stays_bounded() {
    let port = free_port();
    let env = TestEnv::with_config(&echo_config(port));
    // Idle connections are closed after this long anyway: far longer than the test
    // waits for the hang-up.
    let output = env
        .command(&["apply"])
        .env("MCPCTL_HEADER_TIMEOUT_MS", "300000")
        .output()
        .unwrap();
    crate::common::to_run(&["apply"], &output).success();
    let daemon = env.daemon_pid();
    let other = initialize(port);
    let served = |n: usize| {
        let body = json!({"jsonrpc": "2.0", "id": n, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": format!("other {n}")}}});
        let reply = post(port, Some(&other), &body);
        assert_eq!(
            reply.json()["result"]["content"][0]["text"],
            format!("other {n}")
        );
    };
    let (mut stalled, endpoint) = stalled_sse_session(port);
    // 3 MB answers: what 256 of them would take is gigabytes.
    let mut peak_kib = 0;
    let mut ended_after = None;
    for call in 1..=200 {
        let big = json!({"jsonrpc": "2.0", "id": call, "method": "tools/call",
            "params": {"name": "flood", "arguments": {"reply": 3_000_000}}});
        let status = http(port, "POST", &endpoint, &[], big.to_string().as_bytes()).status;
        peak_kib = peak_kib.max(crate::common::rss_kib(daemon));
        if status == 404 {
            ended_after = Some(call);
            break;
        }
        assert_eq!(status, 202, "call {call}");
        if call % 5 == 0 {
            served(call);
        }
    }
    peak_kib = peak_kib.max(crate::common::rss_kib(daemon));
    assert!(
        peak_kib < 300 * 1024,
        "the daemon grew to {peak_kib} KiB (session ended after {ended_after:?} calls)"
    );
    assert!(
        ended_after.is_some(),
        "the stalled session did not end within 200 calls"
    );
    assert!(
        closed_by_server(&mut stalled, 30),
        "the server kept the stalled client's connection open"
    );
    served(1000);
}

/// Issue 28, 1: a legacy session has at most 16 calls in flight; the next `POST
/// /messages` request is acknowledged only when one of them ends. Answers and
/// notifications never wait (the cancel below, an answer to a question).
#[test]
fn issue_28_a_seventeenth_call_in_flight_waits_for_a_slot_before_its_acknowledgement() {
    use std::io::{Read, Write};
    let port = free_port();
    let _env = serve(port);
    let mut sse = SseClient::connect(port);
    let (_, endpoint) = sse.next();
    let send = |body: serde_json::Value| {
        http(port, "POST", &endpoint, &[], body.to_string().as_bytes()).status
    };
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "sse", "version": "1"}}});
    assert_eq!(send(init), 202);
    sse.next();
    // The child sleeps through one call at a time: sixteen calls that will not end
    // unless cancelled.
    for call in 1..=16 {
        let sleep = json!({"jsonrpc": "2.0", "id": call, "method": "tools/call",
            "params": {"name": "sleep", "arguments": {"ms": 600_000}}});
        assert_eq!(send(sleep), 202, "call {call}");
    }
    let seventeenth = json!({"jsonrpc": "2.0", "id": 17, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "seventeenth"}}})
    .to_string();
    let mut waiting = crate::common::connect(port);
    write!(
        waiting,
        "POST {endpoint} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{seventeenth}",
        seventeenth.len()
    )
    .unwrap();
    // Not acknowledged while the sixteen are in flight (a 202 would come in a
    // millisecond).
    waiting
        .set_read_timeout(Some(std::time::Duration::from_secs(1)))
        .unwrap();
    let mut byte = [0u8; 1];
    let early = waiting.read(&mut byte);
    assert!(
        matches!(&early, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "acknowledged with sixteen calls in flight: {early:?}"
    );
    // An answer (to no question) and a notification go through at once.
    assert_eq!(
        send(json!({"jsonrpc": "2.0", "id": "no-such-question", "result": {}})),
        202
    );
    let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": 1, "reason": "make room"}});
    // Call 1 ends (a cancel that came before the call reached the child is a no-op:
    // repeated), and its slot goes to the seventeenth.
    let (_, data) = crate::common::wait_for("call 1 to end", 30, || {
        assert_eq!(send(cancel.clone()), 202);
        sse.next_within(std::time::Duration::from_secs(1))
            .ok_or_else(|| "no answer yet".to_string())
    });
    let ended: serde_json::Value = serde_json::from_str(&data).unwrap();
    assert_eq!(
        (ended["id"].clone(), ended["error"]["code"].clone()),
        (json!(1), json!(-32800))
    );
    waiting
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut reply = Vec::new();
    let _ = waiting.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 202"), "{reply}");
}

/// Issue 13, 1: a client that stops reading its stream while the child floods it is
/// disconnected (its stream ends, its session is gone); the child and the other
/// sessions go on.
#[test]
fn a_client_that_stops_reading_is_disconnected_and_the_others_go_on() {
    let port = free_port();
    let _env = serve(port);
    let (mut stalled, endpoint) = stalled_sse_session(port);
    // Far more progress than the kernel's socket buffers and the gateway's queue hold.
    let steps = 300_000;
    let flood = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "progress", "arguments": {"steps": steps}, "_meta": {"progressToken": "p"}}});
    assert_eq!(
        http(port, "POST", &endpoint, &[], flood.to_string().as_bytes()).status,
        202
    );
    // Meanwhile another session's calls are answered.
    let other = std::thread::spawn(move || {
        let session = initialize(port);
        for call in 0..5 {
            let body = json!({"jsonrpc": "2.0", "id": call, "method": "tools/call",
                "params": {"name": "echo", "arguments": {"text": format!("call {call}")}}});
            let reply = post(port, Some(&session), &body);
            assert_eq!(
                reply.json()["result"]["content"][0]["text"],
                format!("call {call}")
            );
        }
    });
    crate::common::wait_for("the other session's calls to finish", 60, || {
        if other.is_finished() {
            Ok(())
        } else {
            Err("still waiting".to_string())
        }
    });
    other.join().expect("the other session failed");
    // The stalled client's stream has ended, short of the flood, and its session is gone.
    let seen = read_to_end_of_stream(&mut stalled, 60).expect("the stalled stream to end");
    let progress = String::from_utf8_lossy(&seen)
        .matches("notifications/progress")
        .count();
    assert!(progress < steps, "all {progress} progress events arrived");
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    assert_eq!(
        http(port, "POST", &endpoint, &[], list.to_string().as_bytes()).status,
        404
    );
}

/// Issue 13, 2: a body that is neither request, notification nor response is refused.
#[test]
fn a_message_that_is_no_json_rpc_message_is_an_invalid_request() {
    let port = free_port();
    let _env = serve(port);
    let session = initialize(port);
    let mut sse = SseClient::connect(port);
    let (_, endpoint) = sse.next();
    for body in [
        r#"{"jsonrpc":"2.0"}"#,
        r#"{"method":42}"#,
        r#"{"jsonrpc":"2.0","method":42,"id":1}"#,
        r#"{"jsonrpc":"2.0","id":1}"#,
        r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
        r#"{"id":1,"method":"ping"}"#,
    ] {
        for (path, headers) in [
            ("/mcp", vec![("Mcp-Session-Id", session.as_str())]),
            ("/mcp", vec![]),
            (endpoint.as_str(), vec![]),
        ] {
            let reply = http(port, "POST", path, &headers, body.as_bytes());
            assert_eq!(reply.status, 400, "{path} {body}: {}", reply.body);
            assert_eq!(reply.json()["error"]["code"], -32600, "{path} {body}");
        }
    }
    // Both sessions go on.
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    assert_eq!(post(port, Some(&session), &ping).status, 200);
    assert_eq!(
        http(port, "POST", &endpoint, &[], ping.to_string().as_bytes()).status,
        202
    );
    assert!(sse.next().1.contains("\"result\""));
}

/// Issue 13, 4: every id comes back exactly as the client wrote it, whichever path
/// answers it (the gateway, the child as JSON, the child on a stream, `/sse`).
#[test]
fn ids_of_every_json_type_come_back_exactly_as_sent() {
    let port = free_port();
    let _env = serve(port);
    let session = initialize(port);
    let mut sse = SseClient::connect(port);
    let (_, endpoint) = sse.next();
    let ids = [
        r#""an id""#,
        "7",
        "-3",
        "18446744073709551616",
        "-18446744073709551617",
        "1.5",
        "1e2",
        "0.30000000000000000001",
    ];
    let has_id = |text: &str, id: &str| text.contains(&format!("\"id\":{id}"));
    for id in ids {
        let ping = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
        let call = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"x"}}}}}}"#
        );
        let streamed = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"progress","arguments":{{"steps":1}},"_meta":{{"progressToken":1}}}}}}"#
        );
        for body in [&ping, &call] {
            let reply = http(
                port,
                "POST",
                "/mcp",
                &[("Mcp-Session-Id", &session)],
                body.as_bytes(),
            );
            assert_eq!(reply.status, 200, "{body}");
            assert!(has_id(&reply.body, id), "{id}: {}", reply.body);
        }
        let reply = http(
            port,
            "POST",
            "/mcp",
            &[("Mcp-Session-Id", &session)],
            streamed.as_bytes(),
        );
        assert!(
            reply.body.contains("notifications/progress"),
            "{}",
            reply.body
        );
        assert!(has_id(&reply.body, id), "{id}: {}", reply.body);
        for body in [&ping, &call] {
            assert_eq!(
                http(port, "POST", &endpoint, &[], body.as_bytes()).status,
                202
            );
            let (_, data) = sse.next();
            assert!(has_id(&data, id), "{id}: {data}");
        }
    }
    // A request's id may not be null (nor anything but a string or number).
    for id in ["null", "true", "{}"] {
        let ping = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
        let reply = http(
            port,
            "POST",
            "/mcp",
            &[("Mcp-Session-Id", &session)],
            ping.as_bytes(),
        );
        assert_eq!(reply.status, 400, "{id}");
        assert_eq!(reply.json()["id"], serde_json::Value::Null);
    }
}

/// Issue 13, 5: live sessions are capped per server (`max_sessions`): at the cap a new
/// session evicts the longest-idle one without an open stream, and when every one has
/// a stream a new one gets 503 with `Retry-After`.
#[test]
fn sessions_beyond_max_sessions_evict_the_longest_idle_or_get_503() {
    let port = free_port();
    let env = TestEnv::with_config(&(echo_config(port) + "max_sessions = 3\n"));
    env.run_within(60, &["apply"]).success();
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let (oldest, idle, recent) = (initialize(port), initialize(port), initialize(port));
    // The oldest has an open stream: it stays however idle it is.
    let mut stream = SseClient::open(port, "GET", "/mcp", &[("Mcp-Session-Id", &oldest)], "");
    assert_eq!(post(port, Some(&recent), &list).status, 200);
    let fourth = initialize(port);
    assert_eq!(
        post(port, Some(&idle), &list).status,
        404,
        "the longest idle goes"
    );
    for kept in [&oldest, &recent, &fourth] {
        assert_eq!(post(port, Some(kept), &list).status, 200);
    }
    // Every session with a stream: no room.
    let _streams: Vec<_> = [&recent, &fourth]
        .into_iter()
        .map(|s| SseClient::open(port, "GET", "/mcp", &[("Mcp-Session-Id", s)], ""))
        .collect();
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    // Streams register as their GET is answered: wait until all three are counted.
    let full = crate::common::wait_for("a full gateway to refuse a session", 10, || {
        let reply = http(port, "POST", "/mcp", &[], init.to_string().as_bytes());
        if reply.status == 503 {
            Ok(reply)
        } else {
            Err(reply.status.to_string())
        }
    });
    assert_eq!(full.header("retry-after"), Some("5"));
    assert_eq!(full.json()["id"], 0);
    assert_eq!(http(port, "GET", "/sse", &[], b"").status, 503);
    // A stream that closes makes its session evictable again.
    drop(stream.next_within(std::time::Duration::ZERO));
    drop(stream);
    crate::common::wait_for("room for a session", 10, || {
        let reply = http(port, "POST", "/mcp", &[], init.to_string().as_bytes());
        if reply.status == 200 {
            Ok(())
        } else {
            Err(reply.status.to_string())
        }
    });
    assert_eq!(post(port, Some(&oldest), &list).status, 404);
}

#[test]
fn a_session_waiting_for_an_answer_is_not_the_one_evicted() {
    let port = free_port();
    let env = TestEnv::with_config(&(echo_config(port) + "max_sessions = 2\n"));
    env.run_within(60, &["apply"]).success();
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let (busy, other) = (initialize(port), initialize(port));
    let busy_call = busy.clone();
    let call = std::thread::spawn(move || {
        let sleep = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "sleep", "arguments": {"ms": 1500}}});
        post(port, Some(&busy_call), &sleep).json()
    });
    crate::common::wait_for("the call to be in flight", 30, || {
        let logs = env.run(&["server", "logs", "echo", "-n", "100"]);
        if logs.stdout.contains("sleeping 1500 ms") {
            Ok(())
        } else {
            Err(logs.stdout)
        }
    });
    // `other` was seen after `busy` (a ping, which the gateway answers itself while the
    // one-at-a-time child sleeps), but `busy` is waiting for its answer.
    let ping = json!({"jsonrpc": "2.0", "id": 3, "method": "ping"});
    assert_eq!(post(port, Some(&other), &ping).status, 200);
    let _third = initialize(port);
    let answer = call.join().unwrap();
    assert!(
        answer["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("slept 1500 ms")),
        "{answer}"
    );
    assert_eq!(post(port, Some(&busy), &list).status, 200);
    assert_eq!(post(port, Some(&other), &list).status, 404);
}

#[test]
fn a_client_sitting_on_a_question_does_not_stall_the_calls_of_other_clients() {
    let port = free_port();
    let env = TestEnv::with_config(&(echo_config(port) + "call_timeout = \"10m\"\n"));
    env.run_within(60, &["apply"]).success();
    let sitting = initialize_with(port, json!({"sampling": {}}));
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "sample", "arguments": {"text": "never answered"}}});
    let mut stream = SseClient::post(port, &sitting, &call);
    let request: serde_json::Value = serde_json::from_str(&stream.next().1).unwrap();
    assert_eq!(request["method"], "sampling/createMessage");
    // Another client that could be asked too: its call is answered (it waits for the
    // turn to be asked a moment, then runs as one that cannot be).
    let other = initialize_with(port, json!({"sampling": {}}));
    let echo = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "not stalled"}}});
    let reply = post(port, Some(&other), &echo).json();
    assert_eq!(
        reply["result"]["content"][0]["text"], "not stalled",
        "{reply}"
    );
    // The first question is still open, and still its client's to answer.
    let answer = json!({"jsonrpc": "2.0", "id": request["id"], "result": {"role": "assistant", "model": "m",
        "content": {"type": "text", "text": "late but mine"}}});
    assert_eq!(post(port, Some(&sitting), &answer).status, 202);
    let result: serde_json::Value = serde_json::from_str(&stream.next().1).unwrap();
    assert!(result.to_string().contains("late but mine"), "{result}");
}
