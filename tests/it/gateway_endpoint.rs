//! `mcpctl gateway --upstream NAME=URL ...`: an endpoint over servers that run
//! elsewhere (what `render k8s` runs for an `[endpoints.NAME]`), and the tool policy
//! flags of a one-server gateway.

use std::process::Command;

use serde_json::{Value, json};

use crate::common::{bin, echo_bin, free_port, http, wait_for};
use crate::gateway_cmd::{Running, gateway, initialize, terminate, wait_serving};

/// A one-server gateway of mcp-echo on a free port, with `extra` flags.
fn echo_server(extra: &[&str], env: &[(&str, &str)]) -> (u16, Running, tempfile::TempDir) {
    let port = free_port();
    let port_arg = port.to_string();
    let mut args = vec!["--port", port_arg.as_str()];
    args.extend_from_slice(extra);
    args.extend(["--", echo_bin()]);
    let (mut child, dir) = gateway(&args, env);
    wait_serving(port, &mut child);
    (port, child, dir)
}

fn upstream(name: &str, port: u16) -> String {
    format!("{name}=http://127.0.0.1:{port}/mcp")
}

/// A session's request; its JSON answer (an SSE answer's one message).
fn request(port: u16, session: &str, headers: &[(&str, &str)], body: &Value) -> Value {
    let mut all = vec![("Mcp-Session-Id", session)];
    all.extend_from_slice(headers);
    let reply = http(port, "POST", "/mcp", &all, body.to_string().as_bytes());
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

fn session(port: u16, headers: &[(&str, &str)]) -> String {
    let reply = initialize(port, headers);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let session = reply.header("mcp-session-id").unwrap().to_string();
    let mut all = vec![("Mcp-Session-Id", session.as_str())];
    all.extend_from_slice(headers);
    let done = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    http(port, "POST", "/mcp", &all, done.to_string().as_bytes());
    session
}

fn tool_names(port: u16, session: &str, headers: &[(&str, &str)]) -> Vec<String> {
    let list = request(
        port,
        session,
        headers,
        &json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"}),
    );
    list["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {list}"))
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect()
}

fn call(port: u16, session: &str, headers: &[(&str, &str)], name: &str) -> Value {
    request(
        port,
        session,
        headers,
        &json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call",
            "params": {"name": name, "arguments": {"text": "through the endpoint"}}}),
    )
}

#[test]
fn a_gateway_with_upstreams_aggregates_them_behind_one_endpoint_with_its_policy() {
    let (a, _a, _da) = echo_server(&[], &[]);
    // A member behind its own bearer, reached with the one given for it.
    let (b, _b, _db) = echo_server(
        &["--auth-bearer-env", "MEMBER_TOKEN"],
        &[("MEMBER_TOKEN", "member-secret")],
    );
    let port = free_port();
    let port_arg = port.to_string();
    let (ua, ub) = (upstream("alpha", a), upstream("beta", b));
    let (mut child, _dir) = gateway(
        &[
            "--port",
            &port_arg,
            "--name",
            "work",
            "--upstream",
            &ua,
            "--upstream",
            &ub,
            "--upstream-bearer-env",
            "beta=BETA_TOKEN",
            "--tools-deny",
            "beta__crash",
            "--rename",
            "alpha__whoami=alpha_pid",
            "--describe",
            "alpha_pid=The pid of alpha's process",
        ],
        &[("BETA_TOKEN", "member-secret")],
    );
    wait_serving(port, &mut child);
    let s = session(port, &[]);
    let names = tool_names(port, &s, &[]);
    for want in ["alpha__echo", "beta__echo", "alpha_pid", "beta__whoami"] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    for hidden in ["beta__crash", "alpha__whoami", "echo"] {
        assert!(!names.iter().any(|n| n == hidden), "{hidden} in {names:?}");
    }
    let echoed = call(port, &s, &[], "beta__echo");
    assert_eq!(
        echoed["result"]["content"][0]["text"], "through the endpoint",
        "{echoed}"
    );
    assert!(call(port, &s, &[], "alpha_pid")["result"]["content"][0]["text"].is_string());
    // A denied tool is refused as an unknown one, and never reaches the member.
    let denied = call(port, &s, &[], "beta__crash");
    assert_eq!(denied["error"]["code"], -32602, "{denied}");
    assert!(call(port, &s, &[], "beta__echo")["result"].is_object());
    let (code, stderr) = terminate(child);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("endpoint work: serving"), "{stderr}");
    assert!(
        !stderr.contains("member-secret"),
        "no bearer in the log: {stderr}"
    );
}

#[test]
fn a_member_that_dies_drops_out_is_logged_and_comes_back_with_its_tools() {
    let (a, _a, _da) = echo_server(&[], &[]);
    let (b, b_child, _db) = echo_server(&[], &[]);
    let port = free_port();
    let port_arg = port.to_string();
    let (ua, ub) = (upstream("alpha", a), upstream("beta", b));
    let (mut child, _dir) = gateway(
        &["--port", &port_arg, "--upstream", &ua, "--upstream", &ub],
        &[],
    );
    wait_serving(port, &mut child);
    let s = session(port, &[]);
    assert!(tool_names(port, &s, &[]).contains(&"beta__echo".to_string()));
    // Its gateway killed (and with it its child): failure = "open" drops its tools.
    let _ = terminate(b_child);
    wait_for("beta's tools to drop out", 30, || {
        let names = tool_names(port, &s, &[]);
        if names.iter().any(|n| n.starts_with("beta__")) {
            Err(format!("{names:?}"))
        } else {
            Ok(())
        }
    });
    let down = call(port, &s, &[], "beta__echo");
    assert!(
        down.to_string().contains("beta"),
        "names the member: {down}"
    );
    assert!(call(port, &s, &[], "alpha__echo")["result"].is_object());
    // The same port served again: beta is listed again.
    let b_arg = b.to_string();
    let (mut again, _dir2) = gateway(&["--port", &b_arg, "--", echo_bin()], &[]);
    wait_serving(b, &mut again);
    wait_for("beta's tools to come back", 30, || {
        let names = tool_names(port, &s, &[]);
        if names.iter().any(|n| n == "beta__echo") {
            Ok(())
        } else {
            Err(format!("{names:?}"))
        }
    });
    let (code, stderr) = terminate(child);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("member beta is down"), "{stderr}");
    assert!(stderr.contains("member beta is up again"), "{stderr}");
}

#[test]
fn an_endpoint_beyond_loopback_needs_a_bearer_and_then_requires_it() {
    let (a, _a, _da) = echo_server(&[], &[]);
    let ua = upstream("alpha", a);
    let out = Command::new(bin())
        .args(["gateway", "--bind", "0.0.0.0", "--upstream", &ua])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("reaches beyond this machine"), "{stderr}");
    let port = free_port();
    let port_arg = port.to_string();
    let (mut child, _dir) = gateway(
        &[
            "--port",
            &port_arg,
            "--bind",
            "0.0.0.0",
            "--auth-bearer-env",
            "ENDPOINT_TOKEN",
            "--upstream",
            &ua,
        ],
        &[("ENDPOINT_TOKEN", "endpoint-secret")],
    );
    wait_serving(port, &mut child);
    assert_eq!(initialize(port, &[]).status, 401);
    let auth = [("Authorization", "Bearer endpoint-secret")];
    let s = session(port, &auth);
    assert!(tool_names(port, &s, &auth).contains(&"alpha__echo".to_string()));
    let (code, stderr) = terminate(child);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn endpoint_flags_are_checked_like_a_file_and_name_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--upstream", "alpha"],
            "--upstream `alpha` is not NAME=VALUE",
        ),
        (
            &["--upstream", "Bad Name=http://127.0.0.1:1/mcp"],
            "invalid",
        ),
        (&["--upstream", "alpha=ftp://x"], "alpha"),
        (
            &[
                "--upstream",
                "a=http://127.0.0.1:1/mcp",
                "--upstream",
                "a=http://127.0.0.1:2/mcp",
            ],
            "--upstream a is given twice",
        ),
        (
            &[
                "--upstream",
                "a=http://127.0.0.1:1/mcp",
                "--tools-deny",
                "[x",
            ],
            "(the flags)",
        ),
        (
            &[
                "--upstream",
                "a=http://127.0.0.1:1/mcp",
                "--rename",
                "a__echo=no spaces",
            ],
            "no agent can call",
        ),
        (
            &[
                "--upstream",
                "a=http://127.0.0.1:1/mcp",
                "--upstream-bearer-env",
                "b=T",
            ],
            "no --upstream b=URL",
        ),
        (
            &[
                "--upstream",
                "a=http://127.0.0.1:1/mcp",
                "--upstream-bearer-env",
                "a=MCPCTL_TEST_UNSET",
            ],
            "MCPCTL_TEST_UNSET: the variable is not set",
        ),
        (
            &[
                "--upstream",
                "a=http://127.0.0.1:1/mcp",
                "--url",
                "http://x/mcp",
            ],
            "cannot be used with",
        ),
        (
            &["--upstream", "a=http://127.0.0.1:1/mcp", "--", "x"],
            "cannot be used with",
        ),
        (&["--prefix", "never", "--", "x"], "--upstream"),
    ];
    for (args, want) in cases {
        let out = Command::new(bin())
            .arg("gateway")
            .args(*args)
            .env_remove("MCPCTL_TEST_UNSET")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: want {want:?} in {stderr}");
    }
}

#[test]
fn a_one_server_gateway_holds_its_tool_policy() {
    let (port, child, _dir) = echo_server(
        &[
            "--tools-allow",
            "echo",
            "--tools-allow",
            "crash",
            "--tools-deny",
            "cr*",
        ],
        &[],
    );
    let s = session(port, &[]);
    assert_eq!(tool_names(port, &s, &[]), vec!["echo".to_string()]);
    let refused = call(port, &s, &[], "crash");
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
    assert!(call(port, &s, &[], "echo")["result"].is_object());
    let (code, stderr) = terminate(child);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn what_render_k8s_gives_each_pod_runs_here_and_the_endpoint_aggregates_the_servers() {
    use mcpctl::render::k8s::{Options, SessionRouting, render};
    let (pa, pb, pe) = (free_port(), free_port(), free_port());
    let src = format!(
        "version = 1\n\
         [servers.alpha]\ncommand = \"mcp-echo\"\nport = {pa}\ntools = {{ deny = [\"crash\"] }}\n\
         [servers.beta]\ncommand = \"mcp-echo\"\nport = {pb}\n\
         [endpoints.work]\nport = {pe}\nservers = [\"alpha\", \"beta\"]\n\
         tools = {{ deny = [\"beta__whoami\"] }}\nrename = {{ alpha__echo = \"say\" }}\n\
         descriptions = {{ say = \"Says it for $5\" }}\n"
    );
    let config = mcpctl::model::parse(&src).unwrap();
    let options = Options {
        namespace: "mcp",
        mcpctl_image: "ghcr.io/mcpctl/mcpctl:test".into(),
        session_routing: SessionRouting::Sealed,
        secrets: None,
    };
    let rendered = render(&config.servers, &config.endpoints, &options).unwrap();
    // Each Deployment's args as its pod would run them: Kubernetes' `$$` is `$`, the
    // Services' names are this machine, every address is loopback.
    let pod_args = |name: &str| -> Vec<String> {
        let r = rendered.iter().find(|r| r.server == name).unwrap();
        r.objects
            .iter()
            .find(|o| o["kind"] == "Deployment")
            .unwrap()["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                a.as_str()
                    .unwrap()
                    .replace("$$", "$")
                    .replace("0.0.0.0", "127.0.0.1")
                    .replace("http://mcp-alpha:", "http://127.0.0.1:")
                    .replace("http://mcp-beta:", "http://127.0.0.1:")
                    .replace("mcp-echo", echo_bin())
            })
            .collect()
    };
    let mut running = Vec::new();
    for (name, port) in [("alpha", pa), ("beta", pb), ("work", pe)] {
        let args = pod_args(name);
        assert_eq!(args[0], "gateway");
        let args: Vec<&str> = args[1..].iter().map(String::as_str).collect();
        let (mut child, dir) = gateway(&args, &[]);
        wait_serving(port, &mut child);
        running.push((child, dir));
    }
    let s = session(pe, &[]);
    let names = tool_names(pe, &s, &[]);
    for want in ["say", "alpha__whoami", "beta__echo", "beta__crash"] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    // alpha's own policy held on its own port; the endpoint's in the endpoint.
    for hidden in ["alpha__crash", "beta__whoami", "alpha__echo"] {
        assert!(!names.iter().any(|n| n == hidden), "{hidden} in {names:?}");
    }
    let list = request(
        pe,
        &s,
        &[],
        &json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"}),
    );
    let say = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "say")
        .unwrap();
    assert_eq!(say["description"], "Says it for $5");
    let said = call(pe, &s, &[], "say");
    assert_eq!(said["result"]["content"][0]["text"], "through the endpoint");
    for (child, _dir) in running.into_iter().rev() {
        let (code, stderr) = terminate(child);
        assert_eq!(code, 0, "{stderr}");
    }
}

#[test]
fn discovery_flags_make_the_endpoint_start_with_the_meta_tools() {
    let (a, _a, _da) = echo_server(&[], &[]);
    let port = free_port();
    let port_arg = port.to_string();
    let ua = upstream("alpha", a);
    let (mut child, _dir) = gateway(
        &[
            "--port",
            &port_arg,
            "--upstream",
            &ua,
            "--discovery-over",
            "1",
            "--discovery-always",
            "alpha__echo",
        ],
        &[],
    );
    wait_serving(port, &mut child);
    let s = session(port, &[]);
    let mut names = tool_names(port, &s, &[]);
    names.sort();
    assert_eq!(names, ["alpha__echo", "find_tools", "use_tools"]);
    // Found by name, called without being listed.
    assert!(call(port, &s, &[], "alpha__whoami")["result"].is_object());
    let (code, stderr) = terminate(child);
    assert_eq!(code, 0, "{stderr}");
    let out = Command::new(bin())
        .args(["gateway", "--discovery", "--", "x"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("--discovery is for an endpoint"));
}
