//! The autoscaling rule, pure: how many instances the live load needs, and when the
//! count moves. Up at once to what the load needs (the median of the last few samples,
//! so one spike does not start a process); down one instance at a time, only after
//! the load has needed fewer for `scale_down_after` (so it never flaps); to zero only
//! after `idle_after` with no session and no call. Time is passed in.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::model::spec::Autoscale;

/// Samples the median looks at.
const RECENT: usize = 3;

/// The load on a server's instances at one sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Load {
    /// Client sessions pinned to its instances.
    pub sessions: usize,
    /// Of those, the ones in use or seen within `idle_after` (`None`: count them all):
    /// a session its client left without a DELETE does not keep a server awake.
    pub recent_sessions: Option<usize>,
    /// Calls in flight there.
    pub in_flight: usize,
    /// A request is waiting with no instance to take it (scaled to zero).
    pub waiting: bool,
    /// A request came (and maybe went) since the last reading.
    pub active: bool,
    /// Instances that run but miss their health checks: they take no new work, so
    /// each is made up for by another (within `max`).
    pub unhealthy: u32,
}

impl Load {
    fn idle(&self) -> bool {
        self.recent_sessions.unwrap_or(self.sessions) == 0
            && self.in_flight == 0
            && !self.waiting
            && !self.active
    }
}

/// A change of the count, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decision {
    pub from: u32,
    pub to: u32,
    pub reason: String,
}

/// The instances `load` needs within `bounds`: enough that none carries more than its
/// targets; at least one while there is any load at all.
pub(crate) fn needed(bounds: &Autoscale, load: Load) -> u32 {
    let per = |total: usize, target: Option<u32>| {
        target.map(|t| total.div_ceil(usize::try_from(t).unwrap_or(usize::MAX).max(1)))
    };
    let by_targets = per(load.sessions, bounds.target_sessions)
        .into_iter()
        .chain(per(load.in_flight, bounds.target_inflight))
        .max()
        .unwrap_or(0);
    let at_least = usize::from(!load.idle());
    let n = u32::try_from(by_targets.max(at_least)).unwrap_or(u32::MAX);
    n.saturating_add(load.unhealthy)
        .clamp(bounds.min, bounds.max)
}

/// One server's autoscaling state between samples.
#[derive(Debug, Default)]
pub(crate) struct Scaler {
    recent: VecDeque<u32>,
    /// Since when every sample has needed fewer instances than run.
    low_since: Option<Instant>,
    /// Since when there has been no session, no call and no waiting request.
    idle_since: Option<Instant>,
}

impl Scaler {
    /// Takes one sample (`current` instances serve, under `load`) and says whether the
    /// count should change.
    pub(crate) fn step(
        &mut self,
        bounds: &Autoscale,
        current: u32,
        load: Load,
        now: Instant,
    ) -> Option<Decision> {
        let need = needed(bounds, load);
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(need);
        self.idle_since = if load.idle() {
            Some(self.idle_since.unwrap_or(now))
        } else {
            None
        };
        self.low_since = if need < current {
            Some(self.low_since.unwrap_or(now))
        } else {
            None
        };
        let decide = |to: u32, reason: String| {
            Some(Decision {
                from: current,
                to,
                reason,
            })
        };
        if current < bounds.min {
            return decide(bounds.min, format!("below the minimum of {}", bounds.min));
        }
        if current > bounds.max {
            return decide(bounds.max, format!("above the maximum of {}", bounds.max));
        }
        if current == 0 && need > 0 {
            return decide(need, format!("{}: started on demand", describe(load)));
        }
        let median = self.median();
        if median > current {
            self.low_since = None;
            return decide(median, format!("{} need {median}", describe(load)));
        }
        if let Some(since) = self.idle_since
            && bounds.min == 0
            && current > 0
            && now.duration_since(since) >= bounds.idle_after
        {
            self.idle_since = Some(now);
            return decide(
                0,
                format!(
                    "no session and no call for {}: scaled to zero",
                    human(bounds.idle_after)
                ),
            );
        }
        let floor = bounds.min.max(1);
        if let Some(since) = self.low_since
            && current > floor
            && now.duration_since(since) >= bounds.scale_down_after
        {
            // The next step down waits a whole period again.
            self.low_since = Some(now);
            return decide(
                current - 1,
                format!(
                    "{} have needed {need} for {}: one instance fewer",
                    describe(load),
                    human(bounds.scale_down_after)
                ),
            );
        }
        None
    }

    /// The median of the recent needs (the upper one of an even count).
    fn median(&self) -> u32 {
        let mut sorted: Vec<u32> = self.recent.iter().copied().collect();
        sorted.sort_unstable();
        sorted.get(sorted.len() / 2).copied().unwrap_or(0)
    }
}

fn describe(load: Load) -> String {
    let mut out = format!(
        "{} session(s) and {} call(s) in flight",
        load.sessions, load.in_flight
    );
    if load.waiting {
        out.push_str(", a request waiting");
    }
    out
}

fn human(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(min: u32, max: u32) -> Autoscale {
        Autoscale {
            min,
            max,
            target_sessions: Some(2),
            target_inflight: None,
            scale_down_after: Duration::from_secs(300),
            idle_after: Duration::from_secs(600),
        }
    }

    fn sessions(n: usize) -> Load {
        Load {
            sessions: n,
            ..Load::default()
        }
    }

    #[test]
    fn sessions_left_idle_do_not_keep_a_server_awake_but_recent_ones_do() {
        let left = Load {
            sessions: 3,
            recent_sessions: Some(0),
            ..Load::default()
        };
        assert!(left.idle());
        let recent = Load {
            recent_sessions: Some(1),
            ..left
        };
        assert!(!recent.idle());
        // Without the count (a proxied server) every session counts.
        assert!(!sessions(1).idle());
    }

    /// Runs `steps` one second apart from `start`, applying every decision; returns the
    /// counts after each step.
    fn run(
        scaler: &mut Scaler,
        b: &Autoscale,
        mut current: u32,
        loads: &[Load],
        now: &mut Instant,
    ) -> Vec<u32> {
        loads
            .iter()
            .map(|load| {
                if let Some(d) = scaler.step(b, current, *load, *now) {
                    assert_eq!(d.from, current);
                    current = d.to;
                }
                *now += Duration::from_secs(1);
                current
            })
            .collect()
    }

    #[test]
    fn the_need_follows_each_target_and_stays_in_bounds() {
        let b = bounds(1, 3);
        assert_eq!(needed(&b, sessions(0)), 1, "min");
        assert_eq!(needed(&b, sessions(3)), 2);
        assert_eq!(needed(&b, sessions(6)), 3);
        assert_eq!(needed(&b, sessions(600)), 3, "max");
        let calls = Autoscale {
            target_inflight: Some(4),
            ..bounds(0, 8)
        };
        let load = Load {
            sessions: 1,
            in_flight: 20,
            ..Load::default()
        };
        assert_eq!(needed(&calls, load), 5, "the busier target wins");
        assert_eq!(needed(&calls, Load::default()), 0, "idle with min 0");
        let waiting = Load {
            waiting: true,
            ..Load::default()
        };
        assert_eq!(needed(&calls, waiting), 1);
        let sick = Load {
            sessions: 1,
            unhealthy: 1,
            ..Load::default()
        };
        assert_eq!(
            needed(&b, sick),
            2,
            "one more for the instance that takes no work"
        );
        let no_target = Autoscale {
            target_sessions: None,
            ..bounds(0, 3)
        };
        assert_eq!(
            needed(&no_target, sessions(50)),
            1,
            "no target: one while busy"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn six_sessions_grow_the_pool_at_once_and_one_spike_does_not() {
        let b = bounds(1, 3);
        let mut scaler = Scaler::default();
        let mut now = Instant::now();
        let counts = run(
            &mut scaler,
            &b,
            1,
            &[
                sessions(0),
                sessions(0),
                sessions(6),
                sessions(0),
                sessions(0),
            ],
            &mut now,
        );
        assert_eq!(counts, vec![1, 1, 1, 1, 1], "one sample of 6 is a spike");
        let counts = run(&mut scaler, &b, 1, &[sessions(6), sessions(6)], &mut now);
        assert_eq!(counts, vec![1, 3], "two in a row need 3: straight to 3");
    }

    #[tokio::test(start_paused = true)]
    async fn the_pool_shrinks_one_at_a_time_after_the_cooldown_and_never_flaps() {
        let b = Autoscale {
            scale_down_after: Duration::from_secs(10),
            ..bounds(1, 3)
        };
        let mut scaler = Scaler::default();
        let mut now = Instant::now();
        run(&mut scaler, &b, 3, &[sessions(6); 3], &mut now);
        // Load gone: nothing for 10 s, then 3 -> 2, another 10 s, then 2 -> 1.
        let counts = run(&mut scaler, &b, 3, &[sessions(0); 25], &mut now);
        assert_eq!(counts[..10], [3; 10]);
        assert_eq!(counts[10], 2);
        assert_eq!(counts[11..20], [2; 9]);
        assert_eq!(counts[20], 1);
        assert!(counts[21..].iter().all(|&c| c == 1), "never below min");
        // Load that comes and goes within the cooldown never shrinks the pool.
        let mut scaler = Scaler::default();
        let wavy: Vec<Load> = (0..60)
            .map(|i| sessions(if i % 8 < 4 { 6 } else { 0 }))
            .collect();
        let counts = run(&mut scaler, &b, 3, &wavy, &mut now);
        assert!(counts.iter().all(|&c| c == 3), "{counts:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn min_zero_scales_to_zero_after_idle_and_a_waiting_request_starts_one_at_once() {
        let b = Autoscale {
            idle_after: Duration::from_secs(5),
            ..bounds(0, 3)
        };
        let mut scaler = Scaler::default();
        let mut now = Instant::now();
        let counts = run(&mut scaler, &b, 1, &[sessions(0); 7], &mut now);
        assert_eq!(counts, vec![1, 1, 1, 1, 1, 0, 0]);
        let waiting = Load {
            waiting: true,
            ..Load::default()
        };
        let counts = run(&mut scaler, &b, 0, &[waiting, sessions(1)], &mut now);
        assert_eq!(counts, vec![1, 1], "one cold start, at the first sample");
        // Requests that come and go between readings keep it too (none seen in flight).
        let mut scaler = Scaler::default();
        let brief = Load {
            active: true,
            ..Load::default()
        };
        let steady: Vec<Load> = (0..20)
            .map(|i| if i % 3 == 0 { brief } else { Load::default() })
            .collect();
        let counts = run(&mut scaler, &b, 1, &steady, &mut now);
        assert!(counts.iter().all(|&c| c == 1), "{counts:?}");
        // A session keeps it: busy time never counts towards idle.
        let counts = run(&mut scaler, &b, 1, &[sessions(1); 10], &mut now);
        assert!(counts.iter().all(|&c| c == 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_count_outside_new_bounds_moves_to_the_bound_at_once() {
        let mut scaler = Scaler::default();
        let now = Instant::now();
        let d = scaler.step(&bounds(2, 4), 1, sessions(0), now);
        assert_eq!(d.map(|d| d.to), Some(2));
        let d = scaler.step(&bounds(1, 2), 4, sessions(0), now);
        assert_eq!(d.map(|d| d.to), Some(2));
    }
}
