//! `server monitor [NAME]`: the daemon's samples, live. On a terminal a table redrawn
//! every interval (one row per instance, a total per server with its traffic, and a
//! trend of the last minute's CPU); piped or with `--format json`, one JSON object per
//! sample. What is shown is pure ([`sample`], [`table`]); the loop asks the daemon.

use std::collections::{BTreeMap, VecDeque};
use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use super::args::{Format, Metric};
use super::status::{bytes, total_usage};
use super::{Error, ok, print};
use crate::api::{DaemonStatus, Reply, Request};
use crate::client;

/// CPU totals kept per server for the trend.
const TREND: usize = 30;

pub(super) struct Options<'a> {
    pub name: Option<&'a str>,
    pub metrics: Vec<Metric>,
    pub interval: Duration,
    pub format: Option<Format>,
    pub count: Option<u64>,
}

pub(super) fn monitor(path: &Path, o: &Options<'_>) -> Result<u8, Error> {
    let live = o.format != Some(Format::Json) && std::io::stdout().is_terminal();
    let metrics = if o.metrics.is_empty() {
        Metric::ALL.to_vec()
    } else {
        o.metrics.clone()
    };
    let mut trends: BTreeMap<String, VecDeque<f64>> = BTreeMap::new();
    let mut previous: Option<(DaemonStatus, std::time::Instant)> = None;
    let mut shown = 0u64;
    let mut last_sampled: Option<String> = None;
    loop {
        let status = match client::ask(path, &Request::Status)? {
            Reply::Status { status } => status,
            other => return Err(client::Error::BadReply(format!("{other:?}")).into()),
        };
        if let Some(name) = o.name
            && !status.servers.iter().any(|s| s.name == name)
        {
            let known: Vec<String> = status.servers.iter().map(|s| s.name.clone()).collect();
            return Err(crate::config::edit::unknown_server(name, &known).into());
        }
        let now = std::time::Instant::now();
        let elapsed = previous.as_ref().map(|(_, at)| (now - *at).as_secs_f64());
        let before = previous.as_ref().map(|(s, _)| s);
        let sample = sample(&status, before, elapsed, o.name, &metrics);
        // The daemon samples every few seconds: a finer --interval would show the same
        // figures again as if new. A sample is shown once.
        let sampled_at = sample["sampled_at"].as_str().map(str::to_string);
        if sampled_at.is_some() && sampled_at == last_sampled {
            std::thread::sleep(o.interval);
            continue;
        }
        last_sampled = sampled_at;
        for server in sample["servers"].as_array().into_iter().flatten() {
            let (Some(name), Some(cpu)) = (server["name"].as_str(), server["cpu_percent"].as_f64())
            else {
                continue;
            };
            let trend = trends.entry(name.to_string()).or_default();
            trend.push_back(cpu);
            while trend.len() > TREND {
                trend.pop_front();
            }
        }
        if live {
            print(&format!(
                "\x1b[H\x1b[2J{}",
                table(&sample, &metrics, &trends)
            ))?;
        } else {
            print(&format!("{sample}\n"))?;
        }
        shown += 1;
        if o.count.is_some_and(|n| shown >= n) {
            return ok();
        }
        previous = Some((status, now));
        std::thread::sleep(o.interval);
    }
}

fn has(metrics: &[Metric], m: Metric) -> bool {
    metrics.contains(&m)
}

/// One sample as JSON: per server its instances and totals, the metrics asked for;
/// rates (requests and bytes per second) against `before`, `elapsed` seconds earlier.
pub(super) fn sample(
    status: &DaemonStatus,
    before: Option<&DaemonStatus>,
    elapsed: Option<f64>,
    only: Option<&str>,
    metrics: &[Metric],
) -> Value {
    let servers: Vec<Value> = status
        .servers
        .iter()
        .filter(|s| only.is_none_or(|n| n == s.name))
        .map(|s| {
            let earlier = before
                .and_then(|b| b.servers.iter().find(|x| x.name == s.name))
                .and_then(|x| x.traffic.as_ref());
            let rate = |now: u64, then: Option<u64>| -> Option<f64> {
                let secs = elapsed.filter(|e| *e > 0.0)?;
                Some(((now.saturating_sub(then?)) as f64 / secs * 10.0).round() / 10.0)
            };
            let mut server = json!({"name": s.name, "status": s.status});
            let instances: Vec<Value> = s
                .instances
                .iter()
                .map(|i| {
                    let mut row = json!({"index": i.index, "pid": i.pid, "phase": i.phase.name()});
                    if let Some(u) = &i.usage {
                        if has(metrics, Metric::Cpu) {
                            row["cpu_percent"] = json!(u.cpu_percent);
                        }
                        if has(metrics, Metric::Memory) {
                            row["rss_bytes"] = json!(u.rss_bytes);
                            row["open_fds"] = json!(u.open_fds);
                        }
                    }
                    row
                })
                .collect();
            server["instances"] = json!(instances);
            if let Some(u) = total_usage(s.instances.iter().filter_map(|i| i.usage.as_ref())) {
                if has(metrics, Metric::Cpu) {
                    server["cpu_percent"] = json!((u.cpu_percent * 10.0).round() / 10.0);
                }
                if has(metrics, Metric::Memory) {
                    server["rss_bytes"] = json!(u.rss_bytes);
                }
            }
            if let Some(t) = &s.traffic {
                let requests: u64 = t.methods.iter().map(|m| m.requests).sum();
                let errors: u64 = t.methods.iter().map(|m| m.errors).sum();
                let requests_before =
                    earlier.map(|e| e.methods.iter().map(|m| m.requests).sum::<u64>());
                if has(metrics, Metric::Network) {
                    server["bytes_in"] = json!(t.bytes_in);
                    server["bytes_out"] = json!(t.bytes_out);
                    server["bytes_in_per_sec"] =
                        json!(rate(t.bytes_in, earlier.map(|e| e.bytes_in)));
                    server["bytes_out_per_sec"] =
                        json!(rate(t.bytes_out, earlier.map(|e| e.bytes_out)));
                }
                if has(metrics, Metric::Connections) {
                    server["connections"] = json!(t.connections);
                    server["sessions"] = json!(t.sessions);
                }
                if has(metrics, Metric::ResponseTime) {
                    server["requests"] = json!(requests);
                    server["errors"] = json!(errors);
                    server["requests_per_sec"] = json!(rate(requests, requests_before));
                    server["p50_ms"] = json!(t.latency.p50_ms);
                    server["p95_ms"] = json!(t.latency.p95_ms);
                    server["p99_ms"] = json!(t.latency.p99_ms);
                }
            }
            server
        })
        .collect();
    let mut out = json!({
        "time": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        "servers": servers,
    });
    if let Some(u) = &status.usage {
        out["daemon"] = json!({"cpu_percent": u.cpu_percent, "rss_bytes": u.rss_bytes});
    }
    let sampled_at = status.usage.iter().chain(
        status
            .servers
            .iter()
            .flat_map(|s| s.instances.iter().filter_map(|i| i.usage.as_ref())),
    );
    if let Some(at) = sampled_at.filter_map(|u| u.sampled_at.as_deref()).max() {
        out["sampled_at"] = json!(at);
    }
    out
}

/// `▁▂▄█`: the last values, scaled to the largest (at least 100 %, one core).
fn sparkline(values: &VecDeque<f64>) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let top = values.iter().copied().fold(100.0, f64::max);
    values
        .iter()
        .map(|v| {
            let i = ((v / top) * 7.0).round().clamp(0.0, 7.0) as usize;
            BARS[i]
        })
        .collect()
}

/// The sample as the terminal table.
fn table(sample: &Value, metrics: &[Metric], trends: &BTreeMap<String, VecDeque<f64>>) -> String {
    let text = |v: &Value| match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    };
    let num = |v: &Value, unit: &str| v.as_f64().map_or("-".into(), |n| format!("{n:.1}{unit}"));
    let mem = |v: &Value| v.as_u64().map_or("-".into(), bytes);
    let mut out = format!("mcpctl monitor   {}", text(&sample["time"]));
    if let Some(at) = sample["sampled_at"].as_str() {
        out += &format!("   (sampled {at})");
    }
    out += "\n";
    if let Some(d) = sample.get("daemon") {
        out += &format!(
            "daemon: cpu {}  memory {}\n",
            num(&d["cpu_percent"], " %"),
            mem(&d["rss_bytes"])
        );
    }
    out += "\nSERVER        INST  PID      STATE      CPU      MEMORY      FDS\n";
    for s in sample["servers"].as_array().into_iter().flatten() {
        let name = text(&s["name"]);
        for i in s["instances"].as_array().into_iter().flatten() {
            out += &format!(
                "{:<13} {:<5} {:<8} {:<10} {:<8} {:<11} {}\n",
                name,
                text(&i["index"]),
                text(&i["pid"]),
                text(&i["phase"]),
                num(&i["cpu_percent"], " %"),
                mem(&i["rss_bytes"]),
                text(&i["open_fds"]),
            );
        }
        out += &format!(
            "{:<13} total                   {:<8} {:<11}\n",
            name,
            num(&s["cpu_percent"], " %"),
            mem(&s["rss_bytes"])
        );
        let mut traffic = Vec::new();
        if has(metrics, Metric::Connections) {
            traffic.push(format!(
                "sessions {}  connections {}",
                text(&s["sessions"]),
                text(&s["connections"])
            ));
        }
        if has(metrics, Metric::Network) {
            traffic.push(format!(
                "in {}/s  out {}/s",
                s["bytes_in_per_sec"]
                    .as_f64()
                    .map_or("-".into(), |b| bytes(b as u64)),
                s["bytes_out_per_sec"]
                    .as_f64()
                    .map_or("-".into(), |b| bytes(b as u64))
            ));
        }
        if has(metrics, Metric::ResponseTime) {
            traffic.push(format!(
                "{} req/s  {} errors  p50 {}  p95 {}  p99 {}",
                num(&s["requests_per_sec"], ""),
                text(&s["errors"]),
                num(&s["p50_ms"], " ms"),
                num(&s["p95_ms"], " ms"),
                num(&s["p99_ms"], " ms")
            ));
        }
        if !traffic.is_empty() {
            out += &format!("              {}\n", traffic.join("   "));
        }
        if let Some(trend) = trends.get(&name).filter(|_| has(metrics, Metric::Cpu)) {
            out += &format!("              cpu, last minute: {}\n", sparkline(trend));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{InstanceStatus, Phase, ServerStatus, Traffic, Usage};

    fn status(requests: u64, bytes_in: u64) -> DaemonStatus {
        let usage = Usage {
            cpu_percent: 12.5,
            rss_bytes: 4 << 20,
            open_fds: 9,
            ..Usage::default()
        };
        let instance = InstanceStatus {
            index: 0,
            phase: Phase::Running,
            pid: Some(42),
            shim_pid: Some(41),
            uptime_secs: None,
            restarts: 0,
            last_exit: None,
            last_restart: None,
            last_error: None,
            protocol: None,
            asked_roots_unprompted: false,
            per_session: false,
            inner_port: None,
            usage: Some(usage),
        };
        let traffic = Traffic {
            bytes_in,
            methods: vec![crate::api::MethodTraffic {
                method: "tools/call".into(),
                requests,
                ..Default::default()
            }],
            ..Traffic::default()
        };
        let spec =
            crate::model::parse("version = 1\n[servers.echo]\ncommand = \"x\"\nport = 9000\n")
                .map(|c| c.servers["echo"].clone())
                .unwrap();
        DaemonStatus {
            pid: 1,
            config: "c".into(),
            started_at: "t".into(),
            servers: vec![ServerStatus {
                name: "echo".into(),
                spec,
                status: "running".into(),
                created_at: "t".into(),
                restarts: 0,
                instances: vec![instance],
                traffic: Some(traffic),
                last_scale: None,
                network: None,
                unpinned: Vec::new(),
            }],
            usage: None,
            applied: None,
            endpoints: Vec::new(),
            endpoint_failures: Default::default(),
            tokens_used: Default::default(),
            tokens_limited: Default::default(),
            oidc_limited: Default::default(),
        }
    }

    #[test]
    fn a_sample_has_the_metrics_asked_for_and_rates_against_the_one_before() {
        let s = sample(
            &status(30, 2000),
            Some(&status(10, 1000)),
            Some(2.0),
            None,
            Metric::ALL,
        );
        let echo = &s["servers"][0];
        assert_eq!(echo["cpu_percent"], 12.5);
        assert_eq!(echo["instances"][0]["rss_bytes"], 4 << 20);
        assert_eq!(echo["requests_per_sec"], 10.0);
        assert_eq!(echo["bytes_in_per_sec"], 500.0);
        let cpu_only = sample(&status(30, 2000), None, None, None, &[Metric::Cpu]);
        let echo = &cpu_only["servers"][0];
        assert!(
            echo.get("rss_bytes").is_none() && echo.get("requests").is_none(),
            "{echo}"
        );
        assert!(
            sample(&status(1, 1), None, None, Some("other"), Metric::ALL)["servers"]
                .as_array()
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn the_table_has_a_row_per_instance_a_total_and_a_trend() {
        let s = sample(&status(30, 2000), None, None, None, Metric::ALL);
        let trends = BTreeMap::from([("echo".to_string(), VecDeque::from([0.0, 50.0, 100.0]))]);
        let t = table(&s, Metric::ALL, &trends);
        assert!(t.contains("echo          0     42"), "{t}");
        assert!(t.contains("total"), "{t}");
        assert!(t.contains("4.0 MiB"), "{t}");
        assert!(t.contains("▁▅█"), "{t}");
    }
}
