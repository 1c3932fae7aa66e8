//! Issue 29: tools on demand. An endpoint with `discovery` lists `find_tools`,
//! `use_tools` and its `always` tools; a session pulls in the rest and hears its own
//! `list_changed`. The real daemon, the echo fixture as members, real sockets.

use serde_json::{Value, json};

use crate::common::{TestEnv, echo_bin, free_port, http, wait_for};
use crate::gateway::SseClient;

/// Echo servers `a` and `b` behind endpoint `work`, with `extra` in the endpoint.
fn config(a: u16, b: u16, ep: u16, extra: &str) -> String {
    format!(
        "version = 1\n\
         [servers.a]\ncommand = \"{echo}\"\nport = {a}\n\
         [servers.b]\ncommand = \"{echo}\"\nport = {b}\n\
         [endpoints.work]\nport = {ep}\nservers = [\"a\", \"b\"]\n{extra}",
        echo = echo_bin()
    )
}

fn post(port: u16, session: &str, body: &Value) -> Value {
    let reply = http(
        port,
        "POST",
        "/mcp",
        &[
            ("MCP-Protocol-Version", "2025-06-18"),
            ("Mcp-Session-Id", session),
        ],
        body.to_string().as_bytes(),
    );
    assert_eq!(reply.status, 200, "{body}: {}", reply.body);
    reply.json()
}

fn open(port: u16) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let reply = http(port, "POST", "/mcp", &[], init.to_string().as_bytes());
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply
        .header("mcp-session-id")
        .expect("a session")
        .to_string()
}

fn tools(port: u16, session: &str) -> Vec<Value> {
    post(
        port,
        session,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
    )["result"]["tools"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn names(port: u16, session: &str) -> Vec<String> {
    tools(port, session)
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect()
}

fn call(port: u16, session: &str, name: &str, arguments: Value) -> Value {
    post(
        port,
        session,
        &json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": name, "arguments": arguments}}),
    )
}

/// A meta-tool's answer: (its text, isError).
fn meta(port: u16, session: &str, name: &str, arguments: Value) -> (String, bool) {
    let answer = call(port, session, name, arguments);
    let result = &answer["result"];
    (
        result["content"][0]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: {answer}"))
            .to_string(),
        result["isError"] == true,
    )
}

/// The tool lines of a `find_tools` answer (after its header line).
fn found(text: &str) -> Vec<String> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let (name, rest) = l.split_once(" [")?;
            rest.contains("]: ").then(|| name.to_string())
        })
        .collect()
}

/// Waits until the session's list is the discovery list (the catalog has read the
/// members: the `always` tool is there).
fn wait_discovery(port: u16, session: &str) -> Vec<String> {
    wait_for("the discovery list", 30, || {
        let names = names(port, session);
        if names.iter().any(|n| n == "a__echo") {
            Ok(names)
        } else {
            Err(format!("{names:?}"))
        }
    })
}

fn list_changed(stream: &mut SseClient) {
    let note: Value = serde_json::from_str(&stream.next().1).unwrap();
    assert_eq!(note["method"], "notifications/tools/list_changed", "{note}");
}

#[test]
fn discovery_lists_meta_tools_finds_and_pulls_tools_into_one_session_only() {
    let (a, b, ep, metrics) = (free_port(), free_port(), free_port(), free_port());
    let env = TestEnv::with_config(&format!(
        "{}[daemon]\nmetrics = \"127.0.0.1:{metrics}\"\n",
        config(
            a,
            b,
            ep,
            "tools = { deny = [\"b__crash\"] }\n\
             discovery = { when_over = 10, always = [\"a__echo\"] }\n",
        )
    ));
    env.run_within(60, &["apply"]).success();
    let (one, two) = (open(ep), open(ep));
    // The initial list: the meta-tools and the `always` tool, nothing else.
    assert_eq!(
        wait_discovery(ep, &one),
        ["find_tools", "use_tools", "a__echo"]
    );
    let listed = tools(ep, &one);
    assert_eq!(listed[0]["inputSchema"]["type"], "object");
    assert_eq!(listed[0]["inputSchema"]["required"], json!(["query"]));
    assert_eq!(
        listed[1]["inputSchema"]["properties"]["names"]["type"],
        "array"
    );
    // Ranked: a query naming a member's tool finds it first; a hidden tool never.
    let (text, failed) = meta(ep, &one, "find_tools", json!({"query": "b__sleep"}));
    assert!(!failed, "{text}");
    assert_eq!(found(&text)[0], "b__sleep", "{text}");
    assert!(!text.contains("inputSchema"), "{text}");
    let (text, _) = meta(
        ep,
        &one,
        "find_tools",
        json!({"query": "sleep", "limit": 2}),
    );
    assert_eq!(found(&text), ["a__sleep", "b__sleep"], "{text}");
    let (text, _) = meta(
        ep,
        &one,
        "find_tools",
        json!({"query": "crash", "limit": 50}),
    );
    assert!(found(&text).contains(&"a__crash".to_string()), "{text}");
    assert!(!text.contains("b__crash"), "denied: {text}");
    // (A rename onto a meta-tool's name is refused by validate: tests/it/endpoint.rs.)
    // Bad arguments: a tool error the model can read.
    for bad in [
        json!({}),
        json!({"query": "x", "limit": 51}),
        json!({"query": 3}),
    ] {
        let (text, failed) = meta(ep, &one, "find_tools", bad.clone());
        assert!(failed, "{bad}: {text}");
    }
    let mut stream_one = SseClient::open(ep, "GET", "/mcp", &[("Mcp-Session-Id", &one)], "");
    let mut stream_two = SseClient::open(ep, "GET", "/mcp", &[("Mcp-Session-Id", &two)], "");
    // Unknown or hidden names are refused whole, naming them.
    let (text, failed) = meta(
        ep,
        &one,
        "use_tools",
        json!({"names": ["b__sleep", "b__crash", "nope"]}),
    );
    assert!(failed, "{text}");
    assert!(text.contains("b__crash, nope"), "{text}");
    assert!(!names(ep, &one).contains(&"b__sleep".to_string()));
    // Pulled in: this session hears list_changed and lists it in full.
    let (text, failed) = meta(ep, &one, "use_tools", json!({"names": ["b__sleep"]}));
    assert!(!failed, "{text}");
    list_changed(&mut stream_one);
    let sleep = tools(ep, &one)
        .into_iter()
        .find(|t| t["name"] == "b__sleep")
        .expect("b__sleep listed after use_tools");
    assert_eq!(sleep["inputSchema"]["properties"]["ms"]["type"], "integer");
    // The other session is untouched: its list is the initial one, and the first
    // thing its stream carries is the list_changed of its own use_tools.
    assert_eq!(names(ep, &two), ["find_tools", "use_tools", "a__echo"]);
    let (text, failed) = meta(ep, &two, "use_tools", json!({"names": ["a__whoami"]}));
    assert!(!failed, "{text}");
    list_changed(&mut stream_two);
    assert!(!names(ep, &two).contains(&"b__sleep".to_string()));
    // Calls: a found-but-not-used tool is called by name; a hidden one is unknown.
    let echoed = call(ep, &two, "b__echo", json!({"text": "found, not used"}));
    assert_eq!(
        echoed["result"]["content"][0]["text"], "found, not used",
        "{echoed}"
    );
    let refused = call(ep, &one, "b__crash", json!({}));
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
    assert_eq!(refused["error"]["message"], "unknown tool: b__crash");
    // Reset empties the working set.
    let (_, failed) = meta(ep, &one, "use_tools", json!({"names": [], "reset": true}));
    assert!(!failed);
    list_changed(&mut stream_one);
    assert_eq!(names(ep, &one), ["find_tools", "use_tools", "a__echo"]);
    // `mcpctl tools` says it is on and what it keeps out.
    let report: Value = serde_json::from_str(
        &env.run(&["tools", "work", "--all", "--format", "json"])
            .success()
            .stdout,
    )
    .unwrap();
    let shown = report["shown"].as_array().unwrap().len();
    assert_eq!(report["discovery"]["on"], true, "{report}");
    assert_eq!(report["discovery"]["when_over"], 10);
    assert_eq!(report["discovery"]["initial"], 3);
    assert_eq!(report["discovery"]["kept_out"], shown - 1);
    env.run(&["tools", "work"])
        .success()
        .stdout_has("discovery: on (over 10 tools)")
        .stdout_has(&format!("{} of {shown} kept out", shown - 1));
    // Prometheus counts the meta-tools' calls.
    let text = http(metrics, "GET", "/metrics", &[], b"").body;
    assert!(
        text.contains(
            "mcpctl_endpoint_discovery_calls_total{endpoint=\"work\",tool=\"find_tools\"} 6"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "mcpctl_endpoint_discovery_calls_total{endpoint=\"work\",tool=\"use_tools\"} 4"
        ),
        "{text}"
    );
    env.run_within(30, &["daemon", "stop"]).success();
}

#[test]
fn discovery_is_switched_on_live_and_a_used_tool_policy_hides_drops_out() {
    let (a, b, ep) = (free_port(), free_port(), free_port());
    let env = TestEnv::with_config(&config(a, b, ep, ""));
    env.run_within(60, &["apply"]).success();
    let session = open(ep);
    wait_for("b__sleep listed", 30, || {
        let names = names(ep, &session);
        if names.contains(&"b__sleep".to_string()) {
            Ok(())
        } else {
            Err(format!("{names:?}"))
        }
    });
    let pids = (
        env.server_status("a")["pids"].clone(),
        env.server_status("b")["pids"].clone(),
    );
    // Below `when_over` it is off: every tool is listed and find_tools is unknown.
    env.write(
        "mcpctl.toml",
        &config(a, b, ep, "discovery = { when_over = 1000 }\n"),
    );
    env.run_within(60, &["apply"]).success();
    wait_for("discovery configured, off", 30, || {
        let out = env.run(&["tools", "work"]).success().stdout.clone();
        if out.contains("discovery: off (24 tools; on over 1000 tools)") {
            Ok(())
        } else {
            Err(out)
        }
    });
    assert_eq!(
        call(ep, &session, "find_tools", json!({"query": "x"}))["error"]["code"],
        -32602
    );
    let mut stream = SseClient::open(ep, "GET", "/mcp", &[("Mcp-Session-Id", &session)], "");
    env.write("mcpctl.toml", &config(a, b, ep, "discovery = true\n"));
    env.run(&["plan", "--detailed-exitcode"])
        .code(2)
        .stdout_has("~ endpoint work: discovery (live: sessions stay, no member restarts)");
    env.run_within(60, &["apply"])
        .success()
        .stdout_has("endpoint work: updated in place");
    list_changed(&mut stream);
    assert_eq!(names(ep, &session), ["find_tools", "use_tools"]);
    let (text, failed) = meta(ep, &session, "use_tools", json!({"names": ["b__sleep"]}));
    assert!(!failed, "{text}");
    list_changed(&mut stream);
    assert!(names(ep, &session).contains(&"b__sleep".to_string()));
    // Policy now hides the used tool: it leaves the list and is refused.
    env.write(
        "mcpctl.toml",
        &config(
            a,
            b,
            ep,
            "discovery = true\ntools = { deny = [\"b__sleep\"] }\n",
        ),
    );
    env.run_within(60, &["apply"]).success();
    list_changed(&mut stream);
    assert_eq!(names(ep, &session), ["find_tools", "use_tools"]);
    assert_eq!(
        call(ep, &session, "b__sleep", json!({}))["error"]["code"],
        -32602
    );
    let (text, _) = meta(ep, &session, "find_tools", json!({"query": "sleep"}));
    assert_eq!(found(&text), ["a__sleep"], "{text}");
    assert_eq!(
        (
            env.server_status("a")["pids"].clone(),
            env.server_status("b")["pids"].clone()
        ),
        pids,
        "no member restarted"
    );
    env.run_within(30, &["daemon", "stop"]).success();
}

#[test]
fn the_python_sdk_through_discovery_refreshes_its_tools_on_list_changed() {
    let Some(python) = crate::sdk::sdk_python_for(
        "the_python_sdk_through_discovery_refreshes_its_tools_on_list_changed",
    ) else {
        return;
    };
    let (a, b, ep) = (free_port(), free_port(), free_port());
    let env = TestEnv::with_config(&config(
        a,
        b,
        ep,
        "discovery = { when_over = 10, always = [\"a__echo\"] }\n",
    ));
    env.run_within(60, &["apply"]).success();
    wait_discovery(ep, &open(ep));
    let script = crate::common::repo_root().join("tests/sdk/discovery.py");
    let mut client = std::process::Command::new(python);
    client
        .arg(&script)
        .arg(format!("http://127.0.0.1:{ep}/mcp"));
    let seen = crate::sdk::run_bounded(client, 120).unwrap_or_else(|e| panic!("{e}"));
    let seen: Value = serde_json::from_str(seen.trim()).unwrap_or_else(|e| panic!("{e}: {seen}"));
    assert_eq!(
        seen["first"],
        json!(["a__echo", "find_tools", "use_tools"]),
        "{seen}"
    );
    assert_eq!(seen["found_first"], "b__whoami", "{seen}");
    assert_eq!(seen["list_changed"], true, "{seen}");
    assert!(
        seen["after"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("b__whoami"))),
        "{seen}"
    );
    assert_eq!(seen["ok"], true, "{seen}");
    env.run_within(30, &["daemon", "stop"]).success();
}

/// A 2026-07-28 request: no session, its envelope in `_meta`, its routing headers.
fn modern(port: u16, method: &str, mut params: Value) -> Value {
    params["_meta"] = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"}});
    let name = params["name"].as_str().unwrap_or_default().to_string();
    let body = json!({"jsonrpc": "2.0", "id": 5, "method": method, "params": params});
    let mut headers = vec![
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Mcp-Method", method),
    ];
    if !name.is_empty() {
        headers.push(("Mcp-Name", name.as_str()));
    }
    let reply = http(port, "POST", "/mcp", &headers, body.to_string().as_bytes());
    assert_eq!(reply.status, 200, "{body}: {}", reply.body);
    reply.json()
}

#[test]
fn a_sessionless_client_finds_and_calls_but_has_no_working_set() {
    let (a, b, ep) = (free_port(), free_port(), free_port());
    let env = TestEnv::with_config(&config(
        a,
        b,
        ep,
        "discovery = { always = [\"a__echo\"] }\n",
    ));
    env.run_within(60, &["apply"]).success();
    wait_discovery(ep, &open(ep));
    let listed = modern(ep, "tools/list", json!({}));
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{listed}"))
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["find_tools", "use_tools", "a__echo"]);
    let answer = modern(
        ep,
        "tools/call",
        json!({"name": "find_tools", "arguments": {"query": "b__echo"}}),
    );
    let text = answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(
        found(text).first().map(String::as_str),
        Some("b__echo"),
        "{answer}"
    );
    // No session, so no list to add to: said so, as a tool error.
    let used = modern(
        ep,
        "tools/call",
        json!({"name": "use_tools", "arguments": {"names": ["b__echo"]}}),
    );
    assert_eq!(used["result"]["isError"], true, "{used}");
    assert!(
        used["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("no session")),
        "{used}"
    );
    // Called by name all the same.
    let echoed = modern(
        ep,
        "tools/call",
        json!({"name": "b__echo", "arguments": {"text": "by name"}}),
    );
    assert_eq!(
        echoed["result"]["content"][0]["text"], "by name",
        "{echoed}"
    );
    env.run_within(30, &["daemon", "stop"]).success();
}
