//! The files a daemon keeps in its runtime folder (`.mcpctl/` beside the config, see
//! `config::store::runtime_dir`): the one picture both the CLI and the daemon use.

/// The control socket (mode 0600).
pub const SOCKET: &str = "daemon.sock";
/// Held by the running daemon: one per config file.
pub const LOCK: &str = "daemon.lock";
pub const PID_FILE: &str = "daemon.pid";
/// What the daemon runs, for the next daemon to clean up after a crash.
pub const STATE: &str = "state.json";
/// The daemon's own stderr.
pub const DAEMON_LOG: &str = "daemon.log";
