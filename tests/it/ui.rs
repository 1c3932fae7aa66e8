//! `mcpctl ui` (issue 26) over plain HTTP: the one-time login, the session (a cookie and
//! a key), and every refusal (no cookie, the cookie without its key as another program
//! on 127.0.0.1 could have it, a used or wrong token, a foreign Origin, a rebound Host,
//! a POST without the key header, a plan that moved, the sessions of a port given up),
//! the API's documents, and that an action is the CLI's edit of the file. The page in
//! a real browser: `ui_browser.rs`.

use std::io::{Read, Write};

use serde_json::{Value, json};

use crate::common::{TestEnv, echo_bin, free_port, http};

/// A dashboard signed in: its port, the session cookie and the session's key.
pub struct Signed {
    pub port: u16,
    pub cookie: String,
    pub key: String,
}

impl Signed {
    /// The headers of a signed-in request.
    pub fn headers(&self) -> [(&str, &str); 2] {
        [("Cookie", &self.cookie), ("x-mcpctl-key", &self.key)]
    }
}

pub fn config(servers: &[&str]) -> String {
    let mut text = String::from("version = 1\n");
    for name in servers {
        text.push_str(&format!(
            "\n[servers.{name}]\ncommand = \"{}\"\nport = {}\n",
            echo_bin(),
            free_port()
        ));
    }
    text
}

/// `mcpctl ui --no-open`: the link it prints.
pub fn link(env: &TestEnv, extra: &[&str]) -> String {
    let mut args = vec!["ui", "--no-open"];
    args.extend_from_slice(extra);
    let run = env.run_within(60, &args);
    run.success();
    run.stdout.trim().to_string()
}

/// The port and the path of a link `http://127.0.0.1:PORT/login?token=T`.
pub fn split(link: &str) -> (u16, String) {
    let rest = link
        .strip_prefix("http://127.0.0.1:")
        .expect("a loopback link");
    let (port, path) = rest.split_once('/').expect("a path");
    (port.parse().expect("a port"), format!("/{path}"))
}

/// Opens a login link's path: the cookie it sets and the key its page hands on.
pub fn open_link(port: u16, path: &str) -> (String, String) {
    let login = http(port, "GET", path, &[], b"");
    assert_eq!(login.status, 200, "{}", login.body);
    let cookie = login
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .expect("a cookie")
        .to_string();
    let key = login
        .body
        .split("#key=")
        .nth(1)
        .and_then(|k| k.split('"').next())
        .expect("the key in the page")
        .to_string();
    (cookie, key)
}

pub fn sign_in(env: &TestEnv) -> Signed {
    let (port, path) = split(&link(env, &[]));
    let (cookie, key) = open_link(port, &path);
    let signed = Signed { port, cookie, key };
    let session = http(port, "GET", "/api/v1/session", &signed.headers(), b"");
    assert_eq!(session.status, 200, "{}", session.body);
    signed
}

/// A request with `Host` as given (the common helper always sends 127.0.0.1).
fn with_host(port: u16, host: &str, path: &str, headers: &[(&str, &str)]) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("write");
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text
}

#[test]
fn the_link_signs_in_once_and_everything_else_is_refused_without_data() {
    let env = TestEnv::with_config(&config(&["alpha"]));
    env.run_within(120, &["apply"]).success();
    let first = link(&env, &[]);
    let second = link(&env, &[]);
    assert_ne!(first, second, "each `mcpctl ui` prints a fresh token");
    let (port, path) = split(&first);
    assert_eq!(split(&second).0, port, "the port is kept");

    // No session: 401 and nothing of the servers.
    for api in [
        "/api/v1/status",
        "/api/v1/overview",
        "/api/v1/events",
        "/api/v1/servers/alpha/metrics",
    ] {
        let reply = http(port, "GET", api, &[], b"");
        assert_eq!(reply.status, 401, "{api}: {}", reply.body);
        assert!(
            !reply.body.contains("alpha"),
            "{api} leaked: {}",
            reply.body
        );
    }
    // A wrong token: no cookie.
    let wrong = http(port, "GET", "/login?token=0123", &[], b"");
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("set-cookie").is_none());

    // The link: a cookie the page's script cannot read, and the session's key in the
    // fragment of the address the page goes on to (a fragment is never sent).
    let login = http(port, "GET", &path, &[], b"");
    assert_eq!(login.status, 200);
    let set = login.header("set-cookie").expect("a cookie").to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(login.body.contains("url=/#key="), "{}", login.body);
    assert!(
        !login
            .body
            .contains(path.trim_start_matches("/login?token="))
    );
    let cookie = set.split(';').next().unwrap_or_default().to_string();
    let key = login
        .body
        .split("#key=")
        .nth(1)
        .and_then(|k| k.split('"').next())
        .unwrap_or_default()
        .to_string();
    // Used once: the same link again signs nobody in.
    assert_eq!(http(port, "GET", &path, &[], b"").status, 401);

    // The cookie alone (what another program on 127.0.0.1 the browser visits may see:
    // cookies are not kept apart by port) gets nothing, reads or acts.
    for api in ["/api/v1/status", "/api/v1/session", "/api/v1/events"] {
        let alone = http(port, "GET", api, &[("Cookie", &cookie)], b"");
        assert_eq!(alone.status, 401, "{api}: {}", alone.body);
        assert!(!alone.body.contains("alpha"));
    }
    let signed = [("Cookie", cookie.as_str()), ("x-mcpctl-key", key.as_str())];
    let status = http(port, "GET", "/api/v1/status", &signed, b"");
    assert_eq!(status.status, 200, "{}", status.body);
    // The same document as `status --format json` (the volatile fields aside).
    let cli: Value = serde_json::from_str(&env.run(&["status", "--format", "json"]).stdout)
        .expect("status json");
    let keys = |v: &Value| -> Vec<String> {
        v[0].as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    };
    let api = status.json();
    assert_eq!(keys(&api), keys(&cli));
    for field in ["server", "status", "port", "pids", "http_endpoint"] {
        assert_eq!(api[0][field], cli[0][field], "{field}");
    }
    // The event streams, which cannot send headers, name the key in their address.
    let stream = http(
        port,
        "GET",
        &format!("/api/v1/servers/alpha/logs?lines=1&key={key}"),
        &[("Cookie", &cookie)],
        b"",
    );
    assert_eq!(stream.status, 200, "{}", stream.body);

    // A page elsewhere, a rebound name, a cookie of nobody.
    let foreign = http(
        port,
        "GET",
        "/api/v1/status",
        &[signed[0], signed[1], ("Origin", "http://evil.example")],
        b"",
    );
    assert_eq!(foreign.status, 403);
    assert!(!foreign.body.contains("alpha"));
    let rebound = with_host(
        port,
        &format!("rebind.evil.example:{port}"),
        "/api/v1/status",
        &signed,
    );
    assert!(rebound.starts_with("HTTP/1.1 403"), "{rebound}");
    assert!(!rebound.contains("alpha"));
    let nobody = http(
        port,
        "GET",
        "/api/v1/status",
        &[("Cookie", "mcpctl_ui_1=x"), ("x-mcpctl-key", &key)],
        b"",
    );
    assert_eq!(nobody.status, 401);

    // The page: no inline script, no framing, nothing cached.
    let page = http(port, "GET", "/", &[], b"");
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.header("cache-control"), Some("no-store"));
}

#[test]
fn moving_the_port_signs_everyone_out_and_a_port_that_cannot_be_taken_moves_nothing() {
    let env = TestEnv::with_config(&config(&["alpha"]));
    env.run_within(120, &["apply"]).success();
    let old = sign_in(&env);
    // A port something else holds: refused, and the dashboard stays where it was.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let taken_port = taken.local_addr().expect("addr").port();
    let run = env.run_within(
        60,
        &[
            "ui",
            "--no-open",
            "--bind",
            &format!("127.0.0.1:{taken_port}"),
        ],
    );
    run.failure();
    assert!(
        run.stderr.contains(&taken_port.to_string()),
        "{}",
        run.stderr
    );
    let still = http(old.port, "GET", "/api/v1/session", &old.headers(), b"");
    assert_eq!(still.status, 200, "the served dashboard is kept");
    drop(taken);

    // Moved: the old port's pages keep calling it; whoever takes it gets a session
    // that is no longer one anywhere.
    let new_port = free_port();
    let (port, _) = split(&link(&env, &["--bind", &format!("127.0.0.1:{new_port}")]));
    assert_eq!(port, new_port);
    let moved_cookie = old.cookie.replace(
        &format!("mcpctl_ui_{}", old.port),
        &format!("mcpctl_ui_{new_port}"),
    );
    let replayed = http(
        new_port,
        "GET",
        "/api/v1/session",
        &[("Cookie", &moved_cookie), ("x-mcpctl-key", &old.key)],
        b"",
    );
    assert_eq!(replayed.status, 401, "{}", replayed.body);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", old.port)).is_err(),
        "the old port is closed"
    );
}

#[test]
fn an_action_needs_the_key_shows_its_plan_and_is_the_clis_edit() {
    let env = TestEnv::with_config(&config(&["alpha", "beta"]));
    env.run_within(120, &["apply"]).success();
    let ui = sign_in(&env);
    let before = env.read("mcpctl.toml");
    let post = |path: &str, headers: &[(&str, &str)], body: &str| {
        http(ui.port, "POST", path, headers, body.as_bytes())
    };
    let cookie = ("Cookie", ui.cookie.as_str());
    let key = ("x-mcpctl-key", ui.key.as_str());
    for headers in [vec![cookie], vec![cookie, ("x-mcpctl-key", "wrong")]] {
        let refused = post("/api/v1/servers/beta/stop", &headers, "");
        assert_eq!(refused.status, 401, "{}", refused.body);
    }
    // A POST may not carry the key in its address (a form elsewhere could).
    let in_address = post(
        &format!("/api/v1/servers/beta/stop?key={}", ui.key),
        &[cookie],
        "",
    );
    assert_eq!(in_address.status, 401);
    // A foreign page with the cookie and even the key is refused by its Origin.
    let cross = post(
        "/api/v1/servers/beta/stop",
        &[cookie, key, ("Origin", "http://evil.example")],
        "",
    );
    assert_eq!(cross.status, 403);
    assert_eq!(
        env.read("mcpctl.toml"),
        before,
        "nothing refused touched the file"
    );

    // Asked without `confirm`: the plan only.
    let plan = post("/api/v1/servers/beta/stop", &[cookie, key], "");
    assert_eq!(plan.status, 200, "{}", plan.body);
    let plan = plan.json();
    assert!(
        plan["plan"]
            .as_str()
            .unwrap_or_default()
            .contains("server \"beta\""),
        "{plan}"
    );
    assert_eq!(env.read("mcpctl.toml"), before, "a plan writes nothing");
    assert_eq!(env.server_status("beta")["status"], "running");

    // A confirm whose digests moved: 409 with the new plan, nothing done.
    let mut stale = plan["confirm"].clone();
    stale["observed_digest"] = Value::from("blake3:00");
    let moved = post(
        "/api/v1/servers/beta/stop",
        &[cookie, key],
        &json!({ "confirm": stale }).to_string(),
    );
    assert_eq!(moved.status, 409, "{}", moved.body);
    assert_eq!(env.read("mcpctl.toml"), before);

    let done = post(
        "/api/v1/servers/beta/stop",
        &[cookie, key],
        &json!({ "confirm": plan["confirm"] }).to_string(),
    );
    assert_eq!(done.status, 200, "{}", done.body);
    // The CLI's edit: `state = "stopped"` in beta's block, the rest as it was.
    let after = env.read("mcpctl.toml");
    assert!(after.contains("state = \"stopped\""), "{after}");
    assert_eq!(after.matches("state =").count(), 1, "{after}");
    assert!(
        env.run(&["plan"]).stdout.contains("No changes"),
        "the file is what runs"
    );
    assert_eq!(env.server_status("alpha")["status"], "running");

    // The same plan confirmed by a second page: the file moved under it, nothing is
    // written, the file stays what runs.
    let second = post(
        "/api/v1/servers/beta/start",
        &[cookie, key],
        &json!({ "confirm": plan["confirm"] }).to_string(),
    );
    assert_eq!(second.status, 409, "{}", second.body);
    assert_eq!(
        env.read("mcpctl.toml"),
        after,
        "a refused confirm writes nothing"
    );
    assert!(env.run(&["plan"]).stdout.contains("No changes"));

    // Bad asks are refused with why, and the file stays.
    let unknown = post("/api/v1/servers/nope/stop", &[cookie, key], "");
    assert_eq!(unknown.status, 400);
    assert!(unknown.body.contains("nope"), "{}", unknown.body);
    let many = post(
        "/api/v1/servers/alpha/scale",
        &[cookie, key],
        r#"{"instances": 100000}"#,
    );
    assert_eq!(many.status, 400, "{}", many.body);
    let garbage = post("/api/v1/servers/alpha/scale", &[cookie, key], "{not json");
    assert_eq!(garbage.status, 400);
    assert_eq!(env.read("mcpctl.toml"), after);
}

#[test]
fn the_log_and_the_samples_of_a_server_and_names_that_are_not_servers() {
    let env = TestEnv::with_config(&config(&["alpha"]));
    env.run_within(120, &["apply"]).success();
    let ui = sign_in(&env);
    let signed = ui.headers();
    let log = http(
        ui.port,
        "GET",
        "/api/v1/servers/alpha/logs?lines=50",
        &signed,
        b"",
    );
    assert_eq!(log.status, 200);
    assert!(log.body.contains("mcp-echo ready"), "{}", log.body);
    for bad in [
        "/api/v1/servers/..%2F..%2Fetc/logs",
        "/api/v1/servers/nope/logs",
    ] {
        let reply = http(ui.port, "GET", bad, &signed, b"");
        assert_eq!(reply.status, 404, "{bad}: {}", reply.body);
    }
    // A point as soon as the server is there; its memory from the next sample on.
    let metrics = http(
        ui.port,
        "GET",
        "/api/v1/servers/alpha/metrics?since=0",
        &signed,
        b"",
    );
    assert_eq!(metrics.status, 200, "{}", metrics.body);
    crate::common::wait_for("a sample with the server's memory", 30, || {
        let points = http(
            ui.port,
            "GET",
            "/api/v1/servers/alpha/metrics?since=0",
            &signed,
            b"",
        )
        .json();
        let measured = points
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["rss_bytes"].as_u64().unwrap_or(0) > 0));
        if measured {
            Ok(())
        } else {
            Err(points.to_string())
        }
    });
    assert_eq!(
        http(ui.port, "GET", "/api/v1/servers/nope/metrics", &signed, b"").status,
        404
    );
}

#[test]
fn the_dashboard_is_loopback_only_and_starts_the_daemon() {
    let env = TestEnv::with_config(&config(&[]));
    let run = env.run_within(60, &["ui", "--no-open", "--bind", "0.0.0.0:0"]);
    run.failure();
    assert!(run.stderr.contains("loopback only"), "{}", run.stderr);
    env.write(
        "mcpctl.toml",
        &format!("{}[daemon]\nui = \"0.0.0.0:9470\"\n", config(&[])),
    );
    let run = env.run_within(60, &["ui", "--no-open"]);
    run.failure();
    assert!(run.stderr.contains("mcpctl.toml:3:"), "{}", run.stderr);

    // No daemon runs: `mcpctl ui` starts one, which serves the page.
    let port = free_port();
    env.write(
        "mcpctl.toml",
        &format!("{}[daemon]\nui = \"127.0.0.1:{port}\"\n", config(&[])),
    );
    assert!(!env.path().join(".mcpctl/daemon.pid").exists());
    let (at, _) = split(&link(&env, &[]));
    assert_eq!(at, port, "[daemon] ui is where it listens");
    assert!(env.path().join(".mcpctl/daemon.pid").exists());
    assert_eq!(http(port, "GET", "/", &[], b"").status, 200);

    // The file broken while the daemon runs: the dashboard still opens, and says why
    // its `[daemon] ui` is not followed.
    env.write(
        "mcpctl.toml",
        &format!("{}[daemon]\nui = \"0.0.0.0:9470\"\n", config(&[])),
    );
    let run = env.run_within(60, &["ui", "--no-open"]);
    run.success();
    assert!(run.stderr.contains("mcpctl.toml:3:"), "{}", run.stderr);
}

#[test]
fn with_a_display_the_browser_opens_a_private_page_not_the_token() {
    let env = TestEnv::with_config(&config(&[]));
    // A stand-in for xdg-open that records what it was given.
    let bin = env.path().join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let opener = bin.join("xdg-open");
    std::fs::write(
        &opener,
        format!(
            "#!/bin/sh\necho \"$@\" > {}\n",
            env.path().join("opened").display()
        ),
    )
    .expect("opener");
    let chmod = std::process::Command::new("chmod")
        .args(["+x"])
        .arg(&opener)
        .status();
    assert!(chmod.is_ok_and(|s| s.success()));
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = env
        .command(&["ui"])
        .env("PATH", path)
        .env("DISPLAY", ":99")
        .output()
        .expect("run mcpctl ui");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let token = url.split("token=").nth(1).expect("a token");
    let opened = crate::common::wait_for("the browser opened", 10, || {
        std::fs::read_to_string(env.path().join("opened")).map_err(|e| e.to_string())
    });
    assert!(
        !opened.contains(token),
        "the token in a command line: {opened}"
    );
    let page = std::fs::read_to_string(opened.trim()).expect("the page it opened");
    assert!(page.contains(&url), "{page}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(opened.trim()).map(|m| m.permissions().mode() & 0o777);
    assert_eq!(mode.ok(), Some(0o600));
}
