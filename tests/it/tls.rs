//! HTTPS on the gateway port: `tls = { cert, key }`.

use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use serde_json::json;

use crate::common::{HttpReply, TestEnv, connect, echo_bin, free_port, http_on};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");

/// A client that trusts only the test CA.
fn https(port: u16, headers: &[(&str, &str)], body: &serde_json::Value) -> HttpReply {
    let mut roots = RootCertStore::empty();
    for cert in
        rustls::pki_types::CertificateDer::pem_file_iter(format!("{FIXTURES}/ca.pem")).unwrap()
    {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let tls = ClientConnection::new(Arc::new(config), name).unwrap();
    let stream = StreamOwned::new(tls, connect(port));
    http_on(
        stream,
        port,
        "POST",
        "/mcp",
        headers,
        body.to_string().as_bytes(),
    )
}

fn with_tls(port: u16, cert: &str) -> TestEnv {
    let env = TestEnv::with_config(&format!(
        "version = 1\n[servers.secure]\ncommand = \"{}\"\nport = {port}\ntls = {{ cert = \"tls/{cert}\", key = \"tls/key.pem\" }}\n",
        echo_bin()
    ));
    std::fs::create_dir_all(env.path().join("tls")).unwrap();
    for file in ["cert.pem", "key.pem"] {
        std::fs::copy(
            format!("{FIXTURES}/{file}"),
            env.path().join("tls").join(file),
        )
        .unwrap();
    }
    env
}

#[test]
fn a_server_with_tls_is_served_over_https_only() {
    let port = free_port();
    let env = with_tls(port, "cert.pem");
    env.run_within(60, &["apply"])
        .success()
        .stdout_has(&format!("https://127.0.0.1:{port}/mcp"));
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let opened = https(port, &[], &init);
    assert_eq!(opened.status, 200, "{}", opened.body);
    let session = opened.header("mcp-session-id").unwrap().to_string();
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "sealed"}}});
    let echoed = https(port, &[("Mcp-Session-Id", &session)], &call);
    assert_eq!(echoed.json()["result"]["content"][0]["text"], "sealed");

    // Plain HTTP on the same port gets no HTTP answer.
    use std::io::{Read, Write};
    let mut plain = connect(port);
    // The server may hang up at once: the write failing is fine too.
    let _ = write!(plain, "GET /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(!String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    env.run(&["status"]).stdout_has(&format!("{port}"));
}

#[test]
fn a_missing_certificate_fails_that_server_naming_the_file() {
    let port = free_port();
    let env = with_tls(port, "nowhere.pem");
    let run = env.run_within(60, &["apply"]);
    run.failure().stderr_has("secure").stderr_has("nowhere.pem");
    // Nothing listens, so nothing serves in clear by mistake.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn a_remote_https_server_is_proxied_when_its_certificate_is_trusted() {
    let (upstream, trusted, untrusted) = (free_port(), free_port(), free_port());
    let env = with_tls(upstream, "cert.pem");
    env.run_within(60, &["apply"]).success();
    let remote = |port: u16| {
        format!(
            "version = 1\n[servers.far]\nmode = \"remote\"\nurl = \"https://127.0.0.1:{upstream}/mcp\"\nport = {port}\n"
        )
    };
    env.write("trusting/mcpctl.toml", &remote(trusted));
    env.write("wary/mcpctl.toml", &remote(untrusted));
    // The daemon starts from this command and keeps its environment: it trusts the test CA.
    let output = env
        .command(&["-f", "trusting/mcpctl.toml", "apply"])
        .env("SSL_CERT_FILE", format!("{FIXTURES}/ca.pem"))
        .output()
        .unwrap();
    crate::common::to_run(&["apply"], &output).success();
    env.run_within(60, &["-f", "wary/mcpctl.toml", "apply"])
        .success();

    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let body = init.to_string();
    let through = crate::common::http(trusted, "POST", "/mcp", &[], body.as_bytes());
    assert_eq!(through.status, 200, "{}", through.body);
    assert_eq!(through.json()["result"]["serverInfo"]["name"], "mcp-echo");

    // A certificate nobody vouched for is not talked to.
    let refused = crate::common::http(untrusted, "POST", "/mcp", &[], body.as_bytes());
    assert_eq!(refused.status, 502, "{}", refused.body);
    assert!(
        refused.body.contains("upstream unreachable"),
        "{}",
        refused.body
    );
    for dir in ["trusting", "wary"] {
        let _ = env.run_within(60, &["-f", &format!("{dir}/mcpctl.toml"), "daemon", "stop"]);
    }
}
