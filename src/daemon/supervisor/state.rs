//! Where an instance is, as an enum that carries what only that state has: a pid only
//! while there is a process, an upstream only while it serves. The task writes it; the
//! pool, status and the reconciler read it through a watch.

use std::time::SystemTime;

use crate::gateway::Upstream;

pub use crate::api::Phase;

/// The process an instance runs (a remote server has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Process {
    /// The shim: what the daemon signals and records.
    pub shim: u32,
    /// `/proc` start time of the shim, to recognise it after a daemon restart.
    pub start_ticks: Option<u64>,
    /// The server's own pid (the shim's child), once it runs.
    pub server: Option<u32>,
}

#[derive(Debug, Clone)]
pub enum State {
    /// Being started: its process is known once forked.
    Starting {
        process: Option<Process>,
    },
    /// Ready, serving through `upstream` (stdio) or its inner port (HTTP).
    Running {
        process: Option<Process>,
        upstream: Option<Upstream>,
        since: SystemTime,
    },
    /// Running, but missing its health checks: no new sessions go to it.
    Unhealthy {
        process: Option<Process>,
        upstream: Option<Upstream>,
        since: SystemTime,
    },
    /// Scaled away: finishing the calls and sessions it has, taking no new ones.
    Draining {
        process: Option<Process>,
        upstream: Option<Upstream>,
        since: SystemTime,
    },
    /// Waiting to be restarted.
    Backoff,
    /// Started too often too fast: waits for a stop (the next apply retries it).
    CrashLoop,
    /// Ended, and its restart policy keeps it so.
    Exited,
    Stopped,
}

impl State {
    pub fn phase(&self) -> Phase {
        match self {
            State::Starting { .. } => Phase::Starting,
            State::Running { .. } => Phase::Running,
            State::Unhealthy { .. } => Phase::Unhealthy,
            State::Draining { .. } => Phase::Draining,
            State::Backoff => Phase::Backoff,
            State::CrashLoop => Phase::CrashLoop,
            State::Exited => Phase::Exited,
            State::Stopped => Phase::Stopped,
        }
    }

    pub fn process(&self) -> Option<&Process> {
        match self {
            State::Starting { process }
            | State::Running { process, .. }
            | State::Unhealthy { process, .. }
            | State::Draining { process, .. } => process.as_ref(),
            _ => None,
        }
    }

    pub fn upstream(&self) -> Option<&Upstream> {
        match self {
            State::Running { upstream, .. }
            | State::Unhealthy { upstream, .. }
            | State::Draining { upstream, .. } => upstream.as_ref(),
            _ => None,
        }
    }

    /// When it became ready.
    pub fn since(&self) -> Option<SystemTime> {
        match self {
            State::Running { since, .. }
            | State::Unhealthy { since, .. }
            | State::Draining { since, .. } => Some(*since),
            _ => None,
        }
    }

    /// Running or unhealthy -> draining; other states stay (a start in progress is
    /// stopped when the drain ends, having had nothing to drain).
    pub fn draining(self) -> Self {
        match self {
            State::Running {
                process,
                upstream,
                since,
            }
            | State::Unhealthy {
                process,
                upstream,
                since,
            } => State::Draining {
                process,
                upstream,
                since,
            },
            other => other,
        }
    }

    /// Running -> unhealthy (`healthy = false`) and back; other states stay.
    pub fn with_health(self, healthy: bool) -> Self {
        match (self, healthy) {
            (
                State::Running {
                    process,
                    upstream,
                    since,
                },
                false,
            ) => State::Unhealthy {
                process,
                upstream,
                since,
            },
            (
                State::Unhealthy {
                    process,
                    upstream,
                    since,
                },
                true,
            ) => State::Running {
                process,
                upstream,
                since,
            },
            (other, _) => other,
        }
    }
}

/// What the task publishes about an instance.
#[derive(Debug, Clone)]
pub struct View {
    pub state: State,
    pub restarts: u32,
    pub attempts: u32,
    pub last_exit: Option<String>,
    pub last_error: Option<String>,
    /// Why the daemon last restarted it on purpose (a resource limit, a failed health
    /// check): kept once it runs again, where `last_error` is cleared.
    pub last_restart: Option<String>,
    /// Where a server that speaks HTTP itself listens, behind the gateway.
    pub inner_port: Option<u16>,
}

impl View {
    pub fn new(inner_port: Option<u16>) -> Self {
        Self {
            state: State::Starting { process: None },
            restarts: 0,
            attempts: 0,
            last_exit: None,
            last_error: None,
            last_restart: None,
            inner_port,
        }
    }

    pub fn phase(&self) -> Phase {
        self.state.phase()
    }

    /// The shim's pid.
    pub fn pid(&self) -> Option<u32> {
        self.state.process().map(|p| p.shim)
    }

    pub fn server_pid(&self) -> Option<u32> {
        self.state.process().and_then(|p| p.server)
    }

    pub fn start_ticks(&self) -> Option<u64> {
        self.state.process().and_then(|p| p.start_ticks)
    }

    pub fn upstream(&self) -> Option<&Upstream> {
        self.state.upstream()
    }

    /// Whether the slot counts as present for the plan: running (healthy or not) or in
    /// its first start. A restart in progress (backoff, or the start after it) and a
    /// crash loop do not: a server that should run and does not is drift, which the
    /// next apply retries and reports.
    pub fn is_held(&self) -> bool {
        match self.phase() {
            Phase::Running | Phase::Unhealthy => true,
            Phase::Starting => self.restarts == 0,
            _ => false,
        }
    }

    /// Ready to take new work: running and healthy.
    pub fn serving(&self) -> Option<&Upstream> {
        match &self.state {
            State::Running { upstream, .. } => upstream.as_ref(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_state_with_a_process_has_a_pid_and_health_flips_running_only() {
        let process = Some(Process {
            shim: 7,
            start_ticks: Some(1),
            server: Some(8),
        });
        let since = SystemTime::UNIX_EPOCH;
        let running = State::Running {
            process,
            upstream: None,
            since,
        };
        assert_eq!(running.process().map(|p| p.server), Some(Some(8)));
        let sick = running.with_health(false);
        assert_eq!(sick.phase(), Phase::Unhealthy);
        assert_eq!(sick.since(), Some(since));
        assert_eq!(sick.clone().with_health(true).phase(), Phase::Running);
        assert_eq!(State::Backoff.with_health(true).phase(), Phase::Backoff);
        assert!(State::CrashLoop.process().is_none());
        let draining = sick.with_health(true).draining();
        assert_eq!(draining.phase(), Phase::Draining);
        assert_eq!(draining.process().map(|p| p.shim), Some(7));
        assert_eq!(
            draining.clone().with_health(true).phase(),
            Phase::Draining,
            "a passed ping does not bring a draining instance back"
        );
        assert_eq!(State::Backoff.draining().phase(), Phase::Backoff);
    }
}

#[cfg(test)]
mod held {
    use super::*;

    #[test]
    fn a_restart_in_progress_is_drift_and_a_first_start_is_not() {
        let mut view = View::new(None);
        assert!(view.is_held(), "the first start");
        view.restarts = 1;
        assert!(!view.is_held(), "the start after a failure");
        view.state = State::Backoff;
        assert!(!view.is_held());
        view.state = State::CrashLoop;
        assert!(!view.is_held());
        view.state = State::Running {
            process: None,
            upstream: None,
            since: SystemTime::UNIX_EPOCH,
        };
        assert!(view.is_held());
        view.state = view.state.clone().with_health(false);
        assert!(view.is_held(), "unhealthy still runs");
        view.state = view.state.clone().draining();
        assert!(!view.is_held(), "draining is on its way out");
        assert!(view.serving().is_none(), "and takes no new work");
    }
}
