//! The daemon's `--watch`: converge on every change of the config file (the watch
//! itself is `crate::watch`).

use std::sync::Arc;

use super::Daemon;
use crate::api::ApplyOptions;
use crate::watch::watch_file;

/// The daemon's `--watch`: every change of the file converges; a broken save is
/// reported and changes nothing.
pub(super) fn spawn_daemon_watch(daemon: Arc<Daemon>) {
    let watch = match watch_file(&daemon.config_path) {
        Ok(w) => w,
        Err(e) => {
            tracing::info!(
                "mcpctl daemon: cannot watch {}: {e}",
                daemon.config_path.display()
            );
            return;
        }
    };
    let runtime = tokio::runtime::Handle::current();
    let spawned = std::thread::Builder::new()
        .name("mcpctl-watch".into())
        .spawn(move || {
            let watch = watch;
            while watch.changes.recv().is_ok() {
                tracing::info!("mcpctl daemon: {} changed", daemon.config_path.display());
                let daemon = Arc::clone(&daemon);
                runtime.block_on(async move {
                    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
                    let task = crate::gateway::owned::owned({
                        let daemon = Arc::clone(&daemon);
                        async move {
                            daemon
                                .apply(
                                    ApplyOptions {
                                        by: crate::api::ApplyBy::Watch,
                                        ..ApplyOptions::default()
                                    },
                                    tx,
                                )
                                .await
                        }
                    });
                    while let Some(line) = rx.recv().await {
                        tracing::info!("{line}");
                    }
                    match task.await {
                        Ok(Err(message)) => tracing::info!(
                            "mcpctl daemon: not applied, running servers kept:\n{message}"
                        ),
                        Ok(Ok(outcome)) => {
                            outcome.failures.iter().for_each(|f| tracing::info!("{f}"))
                        }
                        Err(_) => {}
                    }
                });
            }
        });
    if let Err(e) = spawned {
        tracing::info!("mcpctl daemon: cannot start the watch thread: {e}");
    }
}
