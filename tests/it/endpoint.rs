//! Issue 23: endpoints, a set of servers behind one port with a tool policy, served by
//! the real daemon over real sockets, with the echo fixture as members.

use serde_json::{Value, json};

use crate::common::{TestEnv, echo_bin, free_port, http, wait_for};
use crate::gateway::SseClient;

/// Two echo servers (`a` denies `crash` itself) and endpoint `work` over both.
fn two_members(a: u16, b: u16, endpoint: u16, endpoint_extra: &str) -> String {
    format!(
        "version = 1\n\
         [servers.a]\ncommand = \"{echo}\"\nport = {a}\ntools = {{ deny = [\"crash\"] }}\n\
         [servers.b]\ncommand = \"{echo}\"\nport = {b}\n\
         [endpoints.work]\nport = {endpoint}\nservers = [\"a\", \"b\"]\n{endpoint_extra}",
        echo = echo_bin()
    )
}

pub(crate) fn post(port: u16, session: &str, body: &Value) -> crate::common::HttpReply {
    http(
        port,
        "POST",
        "/mcp",
        &[
            ("MCP-Protocol-Version", "2025-06-18"),
            ("Mcp-Session-Id", session),
        ],
        body.to_string().as_bytes(),
    )
}

/// A session on `port` (any server name).
pub(crate) fn open(port: u16) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {"sampling": {}}, "clientInfo": {"name": "t", "version": "1"}}});
    let reply = http(port, "POST", "/mcp", &[], init.to_string().as_bytes());
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply
        .header("mcp-session-id")
        .expect("a session")
        .to_string()
}

pub(crate) fn tool_names(port: u16, session: &str) -> Vec<String> {
    let reply = post(
        port,
        session,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
    );
    reply.json()["result"]["tools"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect()
}

pub(crate) fn call(port: u16, session: &str, name: &str, arguments: Value) -> Value {
    post(
        port,
        session,
        &json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": name, "arguments": arguments}}),
    )
    .json()
}

/// Waits until the endpoint lists `name` (members start before the catalog reads them).
pub(crate) fn wait_listed(port: u16, session: &str, name: &str) -> Vec<String> {
    wait_for(&format!("{name} listed"), 30, || {
        let names = tool_names(port, session);
        if names.iter().any(|n| n == name) {
            Ok(names)
        } else {
            Err(format!("{names:?}"))
        }
    })
}

#[test]
fn an_endpoint_serves_its_members_tools_prefixed_renamed_and_under_both_policies() {
    let (a, b, ep) = (free_port(), free_port(), free_port());
    let env = TestEnv::with_config(&two_members(
        a,
        b,
        ep,
        "tools = { deny = [\"*exit*\"] }\nrename = { \"b__whoami\" = \"who\" }\ndescriptions = { \"who\" = \"Which process answers\" }\n",
    ));
    env.run_within(60, &["apply"])
        .success()
        .stdout_has(&format!("endpoint work: serving http://127.0.0.1:{ep}/mcp"));
    let session = open(ep);
    let names = wait_listed(ep, &session, "who");
    // Prefixed by member; the server's own deny and the endpoint's hide tools.
    assert!(names.contains(&"a__echo".to_string()), "{names:?}");
    assert!(names.contains(&"b__crash".to_string()), "{names:?}");
    assert!(!names.contains(&"a__crash".to_string()), "{names:?}");
    assert!(!names.iter().any(|n| n.contains("exit")), "{names:?}");
    assert!(
        !names.contains(&"b__whoami".to_string()),
        "renamed: {names:?}"
    );
    let listed = post(
        ep,
        &session,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
    )
    .json();
    let who = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "who")
        .cloned()
        .unwrap();
    assert_eq!(who["description"], "Which process answers");
    // Routed by name to the member with its own name.
    assert_eq!(
        call(ep, &session, "a__echo", json!({"text": "via a"}))["result"]["content"][0]["text"],
        "via a"
    );
    let b_pid = env.server_status("b")["pids"][0]
        .as_u64()
        .unwrap()
        .to_string();
    assert_eq!(
        call(ep, &session, "who", json!({}))["result"]["content"][0]["text"],
        b_pid
    );
    // Denied, hidden and unknown: one answer, and it never reaches a member.
    let a_pid = env.server_status("a")["pids"][0].clone();
    for name in ["a__crash", "b__exit", "b__whoami", "nope"] {
        let refused = call(ep, &session, name, json!({}));
        assert_eq!(refused["error"]["code"], -32602, "{name}: {refused}");
        assert_eq!(refused["error"]["message"], format!("unknown tool: {name}"));
    }
    assert_eq!(
        env.server_status("a")["pids"][0],
        a_pid,
        "a was not crashed"
    );
    assert_eq!(env.server_status("a")["restarts"], 0);
    // The server's own policy holds on its own port too.
    let own = open(a);
    assert!(!tool_names(a, &own).contains(&"crash".to_string()));
    assert_eq!(call(a, &own, "crash", json!({}))["error"]["code"], -32602);
    assert_eq!(env.server_status("a")["pids"][0], a_pid);
    // What the agent sees, and with --all what it does not and why.
    let report: Value = serde_json::from_str(
        &env.run(&["tools", "work", "--all", "--format", "json"])
            .success()
            .stdout,
    )
    .unwrap();
    assert_eq!(report["kind"], "endpoint");
    let hidden = |name: &str| {
        report["hidden"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == name)
            .map(|h| h["why"].as_str().unwrap_or_default().to_string())
    };
    // What the server itself hides never leaves its port (`tools a --all` names it).
    assert_eq!(hidden("a__crash"), None);
    assert_eq!(hidden("b__exit").as_deref(), Some("denied by \"*exit*\""));
    let who = report["shown"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "who")
        .cloned()
        .unwrap();
    assert_eq!(
        (who["member"].as_str(), who["original"].as_str()),
        (Some("b"), Some("whoami"))
    );
    env.run(&["tools", "work"])
        .success()
        .stdout_has("who")
        .stdout_has("whoami");
    env.run(&["tools", "a", "--all"])
        .success()
        .stdout_has("denied by \"crash\"");
    env.run(&["tools", "ghost"])
        .failure()
        .stderr_has("no server or endpoint `ghost`");
    // Status lists the endpoint, its members and what it shows.
    env.run(&["status"])
        .success()
        .stdout_has("ENDPOINT")
        .stdout_has(&format!("http://127.0.0.1:{ep}/mcp"));
    let all: Value =
        serde_json::from_str(&env.run(&["status", "--format", "json"]).success().stdout).unwrap();
    let work = all
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["endpoint"] == "work")
        .cloned()
        .unwrap();
    assert_eq!(
        (
            work["status"].as_str(),
            work["members_up"].as_u64(),
            work["members_total"].as_u64()
        ),
        (Some("running"), Some(2), Some(2))
    );
    assert!(work["tools"].as_u64().unwrap() > 10, "{work}");
    env.run_within(30, &["daemon", "stop"]).success();
}

#[test]
fn progress_and_a_members_own_request_reach_the_endpoints_client() {
    let (a, b, ep, metrics) = (free_port(), free_port(), free_port(), free_port());
    let env = TestEnv::with_config(&two_members(
        a,
        b,
        ep,
        &format!("prefix = \"on-collision\"\n[daemon]\nmetrics = \"127.0.0.1:{metrics}\"\n"),
    ));
    env.run_within(60, &["apply"]).success();
    let session = open(ep);
    wait_listed(ep, &session, "b__progress");
    let progress = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "b__progress", "arguments": {"steps": 2}, "_meta": {"progressToken": "tok"}}});
    let mut stream = SseClient::post(ep, &session, &progress);
    for step in 1..=2 {
        let note: Value = serde_json::from_str(&stream.next().1).unwrap();
        assert_eq!(note["method"], "notifications/progress", "{note}");
        assert_eq!(note["params"]["progressToken"], "tok");
        assert_eq!(note["params"]["progress"], step);
    }
    let done: Value = serde_json::from_str(&stream.next().1).unwrap();
    assert_eq!(done["result"]["content"][0]["text"], "2 steps");
    // The member asks the client to sample; the client's answer goes back to it.
    let sample = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
        "params": {"name": "a__sample", "arguments": {"text": "hello"}}});
    let mut stream = SseClient::post(ep, &session, &sample);
    let ask: Value = serde_json::from_str(&stream.next().1).unwrap();
    assert_eq!(ask["method"], "sampling/createMessage", "{ask}");
    let answer = json!({"jsonrpc": "2.0", "id": ask["id"], "result": {"role": "assistant", "model": "m", "content": {"type": "text", "text": "sampled!"}}});
    assert_eq!(post(ep, &session, &answer).status, 202);
    let done: Value = serde_json::from_str(&stream.next().1).unwrap();
    assert!(
        done["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("sampled!"),
        "{done}"
    );
    env.run_within(30, &["daemon", "stop"]).success();
}

#[test]
fn a_policy_change_is_adopted_live_with_list_changed_and_no_restart() {
    let (a, b, ep) = (free_port(), free_port(), free_port());
    let env = TestEnv::with_config(&two_members(a, b, ep, ""));
    env.run_within(60, &["apply"]).success();
    let session = open(ep);
    wait_listed(ep, &session, "b__sleep");
    let mut stream = SseClient::open(ep, "GET", "/mcp", &[("Mcp-Session-Id", &session)], "");
    let pids = (
        env.server_status("a")["pids"].clone(),
        env.server_status("b")["pids"].clone(),
    );
    env.write(
        "mcpctl.toml",
        &two_members(a, b, ep, "tools = { deny = [\"b__sleep\"] }\n"),
    );
    env.run(&["plan", "--detailed-exitcode"])
        .code(2)
        .stdout_has("~ endpoint work: tools.deny (live: sessions stay, no member restarts)")
        .stdout_has("1 endpoint to change");
    env.run_within(60, &["apply"])
        .success()
        .stdout_has("endpoint work: updated in place");
    let note: Value = serde_json::from_str(&stream.next().1).unwrap();
    assert_eq!(note["method"], "notifications/tools/list_changed");
    assert!(!tool_names(ep, &session).contains(&"b__sleep".to_string()));
    assert_eq!(
        call(ep, &session, "b__sleep", json!({}))["error"]["code"],
        -32602
    );
    // A server's own policy changes in place too: no member was restarted.
    let mut text = two_members(a, b, ep, "tools = { deny = [\"b__sleep\"] }\n");
    text = text.replace(
        "[servers.b]\n",
        "[servers.b]\ntools = { deny = [\"echo\"] }\n",
    );
    env.write("mcpctl.toml", &text);
    env.run_within(60, &["plan"]).success().stdout_has("tools");
    env.run_within(60, &["apply"]).success();
    wait_for("b__echo gone", 30, || {
        let names = tool_names(ep, &session);
        if names.contains(&"b__echo".to_string()) {
            Err(format!("{names:?}"))
        } else {
            Ok(())
        }
    });
    let own = open(b);
    assert_eq!(
        call(b, &own, "echo", json!({"text": "x"}))["error"]["code"],
        -32602
    );
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
fn a_member_killed_mid_session_drops_out_and_comes_back() {
    let (a, b, ep) = (free_port(), free_port(), free_port());
    let env = TestEnv::with_config(&two_members(a, b, ep, ""));
    env.run_within(60, &["apply"]).success();
    let session = open(ep);
    wait_listed(ep, &session, "b__echo");
    assert_eq!(
        call(ep, &session, "b__echo", json!({"text": "1"}))["result"]["content"][0]["text"],
        "1"
    );
    // b's process dies under the session: the next call is an error naming b, or
    // (restarted already) answered through a new member session; never a hang.
    let crashed = call(ep, &session, "b__crash", json!({}));
    assert!(
        crashed.get("error").is_some() || crashed.get("result").is_some(),
        "{crashed}"
    );
    let a_still = call(ep, &session, "a__echo", json!({"text": "a lives"}));
    assert_eq!(a_still["result"]["content"][0]["text"], "a lives");
    wait_for("b answers again through the endpoint", 60, || {
        let reply = call(ep, &session, "b__echo", json!({"text": "2"}));
        if reply["result"]["content"][0]["text"] == "2" {
            Ok(())
        } else {
            Err(reply.to_string())
        }
    });
    env.run_within(30, &["daemon", "stop"]).success();
}

#[test]
fn bad_endpoints_are_refused_with_where() {
    let (a, b, ep) = (free_port(), free_port(), free_port());
    let with_auth = two_members(a, b, ep, "").replace(
        &format!("port = {a}\n"),
        &format!("port = {a}\nsecrets = {{ T = \"age:abc\" }}\nauth = {{ bearer = \"T\" }}\n"),
    );
    let cases: [(&str, String, &str); 6] = [
        (
            "a member behind auth (issue 28's attack: the endpoint would remove its auth)",
            with_auth,
            "endpoint `work` serves `a`, which has `auth`",
        ),
        (
            "unknown member",
            two_members(a, b, ep, "")
                .replace("servers = [\"a\", \"b\"]", "servers = [\"a\", \"ghost\"]"),
            "endpoint `work` names server `ghost`, which the file lacks",
        ),
        (
            "port of a server",
            two_members(a, b, a, ""),
            &format!("port {a} is used by both `a` and endpoint `work`"),
        ),
        (
            "bad glob",
            two_members(a, b, ep, "tools = { deny = [\"[oops\"] }\n"),
            "`tools.deny[0]`: `[oops` is not a glob pattern",
        ),
        (
            "rename onto a renamed name",
            two_members(
                a,
                b,
                ep,
                "rename = { \"a__echo\" = \"b__echo\", \"b__echo\" = \"x\" }\n",
            ),
            "renames `a__echo` onto `b__echo`, a name it renames too",
        ),
        (
            "rename onto a meta-tool of discovery (from the attack on issue 24)",
            two_members(
                a,
                b,
                ep,
                "discovery = true\nrename = { \"a__echo\" = \"find_tools\" }\n",
            ),
            "renames `a__echo` to `find_tools`, the endpoint's own tool",
        ),
    ];
    // A port held by another process: apply fails naming it, status says why.
    let held = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let taken = held.local_addr().unwrap().port();
    let env = TestEnv::with_config(&two_members(a, b, taken, ""));
    env.run(&["validate"]).success().stdout_has("1 endpoint");
    env.run_within(60, &["apply"])
        .failure()
        .stderr_has("endpoint work: cannot serve");
    let all: Value =
        serde_json::from_str(&env.run(&["status", "--format", "json"]).success().stdout).unwrap();
    let work = all
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["endpoint"] == "work")
        .cloned()
        .unwrap();
    assert!(
        work["status"]
            .as_str()
            .unwrap_or_default()
            .starts_with("failed: cannot serve"),
        "{work}"
    );
    env.run_within(30, &["daemon", "stop"]).success();
    drop(held);
    for (what, text, want) in cases {
        let env = TestEnv::with_config(&text);
        let run = env.run(&["validate"]);
        assert_eq!(run.code, 1, "{what}: {}", run.stderr);
        assert!(run.stderr.contains(want), "{what}: {}", run.stderr);
        assert!(
            run.stderr.contains("mcpctl.toml:"),
            "{what}: a place: {}",
            run.stderr
        );
    }
}

/// Members of every kind behind one endpoint: a `per-session` server, a pool, a server
/// that speaks HTTP itself, a 2026-07-28 server, and one autoscaled to zero, which is
/// listed without being woken and woken by a call.
#[test]
fn members_of_every_kind_serve_through_one_endpoint() {
    let [own, pool, web, modern, idle, ep] = [(); 6].map(|()| free_port());
    let wrapper = crate::common::repo_root().join("bench/mcpctl-gateway.sh");
    let env = TestEnv::with_config(&format!(
        "version = 1\n\
         [servers.own]\ncommand = \"{echo}\"\nport = {own}\nsharing = \"per-session\"\n\
         [servers.pool]\ncommand = \"{echo}\"\nport = {pool}\ninstances = 2\n\
         [servers.web]\ncommand = \"sh\"\nargs = [\"{wrapper}\", \"{{port}}\", \"{echo}\"]\ntransport = \"streamable-http\"\nport = {web}\nenv = {{ MCPCTL = \"{bin}\" }}\n\
         [servers.modern]\ncommand = \"{echo}\"\nargs = [\"--modern\"]\nport = {modern}\n\
         [servers.idle]\ncommand = \"{echo}\"\nport = {idle}\nautoscale = {{ min = 0, max = 1, idle_after = \"1s\" }}\n\
         [endpoints.all]\nport = {ep}\nservers = [\"own\", \"pool\", \"web\", \"modern\", \"idle\"]\n",
        echo = echo_bin(),
        wrapper = wrapper.display(),
        bin = crate::common::bin(),
    ));
    crate::autoscale::apply_fast(&env);
    let session = open(ep);
    for name in [
        "own__echo",
        "pool__echo",
        "web__echo",
        "modern__echo",
        "idle__echo",
    ] {
        wait_listed(ep, &session, name);
    }
    for member in ["own", "pool", "web", "modern"] {
        let name = format!("{member}__echo");
        let reply = call(ep, &session, &name, json!({"text": member}));
        assert_eq!(
            reply["result"]["content"][0]["text"], member,
            "{name}: {reply}"
        );
    }
    // A per-session member gives each endpoint session a process of its own.
    let other = open(ep);
    wait_listed(ep, &other, "own__whoami");
    let pid =
        |s: &str| call(ep, s, "own__whoami", json!({}))["result"]["content"][0]["text"].clone();
    assert_ne!(
        pid(&session),
        pid(&other),
        "two endpoint sessions, two processes"
    );
    // Scaled to zero: still listed, not woken by the listing; a call wakes it.
    crate::autoscale::wait_scaled_to_zero(&env, "idle", 60);
    let fresh = open(ep);
    assert!(tool_names(ep, &fresh).contains(&"idle__echo".to_string()));
    assert_eq!(
        env.server_status("idle")["status"],
        "idle (scaled to zero)",
        "listing did not wake it"
    );
    let woken = call(ep, &fresh, "idle__echo", json!({"text": "awake"}));
    assert_eq!(woken["result"]["content"][0]["text"], "awake", "{woken}");
    env.run_within(30, &["daemon", "stop"]).success();
}

/// `failure = "open"`: a member that goes down drops out (sessions hear it) and comes
/// back (they hear that too); `closed`: new sessions get 503 while it is down.
#[test]
fn a_member_down_drops_out_and_comes_back_or_closes_the_endpoint() {
    let (a, b, ep, shut) = (free_port(), free_port(), free_port(), free_port());
    let env = TestEnv::with_config(&format!(
        "{}[endpoints.shut]\nport = {shut}\nservers = [\"a\", \"b\"]\nfailure = \"closed\"\n",
        two_members(a, b, ep, "")
    ));
    env.run_within(60, &["apply"]).success();
    let session = open(ep);
    wait_listed(ep, &session, "b__echo");
    let closed_session = open(shut);
    wait_listed(shut, &closed_session, "b__echo");
    let mut stream = SseClient::open(ep, "GET", "/mcp", &[("Mcp-Session-Id", &session)], "");
    env.run_within(60, &["server", "stop", "b"]).success();
    let note: Value = serde_json::from_str(&stream.next().1).unwrap();
    assert_eq!(note["method"], "notifications/tools/list_changed");
    wait_for("b's tools gone", 30, || {
        let names = tool_names(ep, &session);
        if names.iter().any(|n| n.starts_with("b__")) {
            Err(format!("{names:?}"))
        } else {
            Ok(())
        }
    });
    assert_eq!(
        call(ep, &session, "a__echo", json!({"text": "a"}))["result"]["content"][0]["text"],
        "a"
    );
    let down = call(ep, &session, "b__echo", json!({"text": "b"}));
    assert!(
        down["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("member b is down"),
        "{down}"
    );
    // Closed: no new session, and calls are refused, while b is down.
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    assert_eq!(
        http(shut, "POST", "/mcp", &[], init.to_string().as_bytes()).status,
        503
    );
    let refused = call(shut, &closed_session, "a__echo", json!({"text": "a"}));
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("closed while member b is down"),
        "{refused}"
    );
    env.run_within(60, &["server", "start", "b"]).success();
    let note: Value = serde_json::from_str(&stream.next().1).unwrap();
    assert_eq!(note["method"], "notifications/tools/list_changed");
    wait_listed(ep, &session, "b__echo");
    assert_eq!(
        call(ep, &session, "b__echo", json!({"text": "back"}))["result"]["content"][0]["text"],
        "back"
    );
    wait_for("the closed endpoint opens again", 30, || {
        let status = http(shut, "POST", "/mcp", &[], init.to_string().as_bytes()).status;
        if status == 200 {
            Ok(())
        } else {
            Err(status.to_string())
        }
    });
    env.run_within(30, &["daemon", "stop"]).success();
}

/// `client link CLIENT --endpoint NAME` writes one entry for the whole set, and
/// `connect NAME` bridges a stdio client to an endpoint (starting the daemon).
#[test]
fn an_endpoint_is_linked_as_one_entry_and_reached_through_connect() {
    let (a, b, ep) = (free_port(), free_port(), free_port());
    let env = TestEnv::with_config(&two_members(a, b, ep, "prefix = \"never\"\n"));
    let linked = env
        .command(&[
            "client",
            "link",
            "claude-code",
            "--scope",
            "project",
            "--endpoint",
            "work",
        ])
        .env("HOME", env.path().join("home"))
        .output()
        .unwrap();
    crate::common::to_run(&["client", "link"], &linked).success();
    let file: Value = serde_json::from_str(&env.read(".mcp.json")).unwrap();
    assert_eq!(
        file["mcpServers"]["work"]["url"],
        format!("http://127.0.0.1:{ep}/mcp"),
        "{file}"
    );
    assert!(
        file["mcpServers"].get("a").is_none(),
        "only the endpoint: {file}"
    );
    // connect starts the daemon, which serves the endpoint; the SDK's stdio client talks
    // to the set through it.
    let Some(python) = crate::sdk::sdk_python_for(
        "an_endpoint_is_linked_as_one_entry_and_reached_through_connect",
    ) else {
        return;
    };
    let mut cmd = std::process::Command::new(python);
    cmd.arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/stdio_client.py"))
        .args(["legacy", "1"])
        .arg(crate::common::bin())
        .arg("-f")
        .arg(env.path().join("mcpctl.toml"))
        .args(["connect", "work"])
        .current_dir(env.path())
        .env("XDG_CONFIG_HOME", env.path().join("xdg"));
    let seen = crate::sdk::run_bounded(cmd, 120).unwrap_or_else(|e| panic!("connect work: {e}"));
    // Its report is the first line; connect's own notes (stderr) follow.
    let report = seen.lines().next().unwrap_or_default();
    let report: Value = serde_json::from_str(report).unwrap_or_else(|e| panic!("{e}: {seen}"));
    assert_eq!(report["ok"], true, "{seen}");
    assert!(seen.contains("endpoint work: serving"), "{seen}");
    env.run_within(30, &["daemon", "stop"]).success();
}

/// From the attack: the endpoint hears a member's `list_changed` even when no client
/// session of its own uses that member, and a member's restart is read again.
#[test]
fn a_members_list_change_reaches_the_endpoint_without_a_session_on_it() {
    let (x, ep) = (free_port(), free_port());
    let env = TestEnv::new();
    env.write("tools.json", r#"["reload", "v1"]"#);
    let script = crate::common::repo_root().join("tests/fixtures/listed_server.py");
    env.write(
        "mcpctl.toml",
        &format!(
            "version = 1\n[servers.x]\ncommand = \"python3\"\nargs = [\"{}\", \"{}\"]\nport = {x}\n\
             [endpoints.ep]\nport = {ep}\nservers = [\"x\"]\n",
            script.display(),
            env.path().join("tools.json").display()
        ),
    );
    env.run_within(60, &["apply"]).success();
    let session = open(ep);
    wait_listed(ep, &session, "x__v1");
    let mut stream = SseClient::open(ep, "GET", "/mcp", &[("Mcp-Session-Id", &session)], "");
    // The list changes, and the member says so to a client on its own port.
    env.write("tools.json", r#"["reload", "v2"]"#);
    let own = open(x);
    assert_eq!(
        call(x, &own, "reload", json!({}))["result"]["content"][0]["text"],
        "reload"
    );
    let note: Value = serde_json::from_str(&stream.next().1).unwrap();
    assert_eq!(note["method"], "notifications/tools/list_changed");
    let names = wait_listed(ep, &session, "x__v2");
    assert!(!names.contains(&"x__v1".to_string()), "{names:?}");
    // A restart with another list: read again.
    env.write("tools.json", r#"["reload", "v3"]"#);
    env.run_within(60, &["server", "restart", "x"]).success();
    wait_listed(ep, &session, "x__v3");
    env.run_within(30, &["daemon", "stop"]).success();
}

/// From the attack: one client opening endpoint sessions by the hundred cannot take
/// a member's own capacity: the endpoint holds a bounded number of sessions with each
/// member, a member at its cap is busy (still listed, still up), not down.
#[test]
fn member_sessions_are_bounded_and_a_busy_member_is_not_down() {
    let (a, b, ep) = (free_port(), free_port(), free_port());
    let env = TestEnv::with_config(&two_members(a, b, ep, "").replace(
        &format!("port = {b}\n"),
        &format!("port = {b}\nmax_sessions = 4\n"),
    ));
    env.run_within(60, &["apply"]).success();
    let first = open(ep);
    wait_listed(ep, &first, "b__echo");
    // b holds 4 sessions with streams at most: the endpoint's watch takes one.
    let mut answers = Vec::new();
    for i in 0..5 {
        let s = open(ep);
        answers.push(call(ep, &s, "b__echo", json!({"text": i.to_string()})));
    }
    let busy = answers
        .iter()
        .find(|r| r.get("error").is_some())
        .unwrap_or_else(|| panic!("b reached its cap: {answers:?}"));
    assert!(
        busy["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("busy"),
        "{busy}"
    );
    // Busy is not down: b stays listed and the endpoint is not degraded.
    assert!(tool_names(ep, &first).contains(&"b__echo".to_string()));
    let all: Value =
        serde_json::from_str(&env.run(&["status", "--format", "json"]).success().stdout).unwrap();
    let work = all
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["endpoint"] == "work")
        .cloned()
        .unwrap();
    assert_eq!(work["status"], "running", "{work}");
    // Removing b from the endpoint closes the sessions it held with b.
    env.write(
        "mcpctl.toml",
        &two_members(a, b, ep, "")
            .replace(
                &format!("port = {b}\n"),
                &format!("port = {b}\nmax_sessions = 4\n"),
            )
            .replace("servers = [\"a\", \"b\"]", "servers = [\"a\"]"),
    );
    env.run_within(60, &["apply"]).success();
    wait_for("b's sessions closed", 30, || {
        let sessions = env.server_status("b")["traffic"]["sessions"]
            .as_u64()
            .unwrap_or(99);
        if sessions == 0 {
            Ok(())
        } else {
            Err(sessions.to_string())
        }
    });
    env.run_within(30, &["daemon", "stop"]).success();
}

/// A server that speaks HTTP itself: its own policy holds on its own port too (its
/// lists filtered; a hidden tool's call refused before it is passed on).
#[test]
fn the_policy_of_a_server_speaking_http_holds_on_its_own_port() {
    let web = free_port();
    let wrapper = crate::common::repo_root().join("bench/mcpctl-gateway.sh");
    let env = TestEnv::with_config(&format!(
        "version = 1\n[servers.web]\ncommand = \"sh\"\nargs = [\"{}\", \"{{port}}\", \"{}\"]\ntransport = \"streamable-http\"\nport = {web}\nenv = {{ MCPCTL = \"{}\" }}\ntools = {{ deny = [\"crash\", \"exit\"] }}\n",
        wrapper.display(),
        echo_bin(),
        crate::common::bin()
    ));
    env.run_within(60, &["apply"]).success();
    let session = open(web);
    let names = tool_names(web, &session);
    assert!(names.contains(&"echo".to_string()), "{names:?}");
    assert!(!names.contains(&"crash".to_string()), "{names:?}");
    let whoami =
        |s: &str| call(web, s, "whoami", json!({}))["result"]["content"][0]["text"].clone();
    let before = whoami(&session);
    let refused = call(web, &session, "crash", json!({}));
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
    assert_eq!(whoami(&session), before, "the server did not crash");
    env.run_within(30, &["daemon", "stop"]).success();
}

/// Issue 25's soak: clients that hang up without DELETE must not fill the endpoint's
/// member sessions (256 a member) until their idle timeout; the oldest session gives
/// way to a new one, and every new client is served.
#[test]
fn clients_that_never_end_their_sessions_do_not_lock_the_endpoint_out() {
    let (a, b, ep) = (free_port(), free_port(), free_port());
    let env = TestEnv::with_config(&two_members(a, b, ep, ""));
    env.run_within(120, &["apply"]).success();
    let first = open(ep);
    wait_listed(ep, &first, "b__echo");
    for n in 0..300 {
        let session = open(ep);
        let reply = call(ep, &session, "b__echo", json!({"text": format!("c{n}")}));
        assert_eq!(
            reply["result"]["content"][0]["text"],
            format!("c{n}"),
            "client {n}: {reply}"
        );
        // Gone without DELETE.
    }
}
