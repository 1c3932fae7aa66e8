//! `TestEnv`: a temp folder, files written into it, and the real binary run there.
//! On a failed expectation, everything about the run is printed.

pub mod otlp;
pub mod registry;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct TestEnv {
    dir: tempfile::TempDir,
}

/// Stops any daemon the test started, so no process outlives the test: gracefully
/// for `mcpctl.toml`, then SIGKILL for every daemon pid file left below the folder
/// (its servers follow it through their death signal).
impl Drop for TestEnv {
    fn drop(&mut self) {
        if self.path().join(".mcpctl/daemon.sock").exists() {
            let _ = self.command(&["daemon", "stop"]).output();
        }
        for pid_file in find_named(self.path(), "daemon.pid", 4) {
            if let Ok(pid) = std::fs::read_to_string(pid_file) {
                let _ = Command::new("kill").args(["-9", pid.trim()]).output();
            }
        }
    }
}

fn find_named(dir: &Path, name: &str, depth: usize) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() && depth > 0 {
            found.extend(find_named(&path, name, depth - 1));
        } else if path.file_name().is_some_and(|n| n == name) {
            found.push(path);
        }
    }
    found
}

pub struct Run {
    pub args: Vec<String>,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn dump(&self) -> String {
        format!(
            "mcpctl {}\nexit code: {}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.args.join(" "),
            self.code,
            self.stdout,
            self.stderr
        )
    }

    /// Asserts the exit code and returns the run for more checks.
    pub fn code(&self, want: i32) -> &Self {
        assert_eq!(self.code, want, "wrong exit code\n{}", self.dump());
        self
    }

    pub fn success(&self) -> &Self {
        self.code(0)
    }

    pub fn failure(&self) -> &Self {
        self.code(1)
    }

    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks `{needle}`\n{}",
            self.dump()
        );
        self
    }

    pub fn stdout_has(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks `{needle}`\n{}",
            self.dump()
        );
        self
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mcpctl")
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

impl TestEnv {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// A folder with `mcpctl.toml` holding `config`.
    pub fn with_config(config: &str) -> Self {
        let env = Self::new();
        env.write("mcpctl.toml", config);
        env
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, name: &str, text: &str) {
        let path = self.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, text).unwrap();
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path().join(name)).unwrap()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin());
        cmd.args(args);
        self.prepare(cmd)
    }

    /// `mcpctl ARGS` run by `sh` after `setup` (say `ulimit -n 256`), which a daemon
    /// it starts inherits.
    pub fn command_after(&self, setup: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("{setup} && exec \"$0\" \"$@\""))
            .arg(bin())
            .args(args);
        self.prepare(cmd)
    }

    /// `mcpctl ARGS` on a terminal of its own (`script` makes a pseudo-terminal): what
    /// the test writes is typed there, what it reads is the terminal's output.
    pub fn command_in_terminal(&self, args: &[&str]) -> Command {
        let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
        let line = std::iter::once(bin())
            .chain(args.iter().copied())
            .map(quote)
            .collect::<Vec<_>>()
            .join(" ");
        let mut cmd = Command::new("script");
        cmd.args(["-qec", &format!("exec {line}"), "/dev/null"]);
        self.prepare(cmd)
    }

    fn prepare(&self, mut cmd: Command) -> Command {
        cmd.current_dir(self.path())
            .env("NO_COLOR", "1")
            // Keys live in the test's folder, never in the real home.
            .env("XDG_CONFIG_HOME", self.path().join("xdg"))
            .env_remove("MCPCTL_IDENTITY")
            .env_remove("MCPCTL_FILE")
            .env_remove("MCPCTL_LOG");
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let output = self.command(args).output().expect("run mcpctl");
        to_run(args, &output)
    }
}

pub fn to_run(args: &[&str], output: &Output) -> Run {
    Run {
        args: args.iter().map(|s| s.to_string()).collect(),
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A small valid config with one server, on a port of [`free_port`] (tests with it
/// only read and edit the file, but a port is never a constant).
pub fn one_server() -> String {
    one_server_on(free_port())
}

/// [`one_server`] on `port`.
pub fn one_server_on(port: u16) -> String {
    format!("version = 1\n\n[servers.echo]\ncommand = \"mcp-echo\"\nport = {port}\n")
}

/// A client's config file from `tests/fixtures/clients`, in its documented shape.
pub fn client_fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/clients")
            .join(name),
    )
    .unwrap()
}

/// The `mcp-echo` fixture.
pub fn echo_bin() -> &'static str {
    env!("CARGO_BIN_EXE_mcp-echo")
}

/// Polls `check` until it returns `Some`, for at most `secs` seconds; on timeout
/// fails with what was wanted and what was last seen.
pub fn wait_for<T>(want: &str, secs: u64, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        match check() {
            Ok(v) => return v,
            Err(got) if std::time::Instant::now() > deadline => {
                panic!("timed out waiting for {want}; last seen: {got}")
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
}

/// Of `pids`, those still alive after at most `secs` (returns as soon as none is).
pub fn left_alive(pids: &[u32], secs: u64) -> Vec<u32> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let alive: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
        if alive.is_empty() || std::time::Instant::now() > deadline {
            return alive;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

impl TestEnv {
    /// Runs with a deadline: a command that hangs fails the test instead of hanging it.
    pub fn run_within(&self, secs: u64, args: &[&str]) -> Run {
        let mut child = self
            .command(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run mcpctl");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while child.try_wait().expect("wait").is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("mcpctl {} did not finish within {secs}s", args.join(" "));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        to_run(args, &child.wait_with_output().expect("output"))
    }

    /// Runs with `input` on stdin (how secrets are given).
    pub fn run_with_stdin(&self, args: &[&str], input: &str) -> Run {
        use std::io::Write;
        use std::process::Stdio;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run mcpctl");
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input.as_bytes()).expect("write stdin");
        }
        to_run(args, &child.wait_with_output().expect("output"))
    }

    /// `server status NAME --format json`.
    /// `config secret set KEY [--server S]` with the value on stdin.
    pub fn set_secret(&self, key: &str, server: Option<&str>, value: &str) -> Run {
        let mut args = vec!["config", "secret", "set", key];
        if let Some(s) = server {
            args.extend(["--server", s]);
        }
        self.run_with_stdin(&args, &format!("{value}\n"))
    }

    pub fn server_status(&self, name: &str) -> serde_json::Value {
        let run = self.run(&["server", "status", name, "--format", "json"]);
        run.success();
        serde_json::from_str(&run.stdout).unwrap()
    }

    /// The pids a `--pid-file` fixture wrote (the server, then any grandchild).
    pub fn pids(&self, file: &str) -> Vec<u32> {
        std::fs::read_to_string(self.path().join(file))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }
}

/// A reply from [`http`].
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// A minimal HTTP/1.1 request over a fresh connection to 127.0.0.1:`port`, for
/// asserting exact status codes and headers.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpReply {
    http_on(connect(port), port, method, path, headers, body)
}

/// A loopback connection that gives up reading after 30 s.
pub fn connect(port: u16) -> std::net::TcpStream {
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    stream
}

/// [`http`] over a stream of the caller's (TLS, say).
pub fn http_on(
    mut stream: impl std::io::Read + std::io::Write,
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpReply {
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    // The server may answer (e.g. 413) before reading a large body.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in: {text}"));
    let headers = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    HttpReply {
        status,
        headers,
        body: body.to_string(),
    }
}

/// A port for a server under test: chosen by the OS (free when asked), and never
/// handed out twice in one run, so tests in parallel, and two checkouts testing at
/// once, do not collide.
pub fn free_port() -> u16 {
    static TAKEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        if TAKEN.lock().unwrap().insert(port) {
            return port;
        }
    }
}

/// `VmRSS` of a process, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

impl TestEnv {
    /// The running daemon's pid.
    pub fn daemon_pid(&self) -> u32 {
        self.read(".mcpctl/daemon.pid")
            .trim()
            .parse()
            .expect("a daemon pid")
    }
}

/// A child process that is killed (and reaped) when the test ends, even by a panic.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `mcpctl ARGS` in the background with stdout and stderr in `log`.
pub fn spawn_logged(env: &TestEnv, args: &[&str], log: &str) -> KillOnDrop {
    let log = std::fs::File::create(env.path().join(log)).unwrap();
    KillOnDrop(
        env.command(args)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    )
}
