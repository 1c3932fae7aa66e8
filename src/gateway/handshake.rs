//! The MCP handshake with a stdio child, on the gateway's upstream side (so the
//! gateway can run a child without the daemon): `server/discover` first (a
//! 2026-07-28 child answers it), otherwise exactly one `initialize`; the era verdict
//! is recorded on the [`Upstream`] for the life of the process.

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
/// an error naming why (see "Capabilities" in the README).
fn capabilities() -> Value {
    json!({"sampling": {}, "elicitation": {"form": {}, "url": {}}, "roots": {}})
}

/// Starts the mux over the child's pipes and runs the handshake through it; the
/// returned upstream knows the child's era and its answer.
pub async fn connect<W, R>(
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
    let upstream = mux::start(stdin, stdout, limits, on_message, on_noise);
    if let Some(discovered) = discover(&upstream).await? {
        let upstream = upstream.initialized(discovered, Era::Modern);
        listen_for_changes(&upstream).await;
        return Ok(upstream);
    }
    let params = json!({
        "protocolVersion": SUPPORTED_VERSIONS[0],
        "capabilities": capabilities(),
        "clientInfo": client_info(),
    });
    let response = upstream
        .request("initialize", Some(params))
        .await
        .map_err(|_| HandshakeError::Closed("initialize"))?;
    if let Some(error) = response.get("error") {
        return Err(HandshakeError::Refused(error.clone()));
    }
    let init = response.get("result").cloned().unwrap_or(Value::Null);
    upstream
        .notify("notifications/initialized", None)
        .await
        .map_err(|_| HandshakeError::StdinClosed)?;
    Ok(upstream.initialized(init, Era::Legacy))
}

/// How long a child may take to answer `server/discover` before it counts as legacy.
const DISCOVER_TIMEOUT: Duration = Duration::from_secs(5);

fn client_info() -> Value {
    json!({"name": "mcpctl", "version": env!("CARGO_PKG_VERSION")})
}

/// The era probe's first half (G2): a 2026-07-28 child answers `server/discover` with
/// a version we speak. Any error or silence means legacy; the child then gets exactly
/// one `initialize`, never both eras.
async fn discover(upstream: &Upstream) -> Result<Option<Value>, HandshakeError> {
    let params = json!({"_meta": {
        era::META_VERSION: era::MODERN_VERSIONS[0],
        era::META_CAPABILITIES: {},
        era::META_CLIENT_INFO: client_info(),
    }});
    let asked = upstream.request("server/discover", Some(params));
    match tokio::time::timeout(DISCOVER_TIMEOUT, asked).await {
        Ok(Err(_)) => Err(HandshakeError::Closed("server/discover")),
        Ok(Ok(response)) if era::is_modern_discover(&response) => {
            Ok(response.get("result").cloned())
        }
        _ => Ok(None),
    }
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
    let upstream = upstream.clone();
    tokio::spawn(async move {
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

    /// A legacy child over in-memory pipes: no `server/discover`, one `initialize`.
    #[tokio::test]
    async fn a_legacy_child_gets_exactly_one_initialize_with_what_the_gateway_routes() {
        let (stdin, child_in) = tokio::io::duplex(1 << 16);
        let (mut child_out, stdout) = tokio::io::duplex(1 << 16);
        let child = tokio::spawn(async move {
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
        let upstream = connect(
            stdin,
            stdout,
            mux::Limits::default(),
            Arc::new(|_: &Value| {}),
            Arc::new(|_: &str| {}),
        )
        .await
        .unwrap();
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
