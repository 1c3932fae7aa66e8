//! What `status` reports, pure: the file's servers and endpoints beside what the daemon
//! says runs. The CLI prints it as a table or JSON; the dashboard serves the same JSON.

use std::path::Path;

use serde::Serialize;

use crate::api::{AppliedFrom, DaemonStatus, Phase, ServerStatus, Traffic, Usage};
use crate::model::spec::State;
use crate::model::{Config, ServerSpec};

/// One server as reported: what the file says, and what runs.
#[derive(Debug, Serialize)]
pub struct Report {
    pub server: String,
    pub status: String,
    pub mode: String,
    pub port: u16,
    pub profile: String,
    pub transport: String,
    pub sse_endpoint: String,
    pub http_endpoint: String,
    pub created_at: Option<String>,
    /// The ids of the instances (for `server logs --instance`).
    pub instance_ids: Vec<u32>,
    /// The servers' own processes.
    pub pids: Vec<u32>,
    /// Their shims (each server's parent).
    pub shim_pids: Vec<u32>,
    /// Where servers that speak HTTP themselves listen, behind the gateway.
    pub inner_ports: Vec<u16>,
    /// The network it runs in (`isolated`: only the gateway reaches its inner port).
    pub network: String,
    pub uptime_secs: Option<u64>,
    pub restarts: u32,
    pub instances_running: usize,
    pub instances_desired: u32,
    /// Scaled away, finishing their calls and sessions.
    pub instances_draining: usize,
    /// `autoscale`: the bounds and targets (`1-3, 2 sessions/instance`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<String>,
    /// `autoscale`: the last change of the count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_scale: Option<crate::api::ScaleDecision>,
    /// Client sessions' own instances running (`sharing = "per-session"`).
    pub session_instances: usize,
    pub last_exit: Option<String>,
    /// Why the daemon last restarted an instance on purpose (a limit, a health check).
    pub last_restart: Option<String>,
    /// Fields the file changed that `apply` has not applied yet (what is shown is what
    /// runs).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<String>,
    pub last_error: Option<String>,
    /// What the running child speaks (`2026-07-28`, `2025-11-25`, ...).
    pub protocol: Option<String>,
    /// The instances' process trees at the last sample, summed.
    pub usage: Option<Usage>,
    /// Through the port since it opened (percentiles over the last minute).
    pub traffic: Option<Traffic>,
    /// What the server did that mcpctl could not serve as it wanted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Said of a server that asked its client for roots outside any call.
const ROOTS_OUTSIDE_A_CALL: &str = "it asked for roots outside any call (at start, say) and was told there are none: mcpctl passes a client's roots only while one of that client's calls (tools/call, prompts/get, resources/read) is in flight, whatever the sharing, so a server that reads its roots once at start sees none; it sees them if it asks during a call";

impl Report {
    /// Running out of wanted: `2/3`, or `2/1-4` for an autoscaled server.
    pub fn instances(&self) -> String {
        match self.autoscale.as_deref().and_then(|a| a.split(',').next()) {
            Some(bounds) => format!("{}/{bounds}", self.instances_running),
            None => format!("{}/{}", self.instances_running, self.instances_desired),
        }
    }
}

fn kebab<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The fields whose value in the file differs from what runs (secrets aside: the file
/// is not decrypted here), for `pending`.
fn pending(file: &ServerSpec, running: &ServerSpec) -> Vec<String> {
    let runs = running.attributes();
    file.attributes()
        .into_iter()
        .filter(|a| !a.sensitive)
        .filter(|a| {
            runs.iter()
                .find(|r| r.name == a.name)
                .is_none_or(|r| r.value != a.value)
        })
        .map(|a| a.name.to_string())
        .collect()
}

/// A server as `status` shows it: what runs (the file's spec when nothing does), and
/// the file's changes not applied yet.
pub fn report(file: &ServerSpec, running: Option<&ServerStatus>) -> Report {
    let spec = running.map_or(file, |r| &r.spec);
    let pending = running.map(|r| pending(file, &r.spec)).unwrap_or_default();
    let endpoint = |kind: &str| {
        spec.endpoints()
            .into_iter()
            .find(|(k, _)| *k == kind)
            .map_or_else(|| "-".to_string(), |(_, url)| url)
    };
    let status = match running {
        Some(r) => r.status.clone(),
        None if file.state == State::Stopped => "stopped".into(),
        None => "not running".into(),
    };
    let instances = running.map(|r| r.instances.as_slice()).unwrap_or_default();
    Report {
        server: spec.name.clone(),
        status,
        mode: kebab(&spec.mode),
        port: spec.port,
        profile: spec.profile.clone(),
        transport: kebab(&spec.transport),
        sse_endpoint: endpoint("SSE"),
        http_endpoint: endpoint("Streamable HTTP"),
        created_at: running.map(|r| r.created_at.clone()),
        instance_ids: instances.iter().map(|i| i.index).collect(),
        pids: instances.iter().filter_map(|i| i.pid).collect(),
        shim_pids: instances.iter().filter_map(|i| i.shim_pid).collect(),
        inner_ports: instances.iter().filter_map(|i| i.inner_port).collect(),
        network: running
            .and_then(|r| r.network.clone())
            .unwrap_or_else(|| kebab(&spec.network)),
        uptime_secs: instances.iter().filter_map(|i| i.uptime_secs).max(),
        restarts: running.map_or(0, |r| r.restarts),
        instances_running: instances
            .iter()
            .filter(|i| i.phase == Phase::Running && !i.per_session)
            .count(),
        session_instances: instances
            .iter()
            .filter(|i| i.phase == Phase::Running && i.per_session)
            .count(),
        // Autoscaled: what the autoscaler last chose, not the file's starting count.
        instances_desired: match (spec.autoscale, running) {
            (Some(_), Some(r)) => r.spec.instances,
            _ => spec.instances,
        },
        instances_draining: instances
            .iter()
            .filter(|i| i.phase == Phase::Draining)
            .count(),
        autoscale: spec.autoscale.map(|a| a.describe()),
        last_scale: running.and_then(|r| r.last_scale.clone()),
        last_exit: instances.iter().find_map(|i| i.last_exit.clone()),
        last_restart: instances.iter().find_map(|i| i.last_restart.clone()),
        pending,
        last_error: instances.iter().find_map(|i| i.last_error.clone()),
        protocol: instances.iter().find_map(|i| i.protocol.clone()),
        usage: total_usage(instances.iter().filter_map(|i| i.usage.as_ref())),
        traffic: running.and_then(|r| r.traffic.clone()),
        warnings: instances
            .iter()
            .any(|i| i.asked_roots_unprompted)
            .then(|| ROOTS_OUTSIDE_A_CALL.to_string())
            .into_iter()
            .chain(running.filter(|r| !r.unpinned.is_empty()).map(|r| {
                format!(
                    "tools hidden by pin (`mcpctl tools {} --pin` after review): {}",
                    spec.name,
                    r.unpinned.join(", ")
                )
            }))
            .collect(),
    }
}

/// The sum of some process trees' usage; `None` for none.
pub fn total_usage<'a>(usages: impl Iterator<Item = &'a Usage>) -> Option<Usage> {
    usages.fold(None, |sum: Option<Usage>, u| {
        let mut t = sum.unwrap_or_default();
        t.cpu_percent += u.cpu_percent;
        t.cpu_seconds += u.cpu_seconds;
        t.rss_bytes += u.rss_bytes;
        t.open_fds += u.open_fds;
        t.processes += u.processes;
        t.sampled_at = t.sampled_at.max(u.sampled_at.clone());
        Some(t)
    })
}

/// An endpoint as `status` shows it.
#[derive(Debug, Serialize)]
pub struct EndpointReport {
    pub endpoint: String,
    /// `running`, `degraded` (a member down) or `stopped` (not served).
    pub status: String,
    pub url: String,
    pub members_up: usize,
    pub members_total: usize,
    pub tools: usize,
    pub down: Vec<String>,
}

pub fn endpoint_reports(
    config: &Config,
    running: &[crate::api::EndpointStatus],
    failures: &std::collections::BTreeMap<String, String>,
) -> Vec<EndpointReport> {
    config
        .endpoints
        .values()
        .map(|spec| {
            let live = running.iter().find(|e| e.name == spec.name);
            EndpointReport {
                endpoint: spec.name.clone(),
                status: match live {
                    None => match failures.get(&spec.name) {
                        Some(why) => format!("failed: {why}"),
                        None => "stopped".into(),
                    },
                    Some(e) if e.down.is_empty() => "running".into(),
                    Some(e) => format!(
                        "degraded: {} down",
                        e.down
                            .iter()
                            .map(|d| d.split(':').next().unwrap_or_default())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                },
                url: spec.url(),
                members_up: spec.members.len() - live.map_or(spec.members.len(), |e| e.down.len()),
                members_total: spec.members.len(),
                tools: live.map_or(0, |e| e.tools),
                down: live.map(|e| e.down.clone()).unwrap_or_default(),
            }
        })
        .collect()
}

/// Where what runs came from: a line for the top of `status`, and a warning when the
/// file on disk is not what was applied.
#[derive(Debug, PartialEq)]
pub struct Origin {
    pub line: String,
    pub warning: Option<String>,
}

pub fn origin(applied: &AppliedFrom, disk_digest: &str, path: &Path) -> Origin {
    let digest = applied
        .file_digest
        .trim_start_matches("blake3:")
        .get(..12)
        .unwrap_or_default();
    let mut line = match &applied.commit {
        Some(commit) => format!(
            "applied from {} ({})",
            commit.get(..12).unwrap_or(commit),
            if applied.modified {
                "modified"
            } else {
                "clean"
            }
        ),
        None => format!("applied from a file outside git (blake3 {digest})"),
    };
    if let Some(rev) = &applied.rev {
        line.push_str(&format!(", --rev {rev}"));
    }
    if !applied.at.is_empty() {
        line.push_str(&format!(", at {}", applied.at));
    }
    let warning = (applied.file_digest != disk_digest).then(|| {
        format!(
            "{} on disk differs from what runs (applied: blake3 {digest}); `mcpctl plan` shows what `mcpctl apply` would change",
            path.display()
        )
    });
    Origin { line, warning }
}

/// The servers (the file's, then those running but gone from it) and the endpoints.
pub fn reports(
    config: &Config,
    status: Option<&DaemonStatus>,
) -> (Vec<Report>, Vec<EndpointReport>) {
    let running = |name: &str| status.and_then(|s| s.servers.iter().find(|r| r.name == name));
    let mut out: Vec<Report> = config
        .servers
        .values()
        .map(|spec| report(spec, running(&spec.name)))
        .collect();
    for r in status.iter().flat_map(|s| &s.servers) {
        if !config.servers.contains_key(&r.name) {
            let mut rep = report(&r.spec, Some(r));
            rep.status = format!("{} (not in file)", rep.status);
            out.push(rep);
        }
    }
    let none = std::collections::BTreeMap::new();
    let endpoints = endpoint_reports(
        config,
        status.map_or(&[][..], |s| &s.endpoints[..]),
        status.map_or(&none, |s| &s.endpoint_failures),
    );
    (out, endpoints)
}

/// `status --format json`: one array, servers (`server`) then endpoints (`endpoint`).
pub fn json(servers: &[Report], endpoints: &[EndpointReport]) -> serde_json::Value {
    serde_json::Value::Array(
        servers
            .iter()
            .filter_map(|r| serde_json::to_value(r).ok())
            .chain(
                endpoints
                    .iter()
                    .filter_map(|e| serde_json::to_value(e).ok()),
            )
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_the_commit_and_warns_when_the_file_moved() {
        let applied = AppliedFrom {
            file_digest: "blake3:0123456789abcdef".into(),
            commit: Some("a1b2c3d4e5f6a7b8c9d0".into()),
            modified: false,
            rev: None,
            at: String::new(),
        };
        let f = Path::new("mcpctl.toml");
        assert_eq!(
            origin(&applied, "blake3:0123456789abcdef", f),
            Origin {
                line: "applied from a1b2c3d4e5f6 (clean)".into(),
                warning: None
            }
        );
        let rolled_back = AppliedFrom {
            rev: Some("HEAD~1".into()),
            modified: true,
            ..applied.clone()
        };
        let o = origin(&rolled_back, "blake3:ffff", f);
        assert_eq!(o.line, "applied from a1b2c3d4e5f6 (modified), --rev HEAD~1");
        assert!(
            o.warning
                .unwrap()
                .starts_with("mcpctl.toml on disk differs from what runs")
        );
        let outside = AppliedFrom {
            commit: None,
            ..applied
        };
        assert_eq!(
            origin(&outside, "blake3:0123456789abcdef", f).line,
            "applied from a file outside git (blake3 0123456789ab)"
        );
    }
}
