//! What the instances' process trees use, read from `/proc` (through procfs): one scan
//! of every process per sample, then each tree found by parent links from its shim. The
//! shim is a subreaper, so a grandchild that detached (`setsid`, double fork) is still
//! in its tree.

use std::collections::HashMap;

/// One process at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Proc {
    pub pid: u32,
    pub ppid: u32,
    /// User and system CPU time since it started.
    pub cpu_secs: f64,
    pub rss_bytes: u64,
    /// How long it has run, in seconds (0 when unknown).
    pub age_secs: f64,
}

/// Seconds since boot, from `/proc/uptime` (0 when it cannot be read).
fn uptime() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Every process readable now (ones that end mid-scan are skipped).
pub(super) fn scan() -> Vec<Proc> {
    let ticks = procfs::ticks_per_second().max(1) as f64;
    let page = procfs::page_size();
    let up = uptime();
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    all.filter_map(Result::ok)
        .filter_map(|p| p.stat().ok())
        .filter_map(|s| {
            Some(Proc {
                pid: u32::try_from(s.pid).ok()?,
                ppid: u32::try_from(s.ppid).ok()?,
                cpu_secs: (s.utime + s.stime) as f64 / ticks,
                rss_bytes: s.rss.saturating_mul(page),
                age_secs: (up - s.starttime as f64 / ticks).max(0.0),
            })
        })
        .collect()
}

/// This process (the daemon) alone.
pub(super) fn myself() -> Option<Proc> {
    let ticks = procfs::ticks_per_second().max(1) as f64;
    let s = procfs::process::Process::myself().ok()?.stat().ok()?;
    Some(Proc {
        pid: u32::try_from(s.pid).ok()?,
        ppid: u32::try_from(s.ppid).ok()?,
        cpu_secs: (s.utime + s.stime) as f64 / ticks,
        rss_bytes: s.rss.saturating_mul(procfs::page_size()),
        age_secs: (uptime() - s.starttime as f64 / ticks).max(0.0),
    })
}

/// Open descriptors of `pid` (0 when it cannot be read).
pub(super) fn open_fds(pid: u32) -> u64 {
    i32::try_from(pid)
        .ok()
        .and_then(|pid| procfs::process::Process::new(pid).ok())
        .and_then(|p| p.fd_count().ok())
        .map_or(0, |n| n as u64)
}

/// `root` and every process below it, by parent links.
pub(super) fn tree(procs: &[Proc], root: u32) -> Vec<Proc> {
    let mut children: HashMap<u32, Vec<&Proc>> = HashMap::new();
    for p in procs {
        children.entry(p.ppid).or_default().push(p);
    }
    let mut found: Vec<Proc> = procs.iter().filter(|p| p.pid == root).copied().collect();
    let mut next = 0;
    // Bounded by the scan: each process is visited once (pids are unique in it).
    while next < found.len() && found.len() <= procs.len() {
        let pid = found[next].pid;
        if let Some(kids) = children.get(&pid) {
            found.extend(kids.iter().map(|p| **p).filter(|p| p.pid != root));
        }
        next += 1;
    }
    found
}

/// Percent of one core used between two readings of CPU time `elapsed` seconds apart.
pub(super) fn cpu_percent(before_secs: f64, now_secs: f64, elapsed: f64) -> f64 {
    if elapsed <= 0.0 {
        return 0.0;
    }
    ((now_secs - before_secs).max(0.0) / elapsed * 100.0 * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pid: u32, ppid: u32) -> Proc {
        Proc {
            pid,
            ppid,
            cpu_secs: 1.0,
            rss_bytes: 100,
            age_secs: 10.0,
        }
    }

    #[test]
    fn a_tree_is_its_root_and_every_descendant_and_nothing_else() {
        let procs = [
            p(1, 0),
            p(10, 1),
            p(11, 10),
            p(12, 11),
            p(13, 10),
            p(20, 1),
            p(21, 20),
        ];
        let mut pids: Vec<u32> = tree(&procs, 10).iter().map(|p| p.pid).collect();
        pids.sort_unstable();
        assert_eq!(pids, [10, 11, 12, 13]);
        assert!(tree(&procs, 99).is_empty());
    }

    #[test]
    fn cpu_percent_is_of_one_core() {
        assert_eq!(cpu_percent(1.0, 1.5, 1.0), 50.0);
        assert_eq!(cpu_percent(1.0, 3.0, 1.0), 200.0);
        assert_eq!(
            cpu_percent(2.0, 1.0, 1.0),
            0.0,
            "a restarted tree starts over"
        );
        assert_eq!(cpu_percent(1.0, 2.0, 0.0), 0.0);
    }

    #[test]
    fn this_process_is_found_in_a_scan() {
        let me = std::process::id();
        let procs = scan();
        let mine = tree(&procs, me);
        assert!(mine.iter().any(|p| p.pid == me));
        assert!(mine[0].rss_bytes > 0);
        assert!(open_fds(me) >= 3);
    }
}
