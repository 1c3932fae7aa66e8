//! `status`, `server status`, `server logs`, `daemon status`: commands that report.

use std::path::Path;
use std::time::Duration;

use super::args::Format;
use super::{Error, load, ok, print};
use crate::api::{DaemonStatus, Phase, Reply, Request, Traffic};
use crate::client;
use crate::config::store;
use crate::import::plan::printable;
use crate::logs::{self, Level};
pub(super) use crate::render::status::total_usage;
use crate::render::status::{self as status_report, EndpointReport, Origin, Report, origin};

pub(super) fn daemon_status(path: &Path) -> Result<Option<DaemonStatus>, Error> {
    match client::ask(path, &Request::Status) {
        Ok(Reply::Status { status }) => Ok(Some(status)),
        Ok(other) => Err(client::Error::BadReply(format!("{other:?}")).into()),
        Err(client::Error::NotRunning(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
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

/// The servers' reports, where the running config came from, and the endpoints.
type Reports = (Vec<Report>, Option<Origin>, Vec<EndpointReport>);

fn reports_origin_endpoints(path: &Path) -> Result<Reports, Error> {
    let loaded = load(path)?;
    let status = daemon_status(path)?;
    let origin = status
        .as_ref()
        .and_then(|s| s.applied.as_ref())
        .map(|a| origin(a, &crate::config::digest(&loaded.source), path));
    super::warn_about(&loaded.config.servers, false);
    let (servers, endpoints) = status_report::reports(&loaded.config, status.as_ref());
    Ok((servers, origin, endpoints))
}

fn reports(path: &Path) -> Result<Vec<Report>, Error> {
    Ok(reports_origin_endpoints(path)?.0)
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
        let all = status_report::json(&reports, &endpoints);
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
    let mut follower = logs::Follower::from_end(&file);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        for line in follower.new_lines() {
            if keep(&line) {
                print(&format!("{}\n", printable(&line)))?;
            }
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
