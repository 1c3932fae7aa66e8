//! `mcp-echo`: a small stdio MCP server (2025 era) that ships with mcpctl, for the
//! quickstart and the tests. It is the `mcp-echo` binary and, so that the quickstart
//! needs no second build, `mcpctl __mcp-echo` (what a `command = "mcp-echo"` runs
//! when no `mcp-echo` is on PATH). Tools: `echo`, `log`, `crash`, `exit`, `sample`, `confirm`,
//! `garbage` (invalid UTF-8 on stdout), `flood` (huge stderr line / answer), ...
//!
//! Flags make it misbehave on demand, so every supervision path can be exercised:
//! `--fail-at-start CODE` exits at once, `--ignore-sigterm` survives SIGTERM,
//! `--no-handshake` never answers `initialize`, `--stderr TEXT` prints a line to
//! stderr at start, `--grandchild [--setsid]` leaves a `sleep` grandchild behind,
//! `--pid-file PATH` writes its pid (and the grandchild's) for tests to check,
//! `--record-meta PATH` appends each request's method and `params._meta` there,
//! `--notify LEVEL:TEXT` sends a `notifications/message` once initialized,
//! `--print-env NAME` prints that variable to stderr (a server leaking its token),
//! `--spin` keeps a core busy and `--hold-mib N` holds N MiB resident (for the figures
//! of `server monitor`), `--discover-delay-ms MS` answers `server/discover` only after
//! MS (a slow-starting server, whatever its era), `--roots-at-start` asks its client
//! for `roots/list` once initialized, outside any call (and logs the answer).
//!
//! `--modern` makes it a 2026-07-28 server instead: it answers `server/discover`,
//! refuses `initialize`, wants the `_meta` envelope on every request, and its
//! `confirm` tool answers `input_required` (an elicitation) until retried with the
//! answer.

use std::io::{BufRead, Write};
use std::process::Command;

use serde_json::{Value, json};

/// A line on stderr, where this server logs; a closed stderr is no reason to stop.
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

#[derive(Default)]
struct Flags {
    fail_at_start: Option<i32>,
    ignore_sigterm: bool,
    no_handshake: bool,
    stderr: Vec<String>,
    grandchild: bool,
    setsid: bool,
    pid_file: Option<String>,
    notify: Vec<(String, String)>,
    print_env: Vec<String>,
    modern: bool,
    start_delay_ms: u64,
    discover_delay_ms: u64,
    roots_at_start: bool,
    /// Keep one core busy (a server that works: what CPU figures must show).
    spin: bool,
    /// Hold this many MiB, touched (a server that grows).
    hold_mib: usize,
    /// Append each request's method and `params._meta` here, a JSON line each (what a
    /// gateway passed on: the trace context, say).
    record_meta: Option<String>,
}

fn parse_flags(args: Vec<String>) -> Result<Flags, String> {
    let mut flags = Flags::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--fail-at-start" => flags.fail_at_start = Some(value()?.parse().map_err(|e| format!("{e}"))?),
            "--ignore-sigterm" => flags.ignore_sigterm = true,
            "--no-handshake" => flags.no_handshake = true,
            "--stderr" => flags.stderr.push(value()?),
            "--grandchild" => flags.grandchild = true,
            "--setsid" => flags.setsid = true,
            "--pid-file" => flags.pid_file = Some(value()?),
            "--record-meta" => flags.record_meta = Some(value()?),
            "--print-env" => flags.print_env.push(value()?),
            "--modern" => flags.modern = true,
            "--spin" => flags.spin = true,
            "--hold-mib" => flags.hold_mib = value()?.parse().map_err(|e| format!("{e}"))?,
            "--start-delay-ms" => flags.start_delay_ms = value()?.parse().map_err(|e| format!("{e}"))?,
            "--roots-at-start" => flags.roots_at_start = true,
            "--discover-delay-ms" => flags.discover_delay_ms = value()?.parse().map_err(|e| format!("{e}"))?,
            "--notify" => {
                let v = value()?;
                let (level, text) = v.split_once(':').ok_or("--notify takes LEVEL:TEXT")?;
                flags.notify.push((level.to_string(), text.to_string()));
            }
            "--help" => return Err("usage: mcp-echo [--fail-at-start CODE] [--ignore-sigterm] [--no-handshake] [--stderr TEXT] [--grandchild [--setsid]] [--pid-file PATH] [--notify LEVEL:TEXT] [--print-env NAME] [--modern] [--start-delay-ms MS] [--discover-delay-ms MS] [--roots-at-start] [--spin] [--hold-mib N] [--record-meta PATH]".into()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(flags)
}

/// Runs the server on this process's stdin and stdout; `args` are its flags.
pub fn main(args: Vec<String>) -> i32 {
    let flags = match parse_flags(args) {
        Ok(f) => f,
        Err(e) => {
            say!("mcp-echo: {e}");
            return 2;
        }
    };
    for line in &flags.stderr {
        say!("{line}");
    }
    for name in &flags.print_env {
        say!("{name}={}", std::env::var(name).unwrap_or_default());
    }
    if let Some(code) = flags.fail_at_start {
        say!("ERROR mcp-echo: failing at start with code {code} as asked");
        return code;
    }
    // A slow start, before reading anything: clients arrive while it is "starting".
    std::thread::sleep(std::time::Duration::from_millis(flags.start_delay_ms));
    if flags.ignore_sigterm {
        crate::sys::ignore_sigterm();
    }
    if flags.spin {
        std::thread::spawn(|| {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        });
    }
    // Filled with a non-zero byte: every page written, so all of it is resident.
    let _held = std::hint::black_box(vec![1u8; flags.hold_mib << 20]);
    let mut pids = vec![std::process::id().to_string()];
    if flags.grandchild {
        let script = if flags.setsid {
            "exec setsid sleep 300"
        } else {
            "exec sleep 300"
        };
        match Command::new("sh").args(["-c", script]).spawn() {
            Ok(child) => pids.push(child.id().to_string()),
            Err(e) => say!("mcp-echo: cannot start grandchild: {e}"),
        }
    }
    if let Some(path) = &flags.pid_file {
        let _ = std::fs::write(path, pids.join("\n") + "\n");
    }
    say!("INFO mcp-echo ready (pid {})", std::process::id());
    serve(&flags);
    0
}

fn serve(flags: &Flags) {
    let mut waiting: std::collections::HashMap<String, (Value, Ask)> =
        std::collections::HashMap::new();
    let mut next_request = 0u64;
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let msg: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                send(
                    &mut out,
                    &json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": format!("parse error: {e}")}}),
                );
                continue;
            }
        };
        // A client's answer to one of our requests completes the call that asked.
        if msg.get("method").is_none()
            && let Some((asked, kind)) = msg
                .get("id")
                .and_then(Value::as_str)
                .and_then(|i| waiting.remove(i))
        {
            let text = answer_text(kind, &msg);
            send(
                &mut out,
                &json!({"jsonrpc": "2.0", "id": asked, "result": {"content": [{"type": "text", "text": text}]}}),
            );
            continue;
        }
        // Any other answer (to `--roots-at-start`'s question) is only logged.
        if msg.get("method").is_none() {
            say!("INFO mcp-echo: answered: {msg}");
            continue;
        }
        let Some(id) = msg.get("id").cloned() else {
            if msg.get("method").and_then(Value::as_str) == Some("notifications/cancelled") {
                let request = msg.pointer("/params/requestId").unwrap_or(&Value::Null);
                say!("INFO mcp-echo: request {request} cancelled");
            }
            if msg.get("method").and_then(Value::as_str) == Some("notifications/initialized")
                && flags.roots_at_start
            {
                send(
                    &mut out,
                    &json!({"jsonrpc": "2.0", "id": "echo-roots-at-start", "method": "roots/list"}),
                );
            }
            if msg.get("method").and_then(Value::as_str) == Some("notifications/initialized") {
                for (level, text) in &flags.notify {
                    let params = json!({"level": level, "data": text});
                    send(
                        &mut out,
                        &json!({"jsonrpc": "2.0", "method": "notifications/message", "params": params}),
                    );
                }
            }
            continue;
        };
        let method = msg.get("method").and_then(Value::as_str).unwrap_or("");
        let params = msg.get("params").cloned().unwrap_or(Value::Null);
        if let Some(path) = &flags.record_meta {
            record_meta(path, method, &params);
        }
        if method == "server/discover" && flags.discover_delay_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(flags.discover_delay_ms));
        }
        let reply = match method {
            "initialize" if flags.no_handshake => continue,
            "initialize" if flags.modern => Err(error(
                -32022,
                "unsupported protocol version",
                Some(json!({"supported": [MODERN], "requested": params.get("protocolVersion")})),
            )),
            "initialize" => Ok(json!({
                "protocolVersion": params.get("protocolVersion").cloned().unwrap_or(json!("2025-11-25")),
                "capabilities": {"tools": {}, "logging": {}},
                "serverInfo": {"name": "mcp-echo", "version": env!("CARGO_PKG_VERSION")}
            })),
            _ if flags.modern => modern_reply(&mut out, method, &params),
            "ping" => Ok(json!({})),
            "tools/list" => Ok(json!({"tools": tools()})),
            "tools/call" if ask_of(&params).is_some() => {
                // Ask the client; answer this call when its reply arrives.
                let Some(ask) = ask_of(&params) else { continue };
                next_request += 1;
                let request_id = format!("echo-ask-{next_request}");
                let text = params
                    .pointer("/arguments/text")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let (method, params) = ask.request(text);
                waiting.insert(request_id.clone(), (id, ask));
                send(
                    &mut out,
                    &json!({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}),
                );
                continue;
            }
            "tools/call" => call_tool(&mut out, &params).map_err(|(code, m)| error(code, &m, None)),
            _ => Err(error(-32601, &format!("method not found: {method}"), None)),
        };
        let response = match reply {
            Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
            Err(error) => json!({"jsonrpc": "2.0", "id": id, "error": error}),
        };
        send(&mut out, &response);
    }
}

fn send(out: &mut impl Write, msg: &Value) {
    let _ = writeln!(out, "{msg}");
    let _ = out.flush();
}

fn tools() -> Value {
    let text_arg = |desc: &str| json!({"type": "object", "properties": {"text": {"type": "string", "description": desc}}});
    json!([
        {"name": "echo", "description": "Returns its `text` argument", "inputSchema": text_arg("text to return")},
        {"name": "log", "description": "Writes `text` to stderr and as a notifications/message at `level`",
         "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}, "level": {"type": "string"}}}},
        {"name": "crash", "description": "Aborts the process", "inputSchema": {"type": "object"}},
        {"name": "changed", "description": "Announces that its `list` (tools, prompts, resources) changed",
         "inputSchema": {"type": "object", "properties": {"list": {"type": "string"}}}},
        {"name": "whoami", "description": "Returns this process's pid", "inputSchema": {"type": "object"}},
        {"name": "sleep", "description": "Waits `ms` milliseconds, then returns", "inputSchema": {"type": "object", "properties": {"ms": {"type": "integer"}}}},
        {"name": "sample", "description": "Asks the client to sample `text`, returns its answer", "inputSchema": text_arg("prompt")},
        {"name": "confirm", "description": "Asks the client to confirm `text` (elicitation), returns the answer", "inputSchema": text_arg("what to confirm")},
        {"name": "progress", "description": "Sends `steps` progress notifications, then returns", "inputSchema": {"type": "object", "properties": {"steps": {"type": "integer"}}}},
        {"name": "exit", "description": "Exits with `code`", "inputSchema": {"type": "object", "properties": {"code": {"type": "integer"}}}},
        {"name": "garbage", "description": "Writes a line of invalid UTF-8 to stdout, then answers", "inputSchema": {"type": "object"}},
        {"name": "flood", "description": "Writes one line of `stderr` bytes to stderr, then answers with `reply` bytes of text",
         "inputSchema": {"type": "object", "properties": {"stderr": {"type": "integer"}, "reply": {"type": "integer"}}}}
    ])
}

/// The requests a legacy `tools/call` can make of its client.
#[derive(Clone, Copy)]
enum Ask {
    Sample,
    Confirm,
}

fn ask_of(params: &Value) -> Option<Ask> {
    match params.get("name").and_then(Value::as_str) {
        Some("sample") => Some(Ask::Sample),
        Some("confirm") => Some(Ask::Confirm),
        _ => None,
    }
}

impl Ask {
    fn request(self, text: &str) -> (&'static str, Value) {
        match self {
            Self::Sample => (
                "sampling/createMessage",
                json!({"messages": [{"role": "user", "content": {"type": "text", "text": text}}], "maxTokens": 10}),
            ),
            Self::Confirm => ("elicitation/create", confirm_request(text)),
        }
    }
}

fn confirm_request(text: &str) -> Value {
    json!({"mode": "form", "message": format!("Confirm {text}?"),
           "requestedSchema": {"type": "object", "properties": {"yes": {"type": "boolean"}}}})
}

/// What a tool that asked its client returns: the answer, or why there is none.
fn answer_text(kind: Ask, msg: &Value) -> String {
    let Some(result) = msg.get("result") else {
        return format!(
            "asking failed: {}",
            msg.get("error").unwrap_or(&Value::Null)
        );
    };
    match kind {
        Ask::Sample => result
            .pointer("/content/text")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        Ask::Confirm => elicit_text(result),
    }
}

/// `accept {"yes":true}` from an elicitation result.
fn elicit_text(result: &Value) -> String {
    let action = result.get("action").and_then(Value::as_str).unwrap_or("?");
    match result.get("content") {
        Some(content) => format!("{action} {content}"),
        None => action.to_string(),
    }
}

const MODERN: &str = "2026-07-28";

/// One line of `--record-meta`: `{"method": ..., "_meta": ...}`.
fn record_meta(path: &str, method: &str, params: &Value) {
    let line = json!({"method": method, "_meta": params.get("_meta")});
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path);
    match file {
        Ok(mut file) => {
            let _ = writeln!(file, "{line}");
        }
        Err(e) => say!("WARN mcp-echo: cannot record to {path}: {e}"),
    }
}

fn error(code: i64, message: &str, data: Option<Value>) -> Value {
    let mut error = json!({"code": code, "message": message});
    if let Some(data) = data {
        error["data"] = data;
    }
    error
}

/// A 2026-07-28 server: stateless, every request enveloped, input asked for with
/// `input_required` and a retry instead of a server request.
fn modern_reply(out: &mut impl Write, method: &str, params: &Value) -> Result<Value, Value> {
    let meta = params.get("_meta");
    let version = meta.and_then(|m| m.get("io.modelcontextprotocol/protocolVersion"));
    let caps = meta.and_then(|m| m.get("io.modelcontextprotocol/clientCapabilities"));
    let (Some(version), Some(_)) = (version, caps) else {
        return Err(error(-32602, "missing the _meta envelope", None));
    };
    if version != MODERN {
        let data = json!({"supported": [MODERN], "requested": version});
        return Err(error(-32022, "unsupported protocol version", Some(data)));
    }
    let server_info = json!({"io.modelcontextprotocol/serverInfo": {"name": "mcp-echo-modern", "version": env!("CARGO_PKG_VERSION")}});
    let mut result = match method {
        "server/discover" => json!({"supportedVersions": [MODERN], "capabilities": {"tools": {}},
                                    "ttlMs": 60000, "cacheScope": "public"}),
        "tools/list" => json!({"tools": tools(), "ttlMs": 60000, "cacheScope": "public"}),
        "tools/call" if params.get("name").and_then(Value::as_str) == Some("confirm") => {
            let text = params
                .pointer("/arguments/text")
                .and_then(Value::as_str)
                .unwrap_or("");
            let state = format!("echo-state:{text}");
            match params.pointer("/inputResponses/confirm") {
                Some(answer) if params.get("requestState") == Some(&json!(state)) => {
                    json!({"content": [{"type": "text", "text": elicit_text(answer)}]})
                }
                Some(_) => return Err(error(-32602, "requestState does not match", None)),
                None => json!({"resultType": "input_required",
                    "inputRequests": {"confirm": {"method": "elicitation/create", "params": confirm_request(text)}},
                    "requestState": state}),
            }
        }
        "tools/call" => call_tool(out, params).map_err(|(code, m)| error(code, &m, None))?,
        _ => return Err(error(-32601, &format!("method not found: {method}"), None)),
    };
    if result.get("resultType").is_none() {
        result["resultType"] = json!("complete");
    }
    result["_meta"] = server_info;
    Ok(result)
}

fn call_tool(out: &mut impl Write, params: &Value) -> Result<Value, (i64, String)> {
    let name = params.get("name").and_then(Value::as_str).unwrap_or("");
    let args = params.get("arguments").cloned().unwrap_or(json!({}));
    let text = args
        .get("text")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    match name {
        "echo" => Ok(json!({"content": [{"type": "text", "text": text}]})),
        "log" => {
            let level = args.get("level").and_then(Value::as_str).unwrap_or("info");
            say!("{} {text}", level.to_uppercase());
            send(
                out,
                &json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": level, "data": text}}),
            );
            Ok(json!({"content": [{"type": "text", "text": "logged"}]}))
        }
        "changed" => {
            let list = args.get("list").and_then(Value::as_str).unwrap_or("tools");
            let method = format!("notifications/{list}/list_changed");
            send(out, &json!({"jsonrpc": "2.0", "method": method}));
            Ok(json!({"content": [{"type": "text", "text": format!("{list} changed")}]}))
        }
        "crash" => std::process::abort(),
        "progress" => {
            let token = params.pointer("/_meta/progressToken").cloned();
            let steps = args.get("steps").and_then(Value::as_u64).unwrap_or(3);
            for step in 1..=steps {
                if let Some(token) = &token {
                    let p = json!({"progressToken": token, "progress": step, "total": steps});
                    send(
                        out,
                        &json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": p}),
                    );
                }
            }
            Ok(json!({"content": [{"type": "text", "text": format!("{steps} steps")}]}))
        }
        "sleep" => {
            let ms = args.get("ms").and_then(Value::as_u64).unwrap_or(100);
            say!("INFO mcp-echo: sleeping {ms} ms");
            std::thread::sleep(std::time::Duration::from_millis(ms));
            let text = format!("slept {ms} ms in {}", std::process::id());
            Ok(json!({"content": [{"type": "text", "text": text}]}))
        }
        "whoami" => {
            Ok(json!({"content": [{"type": "text", "text": std::process::id().to_string()}]}))
        }
        "garbage" => {
            let _ = out.write_all(b"\xff\xfe{\"not\": \"utf-8\xc3\x28\"}\n");
            let _ = out.flush();
            Ok(json!({"content": [{"type": "text", "text": "garbage written"}]}))
        }
        "flood" => {
            let size = |key: &str| args.get(key).and_then(Value::as_u64).unwrap_or(0) as usize;
            let mut err = std::io::stderr().lock();
            let chunk = vec![b'e'; 1 << 20];
            let mut left = size("stderr");
            while left > 0 {
                let n = left.min(chunk.len());
                let _ = err.write_all(&chunk[..n]);
                left -= n;
            }
            let _ = err.write_all(b"\n");
            Ok(json!({"content": [{"type": "text", "text": "r".repeat(size("reply"))}]}))
        }
        "exit" => std::process::exit(args.get("code").and_then(Value::as_i64).unwrap_or(0) as i32),
        _ => Err((-32602, format!("unknown tool: {name}"))),
    }
}
