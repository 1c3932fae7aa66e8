//! Pure restart decisions: policy, exponential backoff and crash-loop detection.
//! Time comes in as `now`, so the rules are tested without sleeping.
//!
//! Crash-loop detection counts starts in a sliding window, as systemd's
//! StartLimitBurst/StartLimitIntervalSec do: rate is the only reliable sign of a
//! loop, since each single failure may look reasonable.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::model::spec::RestartPolicy;

/// More than this many starts within [`START_WINDOW`] is a crash loop.
pub const START_BURST: usize = 5;
pub const START_WINDOW: Duration = Duration::from_secs(10);
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A process that ran this long is healthy again: its backoff starts over.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Restart {
        after: Duration,
    },
    CrashLoop,
    /// The policy does not restart this exit.
    Stay,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Exited with this code (128 + signal when killed).
    Exit(i32),
    /// Never became ready (probe failed or timed out).
    NotReady,
    /// Stopped speaking the protocol while it ran (its stdout closed) and was killed.
    Lost,
}

#[derive(Debug, Default)]
pub struct Tracker {
    starts: VecDeque<Instant>,
    failures_in_row: u32,
}

impl Tracker {
    pub fn record_start(&mut self, now: Instant) {
        self.starts.push_back(now);
    }

    pub fn on_exit(
        &mut self,
        policy: RestartPolicy,
        ending: Ending,
        uptime: Duration,
        now: Instant,
    ) -> Decision {
        let failed = ending != Ending::Exit(0);
        let restart = match policy {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => failed,
            RestartPolicy::Never => false,
        };
        if !restart {
            return Decision::Stay;
        }
        while self
            .starts
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) > START_WINDOW)
        {
            self.starts.pop_front();
        }
        if self.starts.len() >= START_BURST {
            return Decision::CrashLoop;
        }
        if uptime >= HEALTHY_AFTER {
            self.failures_in_row = 0;
        }
        let factor = 2u32.saturating_pow(self.failures_in_row.min(16));
        self.failures_in_row += 1;
        Decision::Restart {
            after: BACKOFF_BASE.saturating_mul(factor).min(BACKOFF_MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn policies() {
        let now = Instant::now();
        let mut t = Tracker::default();
        assert_eq!(
            t.on_exit(RestartPolicy::Never, Ending::Exit(1), SEC, now),
            Decision::Stay
        );
        assert_eq!(
            t.on_exit(RestartPolicy::OnFailure, Ending::Exit(0), SEC, now),
            Decision::Stay
        );
        assert!(matches!(
            t.on_exit(RestartPolicy::OnFailure, Ending::Exit(137), SEC, now),
            Decision::Restart { .. }
        ));
        assert!(matches!(
            t.on_exit(RestartPolicy::OnFailure, Ending::NotReady, SEC, now),
            Decision::Restart { .. }
        ));
        assert!(matches!(
            t.on_exit(RestartPolicy::OnFailure, Ending::Lost, SEC, now),
            Decision::Restart { .. }
        ));
        assert!(matches!(
            t.on_exit(RestartPolicy::Always, Ending::Exit(0), SEC, now),
            Decision::Restart { .. }
        ));
    }

    #[test]
    fn backoff_doubles_then_caps_and_resets_after_a_healthy_run() {
        let mut now = Instant::now();
        let mut t = Tracker::default();
        let mut delays = Vec::new();
        for _ in 0..10 {
            // Spread the starts out so the crash-loop window never fills.
            now += START_WINDOW * 2;
            t.record_start(now);
            match t.on_exit(RestartPolicy::Always, Ending::Exit(1), SEC, now) {
                Decision::Restart { after } => delays.push(after.as_millis()),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            delays,
            vec![100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000, 10000]
        );
        now += START_WINDOW * 2;
        t.record_start(now);
        assert_eq!(
            t.on_exit(RestartPolicy::Always, Ending::Exit(1), HEALTHY_AFTER, now),
            Decision::Restart {
                after: BACKOFF_BASE
            }
        );
    }

    #[test]
    fn too_many_starts_in_the_window_is_a_crash_loop() {
        let start = Instant::now();
        let mut t = Tracker::default();
        for i in 0..START_BURST {
            let now = start + SEC * u32::try_from(i).unwrap();
            t.record_start(now);
            let d = t.on_exit(RestartPolicy::Always, Ending::Exit(1), Duration::ZERO, now);
            if i + 1 < START_BURST {
                assert!(matches!(d, Decision::Restart { .. }), "start {i}: {d:?}");
            } else {
                assert_eq!(d, Decision::CrashLoop);
            }
        }
        // Old starts leave the window.
        let mut t = Tracker::default();
        for i in 0..START_BURST {
            t.record_start(start + START_WINDOW * u32::try_from(i).unwrap() * 2);
        }
        let now = start + START_WINDOW * 10;
        assert!(matches!(
            t.on_exit(RestartPolicy::Always, Ending::Exit(1), SEC, now),
            Decision::Restart { .. }
        ));
    }
}
