//! The dashboard in a real browser (issue 26's acceptance): headless Chromium driven
//! through ChromeDriver's WebDriver API on 127.0.0.1. It loads the page from a
//! running daemon and the test reads the DOM it renders: the servers and their states,
//! a plot, a live change after `mcpctl server stop`, the log tail, a restart through
//! the page's own buttons, and the page without a cookie. Screenshots are kept in
//! `target/ui-artifacts/`. Without Chromium (Debian's `chromium` and
//! `chromium-driver`; `.ci/run` installs them) the test says it is skipped, unless
//! `MCPCTL_TEST_BROWSER=required`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use super::ui::config;
use crate::common::{KillOnDrop, TestEnv, free_port, wait_for};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Browser {
    port: u16,
    session: String,
    _driver: KillOnDrop,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Chromium, headless, through ChromeDriver; `None` (said) when not installed.
    fn start(test: &str) -> Option<Self> {
        if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
            assert!(
                std::env::var("MCPCTL_TEST_BROWSER").as_deref() != Ok("required"),
                "MCPCTL_TEST_BROWSER=required and no {CHROMIUM} / {CHROMEDRIVER}"
            );
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: no {CHROMIUM} and {CHROMEDRIVER} (Debian's chromium and \
                 chromium-driver; .ci/run installs them)"
            );
            return None;
        }
        let port = free_port();
        let driver = KillOnDrop(
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start chromedriver"),
        );
        wait_for("chromedriver", 30, || {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .map(drop)
                .map_err(|e| e.to_string())
        });
        let profile = tempfile::tempdir().expect("a profile folder");
        // The flags that keep Chromium off the network (this machine refuses it).
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1000",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args}
        }}});
        let reply = driver_call(port, "POST", "/session", &caps);
        let session = reply["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {reply}"))
            .to_string();
        Some(Self {
            port,
            session,
            _driver: driver,
            _profile: profile,
        })
    }

    fn call(&self, method: &str, path: &str, body: &Value) -> Value {
        driver_call(
            self.port,
            method,
            &format!("/session/{}{path}", self.session),
            body,
        )
    }

    fn go(&self, url: &str) {
        self.call("POST", "/url", &json!({ "url": url }));
    }

    /// Runs `script` in the page; its return value.
    fn eval(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            &json!({"script": script, "args": []}),
        )
    }

    /// Waits until `script` returns something other than null/false; that value.
    fn until(&self, what: &str, script: &str) -> Value {
        wait_for(what, 30, || match self.eval(script) {
            Value::Null | Value::Bool(false) => {
                Err(self.eval("return document.body.innerText").to_string())
            }
            v => Ok(v),
        })
    }

    fn click(&self, selector: &str) {
        let found = self.call(
            "POST",
            "/element",
            &json!({"using": "css selector", "value": selector}),
        );
        let id = found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {selector}: {found}"));
        self.call("POST", &format!("/element/{id}/click"), &json!({}));
    }

    fn screenshot(&self, name: &str) -> PathBuf {
        use base64::Engine as _;
        let shot = self.call("GET", "/screenshot", &Value::Null);
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot.as_str().unwrap_or_default())
            .expect("a PNG");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ui-artifacts");
        std::fs::create_dir_all(&dir).expect("artifact folder");
        let path = dir.join(name);
        std::fs::write(&path, png).expect("write the screenshot");
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = driver_call(
            self.port,
            "DELETE",
            &format!("/session/{}", self.session),
            &Value::Null,
        );
    }
}

/// One WebDriver command; its `value`. (ChromeDriver keeps connections open: the
/// answer is read by its Content-Length, not to the end of the stream.)
fn driver_call(port: u16, method: &str, path: &str, body: &Value) -> Value {
    use std::io::{BufRead, BufReader, Read, Write};
    let body = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    let mut stream = crate::common::connect(port);
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("write");
    stream.write_all(&body).expect("write");
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).expect("status line");
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("a header");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut text = vec![0u8; length];
    reader.read_exact(&mut text).expect("the body");
    let text = String::from_utf8_lossy(&text);
    assert!(
        status_line.split_whitespace().nth(1) == Some("200"),
        "webdriver {method} {path}: {status_line} {text}"
    );
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    value["value"].clone()
}

fn state_of(server: &str) -> String {
    format!(
        "const c = document.querySelector('tr[data-server=\"{server}\"] td.state'); return c && c.textContent;"
    )
}

#[test]
fn the_page_in_chromium_shows_what_runs_live_and_acts_as_the_owner() {
    let Some(browser) = Browser::start("ui_browser") else {
        return;
    };
    let env = TestEnv::with_config(&config(&["alpha", "beta"]));
    env.run_within(120, &["apply"]).success();
    // The link as `mcpctl ui` opens it with a display: a page in .mcpctl/ that goes on
    // to the link (a navigation from a file: the login must still work).
    let bin = env.path().join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    std::fs::write(bin.join("xdg-open"), "#!/bin/sh\nexit 0\n").expect("opener");
    let made_executable = Command::new("chmod")
        .arg("+x")
        .arg(bin.join("xdg-open"))
        .status();
    assert!(made_executable.is_ok_and(|s| s.success()));
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
        .expect("mcpctl ui");
    assert!(out.status.success());
    let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
    browser.go(&format!(
        "file://{}",
        env.path().join(".mcpctl/ui-open.html").display()
    ));
    // Signed in: neither the token nor the key is left in the address.
    browser.until("the page signed in", "return location.pathname === '/' && !document.querySelector('#overview').hidden && document.querySelector('#connection').textContent.startsWith('live')");
    let at = browser.eval("return location.href");
    assert!(
        !at.to_string().contains("token") && !at.to_string().contains("key"),
        "{at}"
    );
    assert_eq!(
        browser.until(
            "alpha running",
            &format!("{} ", state_of("alpha")).replace(
                "return c && c.textContent;",
                "return c && c.textContent === 'running' && c.textContent;"
            )
        ),
        "running"
    );
    assert_eq!(browser.eval(&state_of("beta")), "running");
    // The state is text and a class (the symbol), not colour alone.
    let class = browser
        .eval("return document.querySelector('tr[data-server=\"alpha\"] td.state').className");
    assert_eq!(class, "state ok");
    browser.until("the apply in the events", "return [...document.querySelectorAll('#events li')].some(li => li.textContent.includes('apply by the CLI'))");
    browser.screenshot("overview.png");

    // A change made elsewhere reaches the open page by itself.
    env.run_within(60, &["server", "stop", "beta"]).success();
    browser.until(
        "beta stopped on the page",
        "const c = document.querySelector('tr[data-server=\"beta\"] td.state'); return c && c.textContent === 'stopped';",
    );

    // One server: plots, its log, its tools.
    browser.go(&format!(
        "{}/#/server/alpha",
        url.split("/login").next().unwrap_or_default()
    ));
    let plots = browser.until(
        "five plots",
        "const n = document.querySelectorAll('svg.plot').length; return n >= 5 && n;",
    );
    assert_eq!(plots, 5);
    browser.until(
        "the log tail",
        "return document.querySelector('#log').textContent.includes('mcp-echo ready')",
    );
    browser.until(
        "the tools",
        "return [...document.querySelectorAll('#tools td')].some(td => td.textContent === 'echo')",
    );

    // Restart through the page: the plan first, then the same edit and converge.
    let pid_before = env.server_status("alpha")["pids"][0].clone();
    browser.click("button[data-action=\"restart\"]");
    let plan = browser.until("the plan in the dialog", "const d = document.querySelector('#confirm'); return d.open && document.querySelector('#confirm-plan').textContent;");
    assert!(plan.to_string().contains("server \\\"alpha\\\""), "{plan}");
    browser.screenshot("dashboard.png");
    browser.click("#confirm-run");
    browser.until(
        "the restart done",
        "return document.querySelector('#action-result').textContent === 'restart: done'",
    );
    let pid_after = env.server_status("alpha")["pids"][0].clone();
    assert_ne!(pid_before, pid_after, "a new process");
    browser.until("the page's apply listed", "return [...document.querySelectorAll('#events li')].some(li => li.textContent.includes('apply by the dashboard: restart alpha'))");
    browser.screenshot("server.png");

    // Without the cookie, the page shows no server and says how to sign in.
    browser.call("DELETE", "/cookie", &Value::Null);
    browser.go(url.split("/login").next().unwrap_or_default());
    browser.until(
        "the sign-in note",
        "return !document.querySelector('#signin').hidden",
    );
    let rows = browser.eval("return document.querySelectorAll('#servers tbody tr').length");
    assert_eq!(rows, 0);
}
