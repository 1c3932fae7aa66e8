//! The MCP handshake with a stdio child, on the gateway's upstream side (so the
//! gateway can run a child without the daemon): `server/discover` first (a
//! 2026-07-28 child answers it), otherwise exactly one `initialize`; the era verdict
//! is recorded on the [`Upstream`] for the life of the process. A child silent on
//! discover for a while gets `initialize` too, and the first answer that settles the
//! era wins, however late (the caller bounds the whole by `start_timeout`).

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};

use super::{SUPPORTED_VERSIONS, Upstream, mux};
use crate::wire::era::{self, Era};

/// Why a child did not complete the handshake.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("closed its stdout before answering {0}")]
    Closed(&'static str),
    #[error("initialize failed: {0}")]
    Refused(Value),
    #[error("closed its stdin after initialize")]
    StdinClosed,
}

/// What the gateway declares to a legacy child: everything it can route to the
/// calling session (sampling, form and URL elicitation, roots). A child may then offer
/// tools that need them even while no connected client can answer; such a request gets
/// an error naming why (see "Capabilities" in docs/gateway.md).
fn capabilities() -> Value {
    json!({"sampling": {}, "elicitation": {"form": {}, "url": {}}, "roots": {}})
}

/// Starts the mux over the child's pipes and runs the handshake through it; the
/// returned upstream knows the child's era and its answer. The caller bounds it (the
/// server's `start_timeout`).
pub async fn connect<W, R>(
    tasks: &crate::gateway::owned::Scope,
    stdin: W,
    stdout: R,
    limits: mux::Limits,
    on_message: mux::OnMessage,
    on_noise: mux::OnNoise,
) -> Result<Upstream, HandshakeError>
where
    W: AsyncWrite + Unpin + Send + 'static,
    R: AsyncRead + Unpin + Send + 'static,
{
    let upstream = mux::start(tasks, stdin, stdout, limits, on_message, on_noise);
    let found = {
        let discover = discover(&upstream);
        tokio::pin!(discover);
        match tokio::time::timeout(DISCOVER_GRACE, &mut discover).await {
            Ok(verdict) => match verdict? {
                Some(discovered) => Initialized::Modern(discovered),
                None => initialize(&upstream, None::<&mut Settled>).await?,
            },
            // Silent so far: a legacy child that ignores the method, or a modern one
            // still starting. It gets `initialize` now; a late discover answer wins.
            Err(_) => initialize(&upstream, Some(&mut discover)).await?,
        }
    };
    match found {
        Initialized::Legacy(init) => {
            upstream
                .notify("notifications/initialized", None)
                .await
                .map_err(|_| HandshakeError::StdinClosed)?;
            Ok(upstream.initialized(init, Era::Legacy))
        }
        Initialized::Modern(discovered) => {
            let upstream = upstream.initialized(discovered, Era::Modern);
            listen_for_changes(&upstream).await;
            Ok(upstream)
        }
    }
}

/// A discover answer already in hand (the type of "no discover pending").
type Settled = std::future::Ready<Result<Option<Value>, HandshakeError>>;

/// How long a child may be silent on `server/discover` before it also gets
/// `initialize` (a legacy child may ignore the method). The discover answer is still
/// taken when it comes later: a slow modern child refuses `initialize`.
const DISCOVER_GRACE: Duration = Duration::from_secs(5);

/// What the handshake found: a legacy child's `initialize` result, or a modern
/// child's discover result.
enum Initialized {
    Legacy(Value),
    Modern(Value),
}

/// Sends `initialize`; with `discover` still pending, whichever answer settles the
/// era first wins (a refused `initialize` waits for the discover answer).
async fn initialize<D>(
    upstream: &Upstream,
    discover: Option<&mut D>,
) -> Result<Initialized, HandshakeError>
where
    D: std::future::Future<Output = Result<Option<Value>, HandshakeError>> + Unpin,
{
    let params = json!({
        "protocolVersion": SUPPORTED_VERSIONS[0],
        "capabilities": capabilities(),
        "clientInfo": client_info(),
    });
    let asked = upstream.request("initialize", Some(params));
    tokio::pin!(asked);
    let mut discover = discover;
    let mut refused = None;
    loop {
        tokio::select! {
            answer = &mut asked, if refused.is_none() => {
                let response = answer.map_err(|_| HandshakeError::Closed("initialize"))?;
                match response.get("error") {
                    // A modern child refuses it: its discover answer may be on its way.
                    Some(error) if discover.is_some() => refused = Some(error.clone()),
                    Some(error) => return Err(HandshakeError::Refused(error.clone())),
                    None => {
                        let init = response.get("result").cloned().unwrap_or(Value::Null);
                        return Ok(Initialized::Legacy(init));
                    }
                }
            }
            verdict = async { discover.as_mut().map_or_else(
                || futures_util::future::Either::Left(std::future::pending()),
                |d| futures_util::future::Either::Right(&mut **d),
            ).await } => {
                match verdict? {
                    Some(discovered) => return Ok(Initialized::Modern(discovered)),
                    None => {
                        discover = None;
                        if let Some(error) = refused {
                            return Err(HandshakeError::Refused(error));
                        }
                    }
                }
            }
        }
    }
}

fn client_info() -> Value {
    json!({"name": "mcpctl", "version": env!("CARGO_PKG_VERSION")})
}

/// The era probe's first half (G2): a 2026-07-28 child answers `server/discover` with
/// a version we speak; `None` when it answered otherwise (an error: legacy).
async fn discover(upstream: &Upstream) -> Result<Option<Value>, HandshakeError> {
    let params = json!({"_meta": {
        era::META_VERSION: era::MODERN_VERSIONS[0],
        era::META_CAPABILITIES: {},
        era::META_CLIENT_INFO: client_info(),
    }});
    let response = upstream
        .request("server/discover", Some(params))
        .await
        .map_err(|_| HandshakeError::Closed("server/discover"))?;
    Ok(era::is_modern_discover(&response)
        .then(|| response.get("result").cloned())
        .flatten())
}

/// A modern child sends change notifications only on a listen: hold one open for
/// every kind of change, so the gateway can fan them out to its clients.
async fn listen_for_changes(upstream: &Upstream) {
    let params = json!({
        "notifications": {"toolsListChanged": true, "promptsListChanged": true, "resourcesListChanged": true},
        "_meta": {
            era::META_VERSION: era::MODERN_VERSIONS[0],
            era::META_CAPABILITIES: {},
            era::META_CLIENT_INFO: client_info(),
        }
    });
    // Drained at once by the task below (the mux lets it run when the queue fills).
    let (events, mut changes) = super::queue::channel(4096);
    let options = mux::CallOptions {
        events: Some(events),
        ..mux::CallOptions::default()
    };
    if upstream
        .start_request("subscriptions/listen", Some(params), options)
        .await
        .is_err()
    {
        return;
    }
    let tasks = upstream.tasks.clone();
    let upstream = upstream.clone();
    tasks.spawn(async move {
        while let Some(change) = changes.recv().await {
            upstream.publish(change);
        }
    });
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    use super::*;

    /// A child over in-memory pipes that answers `server/discover` after `discover_after`
    /// (modern) or never (`None`, legacy: it answers `initialize`); a modern child
    /// refuses `initialize`. The methods it saw, once its stdin closes.
    fn scripted(
        discover_after: Option<Duration>,
    ) -> (
        tokio::io::DuplexStream,
        tokio::io::DuplexStream,
        crate::gateway::owned::Owned<Vec<String>>,
    ) {
        let (stdin, child_in) = tokio::io::duplex(1 << 16);
        let (child_out, stdout) = tokio::io::duplex(1 << 16);
        let child_out = Arc::new(tokio::sync::Mutex::new(child_out));
        let child = crate::gateway::owned::owned(async move {
            let mut lines = BufReader::new(child_in).lines();
            let mut seen = Vec::new();
            while let Ok(Some(line)) = lines.next_line().await {
                let msg: Value = serde_json::from_str(&line).unwrap();
                let method = msg["method"].as_str().unwrap_or_default().to_string();
                seen.push(method.clone());
                let reply = match (method.as_str(), discover_after) {
                    ("server/discover", None) => continue,
                    ("server/discover", Some(after)) => {
                        let out = Arc::clone(&child_out);
                        let reply = json!({"jsonrpc": "2.0", "id": msg["id"], "result": {
                            "supportedVersions": [era::MODERN_VERSIONS[0]], "capabilities": {}}});
                        // Late, while the child reads on (a slow start, say).
                        crate::gateway::owned::Scope::new().spawn(async move {
                            tokio::time::sleep(after).await;
                            let mut out = out.lock().await;
                            out.write_all(format!("{reply}\n").as_bytes())
                                .await
                                .unwrap();
                        });
                        continue;
                    }
                    ("initialize", Some(_)) => {
                        json!({"jsonrpc": "2.0", "id": msg["id"], "error": {"code": -32022, "message": "unsupported protocol version"}})
                    }
                    ("initialize", None) => {
                        json!({"jsonrpc": "2.0", "id": msg["id"], "result": {"protocolVersion": "2025-06-18", "capabilities": {}, "serverInfo": {"name": "c", "version": "1"}}})
                    }
                    _ => continue,
                };
                let mut out = child_out.lock().await;
                out.write_all(format!("{reply}\n").as_bytes())
                    .await
                    .unwrap();
            }
            seen
        });
        (stdin, stdout, child)
    }

    async fn handshake(
        stdin: tokio::io::DuplexStream,
        stdout: tokio::io::DuplexStream,
    ) -> Result<Upstream, HandshakeError> {
        connect(
            &crate::gateway::owned::Scope::new(),
            stdin,
            stdout,
            mux::Limits::default(),
            Arc::new(|_: &Value| {}),
            Arc::new(|_: &str| {}),
        )
        .await
    }

    #[tokio::test(start_paused = true)]
    async fn a_modern_child_answering_discover_late_is_modern_though_it_refused_initialize() {
        let (stdin, stdout, child) = scripted(Some(DISCOVER_GRACE * 3));
        let upstream = handshake(stdin, stdout).await.unwrap();
        assert_eq!(upstream.era, Era::Modern);
        // Its listen keeps the pipes open: the child is stopped, not waited for.
        child.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_legacy_child_silent_on_discover_is_initialized_after_the_grace() {
        let (stdin, stdout, child) = scripted(None);
        let upstream = handshake(stdin, stdout).await.unwrap();
        assert_eq!(upstream.era, Era::Legacy);
        drop(upstream);
        let seen = child.await.unwrap();
        assert_eq!(
            seen,
            ["server/discover", "initialize", "notifications/initialized"]
        );
    }

    /// A legacy child over in-memory pipes: no `server/discover`, one `initialize`.
    #[tokio::test]
    async fn a_legacy_child_gets_exactly_one_initialize_with_what_the_gateway_routes() {
        let (stdin, child_in) = tokio::io::duplex(1 << 16);
        let (mut child_out, stdout) = tokio::io::duplex(1 << 16);
        let child = crate::gateway::owned::owned(async move {
            let mut lines = BufReader::new(child_in).lines();
            let mut seen = Vec::new();
            while let Ok(Some(line)) = lines.next_line().await {
                let msg: Value = serde_json::from_str(&line).unwrap();
                seen.push(msg.clone());
                let reply = match msg["method"].as_str() {
                    Some("server/discover") => {
                        json!({"jsonrpc": "2.0", "id": msg["id"], "error": {"code": -32601, "message": "no"}})
                    }
                    Some("initialize") => {
                        json!({"jsonrpc": "2.0", "id": msg["id"], "result": {"protocolVersion": "2025-06-18", "capabilities": {}, "serverInfo": {"name": "c", "version": "1"}}})
                    }
                    _ => break,
                };
                child_out
                    .write_all(format!("{reply}\n").as_bytes())
                    .await
                    .unwrap();
            }
            seen
        });
        let upstream = handshake(stdin, stdout).await.unwrap();
        assert_eq!(upstream.era, Era::Legacy);
        assert_eq!(upstream.protocol(), "2025-06-18");
        drop(upstream);
        let seen = child.await.unwrap();
        let methods: Vec<&str> = seen.iter().filter_map(|m| m["method"].as_str()).collect();
        assert_eq!(
            methods,
            ["server/discover", "initialize", "notifications/initialized"]
        );
        assert_eq!(
            seen[1]["params"]["capabilities"]["elicitation"],
            json!({"form": {}, "url": {}})
        );
    }
}
