//! Ready means: a stdio server answered the handshake (through the mux that then
//! serves the gateway); an HTTP server accepts connections on its inner port, and on
//! loopback only.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::BufReader;

use super::super::inner_port;
use super::*;
use crate::gateway::{Upstream, handshake, mux};
use crate::model::spec::Transport;

/// Ready means: a stdio server answered `initialize` (through the mux that then
/// serves the gateway); an HTTP server accepts connections on its port.
pub(super) async fn probe(
    ctx: &InstanceCtx,
    shim: u32,
    (stdin, stdout): (Option<Input>, Option<Output>),
    log: Option<SharedLog>,
) -> Result<Option<Upstream>, Failure> {
    if ctx.spec.transport != Transport::Stdio {
        if let Some(out) = stdout {
            // Ends when the server closes its stdout (it exits).
            ctx.tasks
                .spawn(pump_lines(BufReader::new(out), log, "stdout"));
        }
        let port = ctx.inner_port.unwrap_or(ctx.spec.port);
        loop {
            if crate::gateway::dial::connect_loopback(port).await.is_ok() {
                if ctx.isolated {
                    // Its own loopback: nothing else reaches it, whatever it binds.
                    return Ok(None);
                }
                let beyond = inner_port::listening_beyond_loopback(port);
                if !beyond.is_empty() {
                    return Err(inner_port::refusal(port, &beyond).into());
                }
                let foreign = inner_port::listening_not_ours(port, shim);
                if !foreign.is_empty() {
                    return Err(inner_port::taken(port, &foreign).into());
                }
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let (Some(stdin), Some(stdout)) = (stdin, stdout) else {
        return Err(String::from("no stdio pipes").into());
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
    handshake::connect(&ctx.tasks, stdin, stdout, limits, on_message, on_noise)
        .await
        .map(Some)
        .map_err(|e| {
            let refused = matches!(e, handshake::HandshakeError::Refused(_));
            Failure {
                why: e.to_string(),
                may_have_died: !refused,
            }
        })
}

/// Why a start's probe failed, and whether the server may have died (then its exit
/// is the better reason). A refused handshake is the reason itself: the server exits
/// only because the probe then closed its stdin.
pub(super) struct Failure {
    pub(super) why: String,
    pub(super) may_have_died: bool,
}

impl From<String> for Failure {
    fn from(why: String) -> Self {
        Self {
            why,
            may_have_died: true,
        }
    }
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
