//! 2026-07-28 clients and children through the gateway, and the bridge between the
//! eras: raw HTTP for every status of the request ladder, `input_required` both ways.

use serde_json::{Value, json};

use crate::common::{HttpReply, TestEnv, echo_bin, free_port, http};
use crate::gateway::SseClient;

const MODERN: &str = "2026-07-28";

fn serve(port: u16, extra: &str) -> TestEnv {
    let env = TestEnv::with_config(&format!(
        "version = 1\n[servers.echo]\ncommand = \"{}\"\nport = {port}\n{extra}",
        echo_bin()
    ));
    env.run_within(60, &["apply"]).success();
    env
}

fn envelope(capabilities: Value) -> Value {
    json!({"io.modelcontextprotocol/protocolVersion": MODERN,
           "io.modelcontextprotocol/clientCapabilities": capabilities,
           "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"}})
}

fn request(id: impl Into<Value>, method: &str, mut params: Value, capabilities: Value) -> Value {
    params["_meta"] = envelope(capabilities);
    json!({"jsonrpc": "2.0", "id": id.into(), "method": method, "params": params})
}

/// The routing headers a well-behaved modern client mirrors from its body.
fn routing(body: &Value) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        ("MCP-Protocol-Version", MODERN.to_string()),
        (
            "Mcp-Method",
            body["method"].as_str().unwrap_or("").to_string(),
        ),
    ];
    if let Some(name) = body["params"]["name"].as_str() {
        headers.push(("Mcp-Name", name.to_string()));
    }
    headers
}

fn send(port: u16, headers: &[(&str, String)], body: &Value) -> HttpReply {
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    http(port, "POST", "/mcp", &headers, body.to_string().as_bytes())
}

fn call(port: u16, body: &Value) -> HttpReply {
    send(port, &routing(body), body)
}

/// A modern `echo` call answers `text`: the gateway and the child still serve.
fn assert_echoes(port: u16, text: &str) {
    let echo = request(
        99,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": text}}),
        json!({}),
    );
    assert_eq!(
        call(port, &echo).json()["result"]["content"][0]["text"],
        text
    );
}

fn error_code(reply: &HttpReply) -> i64 {
    reply.json()["error"]["code"].as_i64().unwrap_or_default()
}

#[test]
fn every_status_of_the_modern_request_ladder() {
    let port = free_port();
    let env = serve(port, "");
    let status: Value =
        serde_json::from_str(&env.run(&["status", "--format", "json"]).stdout).unwrap();
    assert_eq!(status[0]["protocol"], "2025-11-25", "{status}");
    let list = request(1, "tools/list", json!({}), json!({}));

    let ok = call(port, &list);
    assert_eq!(ok.status, 200, "{}", ok.body);
    let result = &ok.json()["result"];
    assert!(result["tools"].as_array().is_some_and(|t| !t.is_empty()));
    assert_eq!(result["resultType"], "complete");
    assert_eq!(result["cacheScope"], "private");
    assert_eq!(result["ttlMs"], 0);
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "mcp-echo"
    );
    assert!(
        ok.header("mcp-session-id").is_none(),
        "no session for a modern client"
    );

    // A legacy session id is ignored, never echoed.
    let mut with_session = routing(&list);
    with_session.push(("Mcp-Session-Id", "bogus".to_string()));
    let ignored = send(port, &with_session, &list);
    assert_eq!(ignored.status, 200, "{}", ignored.body);
    assert!(ignored.header("mcp-session-id").is_none());

    let discover = call(port, &request(2, "server/discover", json!({}), json!({})));
    assert_eq!(discover.status, 200, "{}", discover.body);
    let found = &discover.json()["result"];
    assert_eq!(found["supportedVersions"], json!([MODERN]));
    assert_eq!(found["cacheScope"], "private");
    assert!(found["ttlMs"].is_number());
    assert_eq!(
        found["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "mcp-echo"
    );
    assert!(found["capabilities"]["tools"].is_object());

    let echo = request(
        3,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "hi"}}),
        json!({}),
    );
    let echoed = call(port, &echo);
    assert_eq!(
        echoed.json()["result"]["content"][0]["text"],
        "hi",
        "{}",
        echoed.body
    );
    assert_eq!(echoed.json()["id"], 3);

    // -32020: each routing header must match the body.
    let mut wrong_method = routing(&list);
    wrong_method[1].1 = "tools/call".into();
    let mismatch = send(port, &wrong_method, &list);
    assert_eq!(
        (mismatch.status, error_code(&mismatch)),
        (400, -32020),
        "{}",
        mismatch.body
    );
    let missing = send(port, &routing(&list)[..1], &list);
    assert_eq!((missing.status, error_code(&missing)), (400, -32020));
    let mut wrong_name = routing(&echo);
    wrong_name[2].1 = "other".into();
    let renamed = send(port, &wrong_name, &echo);
    assert_eq!((renamed.status, error_code(&renamed)), (400, -32020));
    let mut wrong_version = routing(&list);
    wrong_version.push(("X-Ignored", String::new()));
    wrong_version[0].1 = "2025-11-25".into();
    let disagrees = send(port, &wrong_version, &list);
    assert_eq!((disagrees.status, error_code(&disagrees)), (400, -32020));

    // -32602: the envelope is required.
    let mut bare = list.clone();
    bare["params"]["_meta"]
        .as_object_mut()
        .unwrap()
        .remove("io.modelcontextprotocol/clientCapabilities");
    let unenveloped = call(port, &bare);
    assert_eq!(
        (unenveloped.status, error_code(&unenveloped)),
        (400, -32602)
    );

    // -32022: an unknown version, answered with every version of both eras.
    let mut future = list.clone();
    future["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("2099-01-01");
    let mut future_headers = routing(&future);
    future_headers[0].1 = "2099-01-01".into();
    let unsupported = send(port, &future_headers, &future);
    assert_eq!(
        (unsupported.status, error_code(&unsupported)),
        (400, -32022)
    );
    let supported = &unsupported.json()["error"]["data"]["supported"];
    for version in [MODERN, "2025-11-25", "2025-06-18"] {
        assert!(
            supported.as_array().unwrap().contains(&json!(version)),
            "{supported}"
        );
    }
    let plain = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"});
    let unknown_header = send(
        port,
        &[("MCP-Protocol-Version", "1999-01-01".into())],
        &plain,
    );
    assert_eq!(
        (unknown_header.status, error_code(&unknown_header)),
        (400, -32022)
    );

    // 404 with -32601: methods 2026-07-28 does not have.
    for method in ["initialize", "ping", "no/such"] {
        let gone = call(port, &request(4, method, json!({}), json!({})));
        assert_eq!(
            (gone.status, error_code(&gone)),
            (404, -32601),
            "{method}: {}",
            gone.body
        );
    }

    // 405: no stream to GET, no session to DELETE.
    for verb in ["GET", "DELETE"] {
        let refused = http(port, verb, "/mcp", &[("MCP-Protocol-Version", MODERN)], b"");
        assert_eq!(refused.status, 405, "{verb}: {}", refused.body);
        assert_eq!(refused.header("allow"), Some("POST"));
    }

    // 403: a page from elsewhere, whatever the era.
    let mut foreign = routing(&list);
    foreign.push(("Origin", "https://evil.example".to_string()));
    assert_eq!(send(port, &foreign, &list).status, 403);

    // A notification is accepted with nothing to say.
    let note = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                      "params": {"requestId": 1, "_meta": envelope(json!({}))}});
    assert_eq!(call(port, &note).status, 202);

    // Legacy clients keep working beside them.
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let legacy = http(port, "POST", "/mcp", &[], init.to_string().as_bytes());
    assert_eq!(legacy.status, 200);
    assert!(legacy.header("mcp-session-id").is_some());
}

fn confirm(id: u64, text: &str) -> Value {
    request(
        id,
        "tools/call",
        json!({"name": "confirm", "arguments": {"text": text}}),
        json!({"elicitation": {}}),
    )
}

fn retry(id: u64, text: &str, state: &Value, answer: Value) -> Value {
    let mut again = confirm(id, text);
    again["params"]["requestState"] = state.clone();
    again["params"]["inputResponses"] = answer;
    again
}

#[test]
fn a_legacy_childs_elicitation_completes_for_a_modern_client_through_input_required() {
    let port = free_port();
    let _env = serve(port, "");
    let asked = call(port, &confirm(1, "deploy"));
    assert_eq!(asked.status, 200, "{}", asked.body);
    let result = asked.json()["result"].clone();
    assert_eq!(result["resultType"], "input_required", "{result}");
    let (key, input) = result["inputRequests"]
        .as_object()
        .and_then(|r| r.iter().next())
        .map(|(k, v)| (k.clone(), v.clone()))
        .expect("one input request");
    assert_eq!(input["method"], "elicitation/create");
    assert_eq!(input["params"]["message"], "Confirm deploy?");
    let state = result["requestState"].clone();

    // A forged state, or one bound to another call, is refused and changes nothing.
    let forged = json!(format!("{}x", state.as_str().unwrap()));
    let refused = call(
        port,
        &retry(
            2,
            "deploy",
            &forged,
            json!({key.clone(): {"action": "accept"}}),
        ),
    );
    assert_eq!(
        (refused.status, error_code(&refused)),
        (400, -32602),
        "{}",
        refused.body
    );
    let mut elsewhere = retry(
        3,
        "deploy",
        &state,
        json!({key.clone(): {"action": "accept"}}),
    );
    elsewhere["params"]["name"] = json!("echo");
    let misused = call(port, &elsewhere);
    assert_eq!(
        (misused.status, error_code(&misused)),
        (400, -32602),
        "{}",
        misused.body
    );

    let answer = json!({key.clone(): {"action": "accept", "content": {"yes": true}}});
    let done = call(port, &retry(4, "deploy", &state, answer.clone()));
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.json()["id"], 4);
    assert_eq!(done.json()["result"]["resultType"], "complete");
    assert_eq!(
        done.json()["result"]["content"][0]["text"],
        "accept {\"yes\":true}"
    );

    // A state is good for one retry.
    let replayed = call(port, &retry(5, "deploy", &state, answer));
    assert_eq!(
        (replayed.status, error_code(&replayed)),
        (400, -32602),
        "{}",
        replayed.body
    );

    // The child is free again for everyone.
    assert_echoes(port, "after");
}

#[test]
fn a_modern_childs_input_required_reaches_a_legacy_client_as_a_server_request() {
    let port = free_port();
    let _env = serve(port, "args = [\"--modern\"]\n");
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {"elicitation": {}}, "clientInfo": {"name": "t", "version": "1"}}});
    let opened = http(port, "POST", "/mcp", &[], init.to_string().as_bytes());
    assert_eq!(opened.status, 200, "{}", opened.body);
    assert_eq!(
        opened.json()["result"]["serverInfo"]["name"],
        "mcp-echo-modern"
    );
    assert!(opened.json()["result"]["capabilities"]["tools"].is_object());
    let session = opened.header("mcp-session-id").unwrap().to_string();
    let headers = [
        ("Mcp-Session-Id", session.as_str()),
        ("MCP-Protocol-Version", "2025-11-25"),
    ];

    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let listed = http(port, "POST", "/mcp", &headers, list.to_string().as_bytes()).json();
    assert!(listed["result"]["tools"].is_array(), "{listed}");
    assert!(
        listed["result"].get("resultType").is_none(),
        "legacy clients get legacy results"
    );
    assert!(listed["result"].get("ttlMs").is_none());

    let call = json!({"jsonrpc": "2.0", "id": "c1", "method": "tools/call",
                      "params": {"name": "confirm", "arguments": {"text": "merge"}}});
    let mut stream = SseClient::post(port, &session, &call);
    let question: Value = serde_json::from_str(&stream.next().1).unwrap();
    assert_eq!(question["method"], "elicitation/create", "{question}");
    assert_eq!(question["params"]["message"], "Confirm merge?");
    let answer = json!({"jsonrpc": "2.0", "id": question["id"],
                        "result": {"action": "accept", "content": {"yes": true}}});
    let accepted = http(
        port,
        "POST",
        "/mcp",
        &headers,
        answer.to_string().as_bytes(),
    );
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    let response: Value = serde_json::from_str(&stream.next().1).unwrap();
    assert_eq!(response["id"], "c1");
    assert_eq!(
        response["result"]["content"][0]["text"], "accept {\"yes\":true}",
        "{response}"
    );
    assert!(response["result"].get("resultType").is_none());
}

#[test]
fn a_modern_childs_input_required_passes_verbatim_to_a_modern_client() {
    let port = free_port();
    let env = serve(port, "args = [\"--modern\"]\n");
    // The era probe found a 2026-07-28 child, and status says so.
    let status: Value =
        serde_json::from_str(&env.run(&["status", "--format", "json"]).stdout).unwrap();
    assert_eq!(status[0]["protocol"], MODERN, "{status}");
    let discover = call(port, &request(1, "server/discover", json!({}), json!({})));
    assert_eq!(
        discover.json()["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "mcp-echo-modern"
    );
    let asked = call(port, &confirm(2, "ship"));
    let result = asked.json()["result"].clone();
    assert_eq!(result["resultType"], "input_required", "{}", asked.body);
    // The child's own state, untouched: the gateway keeps nothing for it.
    assert_eq!(result["requestState"], "echo-state:ship");
    let done = call(
        port,
        &retry(
            3,
            "ship",
            &result["requestState"],
            json!({"confirm": {"action": "decline"}}),
        ),
    );
    assert_eq!(
        done.json()["result"]["content"][0]["text"],
        "decline",
        "{}",
        done.body
    );
    assert_eq!(done.json()["id"], 3);
}

fn wait_for_log(env: &TestEnv, what: &str, count: usize) {
    crate::common::wait_for(what, 20, || {
        let log =
            std::fs::read_to_string(env.path().join(".mcpctl/logs/echo-0.log")).unwrap_or_default();
        if log.matches(what).count() >= count {
            Ok(())
        } else {
            Err(log)
        }
    });
}

#[test]
fn a_modern_client_hanging_up_cancels_its_call_upstream() {
    use std::io::Write;
    let port = free_port();
    let env = serve(port, "");
    let sleep = |id: u64, progress: bool| {
        let mut sleep = request(
            id,
            "tools/call",
            json!({"name": "sleep", "arguments": {"ms": 1500}}),
            json!({}),
        );
        if progress {
            sleep["params"]["_meta"]["progressToken"] = json!("p1");
        }
        sleep
    };
    // A call that asked for progress gets its stream at once; dropping it hangs up.
    drop(stream(port, &sleep(1, true)));
    wait_for_log(&env, "cancelled", 1);

    // A JSON call: hanging up the connection while the child works on it.
    let body = sleep(2, false).to_string();
    let mut raw = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut head = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in routing(&sleep(2, false)) {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    write!(raw, "{head}\r\n{body}").unwrap();
    wait_for_log(&env, "sleeping", 2);
    drop(raw);
    wait_for_log(&env, "cancelled", 2);
}

#[test]
fn a_pool_balances_modern_requests_by_calls_in_flight() {
    let port = free_port();
    let _env = serve(port, "instances = 3\n");
    let calls: Vec<_> = (0..3)
        .map(|i| {
            std::thread::spawn(move || {
                let sleep = request(
                    i,
                    "tools/call",
                    json!({"name": "sleep", "arguments": {"ms": 1500}}),
                    json!({}),
                );
                let reply = call(port, &sleep);
                let text = reply.json()["result"]["content"][0]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                text.rsplit(' ').next().unwrap_or_default().to_string()
            })
        })
        .collect();
    let mut pids: Vec<String> = calls.into_iter().map(|c| c.join().unwrap()).collect();
    pids.sort();
    pids.dedup();
    assert_eq!(
        pids.len(),
        3,
        "each concurrent request on its own instance: {pids:?}"
    );
}

fn stream(port: u16, body: &Value) -> SseClient {
    let headers = routing(body);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    SseClient::open(port, "POST", "/mcp", &headers, &body.to_string())
}

fn next_json(stream: &mut SseClient) -> Value {
    serde_json::from_str(&stream.next().1).unwrap()
}

#[test]
fn a_listen_gets_only_the_changes_it_asked_for_stamped_with_its_id() {
    let port = free_port();
    let _env = serve(port, "");
    let listen = request(
        "listen-1",
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true}}),
        json!({}),
    );
    let mut changes = stream(port, &listen);
    let acknowledged = next_json(&mut changes);
    assert_eq!(
        acknowledged["method"],
        "notifications/subscriptions/acknowledged"
    );
    assert_eq!(
        acknowledged["params"]["notifications"],
        json!({"toolsListChanged": true})
    );
    assert_eq!(
        acknowledged["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "listen-1"
    );
    for list in ["prompts", "tools"] {
        let change = request(
            1,
            "tools/call",
            json!({"name": "changed", "arguments": {"list": list}}),
            json!({}),
        );
        assert_eq!(call(port, &change).status, 200);
    }
    // The prompts change came first and was not asked for.
    let change = next_json(&mut changes);
    assert_eq!(
        change["method"], "notifications/tools/list_changed",
        "{change}"
    );
    assert_eq!(
        change["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "listen-1"
    );
}

#[test]
fn a_modern_call_streams_its_log_messages_when_it_asks_for_them() {
    let port = free_port();
    let _env = serve(port, "");
    let mut log = request(
        1,
        "tools/call",
        json!({"name": "log", "arguments": {"text": "from the child", "level": "warning"}}),
        json!({}),
    );
    log["params"]["_meta"]["io.modelcontextprotocol/logLevel"] = json!("info");
    let mut events = stream(port, &log);
    let message = next_json(&mut events);
    assert_eq!(message["method"], "notifications/message", "{message}");
    assert_eq!(message["params"]["data"], "from the child");
    let result = next_json(&mut events);
    assert_eq!(result["id"], 1);
    assert_eq!(result["result"]["content"][0]["text"], "logged");

    // Below the asked level: only the result.
    log["params"]["_meta"]["io.modelcontextprotocol/logLevel"] = json!("error");
    let mut quiet = stream(port, &log);
    let result = next_json(&mut quiet);
    assert_eq!(result["id"], 1, "{result}");
}

#[test]
fn a_legacy_sse_client_answers_a_modern_childs_question_on_its_stream() {
    let port = free_port();
    let _env = serve(port, "args = [\"--modern\"]\n");
    let mut sse = SseClient::open(port, "GET", "/sse", &[], "");
    let (_, endpoint) = sse.next();
    let send = |body: Value| http(port, "POST", &endpoint, &[], body.to_string().as_bytes()).status;
    let init = json!({"jsonrpc": "2.0", "id": "i", "method": "initialize",
        "params": {"protocolVersion": "2024-11-05", "capabilities": {"elicitation": {}}, "clientInfo": {"name": "sse", "version": "1"}}});
    assert_eq!(send(init), 202);
    let opened: Value = serde_json::from_str(&sse.next().1).unwrap();
    assert_eq!(opened["result"]["serverInfo"]["name"], "mcp-echo-modern");
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                      "params": {"name": "confirm", "arguments": {"text": "over sse"}}});
    assert_eq!(send(call), 202);
    let question: Value = serde_json::from_str(&sse.next().1).unwrap();
    assert_eq!(question["method"], "elicitation/create", "{question}");
    let answer = json!({"jsonrpc": "2.0", "id": question["id"], "result": {"action": "cancel"}});
    assert_eq!(send(answer), 202);
    let response: Value = serde_json::from_str(&sse.next().1).unwrap();
    assert_eq!(response["id"], 7);
    assert_eq!(
        response["result"]["content"][0]["text"], "cancel",
        "{response}"
    );
}

#[test]
fn garbage_from_a_modern_client_gets_clear_errors_and_hurts_no_one() {
    let port = free_port();
    let _env = serve(port, "");
    let headers = |method: &str| {
        vec![
            ("MCP-Protocol-Version", MODERN.to_string()),
            ("Mcp-Method", method.to_string()),
            ("Mcp-Name", "echo".to_string()),
        ]
    };
    let cases = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": "not an object"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"_meta": [1, 2]}}),
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list",
               "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": 20260728,
                                    "io.modelcontextprotocol/clientCapabilities": {}}}}),
    ];
    for (i, body) in cases.iter().enumerate() {
        let reply = send(port, &headers("tools/list"), body);
        assert_eq!(reply.status, 400, "case {i}: {}", reply.body);
        let error = &reply.json()["error"];
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "case {i}: {error}"
        );
    }
    let with_state = |state: Value| {
        let mut call = confirm(4, "x");
        call["params"]["name"] = json!("echo");
        call["params"]["requestState"] = state;
        call
    };
    for state in [
        json!(42),
        json!("mcpctl1.not-sealed"),
        json!("someone-elses-state"),
    ] {
        let reply = send(port, &headers("tools/call"), &with_state(state.clone()));
        assert_eq!(
            (reply.status, error_code(&reply)),
            (400, -32602),
            "{state}: {}",
            reply.body
        );
    }
    assert_echoes(port, "still here");
}

#[test]
fn an_open_listen_stream_keeps_a_server_from_scaling_to_zero() {
    let port = free_port();
    let env = TestEnv::with_config(&format!(
        "version = 1\n[servers.echo]\ncommand = \"{}\"\nport = {port}\nautoscale = {{ min = 0, max = 1, idle_after = \"1s\" }}\n",
        echo_bin()
    ));
    crate::autoscale::apply_fast(&env);
    let listen = request(
        "l",
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true}}),
        json!({}),
    );
    let mut changes = stream(port, &listen);
    assert_eq!(
        next_json(&mut changes)["method"],
        "notifications/subscriptions/acknowledged"
    );
    // Three idle periods with only the stream open: it stays.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while std::time::Instant::now() < until {
        let status = env.server_status("echo");
        assert_eq!(status["status"], "running", "{status}");
    }
    let change = request(
        1,
        "tools/call",
        json!({"name": "changed", "arguments": {"list": "tools"}}),
        json!({}),
    );
    assert_eq!(call(port, &change).status, 200);
    assert_eq!(
        next_json(&mut changes)["method"],
        "notifications/tools/list_changed"
    );
    drop(changes);
    crate::autoscale::wait_scaled_to_zero(&env, "echo", 60);
    env.run(&["daemon", "stop"]).success();
}
