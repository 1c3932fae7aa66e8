//! Watching the config file: notify on its folder (editors save by rename), only
//! that one path, debounced, and only when its content changed (a save that writes the
//! same bytes, or a touch, is no change). Used by `apply --watch` and the daemon.
//! The folder is watched, not the file: a watch on the file itself goes silent after
//! the first save by rename.

use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, new_debouncer};

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
