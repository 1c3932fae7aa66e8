//! The control socket: `.mcpctl/daemon.sock`, mode 0600 inside a 0700 folder, and
//! only the daemon's own user may talk to it (SO_PEERCRED). One JSON request line in,
//! progress lines and one final reply line out.

use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

use super::{Daemon, Error, io_err};
use crate::api::{Reply, Request};
use crate::sys;

/// A request line may not be longer than this.
const MAX_REQUEST: usize = 1024 * 1024;

pub(super) fn bind(path: &Path) -> Result<UnixListener, Error> {
    use std::os::unix::fs::PermissionsExt;
    // Only the lock holder gets here, so a socket file left behind is stale.
    let _ = std::fs::remove_file(path);
    if let Some(dir) = path.parent() {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io_err(dir.display().to_string()))?;
    }
    let listener =
        UnixListener::bind(path).map_err(io_err(format!("cannot listen on {}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(io_err(path.display().to_string()))?;
    Ok(listener)
}

/// Control connections handled at once, at most (more wait in the socket's backlog).
const MAX_HANDLERS: usize = 256;

/// Serves the control socket until this future is dropped, which ends every handler
/// it started too (they are its tasks, not detached ones).
pub(super) async fn serve(daemon: Arc<Daemon>, listener: UnixListener) {
    let mut handlers = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept(), if handlers.len() < MAX_HANDLERS => match accepted {
                Ok((stream, _)) => {
                    handlers.spawn(handle(Arc::clone(&daemon), stream));
                }
                Err(e) => {
                    tracing::warn!("control socket: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            Some(_) = handlers.join_next(), if !handlers.is_empty() => {}
        }
    }
}

async fn handle(daemon: Arc<Daemon>, stream: UnixStream) {
    let (read, mut write) = stream.into_split();
    let same_user = write
        .as_ref()
        .peer_cred()
        .is_ok_and(|cred| cred.uid() == sys::getuid());
    if !same_user {
        let _ = send(
            &mut write,
            &Reply::Error {
                message: "permission denied: not the daemon's user".into(),
            },
        )
        .await;
        return;
    }
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(MAX_REQUEST as u64));
    if reader.read_line(&mut line).await.is_err() {
        return;
    }
    let request = match serde_json::from_str::<Request>(&line) {
        Ok(r) => r,
        Err(e) => {
            let _ = send(
                &mut write,
                &Reply::Error {
                    message: format!("bad request: {e}"),
                },
            )
            .await;
            return;
        }
    };
    let reply = match request {
        Request::Observe => Reply::Observed {
            observed: daemon.observe().await,
        },
        Request::Status => Reply::Status {
            status: daemon.status().await,
        },
        Request::OwnerKey => Reply::OwnerKey {
            key: age::secrecy::ExposeSecret::expose_secret(&*daemon.owner_key).to_string(),
        },
        Request::Tools { name } => match daemon.tools_report(&name).await {
            Ok(report) => Reply::Tools { report },
            Err(e) => Reply::Error {
                message: e.to_string(),
            },
        },
        Request::Ui { bind } => match daemon.open_ui(bind).await {
            Ok(url) => Reply::Ui { url },
            Err(e) => Reply::Error {
                message: e.to_string(),
            },
        },
        Request::Shutdown => {
            let _ = send(&mut write, &Reply::Ok).await;
            daemon.request_shutdown();
            return;
        }
        Request::Apply(options) => {
            let (tx, mut rx) = mpsc::channel(64);
            let apply = daemon.apply(*options, tx);
            let forward = async {
                while let Some(message) = rx.recv().await {
                    tracing::info!("{message}");
                    // A client that went away does not stop the apply.
                    let _ = send(&mut write, &Reply::Progress { message }).await;
                }
            };
            match tokio::join!(apply, forward).0 {
                Ok(applied) => Reply::Applied {
                    outcome: applied.into(),
                },
                Err(e) => Reply::Error {
                    message: e.to_string(),
                },
            }
        }
    };
    let _ = send(&mut write, &reply).await;
}

async fn send(write: &mut tokio::net::unix::OwnedWriteHalf, reply: &Reply) -> std::io::Result<()> {
    let mut line = serde_json::to_string(reply).map_err(std::io::Error::other)?;
    line.push('\n');
    write.write_all(line.as_bytes()).await?;
    write.flush().await
}
