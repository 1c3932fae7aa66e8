//! `auth = { oidc = ... }` (issue 24, part 2): a port as an OAuth 2.1 resource server.
//! A local OpenID provider (tests/it/idp.rs) mints the tokens; the daemon finds its keys
//! through its discovery document, checks each JWT (key, algorithm, iss, aud, exp),
//! maps its scopes to tools, and answers as the MCP authorization spec says (RFC 9728
//! metadata, 401/403 challenges).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

use crate::common::{TestEnv, echo_bin, free_port, http};
use crate::idp::{Key, Provider};

fn init_body() -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
    .to_string()
}

/// An mcp-echo server `alpha` on `port` taking `issuer`'s tokens: `mcp:echo` grants
/// `echo`, `mcp:all` every tool.
fn alpha_with_oidc(port: u16, issuer: &str, extra: &str) -> String {
    format!(
        "version = 1\n\n[servers.alpha]\ncommand = \"{}\"\nport = {port}\n\
         auth = {{ oidc = {{ issuer = \"{issuer}\", audience = \"http://127.0.0.1:{port}/mcp\", \
         scopes = {{ \"mcp:echo\" = [\"echo\"], \"mcp:all\" = [\"*\"] }}{extra} }} }}\n",
        echo_bin()
    )
}

/// A POST of `body` to /mcp with `token` (and `session`).
fn post(port: u16, token: &str, session: Option<&str>, body: &str) -> crate::common::HttpReply {
    let auth = format!("Bearer {token}");
    let mut headers = vec![("Authorization", auth.as_str())];
    if let Some(s) = session {
        headers.push(("Mcp-Session-Id", s));
    }
    http(port, "POST", "/mcp", &headers, body.as_bytes())
}

fn call(name: &str) -> String {
    json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": name, "arguments": {"text": "hi"}}})
        .to_string()
}

fn tool_names(body: &str) -> Vec<String> {
    let line = body
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap_or(body);
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {body}"));
    let mut names: Vec<String> = v["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools: {body}"))
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

#[test]
fn a_server_takes_an_issuers_tokens_by_scope_and_says_where_to_get_one() {
    let idp = Provider::start();
    let a = free_port();
    let audience = format!("http://127.0.0.1:{a}/mcp");
    let env = TestEnv::with_config(&alpha_with_oidc(a, &idp.base, ""));
    env.run_within(60, &["apply"]).success();

    // Without a token: 401 naming where the resource's metadata is (RFC 9728).
    let bare = http(a, "POST", "/mcp", &[], init_body().as_bytes());
    assert_eq!(bare.status, 401, "{}", bare.body);
    let challenge = bare
        .header("www-authenticate")
        .unwrap_or_default()
        .to_string();
    let metadata_url = format!("http://127.0.0.1:{a}/.well-known/oauth-protected-resource/mcp");
    assert!(
        challenge.starts_with("Bearer ")
            && challenge.contains(&format!("resource_metadata=\"{metadata_url}\"")),
        "{challenge}"
    );
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let doc = http(a, "GET", path, &[], b"");
        assert_eq!(doc.status, 200, "{path}: {}", doc.body);
        let doc = doc.json();
        assert_eq!(doc["resource"], json!(audience), "{doc}");
        assert_eq!(doc["authorization_servers"], json!([idp.base]), "{doc}");
        assert_eq!(
            doc["scopes_supported"],
            json!(["mcp:all", "mcp:echo"]),
            "{doc}"
        );
    }

    // A token with `mcp:echo`: in, sees `echo` alone, calls it; another tool is 403
    // insufficient_scope naming the scope that would grant it.
    let token = idp.mint(&audience, "alice", "mcp:echo openid");
    let opened = post(a, &token, None, &init_body());
    assert_eq!(opened.status, 200, "{}", opened.body);
    let session = opened.header("mcp-session-id").map(str::to_string);
    let listed = post(
        a,
        &token,
        session.as_deref(),
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).to_string(),
    );
    assert_eq!(tool_names(&listed.body), ["echo"]);
    let echoed = post(a, &token, session.as_deref(), &call("echo"));
    assert_eq!(echoed.status, 200);
    assert!(echoed.body.contains("hi"), "{}", echoed.body);
    let beyond = post(a, &token, session.as_deref(), &call("sample"));
    assert_eq!(beyond.status, 403, "{}", beyond.body);
    let challenge = beyond.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"mcp:all\""),
        "{challenge}"
    );
    // The method spelled with a JSON escape is the same method.
    let escaped = call("sample").replace("tools/call", "tools\\/call");
    assert!(escaped.contains("tools\\/call"), "{escaped}");
    assert_eq!(post(a, &token, session.as_deref(), &escaped).status, 403);
    // A token whose scopes grant nothing here: 403 before any session.
    let none = post(a, &idp.mint(&audience, "bob", "openid"), None, &init_body());
    assert_eq!(none.status, 403, "{}", none.body);
    assert!(
        none.header("www-authenticate")
            .is_some_and(|c| c.contains("insufficient_scope")),
        "{:?}",
        none.headers
    );
    // `mcp:all`: every tool.
    let all = idp.mint(&audience, "carol", "mcp:all");
    let opened = post(a, &all, None, &init_body());
    let session = opened.header("mcp-session-id").map(str::to_string);
    let listed = post(
        a,
        &all,
        session.as_deref(),
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).to_string(),
    );
    assert!(tool_names(&listed.body).len() > 3, "{}", listed.body);

    // The audit log names the subjects, allowed and refused.
    let audit = env.run(&["audit", "--format", "json"]);
    audit.success();
    assert!(audit.stdout.contains("\"oidc:alice\""), "{}", audit.stdout);
    assert!(
        audit.stdout.contains("outside the token's scopes"),
        "{}",
        audit.stdout
    );
    // The token itself is nowhere: not in the log, status, or the audit.
    let logs = env.run(&["server", "logs", "alpha"]);
    let status = env.run(&["status", "--format", "json"]);
    for text in [&logs.stdout, &logs.stderr, &status.stdout, &audit.stdout] {
        assert!(!text.contains(&token), "a token leaked");
    }
    env.run(&["daemon", "stop"]);
}

#[test]
fn forged_foreign_expired_and_malformed_tokens_get_401_and_nothing_else_is_harmed() {
    let idp = Provider::start();
    let a = free_port();
    let audience = format!("http://127.0.0.1:{a}/mcp");
    let env = TestEnv::with_config(&alpha_with_oidc(a, &idp.base, ""));
    env.run_within(60, &["apply"]).success();
    let status_of = |token: &str| post(a, token, None, &init_body()).status;

    let good = idp.claims(&audience, "alice", "mcp:all");
    let with = |field: &str, value: Value| {
        let mut c = good.clone();
        c[field] = value;
        idp.mint_claims(&c)
    };
    // RFC 8707: a token for another resource (another port) is refused.
    let other = format!("http://127.0.0.1:{}/mcp", free_port());
    let cases = [
        ("for another resource", idp.mint(&other, "alice", "mcp:all")),
        (
            "of another issuer",
            with("iss", json!("http://127.0.0.1:1/realms/evil")),
        ),
        ("expired", with("exp", json!(1_000_000_000u64))),
        ("not valid yet", with("nbf", json!(4_000_000_000u64))),
        ("signed by a key of no one", Key::new("k1").sign(&good)),
        ("alg none", {
            let head = B64.encode(r#"{"alg":"none","kid":"k1"}"#);
            format!("{head}.{}.", B64.encode(good.to_string()))
        }),
        ("HS256 keyed with the public key", {
            let jwk = idp.key.lock().unwrap().jwk.to_string();
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
            header.kid = Some("k1".into());
            jsonwebtoken::encode(
                &header,
                &good,
                &jsonwebtoken::EncodingKey::from_secret(jwk.as_bytes()).unwrap(),
            )
            .unwrap()
        }),
        ("a nested payload", {
            let head = B64.encode(r#"{"alg":"ES256","kid":"k1"}"#);
            let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
            format!("{head}.{}.c2ln", B64.encode(deep))
        }),
        ("garbage", "not.a.jwt".to_string()),
    ];
    for (what, token) in &cases {
        assert_eq!(status_of(token), 401, "{what}");
    }
    // Oversized and non-ASCII Authorization headers.
    let huge = format!("Bearer {}", "a".repeat(17 * 1024));
    assert_eq!(
        http(
            a,
            "POST",
            "/mcp",
            &[("Authorization", &huge)],
            init_body().as_bytes()
        )
        .status,
        400
    );
    assert_eq!(
        http(
            a,
            "POST",
            "/mcp",
            &[("Authorization", "Bearer é.é.é")],
            init_body().as_bytes()
        )
        .status,
        401
    );
    // The good token still gets in: nothing above harmed the port.
    assert_eq!(status_of(&idp.mint(&audience, "alice", "mcp:all")), 200);
    env.run(&["daemon", "stop"]);
}

#[test]
fn a_rotated_key_is_fetched_once_and_made_up_key_ids_cannot_flood_the_issuer() {
    let idp = Provider::start();
    let a = free_port();
    let audience = format!("http://127.0.0.1:{a}/mcp");
    let env = TestEnv::with_config(&alpha_with_oidc(a, &idp.base, ""));
    env.run_within(60, &["apply"]).success();
    let old = idp.mint(&audience, "alice", "mcp:all");
    for _ in 0..3 {
        assert_eq!(post(a, &old, None, &init_body()).status, 200);
    }
    let fetches = || idp.jwks_fetches.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(fetches(), 1, "the keys are fetched once and cached");
    // The issuer rotates: a token of the new key names a kid not held -> fetched again.
    idp.rotate("k2");
    let new = idp.mint(&audience, "alice", "mcp:all");
    assert_eq!(post(a, &new, None, &init_body()).status, 200);
    assert_eq!(fetches(), 2);
    // The old key is gone from the set: its token, checked before, no longer gets in.
    assert_eq!(post(a, &old, None, &init_body()).status, 401);
    // Fifty tokens with made-up key ids: refused, and the issuer is not asked fifty times.
    for i in 0..50 {
        let forged =
            Key::new(&format!("made-up-{i}")).sign(&idp.claims(&audience, "eve", "mcp:all"));
        assert_eq!(post(a, &forged, None, &init_body()).status, 401);
    }
    let after = idp.jwks_fetches.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        after <= 4,
        "at most one fetch per 10 s, not one per token: {after}"
    );
    env.run(&["daemon", "stop"]);
}

#[test]
fn an_issuer_that_is_down_hangs_or_sends_a_huge_jwks_gets_a_clear_503_within_a_bound() {
    // Down: nothing listens where the issuer should be.
    let dead = format!("http://127.0.0.1:{}/realms/test", free_port());
    let a = free_port();
    let env = TestEnv::with_config(&alpha_with_oidc(a, &dead, ""));
    env.run_within(60, &["apply"]).success();
    let token =
        Key::new("k1").sign(&json!({"iss": dead, "aud": "x", "sub": "s", "exp": 4_000_000_000u64}));
    let refused = post(a, &token, None, &init_body());
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(
        refused.body.contains("keys cannot be read"),
        "{}",
        refused.body
    );
    env.run(&["daemon", "stop"]);

    // Huge: a JWKS over 256 KiB is not read.
    let idp = Provider::start();
    idp.pad_jwks(512 * 1024);
    let b = free_port();
    let env = TestEnv::with_config(&alpha_with_oidc(b, &idp.base, ""));
    env.run_within(60, &["apply"]).success();
    let audience = format!("http://127.0.0.1:{b}/mcp");
    let refused = post(
        b,
        &idp.mint(&audience, "alice", "mcp:all"),
        None,
        &init_body(),
    );
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(
        refused.body.contains("keys cannot be read"),
        "{}",
        refused.body
    );
    assert!(
        !refused.body.contains("127.0.0.1"),
        "no internals: {}",
        refused.body
    );

    // Hanging: refused once the fetch's bound passes, and the port still answers.
    let slow = Provider::start();
    slow.hang.store(true, std::sync::atomic::Ordering::SeqCst);
    let c = free_port();
    env.write("mcpctl.toml", &alpha_with_oidc(c, &slow.base, ""));
    env.run_within(60, &["apply"]).success();
    let audience = format!("http://127.0.0.1:{c}/mcp");
    let started = std::time::Instant::now();
    let refused = post(
        c,
        &slow.mint(&audience, "alice", "mcp:all"),
        None,
        &init_body(),
    );
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(25),
        "bounded"
    );
    assert_eq!(
        http(c, "GET", "/.well-known/oauth-protected-resource", &[], b"").status,
        200
    );
    env.run(&["daemon", "stop"]);
}

#[test]
fn bad_oidc_settings_are_refused_naming_what_and_where() {
    let cases = [
        (
            "issuer = \"http://login.example.com\", audience = \"a\"",
            "plain http to another machine",
        ),
        (
            "issuer = \"login.example.com\", audience = \"a\"",
            "not an http(s) URL",
        ),
        (
            "issuer = \"https://x\", audience = \"\"",
            "`audience` is empty",
        ),
        (
            "issuer = \"https://x\", audience = 'http://127.0.0.1:9/mcp\"x'",
            "`audience` is empty, too long, or has spaces, quotes",
        ),
        (
            "issuer = \"https://x\", audience = \"https://mcp.example.com/a?b=c#frag\"",
            "a query or a fragment",
        ),
        (
            "issuer = \"https://x\", audience = \"a\", scopes = { \"has space\" = [\"*\"] }",
            "is not a scope",
        ),
        (
            "issuer = \"https://x\", audience = \"a\", scopes = { \"s\" = [\"[x\"] }",
            "not a glob",
        ),
        (
            "issuer = \"https://x\", audience = \"a\", rate = \"5/day\"",
            "bad `rate`",
        ),
        ("issuer = \"https://x\"", "missing field `audience`"),
        (
            "issuer = \"https://x\", audience = \"a\", secret = \"s\"",
            "unknown field `secret`",
        ),
    ];
    for (oidc, want) in cases {
        let env = TestEnv::with_config(&format!(
            "version = 1\n\n[servers.alpha]\ncommand = \"{}\"\nport = {}\nauth = {{ oidc = {{ {oidc} }} }}\n",
            echo_bin(),
            free_port()
        ));
        let run = env.run(&["validate"]);
        run.failure();
        assert!(run.stderr.contains(want), "{oidc}: {}", run.stderr);
        assert!(
            run.stderr.contains("mcpctl.toml:6:"),
            "{oidc}: where: {}",
            run.stderr
        );
    }
    // An endpoint's `auth` that lets nobody in.
    let env = TestEnv::with_config(&format!(
        "version = 1\n\n[servers.alpha]\ncommand = \"{}\"\nport = {}\n\n[endpoints.work]\nport = {}\nservers = [\"alpha\"]\nauth = {{ tokens = false }}\n",
        echo_bin(),
        free_port(),
        free_port()
    ));
    env.run(&["validate"])
        .failure()
        .stderr_has("lets nobody in");
}

#[test]
fn the_official_python_sdk_calls_with_an_issuers_jwt_through_a_server_and_an_endpoint() {
    let Some(python) = crate::sdk::sdk_python_for(
        "the_official_python_sdk_calls_with_an_issuers_jwt_through_a_server_and_an_endpoint",
    ) else {
        return;
    };
    let idp = Provider::start();
    let (a, w) = (free_port(), free_port());
    // The member takes only the issuer's tokens: the endpoint reaches it as the owner.
    let config = format!(
        "{}\n[endpoints.work]\nport = {w}\nservers = [\"alpha\"]\nprefix = \"never\"\n\
         auth = {{ oidc = {{ issuer = \"{}\", audience = \"http://127.0.0.1:{w}/mcp\", \
         scopes = {{ \"mcp:use\" = [\"echo\", \"confirm\"] }} }} }}\n",
        alpha_with_oidc(a, &idp.base, ""),
        idp.base
    );
    let env = TestEnv::with_config(&config);
    env.run_within(60, &["apply"]).success();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/client.py");
    let on_server = idp.mint(&format!("http://127.0.0.1:{a}/mcp"), "sdk", "mcp:all");
    let on_endpoint = idp.mint(&format!("http://127.0.0.1:{w}/mcp"), "sdk", "mcp:use");
    for mode in ["legacy", "2026-07-28"] {
        let seen = crate::sdk::sdk_client_with(
            python,
            &script,
            a,
            mode,
            "server, a JWT",
            Some(&on_server),
        );
        assert!(
            seen["tools"].as_array().is_some_and(|t| t.len() > 2),
            "{seen}"
        );
        let seen = crate::sdk::sdk_client_with(
            python,
            &script,
            w,
            mode,
            "endpoint, a JWT",
            Some(&on_endpoint),
        );
        assert_eq!(seen["tools"], json!(["confirm", "echo"]), "{mode}: {seen}");
    }
    // The server's token is for the server: the endpoint refuses it (RFC 8707).
    assert_eq!(post(w, &on_server, None, &init_body()).status, 401);
    env.run(&["daemon", "stop"]);
}

#[test]
fn mcpctl_gateway_takes_an_issuers_tokens_for_a_server_and_an_endpoint_with_a_rate() {
    use crate::gateway_cmd::{gateway, initialize, terminate, wait_serving};
    let idp = Provider::start();
    let port = free_port();
    let port_arg = port.to_string();
    let audience = format!("http://127.0.0.1:{port}/mcp");
    let metrics_port = free_port();
    let metrics = format!("127.0.0.1:{metrics_port}");
    let (mut child, _dir) = gateway(
        &[
            "--port",
            &port_arg,
            "--metrics",
            &metrics,
            "--oidc-issuer",
            &idp.base,
            "--oidc-audience",
            &audience,
            "--oidc-scope",
            "mcp:echo=echo,conf*",
            "--oidc-rate",
            "2/min",
            "--",
            echo_bin(),
        ],
        &[],
    );
    wait_serving(port, &mut child);
    assert_eq!(initialize(port, &[]).status, 401);
    let token = idp.mint(&audience, "ci", "mcp:echo");
    let auth = format!("Bearer {token}");
    let opened = initialize(port, &[("Authorization", &auth)]);
    assert_eq!(opened.status, 200, "{}", opened.body);
    let session = opened.header("mcp-session-id").map(str::to_string);
    let listed = post(
        port,
        &token,
        session.as_deref(),
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).to_string(),
    );
    assert_eq!(tool_names(&listed.body), ["confirm", "echo"]);
    // The third request within the minute is over the subject's rate: 429, Retry-After.
    let limited = post(port, &token, session.as_deref(), &call("echo"));
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert!(
        limited
            .header("retry-after")
            .is_some_and(|s| s.parse::<u64>().is_ok_and(|n| n >= 1))
    );
    // Counted by port (subjects are unbounded; ports are not).
    let exposed = http(metrics_port, "GET", "/metrics", &[], b"").body;
    assert!(
        exposed.contains("mcpctl_oidc_rate_limited_total{target=\"server\"} 1"),
        "{exposed}"
    );
    // Another subject has its own bucket.
    assert_eq!(
        initialize(
            port,
            &[(
                "Authorization",
                &format!("Bearer {}", idp.mint(&audience, "other", "mcp:echo"))
            )]
        )
        .status,
        200
    );
    assert_eq!(terminate(child).0, 0);

    // An endpoint over a server reached by URL, taking the issuer's tokens, bound beyond
    // loopback (allowed: who comes in is known).
    let (a, w) = (free_port(), free_port());
    let a_arg = a.to_string();
    let (mut member, _d1) = gateway(&["--port", &a_arg, "--", echo_bin()], &[]);
    wait_serving(a, &mut member);
    let w_arg = w.to_string();
    let upstream = format!("alpha=http://127.0.0.1:{a}/mcp");
    let audience = format!("http://127.0.0.1:{w}/mcp");
    let (mut endpoint, _d2) = gateway(
        &[
            "--port",
            &w_arg,
            "--bind",
            "0.0.0.0",
            "--upstream",
            &upstream,
            "--oidc-issuer",
            &idp.base,
            "--oidc-audience",
            &audience,
        ],
        &[],
    );
    wait_serving(w, &mut endpoint);
    assert_eq!(initialize(w, &[]).status, 401);
    let doc = http(
        w,
        "GET",
        "/.well-known/oauth-protected-resource/mcp",
        &[],
        b"",
    )
    .json();
    assert_eq!(doc["resource"], json!(audience));
    let token = idp.mint(&audience, "ci", "anything");
    let opened = post(w, &token, None, &init_body());
    assert_eq!(opened.status, 200, "{}", opened.body);
    let session = opened.header("mcp-session-id").map(str::to_string);
    let echoed = post(w, &token, session.as_deref(), &call("alpha__echo"));
    assert!(echoed.body.contains("hi"), "{}", echoed.body);
    assert_eq!(terminate(endpoint).0, 0);
    assert_eq!(terminate(member).0, 0);
}
