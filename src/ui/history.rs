//! The last hour of each server, for the page's plots: one point per sample (CPU,
//! memory, requests and errors per second, p50/p99), made from two `status` readings
//! in a row. Bounded: [`MAX_POINTS`] per server, servers gone are dropped.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use crate::api::DaemonStatus;

/// Points kept per server: an hour at the default 5 s sample period.
pub const MAX_POINTS: usize = 720;
/// Servers kept, at most (a file has far fewer; a bound all the same).
pub const MAX_SERVERS: usize = 1024;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// Seconds since the Unix epoch.
    pub t: u64,
    pub cpu_percent: f64,
    pub rss_bytes: u64,
    pub requests_per_sec: f64,
    pub errors_per_sec: f64,
    /// Over the minute before `t` (none without a request in it).
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// Requests and errors a server had answered at a reading.
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    t: u64,
    requests: u64,
    errors: u64,
}

#[derive(Default)]
pub struct History {
    points: BTreeMap<String, VecDeque<Point>>,
    last: BTreeMap<String, Totals>,
}

impl History {
    /// Adds a point per server of `status`, read at `t` (Unix seconds).
    pub fn record(&mut self, status: &DaemonStatus, t: u64) {
        let names: Vec<&str> = status.servers.iter().map(|s| s.name.as_str()).collect();
        self.points.retain(|name, _| names.contains(&name.as_str()));
        self.last.retain(|name, _| names.contains(&name.as_str()));
        for server in &status.servers {
            if !self.points.contains_key(&server.name) && self.points.len() >= MAX_SERVERS {
                continue;
            }
            let usage = server.instances.iter().filter_map(|i| i.usage.as_ref());
            let (cpu, rss) = usage.fold((0.0, 0), |(c, r), u| (c + u.cpu_percent, r + u.rss_bytes));
            let methods = server.traffic.iter().flat_map(|t| &t.methods);
            let (requests, errors) =
                methods.fold((0, 0), |(r, e), m| (r + m.requests, e + m.errors));
            let now = Totals {
                t,
                requests,
                errors,
            };
            // A counter that went back (the port reopened) starts over: no negative rate.
            let rate = |before: Option<&Totals>, pick: fn(&Totals) -> u64| {
                before
                    .filter(|b| t > b.t && pick(&now) >= pick(b))
                    .map_or(0.0, |b| (pick(&now) - pick(b)) as f64 / (t - b.t) as f64)
            };
            let before = self.last.get(&server.name);
            let latency = server
                .traffic
                .as_ref()
                .map(|t| t.latency)
                .unwrap_or_default();
            let point = Point {
                t,
                cpu_percent: cpu,
                rss_bytes: rss,
                requests_per_sec: rate(before, |x| x.requests),
                errors_per_sec: rate(before, |x| x.errors),
                p50_ms: latency.p50_ms,
                p99_ms: latency.p99_ms,
            };
            self.last.insert(server.name.clone(), now);
            let points = self.points.entry(server.name.clone()).or_default();
            if points.len() >= MAX_POINTS {
                points.pop_front();
            }
            points.push_back(point);
        }
    }

    /// `server`'s points after `since` (Unix seconds), oldest first; `None` for a
    /// server not known.
    pub fn since(&self, server: &str, since: u64) -> Option<Vec<Point>> {
        let points = self.points.get(server)?;
        Some(points.iter().filter(|p| p.t > since).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{MethodTraffic, Traffic};

    fn status(requests: u64, errors: u64) -> DaemonStatus {
        let mut server = crate::ui::fixture::server("a", "running", 0);
        server.traffic = Some(Traffic {
            methods: vec![MethodTraffic {
                method: "tools/call".into(),
                requests,
                errors,
                ..MethodTraffic::default()
            }],
            ..Traffic::default()
        });
        crate::ui::fixture::status(vec![server])
    }

    #[test]
    fn rates_come_from_two_readings_and_never_go_negative() {
        let mut h = History::default();
        h.record(&status(100, 1), 1000);
        h.record(&status(150, 6), 1005);
        h.record(&status(10, 0), 1010);
        let points = h.since("a", 0).unwrap_or_default();
        let rates: Vec<(f64, f64)> = points
            .iter()
            .map(|p| (p.requests_per_sec, p.errors_per_sec))
            .collect();
        assert_eq!(rates, vec![(0.0, 0.0), (10.0, 1.0), (0.0, 0.0)]);
        assert_eq!(h.since("a", 1005).map(|p| p.len()), Some(1));
        assert!(h.since("b", 0).is_none());
    }

    #[test]
    fn an_hour_is_kept_and_gone_servers_are_dropped() {
        let mut h = History::default();
        for t in 0..(MAX_POINTS as u64 + 10) {
            h.record(&status(t, 0), t);
        }
        assert_eq!(h.since("a", 0).map(|p| p.len()), Some(MAX_POINTS));
        let mut empty = status(0, 0);
        empty.servers.clear();
        h.record(&empty, 10_000);
        assert!(h.since("a", 0).is_none());
    }
}
