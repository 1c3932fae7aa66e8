//! The official MCP Python SDK (`mcp` 2.x, from PyPI) through the gateway, in each of
//! its modes (2026-07-28, legacy, auto), in front of a legacy and a modern child.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::common::{TestEnv, echo_bin, free_port};

/// The SDK release these tests speak with.
const SDK: &str = "mcp==2.3.0";
/// The Prometheus project's Python client, whose parser reads `/metrics` (operations.rs).
const PROMETHEUS: &str = "prometheus-client==0.21.1";
/// Kubernetes' schemas, offline, for the rendered manifests (tests/it/k8s.rs).
const K8S_VALIDATE: &str = "kubernetes-validate==1.37.0";

/// Runs `cmd` for at most `secs`; its output on failure.
pub(crate) fn run_bounded(mut cmd: Command, secs: u64) -> Result<String, String> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{what}: {e}"))?;
    // A bounded wait on the child's exit, polled (not wait_for: an SDK that cannot be
    // had is an `Err` for the caller to judge, not a failed test).
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().map_err(|e| e.to_string())?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{what}: no end within {secs} s"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(text)
    } else {
        Err(format!("{what} failed ({}):\n{text}", output.status))
    }
}

fn has_sdk(python: &Path) -> bool {
    let mut check = Command::new(python);
    check.args([
        "-c",
        "import importlib.metadata as m, mcp.client, prometheus_client.openmetrics.parser, kubernetes_validate; assert m.version('mcp').startswith('2.')",
    ]);
    run_bounded(check, 60).is_ok()
}

/// Where `.ci/run` makes the virtualenv with the SDK.
const CI_VENV: &str = "/tmp/mcpctl-ci-peers/sdk-venv";

/// A Python with the SDK, the Prometheus client and kubernetes-validate:
/// `MCPCTL_TEST_PYTHON` (it must have them), else the virtualenv `.ci/run` makes, when
/// it has them. Never installed from the network here: tests must not need it.
fn find_python() -> Option<PathBuf> {
    if let Some(given) = std::env::var_os("MCPCTL_TEST_PYTHON") {
        let given = PathBuf::from(given);
        assert!(
            has_sdk(&given),
            "MCPCTL_TEST_PYTHON={} has no {SDK}",
            given.display()
        );
        return Some(given);
    }
    let ci = Path::new(CI_VENV).join("bin/python");
    (ci.exists() && has_sdk(&ci)).then_some(ci)
}

fn python() -> Option<&'static Path> {
    static PYTHON: OnceLock<Option<PathBuf>> = OnceLock::new();
    PYTHON.get_or_init(find_python).as_deref()
}

/// The Python for `test`, or `None` after saying on the terminal that `test` is
/// skipped and why (a skip is never a silent pass).
pub(crate) fn sdk_python_for(test: &str) -> Option<&'static Path> {
    let found = python();
    if found.is_none() {
        use std::io::Write;
        // Straight to stderr: libtest hides what a passing test prints with eprintln!.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: no Python with {SDK}, {PROMETHEUS} and {K8S_VALIDATE} \
             (set MCPCTL_TEST_PYTHON, or run .ci/run, which makes {CI_VENV})"
        );
    }
    found
}

/// The Python a test found with [`sdk_python_for`].
pub(crate) fn sdk_python() -> &'static Path {
    python().expect("sdk_python_for was asked first")
}

/// `client.py` against `/mcp` on `port` in `mode`; what it saw, asserted ok (`what`
/// names the case in a failure).
fn sdk_client(
    python: &Path,
    script: &Path,
    port: u16,
    mode: &str,
    what: &str,
) -> serde_json::Value {
    sdk_client_with(python, script, port, mode, what, None)
}

/// [`sdk_client`] sending `bearer` with every request.
pub(crate) fn sdk_client_with(
    python: &Path,
    script: &Path,
    port: u16,
    mode: &str,
    what: &str,
    bearer: Option<&str>,
) -> serde_json::Value {
    let mut client = Command::new(python);
    client
        .arg(script)
        .arg(format!("http://127.0.0.1:{port}/mcp"))
        .arg(mode)
        .env_remove("MCPCTL_TEST_BEARER");
    if let Some(bearer) = bearer {
        client.env("MCPCTL_TEST_BEARER", bearer);
    }
    let seen =
        run_bounded(client, 120).unwrap_or_else(|e| panic!("SDK in {mode} mode, {what}: {e}"));
    let seen: serde_json::Value =
        serde_json::from_str(seen.trim()).unwrap_or_else(|e| panic!("{e}: {seen}"));
    assert_eq!(seen["ok"], true, "{mode} mode, {what}: {seen}");
    seen
}

#[test]
fn the_python_sdk_in_every_mode_works_with_children_of_both_eras() {
    let Some(python) =
        sdk_python_for("the_python_sdk_in_every_mode_works_with_children_of_both_eras")
    else {
        return;
    };
    let (legacy, modern) = (free_port(), free_port());
    let env = TestEnv::with_config(&format!(
        "version = 1\n\
         [servers.legacy]\ncommand = \"{echo}\"\nport = {legacy}\n\
         [servers.modern]\ncommand = \"{echo}\"\nargs = [\"--modern\"]\nport = {modern}\n",
        echo = echo_bin()
    ));
    env.run_within(60, &["apply"]).success();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/client.py");
    for (child, port) in [("legacy", legacy), ("modern", modern)] {
        for mode in ["2026-07-28", "legacy", "auto"] {
            let seen = sdk_client(python, &script, port, mode, &format!("{child} child"));
            let expected_era = if mode == "legacy" {
                "2025-11-25"
            } else {
                "2026-07-28"
            };
            assert_eq!(
                seen["protocol_version"], expected_era,
                "{mode} mode, {child} child: {seen}"
            );
        }
    }
}

#[test]
fn a_legacy_sse_server_of_the_python_sdk_runs_on_an_inner_port_behind_the_gateway() {
    let port = free_port();
    let Some(python) = sdk_python_for(
        "a_legacy_sse_server_of_the_python_sdk_runs_on_an_inner_port_behind_the_gateway",
    ) else {
        return;
    };
    let server = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/sse_server.py");
    let env = TestEnv::with_config(&format!(
        "version = 1\n[servers.pysse]\ncommand = \"{}\"\nargs = [\"{}\"]\ntransport = \"sse\"\nport = {port}\n",
        python.display(),
        server.display()
    ));
    env.run_within(60, &["apply"])
        .success()
        .stdout_has(&format!("SSE http://127.0.0.1:{port}/sse"));
    let mut sse = crate::gateway::SseClient::open(port, "GET", "/sse", &[], "");
    let (event, endpoint) = sse.next();
    assert_eq!(event, "endpoint");
    let post = |body: serde_json::Value| {
        crate::common::http(port, "POST", &endpoint, &[], body.to_string().as_bytes()).status
    };
    let init = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    assert_eq!(post(init), 202);
    let opened: serde_json::Value = serde_json::from_str(&sse.next().1).unwrap();
    assert_eq!(opened["result"]["serverInfo"]["name"], "py-sse", "{opened}");
    let initialized = serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(post(initialized), 202);
    let call = serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "through the proxy"}}});
    assert_eq!(post(call), 202);
    let answer: serde_json::Value = serde_json::from_str(&sse.next().1).unwrap();
    assert_eq!(answer["id"], 2);
    assert_eq!(
        answer["result"]["content"][0]["text"], "through the proxy",
        "{answer}"
    );
    // A foreign page is refused before anything reaches the server.
    let foreign = crate::common::http(
        port,
        "GET",
        "/sse",
        &[("Origin", "https://evil.example")],
        b"",
    );
    assert_eq!(foreign.status, 403);
}

/// The same three modes through `mcpctl gateway` (no daemon, no file).
#[test]
fn the_python_sdk_in_every_mode_works_through_mcpctl_gateway() {
    let Some(python) = sdk_python_for("the_python_sdk_in_every_mode_works_through_mcpctl_gateway")
    else {
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/client.py");
    for extra in [&[][..], &["--modern"][..]] {
        let port = free_port();
        let mut gateway = Command::new(crate::common::bin())
            .args(["gateway", "--port", &port.to_string(), "--", echo_bin()])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        crate::common::wait_for("mcpctl gateway to listen", 60, || {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .map(drop)
                .map_err(|e| e.to_string())
        });
        for mode in ["2026-07-28", "legacy", "auto"] {
            sdk_client(python, &script, port, mode, &format!("{extra:?}"));
        }
        let _ = Command::new("kill")
            .args(["-TERM", &gateway.id().to_string()])
            .status();
        let status = gateway.wait().unwrap();
        assert_eq!(status.code(), Some(0));
    }
}

/// Issue 23: the SDK, in each of its modes, against an endpoint whose members are a
/// legacy and a modern child (`prefix = "never"`: the first member's names win).
#[test]
fn the_python_sdk_in_every_mode_works_through_an_endpoint() {
    let (legacy, modern, endpoint) = (free_port(), free_port(), free_port());
    let env = TestEnv::with_config(&format!(
        "version = 1\n\
         [servers.legacy]\ncommand = \"{echo}\"\nport = {legacy}\n\
         [servers.modern]\ncommand = \"{echo}\"\nargs = [\"--modern\"]\nport = {modern}\n\
         [endpoints.both]\nport = {endpoint}\nservers = [\"modern\", \"legacy\"]\nprefix = \"never\"\n",
        echo = echo_bin()
    ));
    let Some(python) = sdk_python_for("the_python_sdk_in_every_mode_works_through_an_endpoint")
    else {
        return;
    };
    env.run_within(60, &["apply"]).success();
    // The catalog reads the members once they run.
    crate::common::wait_for("the endpoint lists echo", 30, || {
        let report = env.run(&["tools", "both", "--format", "json"]);
        if report.stdout.contains("\"echo\"") {
            Ok(())
        } else {
            Err(report.stdout.clone())
        }
    });
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/client.py");
    for mode in ["2026-07-28", "legacy", "auto"] {
        let seen = sdk_client(python, &script, endpoint, mode, "through an endpoint");
        assert!(
            seen["tools"]
                .as_array()
                .is_some_and(|t| t.iter().any(|n| n == "whoami")),
            "{seen}"
        );
    }
}
