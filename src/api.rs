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
    /// What an agent sees of a server's or an endpoint's tools (`mcpctl tools`).
    Tools { name: String },
    /// The owner's key: every port with `auth` lets it in (`connect` to a server or
    /// an endpoint that takes only callers' tokens). Only over this socket.
    OwnerKey,
    /// `mcpctl ui`: serve the dashboard (on `bind`, else where the file or the last
    /// time said) and hand out a one-time login link.
    Ui {
        #[serde(default)]
        bind: Option<std::net::SocketAddr>,
    },
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
    /// Only the file's `[tokens]` and `mcpctl.lock` (`mcpctl token ...`, `mcpctl tools
    /// NAME --pin`): who may call what changes, nothing runs or stops.
    #[serde(default)]
    pub only_tokens: bool,
    /// Who asked (the dashboard's list of applies says).
    #[serde(default)]
    pub by: ApplyBy,
}

/// Who asked for an apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApplyBy {
    /// A command: `apply`, `server stop`, ... (`--rev` and saved plans are told apart
    /// by their options).
    #[default]
    Cli,
    /// `apply --watch` in the daemon, or a resync.
    Watch,
    /// The daemon's own first apply.
    Daemon,
    /// An action on the dashboard.
    Page,
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
    Progress {
        message: String,
    },
    Observed {
        observed: Observed,
    },
    Status {
        status: DaemonStatus,
    },
    Applied {
        outcome: ApplyOutcome,
    },
    Tools {
        report: ToolsReport,
    },
    OwnerKey {
        key: String,
    },
    /// The dashboard's one-time login link.
    Ui {
        url: String,
    },
    Ok,
    Error {
        message: String,
    },
}

/// `mcpctl tools NAME`: the tools an agent sees, and those it does not with why.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ToolsReport {
    /// `server` or `endpoint`.
    pub kind: String,
    pub name: String,
    pub shown: Vec<ToolLine>,
    pub hidden: Vec<ToolLine>,
    /// Members down, with why (endpoints).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub down: Vec<String>,
    /// What the lists could not be taken as they were (cut, garbage dropped).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Tools on demand, for an endpoint with `discovery`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<DiscoveryReport>,
}

/// An endpoint's `discovery` now: on or not, and what it keeps out of a session's
/// first `tools/list`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoveryReport {
    pub on: bool,
    /// On over this many tools; `None`: always on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when_over: Option<usize>,
    /// Tools a session's first `tools/list` holds (`find_tools`, `use_tools`, the
    /// `always` ones), or every tool while off.
    pub initial: usize,
    /// Tools it leaves out until a session pulls them in.
    pub kept_out: usize,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ToolLine {
    /// The name the agent sees (or would see).
    pub name: String,
    /// The member that has it (endpoints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// Its name at the member.
    pub original: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Why it is hidden.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// What `mcpctl tools NAME --pin` pins it by (a server's tools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// An endpoint as it runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointStatus {
    pub name: String,
    pub url: String,
    pub members: Vec<String>,
    /// Members down, with why.
    pub down: Vec<String>,
    /// Tools the agent sees.
    pub tools: usize,
    /// Calls routed to each member, since the endpoint was served.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<MemberCalls>,
    /// `find_tools` and `use_tools` calls answered, by tool (with `discovery`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub discovery_calls: BTreeMap<String, u64>,
}

/// What an endpoint routed to one member.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemberCalls {
    pub member: String,
    pub calls: u64,
    /// Answered with an error (the member's, or the endpoint's: it was down).
    pub errors: u64,
    /// Per response-time bucket (not cumulative; the gateway's `BUCKETS`).
    pub buckets: Vec<u64>,
    pub sum_secs: f64,
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

/// One line of the audit log (`.mcpctl/audit.log`): a decision about one request on a
/// port with `auth`. Never a request's arguments or an answer's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// RFC 3339, milliseconds.
    pub at: String,
    /// The caller's token name; `owner` for the owner's bearer; none when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    /// The server or endpoint.
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// `allowed` or `refused`.
    pub decision: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// The HTTP status of the answer.
    pub status: u16,
    /// From the request's arrival to its answer's end.
    pub ms: u64,
    /// The answer's size in bytes.
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DaemonStatus {
    pub pid: u32,
    pub config: String,
    pub started_at: String,
    pub servers: Vec<ServerStatus>,
    /// The daemon's own process (its busy-poll spends CPU to save latency).
    #[serde(default)]
    pub usage: Option<Usage>,
    /// What the last apply applied, when one did.
    #[serde(default)]
    pub applied: Option<AppliedFrom>,
    /// The endpoints being served.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<EndpointStatus>,
    /// Endpoints the last apply could not serve, with why.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub endpoint_failures: BTreeMap<String, String>,
    /// Callers' tokens by name: when each was last let in (RFC 3339), since the daemon
    /// started.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tokens_used: BTreeMap<String, String>,
    /// Requests refused for being over their token's `rate`, by token.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tokens_limited: BTreeMap<String, u64>,
    /// Requests of OIDC subjects refused for being over `auth.oidc.rate`, by server or
    /// endpoint.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub oidc_limited: BTreeMap<String, u64>,
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
    /// Through the server's port, at the last sample.
    #[serde(default)]
    pub traffic: Option<Traffic>,
    /// `autoscale`: the last change of the count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale: Option<ScaleDecision>,
    /// The network its processes run in: `isolated` or `host` (a server that asked
    /// for isolation where the machine gives none runs on `host`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// `pin = true`: tools its last list had that the lock hides (`tool: why`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unpinned: Vec<String>,
}

/// One change of an autoscaled server's instance count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleDecision {
    /// RFC 3339.
    pub at: String,
    pub from: u32,
    pub to: u32,
    pub reason: String,
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
    /// Scaled away: finishing its calls and sessions, then it stops.
    Draining,
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
            Phase::Draining => "draining",
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
    /// Why the daemon last restarted it on purpose (kept while it runs again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_restart: Option<String>,
    pub last_error: Option<String>,
    /// The protocol revision the child speaks, found by the era probe (stdio only).
    #[serde(default)]
    pub protocol: Option<String>,
    /// The child asked for roots outside any call and was told there are none.
    #[serde(default)]
    pub asked_roots_unprompted: bool,
    /// One client session's own instance (`sharing = "per-session"`).
    #[serde(default)]
    pub per_session: bool,
    /// Where a server that speaks HTTP itself listens, on loopback behind the gateway.
    #[serde(default)]
    pub inner_port: Option<u16>,
    /// The instance's process tree at the last sample (shim, server, its children).
    #[serde(default)]
    pub usage: Option<Usage>,
}

/// What a process tree uses, sampled from `/proc`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Percent of one core over the last sampling period (200 = two cores busy).
    pub cpu_percent: f64,
    /// CPU time used since the processes started, in seconds.
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
    pub open_fds: u64,
    pub processes: u32,
    /// When it was sampled (RFC 3339): the daemon samples every `MCPCTL_SAMPLE_SECS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampled_at: Option<String>,
}

/// What went through a server's gateway port since it started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Traffic {
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Open now.
    pub connections: u64,
    pub connections_total: u64,
    /// Live client sessions now.
    pub sessions: u64,
    /// Requests being answered now.
    #[serde(default)]
    pub in_flight: u64,
    /// By MCP method, those with requests.
    pub methods: Vec<MethodTraffic>,
    /// Response times of every method over the last minute.
    #[serde(flatten)]
    pub latency: Percentiles,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MethodTraffic {
    pub method: String,
    pub requests: u64,
    pub errors: u64,
    /// Requests per response-time bucket (not cumulative; the bounds are the
    /// gateway's `BUCKETS`, the last bucket past them all).
    pub buckets: Vec<u64>,
    pub sum_secs: f64,
    /// Over the last minute.
    #[serde(flatten)]
    pub latency: Percentiles,
}

/// Response-time percentiles in milliseconds (`None`: no request in the window).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    #[serde(default)]
    pub p50_ms: Option<f64>,
    #[serde(default)]
    pub p95_ms: Option<f64>,
    #[serde(default)]
    pub p99_ms: Option<f64>,
}
