//! Ready means: a stdio server answered the handshake (through the mux that then
//! serves the gateway); an HTTP server accepts connections on its inner port, and on
//! loopback only.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::BufReader;

use super::super::inner_port;
use super::*;
use crate::gateway::era::{self, Era};
use crate::gateway::{SUPPORTED_VERSIONS, Upstream, mux};
use crate::model::spec::Transport;

/// Ready means: a stdio server answered `initialize` (through the mux that then
/// serves the gateway); an HTTP server accepts connections on its port.
pub(super) async fn probe(
    ctx: &InstanceCtx,
    (stdin, stdout): (Option<Input>, Option<Output>),
    log: Option<SharedLog>,
) -> Result<Option<Upstream>, String> {
    if ctx.spec.transport != Transport::Stdio {
        if let Some(out) = stdout {
            tokio::spawn(pump_lines(BufReader::new(out), log, "stdout"));
        }
        let port = ctx.inner_port.unwrap_or(ctx.spec.port);
        loop {
            if tokio::net::TcpStream::connect((inner_port::HOST, port))
                .await
                .is_ok()
            {
                let beyond = inner_port::listening_beyond_loopback(port);
                if !beyond.is_empty() {
                    return Err(inner_port::refusal(port, &beyond));
                }
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let (Some(stdin), Some(stdout)) = (stdin, stdout) else {
        return Err("no stdio pipes".into());
    };
    let on_message: mux::OnMessage = {
        let log = log.clone();
        Arc::new(move |msg: &Value| log_notification(log.as_ref(), msg))
    };
    let on_noise: mux::OnNoise = {
        let log = log.clone();
        Arc::new(move |line: &str| write_log(log.as_ref(), "stdout", line))
    };
    let limits = mux::Limits {
        max_message: max_message(),
        call_timeout: ctx.spec.call_timeout,
    };
    let upstream = mux::start(stdin, stdout, limits, on_message, on_noise);
    if let Some(discovered) = discover(&upstream).await? {
        let upstream = upstream.initialized(discovered, Era::Modern);
        listen_for_changes(&upstream).await;
        return Ok(Some(upstream));
    }
    let params = json!({
        "protocolVersion": SUPPORTED_VERSIONS[0],
        // What the gateway can bridge to its clients (routed to the calling session).
        "capabilities": {"sampling": {}, "elicitation": {}, "roots": {}},
        "clientInfo": client_info(),
    });
    let response = upstream
        .request("initialize", Some(params))
        .await
        .map_err(|_| "closed its stdout before answering initialize".to_string())?;
    if let Some(error) = response.get("error") {
        return Err(format!("initialize failed: {error}"));
    }
    let init = response.get("result").cloned().unwrap_or(Value::Null);
    upstream
        .notify("notifications/initialized", None)
        .await
        .map_err(|_| "closed its stdin after initialize".to_string())?;
    Ok(Some(upstream.initialized(init, Era::Legacy)))
}

/// The bound on one message of a child's: [`mux::MAX_MESSAGE`], or
/// `MCPCTL_MAX_MESSAGE_BYTES` from the daemon's environment.
pub(super) fn max_message() -> usize {
    std::env::var("MCPCTL_MAX_MESSAGE_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n >= 1024)
        .unwrap_or(mux::MAX_MESSAGE)
}

/// How long a child may take to answer `server/discover` before it counts as legacy.
pub(super) const DISCOVER_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) fn client_info() -> Value {
    json!({"name": "mcpctl", "version": env!("CARGO_PKG_VERSION")})
}

/// The era probe's first half (G2): a 2026-07-28 child answers `server/discover` with
/// a version we speak. Any error or silence means legacy; the child then gets exactly
/// one `initialize`, never both eras.
pub(super) async fn discover(upstream: &Upstream) -> Result<Option<Value>, String> {
    let params = json!({"_meta": {
        era::META_VERSION: era::MODERN_VERSIONS[0],
        era::META_CAPABILITIES: {},
        era::META_CLIENT_INFO: client_info(),
    }});
    let asked = upstream.request("server/discover", Some(params));
    match tokio::time::timeout(DISCOVER_TIMEOUT, asked).await {
        Ok(Err(_)) => Err("closed its stdout before answering server/discover".to_string()),
        Ok(Ok(response)) if era::is_modern_discover(&response) => {
            Ok(response.get("result").cloned())
        }
        _ => Ok(None),
    }
}

/// A modern child sends change notifications only on a listen: hold one open for
/// every kind of change, so the gateway can fan them out to its clients.
pub(super) async fn listen_for_changes(upstream: &Upstream) {
    let params = json!({
        "notifications": {"toolsListChanged": true, "promptsListChanged": true, "resourcesListChanged": true},
        "_meta": {
            era::META_VERSION: era::MODERN_VERSIONS[0],
            era::META_CAPABILITIES: {},
            era::META_CLIENT_INFO: client_info(),
        }
    });
    // Drained at once by the task below (the mux lets it run when the queue fills).
    let (events, mut changes) = crate::gateway::queue::channel(4096);
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
