//! Watching the config file. The folder is watched, not the file: editors that save
//! by rename replace the inode, and a watch on the file itself goes silent after the
//! first such save. Events are debounced, filtered to the one path, and dropped when
//! the content did not change (our own writes, `touch`, access events).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, new_debouncer};

use super::Daemon;
use crate::api::ApplyOptions;

const DEBOUNCE: Duration = Duration::from_millis(150);

/// Keeps the watch alive; drop it to stop watching.
pub struct FileWatch {
    _debouncer: Box<dyn std::any::Any + Send>,
    pub changes: std_mpsc::Receiver<()>,
}

fn content_hash(path: &Path) -> Option<blake3::Hash> {
    std::fs::read(path).ok().map(|b| blake3::hash(&b))
}

/// Sends `()` on `changes` each time the content of `path` changes.
pub fn watch_file(path: &Path) -> notify::Result<FileWatch> {
    let path: PathBuf = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = path
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let (tx, changes) = std_mpsc::channel();
    let mut last = content_hash(&path);
    let target = path.clone();
    let mut debouncer = new_debouncer(DEBOUNCE, None, move |result: DebounceEventResult| {
        let Ok(events) = result else { return };
        let touches_file = events.iter().any(|e| e.paths.iter().any(|p| p == &target));
        if !touches_file {
            return;
        }
        let now = content_hash(&target);
        // A save in progress (file briefly missing) is not a change.
        if now.is_some() && now != last {
            last = now;
            let _ = tx.send(());
        }
    })?;
    debouncer.watch(&dir, RecursiveMode::NonRecursive)?;
    Ok(FileWatch {
        _debouncer: Box::new(debouncer),
        changes,
    })
}

/// The daemon's `--watch`: every change of the file converges; a broken save is
/// reported and changes nothing.
pub(super) fn spawn_daemon_watch(daemon: Arc<Daemon>) {
    let watch = match watch_file(&daemon.config_path) {
        Ok(w) => w,
        Err(e) => {
            crate::note!(
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
                crate::note!("mcpctl daemon: {} changed", daemon.config_path.display());
                let daemon = Arc::clone(&daemon);
                runtime.block_on(async move {
                    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
                    let task = tokio::spawn({
                        let daemon = Arc::clone(&daemon);
                        async move { daemon.apply(ApplyOptions::default(), tx).await }
                    });
                    while let Some(line) = rx.recv().await {
                        crate::note!("{line}");
                    }
                    match task.await {
                        Ok(Err(message)) => crate::note!(
                            "mcpctl daemon: not applied, running servers kept:\n{message}"
                        ),
                        Ok(Ok(outcome)) => {
                            outcome.failures.iter().for_each(|f| crate::note!("{f}"))
                        }
                        Err(_) => {}
                    }
                });
            }
        });
    if let Err(e) = spawned {
        crate::note!("mcpctl daemon: cannot start the watch thread: {e}");
    }
}
