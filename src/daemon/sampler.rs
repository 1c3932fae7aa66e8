//! The daemon's measurements: every few seconds (`MCPCTL_SAMPLE_SECS`, default 5; 0
//! turns sampling off) the CPU, memory and descriptors of each instance's process tree
//! and of the daemon itself, and a snapshot of each port's traffic, kept for a minute so
//! that response-time percentiles cover a sliding window. `status` reads the latest.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use super::procs::{self, Proc};
use crate::api::{MethodTraffic, Percentiles, Traffic, Usage};
use crate::gateway::meter::BUCKETS;

/// How far back the percentiles look.
pub(super) const WINDOW: Duration = Duration::from_secs(60);
/// Snapshots kept per port, at most (a short period must not grow the window).
const MAX_SNAPSHOTS: usize = 64;
/// Samples in a row above `limits.memory` that restart an instance (one spike does not).
pub(super) const OVER_LIMIT_SAMPLES: u32 = 2;

pub(super) fn period() -> Option<Duration> {
    let secs = std::env::var("MCPCTL_SAMPLE_SECS")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(5.0);
    (secs > 0.0).then(|| Duration::from_secs_f64(secs.clamp(0.05, 3600.0)))
}

/// The latest measurements, and what the next sample needs of this one.
#[derive(Default)]
pub(super) struct Samples {
    /// By shim pid.
    usage: HashMap<u32, Usage>,
    daemon: Option<Usage>,
    /// CPU seconds of each tree (and of the daemon, under its own pid) at the last sample.
    cpu_before: HashMap<u32, (f64, Instant)>,
    /// By server.
    windows: HashMap<String, Window>,
    /// Samples in a row each shim's tree has been above its memory limit.
    over: HashMap<u32, u32>,
    /// When the last sample was taken (RFC 3339).
    sampled_at: String,
}

impl Samples {
    /// Measures the trees under `shims` and this process, at `now`.
    pub(super) fn sample_processes(&mut self, shims: &[u32], now: Instant) {
        let all = if shims.is_empty() {
            Vec::new()
        } else {
            procs::scan()
        };
        let mut cpu_now = HashMap::new();
        self.usage.clear();
        self.sampled_at =
            humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        for &shim in shims {
            let tree = procs::tree(&all, shim);
            if tree.is_empty() {
                continue;
            }
            let usage = self.usage_of(shim, &tree, now, &mut cpu_now);
            self.usage.insert(shim, usage);
        }
        if let Some(me) = procs::myself() {
            self.daemon = Some(self.usage_of(me.pid, &[me], now, &mut cpu_now));
        }
        self.cpu_before = cpu_now;
    }

    fn usage_of(
        &self,
        key: u32,
        tree: &[Proc],
        now: Instant,
        cpu_now: &mut HashMap<u32, (f64, Instant)>,
    ) -> Usage {
        let cpu_secs: f64 = tree.iter().map(|p| p.cpu_secs).sum();
        // The first sample of a tree has no earlier one: its average since it started
        // (a busy server shows busy at once, not 0 %).
        let age = tree.iter().map(|p| p.age_secs).fold(0.0, f64::max);
        let cpu_percent = match self.cpu_before.get(&key) {
            Some((before, at)) => procs::cpu_percent(*before, cpu_secs, (now - *at).as_secs_f64()),
            None => procs::cpu_percent(0.0, cpu_secs, age),
        };
        cpu_now.insert(key, (cpu_secs, now));
        Usage {
            cpu_percent,
            cpu_seconds: cpu_secs,
            sampled_at: Some(self.sampled_at.clone()),
            rss_bytes: tree.iter().map(|p| p.rss_bytes).sum(),
            open_fds: tree.iter().map(|p| procs::open_fds(p.pid)).sum(),
            processes: u32::try_from(tree.len()).unwrap_or(u32::MAX),
        }
    }

    /// Counts a sample of `shim` above (or not) its memory limit; the samples in a row
    /// it has been above, reset once it reaches [`OVER_LIMIT_SAMPLES`].
    pub(super) fn over_limit(&mut self, shim: u32, above: bool) -> u32 {
        self.over.retain(|pid, _| self.usage.contains_key(pid));
        if !above {
            self.over.remove(&shim);
            return 0;
        }
        let n = self.over.entry(shim).or_default();
        *n += 1;
        let reached = *n;
        if reached >= OVER_LIMIT_SAMPLES {
            self.over.remove(&shim);
        }
        reached
    }

    /// Keeps `traffic` of `server` for the window.
    pub(super) fn record_traffic(&mut self, server: &str, traffic: Traffic, now: Instant) {
        self.windows
            .entry(server.to_string())
            .or_default()
            .push(now, traffic);
    }

    /// Forgets servers no longer served.
    pub(super) fn retain_servers(&mut self, keep: impl Fn(&str) -> bool) {
        self.windows.retain(|name, _| keep(name));
    }

    pub(super) fn usage(&self, shim: u32) -> Option<Usage> {
        self.usage.get(&shim).cloned()
    }

    pub(super) fn daemon(&self) -> Option<Usage> {
        self.daemon.clone()
    }

    /// `current` with its percentiles over the last [`WINDOW`].
    pub(super) fn traffic(&self, server: &str, current: Traffic, now: Instant) -> Traffic {
        let since = now.checked_sub(WINDOW);
        let baseline = self.windows.get(server).and_then(|w| match since {
            Some(since) => w.baseline(since),
            None => w.0.front().map(|(_, t)| t),
        });
        with_percentiles(current, baseline)
    }
}

/// A port's recent snapshots, oldest first.
#[derive(Default)]
struct Window(VecDeque<(Instant, Traffic)>);

impl Window {
    fn push(&mut self, now: Instant, traffic: Traffic) {
        self.0.push_back((now, traffic));
        // Keep one snapshot at or before the window's start: the baseline.
        while self.0.len() > 1 && self.0.get(1).is_some_and(|(at, _)| now - *at >= WINDOW) {
            self.0.pop_front();
        }
        while self.0.len() > MAX_SNAPSHOTS {
            self.0.pop_front();
        }
    }

    /// The oldest snapshot taken at or after `since`, else the newest before it.
    fn baseline(&self, since: Instant) -> Option<&Traffic> {
        self.0
            .iter()
            .find(|(at, _)| *at >= since)
            .or_else(|| self.0.back())
            .map(|(_, t)| t)
    }
}

/// Per method and overall, p50/p95/p99 of the requests answered since `baseline`
/// (all of them without one).
pub(super) fn with_percentiles(mut current: Traffic, baseline: Option<&Traffic>) -> Traffic {
    let mut overall = vec![0u64; BUCKETS.len() + 1];
    for m in &mut current.methods {
        let before = baseline.and_then(|b| b.methods.iter().find(|x| x.method == m.method));
        let recent = recent_buckets(m, before);
        for (sum, n) in overall.iter_mut().zip(&recent) {
            *sum += n;
        }
        m.latency = percentiles(&recent);
    }
    current.latency = percentiles(&overall);
    current
}

fn recent_buckets(now: &MethodTraffic, before: Option<&MethodTraffic>) -> Vec<u64> {
    now.buckets
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let old = before.and_then(|b| b.buckets.get(i)).copied().unwrap_or(0);
            n.saturating_sub(old)
        })
        .collect()
}

fn percentiles(counts: &[u64]) -> Percentiles {
    Percentiles {
        p50_ms: percentile_ms(counts, 0.50),
        p95_ms: percentile_ms(counts, 0.95),
        p99_ms: percentile_ms(counts, 0.99),
    }
}

/// The `q` quantile of bucketed response times, in milliseconds, interpolated inside
/// its bucket (as Prometheus's `histogram_quantile`); `None` with no requests.
pub(super) fn percentile_ms(counts: &[u64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut seen = 0u64;
    for (i, &n) in counts.iter().enumerate() {
        if n == 0 {
            continue;
        }
        if (seen + n) as f64 >= rank {
            let lower = if i == 0 { 0.0 } else { BUCKETS[i - 1] };
            let Some(&upper) = BUCKETS.get(i) else {
                // Past every bound: the last bound is all that is known.
                return Some(lower * 1000.0);
            };
            let within = ((rank - seen as f64) / n as f64).clamp(0.0, 1.0);
            let secs = lower + (upper - lower) * within;
            return Some((secs * 1_000_000.0).round() / 1000.0);
        }
        seen += n;
    }
    BUCKETS.last().map(|b| b * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(usize, u64)]) -> Vec<u64> {
        let mut c = vec![0; BUCKETS.len() + 1];
        for &(i, n) in pairs {
            c[i] = n;
        }
        c
    }

    #[test]
    fn percentiles_interpolate_inside_their_bucket() {
        // 100 requests, all in (0.5 ms, 1 ms].
        let c = counts(&[(3, 100)]);
        assert_eq!(percentile_ms(&c, 0.5), Some(0.75));
        assert_eq!(percentile_ms(&c, 0.99), Some(0.995));
        // 90 fast ones and 10 past every bound.
        let c = counts(&[(0, 90), (BUCKETS.len(), 10)]);
        assert_eq!(percentile_ms(&c, 0.5), Some(0.056));
        assert_eq!(percentile_ms(&c, 0.99), Some(60_000.0));
        assert_eq!(percentile_ms(&counts(&[]), 0.5), None);
    }

    fn traffic(calls: u64, bucket: usize) -> Traffic {
        Traffic {
            methods: vec![MethodTraffic {
                method: "tools/call".into(),
                requests: calls,
                buckets: counts(&[(bucket, calls)]),
                ..MethodTraffic::default()
            }],
            ..Traffic::default()
        }
    }

    #[test]
    fn the_window_counts_only_what_came_after_its_baseline() {
        // 100 slow calls long ago, then 100 fast ones: the window sees the fast ones.
        let mut slow_then_fast = traffic(100, 10);
        slow_then_fast.methods[0].buckets[0] = 100;
        let t = with_percentiles(slow_then_fast.clone(), Some(&traffic(100, 10)));
        assert!(t.latency.p99_ms.unwrap() <= 0.1, "{t:?}");
        // Without a baseline, everything counts.
        let all = with_percentiles(slow_then_fast, None);
        assert!(all.latency.p99_ms.unwrap() > 100.0, "{all:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_window_keeps_one_snapshot_before_its_start_and_is_bounded() {
        let mut w = Window::default();
        let start = Instant::now();
        for i in 0..200u64 {
            w.push(start + Duration::from_secs(i), traffic(i, 0));
        }
        assert!(w.0.len() <= MAX_SNAPSHOTS);
        let now = start + Duration::from_secs(199);
        let base = w.baseline(now - WINDOW).unwrap();
        assert_eq!(base.methods[0].requests, 139);
    }
}
