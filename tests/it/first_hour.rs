//! Issue 27's acceptance, as a newcomer's five minutes (the README's tour): `init`,
//! find a server in the registry, `add` it, `apply`, `status`, `client link`, and the
//! server answering at the address the client was given; then a plan after an edit.
//!
//! The registry is served on 127.0.0.1 and its entry is a hosted (remote) server: a
//! TLS gateway of the bundled echo server, trusted through `SSL_CERT_FILE`, so the
//! whole path runs with no network and nothing but mcpctl.

use serde_json::json;

use crate::common::registry::{FakeRegistry, Reply, page};
use crate::common::{TestEnv, echo_bin, free_port, http, to_run};

const TLS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");

/// The hosted server: the echo server over HTTPS on `port`, in its own folder.
fn hosted(env: &TestEnv, port: u16) {
    env.write(
        "hosted/mcpctl.toml",
        &format!(
            "version = 1\n[servers.echo]\ncommand = \"{}\"\nport = {port}\ntls = {{ cert = \"{TLS}/cert.pem\", key = \"{TLS}/key.pem\" }}\n",
            echo_bin()
        ),
    );
    env.run_within(60, &["-f", "hosted/mcpctl.toml", "apply"])
        .success();
}

#[test]
fn from_the_registry_to_a_linked_client_in_the_tours_commands() {
    let env = TestEnv::new();
    let upstream = free_port();
    hosted(&env, upstream);
    let entry = json!({
        "name": "io.github.example/echo",
        "description": "Echoes what it is sent (a hosted MCP server)",
        "version": "1.4.0",
        "remotes": [{
            "type": "streamable-http",
            "url": format!("https://127.0.0.1:{upstream}/mcp"),
            "headers": [{ "name": "X-API-Key", "description": "Your API key", "isRequired": true, "isSecret": true }]
        }]
    });
    let listed = page(std::slice::from_ref(&entry), None);
    let one = json!({ "server": entry }).to_string();
    let registry = FakeRegistry::serve(move |path| {
        if path.starts_with("/v0.1/servers?") {
            Reply::Json(200, listed.clone())
        } else {
            Reply::Json(200, one.clone())
        }
    });
    let with = |args: &[&str]| {
        let output = env
            .command(args)
            .env("MCPCTL_REGISTRY", &registry.url)
            .env("SSL_CERT_FILE", format!("{TLS}/ca.pem"))
            .env("HOME", env.path().join("home"))
            .output()
            .unwrap();
        to_run(args, &output)
    };

    // 1. A file, with this user's key as its recipient.
    with(&["init"]).success();
    // 2. Find a server.
    with(&["search", "echo"])
        .success()
        .stdout_has("io.github.example/echo")
        .stdout_has("remote");
    // 3. Add it, its key encrypted; 4. apply.
    let port = free_port();
    with(&[
        "add",
        "io.github.example/echo",
        "--secret",
        "X_API_KEY=demo-key",
        "--port",
        &port.to_string(),
        "--no-apply",
    ])
    .success();
    with(&["apply"]).success();
    // 5. Status.
    with(&["status"]).success().stdout_has("echo");
    // 6. Link a client; it is given the local endpoint, which answers.
    with(&["client", "link", "claude-code", "--scope", "project"]).success();
    let linked = env.read(".mcp.json");
    let url = format!("http://127.0.0.1:{port}/mcp");
    assert!(linked.contains(&url), "{linked}");
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "newcomer", "version": "1"}}});
    let reply = http(port, "POST", "/mcp", &[], init.to_string().as_bytes());
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["result"]["serverInfo"]["name"], "mcp-echo");
    // 7. A plan after an edit.
    with(&[
        "config",
        "env",
        "set",
        "REGION",
        "eu",
        "--server",
        "echo",
        "--no-apply",
    ])
    .success();
    with(&["plan"]).success().stdout_has("REGION");
    let _ = env.run_within(60, &["daemon", "stop"]);
    let _ = env.run_within(60, &["-f", "hosted/mcpctl.toml", "daemon", "stop"]);
}
