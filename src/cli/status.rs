//! `status`, `server status`, `server logs`, `daemon status`: commands that report.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::args::Format;
use super::{Error, load, ok, print};
use crate::api::{AppliedFrom, DaemonStatus, Phase, Reply, Request, ServerStatus, Traffic, Usage};
use crate::client;
use crate::config::store;
use crate::import::plan::printable;
use crate::logs::{self, Level};
use crate::model::ServerSpec;
use crate::model::spec::State;

pub(super) fn daemon_status(path: &Path) -> Result<Option<DaemonStatus>, Error> {
    match client::ask(path, &Request::Status) {
        Ok(Reply::Status { status }) => Ok(Some(status)),
        Ok(other) => Err(client::Error::BadReply(format!("{other:?}")).into()),
        Err(client::Error::NotRunning(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// One server as reported: what the file says, and what runs.
#[derive(Debug, Serialize)]
struct Report {
    server: String,
    status: String,
    mode: String,
    port: u16,
    profile: String,
    transport: String,
    sse_endpoint: String,
    http_endpoint: String,
    created_at: Option<String>,
    /// The ids of the instances (for `server logs --instance`).
    instance_ids: Vec<u32>,
    /// The servers' own processes.
    pids: Vec<u32>,
    /// Their shims (each server's parent).
    shim_pids: Vec<u32>,
    /// Where servers that speak HTTP themselves listen, behind the gateway.
    inner_ports: Vec<u16>,
    /// The network it runs in (`isolated`: only the gateway reaches its inner port).
    network: String,
    uptime_secs: Option<u64>,
    restarts: u32,
    instances_running: usize,
    instances_desired: u32,
    /// Scaled away, finishing their calls and sessions.
    instances_draining: usize,
    /// `autoscale`: the bounds and targets (`1-3, 2 sessions/instance`).
    #[serde(skip_serializing_if = "Option::is_none")]
    autoscale: Option<String>,
    /// `autoscale`: the last change of the count.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_scale: Option<crate::api::ScaleDecision>,
    /// Client sessions' own instances running (`sharing = "per-session"`).
    session_instances: usize,
    last_exit: Option<String>,
    /// Why the daemon last restarted an instance on purpose (a limit, a health check).
    last_restart: Option<String>,
    /// Fields the file changed that `apply` has not applied yet (what is shown is what
    /// runs).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pending: Vec<String>,
    last_error: Option<String>,
    /// What the running child speaks (`2026-07-28`, `2025-11-25`, ...).
    protocol: Option<String>,
    /// The instances' process trees at the last sample, summed.
    usage: Option<Usage>,
    /// Through the port since it opened (percentiles over the last minute).
    traffic: Option<Traffic>,
    /// What the server did that mcpctl could not serve as it wanted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

/// Said of a server that asked its client for roots outside any call.
const ROOTS_OUTSIDE_A_CALL: &str = "it asked for roots outside any call (at start, say) and was told there are none: mcpctl passes a client's roots only while one of that client's calls (tools/call, prompts/get, resources/read) is in flight, whatever the sharing, so a server that reads its roots once at start sees none; it sees them if it asks during a call";

impl Report {
    /// Running out of wanted: `2/3`, or `2/1-4` for an autoscaled server.
    fn instances(&self) -> String {
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
fn report(file: &ServerSpec, running: Option<&ServerStatus>) -> Report {
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
pub(super) fn total_usage<'a>(usages: impl Iterator<Item = &'a Usage>) -> Option<Usage> {
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

/// `12.3 MiB`.
pub(super) fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `p50 0.4 ms, p95 1.2 ms, p99 3.0 ms`, or `-` with no request in the window.
pub(super) fn latency(t: &Traffic) -> String {
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2} ms"));
    let l = &t.latency;
    match l.p50_ms {
        None => "-".into(),
        Some(_) => format!(
            "p50 {}, p95 {}, p99 {} (last minute)",
            ms(l.p50_ms),
            ms(l.p95_ms),
            ms(l.p99_ms)
        ),
    }
}

fn reports(path: &Path) -> Result<Vec<Report>, Error> {
    Ok(reports_origin_endpoints(path)?.0)
}

/// An endpoint as `status` shows it.
#[derive(Debug, Serialize)]
struct EndpointReport {
    endpoint: String,
    /// `running`, `degraded` (a member down) or `stopped` (not served).
    status: String,
    url: String,
    members_up: usize,
    members_total: usize,
    tools: usize,
    down: Vec<String>,
}

fn endpoint_reports(
    config: &crate::model::Config,
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

/// The servers' reports, where the running config came from, and the endpoints.
type Reports = (Vec<Report>, Option<Origin>, Vec<EndpointReport>);

fn reports_origin_endpoints(path: &Path) -> Result<Reports, Error> {
    let loaded = load(path)?;
    let status = daemon_status(path)?;
    let origin = status
        .as_ref()
        .and_then(|s| s.applied.as_ref())
        .map(|a| origin(a, &crate::config::digest(&loaded.source), path));
    let running = |name: &str| {
        status
            .as_ref()
            .and_then(|s| s.servers.iter().find(|r| r.name == name))
    };
    super::warn_about(&loaded.config.servers, false);
    let mut out: Vec<Report> = loaded
        .config
        .servers
        .values()
        .map(|spec| report(spec, running(&spec.name)))
        .collect();
    // Servers still running but gone from the file.
    for r in status.iter().flat_map(|s| &s.servers) {
        if !loaded.config.servers.contains_key(&r.name) {
            let mut rep = report(&r.spec, Some(r));
            rep.status = format!("{} (not in file)", rep.status);
            out.push(rep);
        }
    }
    let none = std::collections::BTreeMap::new();
    let endpoints = endpoint_reports(
        &loaded.config,
        status.as_ref().map_or(&[][..], |s| &s.endpoints[..]),
        status.as_ref().map_or(&none, |s| &s.endpoint_failures),
    );
    Ok((out, origin, endpoints))
}

/// Where what runs came from: a line for the top of `status`, and a warning when the
/// file on disk is not what was applied.
#[derive(Debug, PartialEq)]
struct Origin {
    line: String,
    warning: Option<String>,
}

fn origin(applied: &AppliedFrom, disk_digest: &str, path: &Path) -> Origin {
    let digest = applied
        .file_digest
        .trim_start_matches("blake3:")
        .get(..12)
        .unwrap_or_default();
    let mut line = match &applied.commit {
        Some(commit) => format!(
            "applied from {} ({})",
            crate::git::short(commit),
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

fn duration(secs: Option<u64>) -> String {
    secs.map_or("-".into(), |s| {
        humantime::format_duration(Duration::from_secs(s)).to_string()
    })
}

pub(super) fn status(path: &Path, format: Format) -> Result<u8, Error> {
    let (reports, origin, endpoints) = reports_origin_endpoints(path)?;
    if let Some(warning) = origin.as_ref().and_then(|o| o.warning.as_ref()) {
        crate::note!("warning: {warning}");
    }
    if format == Format::Json {
        // One array: servers (`server`), then endpoints (`endpoint`).
        let mut all: Vec<serde_json::Value> = reports
            .iter()
            .filter_map(|r| serde_json::to_value(r).ok())
            .collect();
        all.extend(
            endpoints
                .iter()
                .filter_map(|e| serde_json::to_value(e).ok()),
        );
        print(&format!(
            "{}\n",
            serde_json::to_string_pretty(&all).unwrap_or_default()
        ))?;
        return ok();
    }
    let mut rows = vec![
        [
            "SERVER",
            "STATUS",
            "MODE",
            "PORT",
            "PROFILE",
            "TRANSPORT",
            "INSTANCES",
            "RESTARTS",
            "PID",
            "UPTIME",
        ]
        .map(String::from),
    ];
    for r in &reports {
        rows.push([
            r.server.clone(),
            r.status.clone(),
            r.mode.clone(),
            r.port.to_string(),
            r.profile.clone(),
            r.transport.clone(),
            r.instances(),
            r.restarts.to_string(),
            r.pids.first().map_or("-".into(), u32::to_string),
            duration(r.uptime_secs),
        ]);
    }
    let head = origin
        .map(|o| format!("{}\n\n", o.line))
        .unwrap_or_default();
    for r in &reports {
        for warning in &r.warnings {
            crate::note!("warning: server `{}`: {warning}", r.server);
        }
    }
    let mut text = format!("{head}{}", table(&rows));
    let pending: Vec<String> = reports
        .iter()
        .filter(|r| !r.pending.is_empty())
        .map(|r| format!("  {}: {}", r.server, r.pending.join(", ")))
        .collect();
    if !pending.is_empty() {
        text.push_str(&format!(
            "\nShown is what runs; changed in the file and not applied yet (`mcpctl apply`):\n{}\n",
            pending.join("\n")
        ));
    }
    if !endpoints.is_empty() {
        let mut rows = vec![["ENDPOINT", "STATUS", "URL", "MEMBERS", "TOOLS"].map(String::from)];
        for e in &endpoints {
            rows.push([
                e.endpoint.clone(),
                e.status.clone(),
                e.url.clone(),
                format!("{}/{}", e.members_up, e.members_total),
                e.tools.to_string(),
            ]);
        }
        text.push('\n');
        text.push_str(&table(&rows));
    }
    print(&text)?;
    ok()
}

/// Rows as columns padded to their widest cell (every row as long as the first).
pub(super) fn table<R: AsRef<[String]>>(rows: &[R]) -> String {
    let columns = rows.first().map_or(0, |r| r.as_ref().len());
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .map(|r| r.as_ref().get(c).map_or(0, |cell| cell.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .as_ref()
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

pub(super) fn server_status(
    path: &Path,
    name: &str,
    format: Format,
    watch: bool,
) -> Result<u8, Error> {
    loop {
        let reports = reports(path)?;
        let Some(r) = reports.iter().find(|r| r.server == name) else {
            let known: Vec<String> = reports.iter().map(|r| r.server.clone()).collect();
            return Err(crate::config::edit::unknown_server(name, &known).into());
        };
        let text = if format == Format::Json {
            format!("{}\n", serde_json::to_string_pretty(r).unwrap_or_default())
        } else {
            fn list<T: ToString>(items: &[T]) -> String {
                if items.is_empty() {
                    "-".to_string()
                } else {
                    items
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            }
            let lines = [
                ("Server", r.server.clone()),
                ("Status", r.status.clone()),
                ("Mode", r.mode.clone()),
                ("Port", r.port.to_string()),
                ("Profile", r.profile.clone()),
                ("Transport", r.transport.clone()),
                ("Protocol", r.protocol.clone().unwrap_or_else(|| "-".into())),
                ("SSE Endpoint", r.sse_endpoint.clone()),
                ("HTTP Endpoint", r.http_endpoint.clone()),
                (
                    "Created At",
                    r.created_at.clone().unwrap_or_else(|| "-".into()),
                ),
                ("PID", list(&r.pids)),
                ("Shim PID", list(&r.shim_pids)),
                ("Inner Port", list(&r.inner_ports)),
                ("Network", r.network.clone()),
                ("Uptime", duration(r.uptime_secs)),
                ("Restarts", r.restarts.to_string()),
                (
                    "Instances",
                    match r.instances_draining {
                        0 => r.instances(),
                        n => format!("{} ({n} draining)", r.instances()),
                    },
                ),
                (
                    "Autoscale",
                    r.autoscale.clone().unwrap_or_else(|| "-".into()),
                ),
                (
                    "Last Scale",
                    r.last_scale.as_ref().map_or("-".into(), |d| {
                        format!("{} -> {} at {}: {}", d.from, d.to, d.at, d.reason)
                    }),
                ),
                ("Session Instances", r.session_instances.to_string()),
                ("Instance IDs", list(&r.instance_ids)),
                (
                    "Last Exit",
                    r.last_exit.clone().unwrap_or_else(|| "-".into()),
                ),
                (
                    "Last Error",
                    r.last_error.clone().unwrap_or_else(|| "-".into()),
                ),
                (
                    "Last Restart",
                    r.last_restart.clone().unwrap_or_else(|| "-".into()),
                ),
                (
                    "Pending",
                    if r.pending.is_empty() {
                        "-".into()
                    } else {
                        format!("{} (in the file, not applied)", r.pending.join(", "))
                    },
                ),
                (
                    "CPU",
                    r.usage
                        .as_ref()
                        .map_or("-".into(), |u| format!("{:.1} %", u.cpu_percent)),
                ),
                (
                    "Memory",
                    r.usage.as_ref().map_or("-".into(), |u| bytes(u.rss_bytes)),
                ),
                (
                    "Open Files",
                    r.usage
                        .as_ref()
                        .map_or("-".into(), |u| u.open_fds.to_string()),
                ),
                (
                    "Sessions",
                    r.traffic
                        .as_ref()
                        .map_or("-".into(), |t| t.sessions.to_string()),
                ),
                (
                    "Requests",
                    r.traffic.as_ref().map_or("-".into(), |t| {
                        let (n, e) = t
                            .methods
                            .iter()
                            .fold((0, 0), |(n, e), m| (n + m.requests, e + m.errors));
                        format!(
                            "{n} ({e} errors), {} in, {} out",
                            bytes(t.bytes_in),
                            bytes(t.bytes_out)
                        )
                    }),
                ),
                ("Latency", r.traffic.as_ref().map_or("-".into(), latency)),
            ];
            lines
                .iter()
                .map(|(k, v)| (*k, v))
                .chain(r.warnings.iter().map(|w| ("Warning", w)))
                .map(|(k, v)| format!("{:<14} {v}\n", format!("{k}:")))
                .collect()
        };
        print(&text)?;
        if !watch {
            return ok();
        }
        std::thread::sleep(Duration::from_secs(1));
        print("\n")?;
    }
}

/// The lowest id among `name`'s running instances, when a daemon runs it.
fn first_running(path: &Path, name: &str) -> Option<u32> {
    let status = daemon_status(path).ok()??;
    let server = status.servers.into_iter().find(|s| s.name == name)?;
    server
        .instances
        .iter()
        .filter(|i| i.phase == Phase::Running && !i.per_session)
        .map(|i| i.index)
        .min()
}

pub(super) fn logs(
    path: &Path,
    name: &str,
    follow: bool,
    lines: usize,
    level: Option<Level>,
    instance: Option<u32>,
) -> Result<u8, Error> {
    let loaded = load(path)?;
    if !loaded.config.servers.contains_key(name) {
        let known: Vec<String> = loaded.config.servers.keys().cloned().collect();
        return Err(crate::config::edit::unknown_server(name, &known).into());
    }
    let dir =
        store::runtime_dir(&std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()));
    let logged = logs::instances_with_logs(&dir, name);
    let instance = match instance {
        Some(i) if logged.contains(&i) => i,
        Some(i) => {
            let known = if logged.is_empty() {
                "none has a log yet".to_string()
            } else {
                let ids: Vec<String> = logged.iter().map(u32::to_string).collect();
                format!("instances with logs: {}", ids.join(", "))
            };
            return Err(Error::Failed(format!(
                "server `{name}` has no instance {i} ({known})"
            )));
        }
        None => first_running(path, name)
            .filter(|i| logged.contains(i))
            .or_else(|| logged.last().copied())
            .unwrap_or(0),
    };
    let file = logs::log_path(&dir, name, instance);
    let keep = |line: &str| {
        level.is_none_or(|min| logs::detect_level(logs::message_of(line)).is_some_and(|l| l >= min))
    };
    // Filter first, then take the last `lines`, so `--level error --lines 5` shows five errors.
    let wanted: Vec<String> = logs::tail(&file, if level.is_some() { 100_000 } else { lines })
        .into_iter()
        .filter(|l| keep(l))
        .collect();
    let skip = wanted.len().saturating_sub(lines);
    // A server writes what it likes into its log: escape sequences and NULs are shown,
    // not sent to the terminal.
    print(
        &wanted[skip..]
            .iter()
            .map(|l| format!("{}\n", printable(l)))
            .collect::<String>(),
    )?;
    if !follow {
        return ok();
    }
    let mut offset = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    // Bytes, not text: a chunk may end inside a character, or hold invalid UTF-8.
    let mut pending: Vec<u8> = Vec::new();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let len = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        if len < offset {
            offset = 0; // rotated
        }
        if len == offset {
            continue;
        }
        let Ok(mut f) = std::fs::File::open(&file) else {
            continue;
        };
        if f.seek(SeekFrom::Start(offset)).is_err() {
            continue;
        }
        // At most 1 MiB a round; log lines are bounded, so is what waits for its newline.
        let mut chunk = Vec::new();
        let _ = f.take(1 << 20).read_to_end(&mut chunk);
        offset += chunk.len() as u64;
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let bytes: Vec<u8> = pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&bytes[..end]);
            if keep(&line) {
                print(&format!("{}\n", printable(&line)))?;
            }
        }
        if pending.len() > 4 * logs::MAX_LINE {
            pending.clear(); // not a line of ours
        }
    }
}

pub(super) fn daemon_info(path: &Path) -> Result<u8, Error> {
    match daemon_status(path)? {
        Some(s) => {
            let applied = s
                .applied
                .as_ref()
                .map(|a| {
                    let disk = store::read(path)
                        .map(|t| crate::config::digest(&t))
                        .unwrap_or_default();
                    format!("{}\n", origin(a, &disk, path).line)
                })
                .unwrap_or_default();
            print(&format!(
                "daemon running: pid {}, since {}, config {}, {} server(s) supervised\nsocket: {}\n{applied}",
                s.pid,
                s.started_at,
                s.config,
                s.servers.len(),
                client::socket_path(path).display()
            ))?;
            ok()
        }
        None => Err(Error::Failed(format!(
            "no daemon is running for {}",
            path.display()
        ))),
    }
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
