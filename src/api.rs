//! The control protocol between the CLI and the daemon: serde types only, no logic.
//!
//! Transport: a Unix socket (`.mcpctl/daemon.sock`, mode 0600, peer uid checked).
//! The client writes one [`Request`] as a JSON line; the daemon answers with any
//! number of [`Reply::Progress`] lines and then exactly one final line.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::ServerSpec;
use crate::plan::Observed;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "kebab-case")]
pub enum Request {
    /// What runs, for `plan`.
    Observe,
    /// Status of every supervised server and of the daemon.
    Status,
    /// Re-read the file and converge.
    /// (Boxed: it may carry a whole file's text.)
    Apply(Box<ApplyOptions>),
    /// Stop every server and exit.
    Shutdown,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ApplyOptions {
    /// Converge only these servers (all when empty); the others are left as they are.
    #[serde(default)]
    pub only: Vec<String>,
    /// Replace this server's instances even when nothing changed.
    pub restart: Option<String>,
    /// Stop without waiting for a graceful exit.
    #[serde(default)]
    pub force: bool,
    /// Overrides `stop_timeout` for the stops of this apply.
    pub stop_timeout_ms: Option<u64>,
    /// The file's text to apply instead of reading the file (`apply --rev`: the file
    /// as it is at a git revision).
    #[serde(default)]
    pub source: Option<String>,
    /// Where the CLI found the text it asks to apply (git commit, clean or modified):
    /// recorded when the daemon applies text with the same digest.
    #[serde(default)]
    pub origin: Option<AppliedFrom>,
    /// `apply PLAN`: apply only while the file and what runs still have the digests
    /// the plan was made from.
    #[serde(default)]
    pub expect: Option<Expected>,
}

/// Where what runs was applied from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedFrom {
    /// blake3 of the applied text (`blake3:HEX`).
    pub file_digest: String,
    /// The git commit it was read from (HEAD, or the commit of `--rev`), in a repository.
    pub commit: Option<String>,
    /// The file had changes that were not committed (never with `--rev`).
    #[serde(default)]
    pub modified: bool,
    /// `apply --rev REV`: the revision as given.
    pub rev: Option<String>,
    /// When it was applied (RFC 3339); set by the daemon.
    #[serde(default)]
    pub at: String,
}

/// The digests a saved plan was made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expected {
    pub file_digest: String,
    pub observed_digest: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "kebab-case")]
pub enum Reply {
    Progress { message: String },
    Observed { observed: Observed },
    Status { status: DaemonStatus },
    Applied { outcome: ApplyOutcome },
    Ok,
    Error { message: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApplyOutcome {
    /// Whether anything was started, stopped or changed.
    pub changed: bool,
    /// Servers that failed to become ready, with why (and their log tail).
    pub failures: Vec<String>,
    /// `server -> its endpoints` (one line) of every running server.
    pub endpoints: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DaemonStatus {
    pub pid: u32,
    pub config: String,
    pub started_at: String,
    pub servers: Vec<ServerStatus>,
    /// What the last apply applied, when one did.
    #[serde(default)]
    pub applied: Option<AppliedFrom>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerStatus {
    pub name: String,
    pub spec: ServerSpec,
    /// `running`, `starting`, `degraded`, `crash-loop`, `exited`.
    pub status: String,
    pub created_at: String,
    pub restarts: u32,
    pub instances: Vec<InstanceStatus>,
}

/// Where one instance is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Starting,
    Running,
    /// Running, but missing its health checks (no new sessions go to it).
    Unhealthy,
    Backoff,
    CrashLoop,
    Exited,
    Stopped,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Running => "running",
            Phase::Unhealthy => "unhealthy",
            Phase::Backoff => "backoff",
            Phase::CrashLoop => "crash-loop",
            Phase::Exited => "exited",
            Phase::Stopped => "stopped",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub index: u32,
    pub phase: Phase,
    /// The server's own process.
    pub pid: Option<u32>,
    /// The shim that supervises it (its parent, leader of its process group).
    #[serde(default)]
    pub shim_pid: Option<u32>,
    /// Seconds since this process started.
    pub uptime_secs: Option<u64>,
    pub restarts: u32,
    /// e.g. `exit code 1`, `killed by signal 9`.
    pub last_exit: Option<String>,
    pub last_error: Option<String>,
    /// The protocol revision the child speaks, found by the era probe (stdio only).
    #[serde(default)]
    pub protocol: Option<String>,
    /// One client session's own instance (`sharing = "per-session"`).
    #[serde(default)]
    pub per_session: bool,
    /// Where a server that speaks HTTP itself listens, on loopback behind the gateway.
    #[serde(default)]
    pub inner_port: Option<u16>,
}
