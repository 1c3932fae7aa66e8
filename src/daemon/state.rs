//! What the daemon ran, persisted in `.mcpctl/state.json` so a daemon that was
//! killed can clean up after itself: its successor kills the recorded process
//! groups (after checking each pid's start time, so a reused pid is never hit) and
//! then converges from the file again.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::store;
use crate::sys;

#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Persisted {
    pub daemon_pid: u32,
    pub servers: BTreeMap<String, PersistedServer>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct PersistedServer {
    pub created_at: String,
    pub instances: Vec<PersistedInstance>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct PersistedInstance {
    /// The shim: leader of the instance's process group.
    pub pid: u32,
    pub start_ticks: u64,
}

pub(super) fn load(path: &Path) -> Persisted {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

pub(super) fn save(path: &Path, state: &Persisted) {
    match serde_json::to_string_pretty(state) {
        Ok(text) => {
            if let Err(e) = store::write_runtime(path, &text) {
                tracing::warn!("cannot save state: {e}");
            }
        }
        Err(e) => tracing::warn!("cannot encode state: {e}"),
    }
}

/// Kills the process groups a previous daemon left running. Returns how many.
pub(super) fn kill_leftovers(state: &Persisted) -> usize {
    let mut killed = Vec::new();
    for instance in state.servers.values().flat_map(|s| &s.instances) {
        let same_process =
            sys::proc_stat(instance.pid).is_some_and(|s| s.start_time == instance.start_ticks);
        if same_process {
            let _ = sys::kill_group(instance.pid, sys::SIGKILL);
            killed.push(instance.pid);
        }
    }
    // Bounded wait for the kernel to take them down.
    for _ in 0..50 {
        if killed.iter().all(|&pid| sys::group_members(pid).is_empty()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    killed.len()
}
