//! A registry (API v0.1) served on 127.0.0.1 for a test: the fixtures of
//! `tests/fixtures/registry`, pages, and the ways a registry goes wrong.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::repo_root;

/// What the registry answers to one request.
pub enum Reply {
    Json(u16, String),
    /// Accept, read the request, never answer.
    Hang,
}

type Route = Box<dyn Fn(&str) -> Reply + Send + Sync>;

pub struct FakeRegistry {
    pub url: String,
    /// The path and query of every request, in order.
    pub requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    port: u16,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeRegistry {
    pub fn serve(route: impl Fn(&str) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let route: Route = Box::new(route);
        let thread = {
            let (requests, stop) = (requests.clone(), stop.clone());
            std::thread::spawn(move || {
                // Connections that hang are kept open until the registry stops.
                let mut held = Vec::new();
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(mut stream) = stream else { continue };
                    let Some(path) = read_path(&mut stream) else {
                        continue;
                    };
                    requests.lock().unwrap().push(path.clone());
                    match route(&path) {
                        Reply::Json(status, body) => {
                            let _ = write!(
                                stream,
                                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                                body.len()
                            );
                        }
                        Reply::Hang => held.push(stream),
                    }
                }
            })
        };
        Self {
            url: format!("http://127.0.0.1:{port}"),
            requests,
            stop,
            port,
            thread: Some(thread),
        }
    }

    /// The four fixtures, two to a page, filtered by `search=`; one entry by name
    /// (`latest` is `latest`'s version of that entry when given).
    pub fn with_fixtures(latest: &[(&'static str, &'static str)]) -> Self {
        let latest: Vec<(String, String)> = latest
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        Self::serve(move |path| fixtures_route(path, &latest))
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn read_path(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    text.lines().next()?.split(' ').nth(1).map(str::to_string)
}

/// A fixture's text.
pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(repo_root().join(format!("tests/fixtures/registry/{name}.json")))
        .unwrap()
}

/// `{"server": entry, "_meta": latest}`.
pub fn listed(entry: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "server": entry,
        "_meta": { "io.modelcontextprotocol.registry/official": { "status": "active", "isLatest": true } }
    })
}

/// A page of `entries`, with `next` as its cursor.
pub fn page(entries: &[serde_json::Value], next: Option<&str>) -> String {
    let servers: Vec<serde_json::Value> = entries.iter().map(listed).collect();
    serde_json::json!({ "servers": servers, "metadata": { "nextCursor": next, "count": servers.len() } })
        .to_string()
}

fn decode(text: &str) -> String {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of `key` in `path`'s query.
pub fn query(path: &str, key: &str) -> Option<String> {
    let (_, q) = path.split_once('?')?;
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| decode(v))
}

fn fixtures_route(path: &str, latest: &[(String, String)]) -> Reply {
    let mut all: Vec<serde_json::Value> = ["brave-search", "weather", "filesystem", "remote"]
        .iter()
        .map(|n| serde_json::from_str(&fixture(n)).unwrap())
        .collect();
    for entry in &mut all {
        let name = entry["name"].as_str().unwrap_or_default().to_string();
        if let Some((_, v)) = latest.iter().find(|(n, _)| *n == name) {
            bump(entry, v);
        }
    }
    if let Some(rest) = path.strip_prefix("/v0.1/servers/") {
        let rest = rest.split('?').next().unwrap_or_default();
        let Some((name, version)) = rest.split_once("/versions/") else {
            return Reply::Json(404, "{}".into());
        };
        let name = decode(name);
        return match all.iter().find(|e| e["name"] == name.as_str()) {
            Some(e) if version == "latest" || e["version"] == version => {
                Reply::Json(200, listed(e).to_string())
            }
            _ => Reply::Json(404, r#"{"title":"Not Found","status":404}"#.into()),
        };
    }
    if path.starts_with("/v0.1/servers") {
        let term = query(path, "search").unwrap_or_default().to_lowercase();
        let matching: Vec<serde_json::Value> = all
            .into_iter()
            .filter(|e| {
                e["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_lowercase()
                    .contains(&term)
                    || e["description"]
                        .as_str()
                        .unwrap_or_default()
                        .to_lowercase()
                        .contains(&term)
                    || e.to_string().to_lowercase().contains(&term)
            })
            .collect();
        let second = query(path, "cursor").as_deref() == Some("page-2");
        let (chunk, next) = if second {
            (matching.iter().skip(2).cloned().collect::<Vec<_>>(), None)
        } else {
            (
                matching.iter().take(2).cloned().collect(),
                (matching.len() > 2).then_some("page-2"),
            )
        };
        return Reply::Json(200, page(&chunk, next));
    }
    Reply::Json(404, "{}".into())
}

/// `entry` at `version`: its own version and its packages'.
pub fn bump(entry: &mut serde_json::Value, version: &str) {
    let old = entry["version"].as_str().unwrap_or_default().to_string();
    entry["version"] = version.into();
    if let Some(packages) = entry["packages"].as_array_mut() {
        for p in packages {
            if p.get("version").is_some() {
                p["version"] = version.into();
            }
            let id = p["identifier"].as_str().unwrap_or_default().to_string();
            if let Some(bare) = id.strip_suffix(&format!(":{old}")) {
                p["identifier"] = format!("{bare}:{version}").into();
            }
        }
    }
}
