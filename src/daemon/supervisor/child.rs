//! The seam between an instance's task and the processes it runs: a [`Launcher`]
//! starts one (in the daemon: the spawner thread, through the shim) and hands back a
//! [`Launched`] with its pipes, its exit and the signals it understands. Tests put a
//! scripted child behind the same trait, over in-memory pipes with a paused clock.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;

use crate::sys;

pub type Input = Box<dyn AsyncWrite + Send + Unpin>;
pub type Output = Box<dyn AsyncRead + Send + Unpin>;

/// What the task asks of a process (the shim turns each into the right thing for the
/// server's whole tree).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Stop gracefully: SIGTERM, then the stop timeout.
    Stop,
    /// Stop now: the shim skips the grace period (SIGUSR1).
    StopNow,
    /// The last resort: SIGKILL to the process group.
    KillGroup,
    /// A new stop timeout for the shim's own timing (SIGUSR2 with the value).
    StopTimeout(Duration),
}

/// Signals and facts about running processes.
pub trait Processes: Send + Sync {
    fn signal(&self, pid: u32, signal: Signal);
    /// The server's own pid: the shim's first child.
    fn server_pid(&self, shim: u32) -> Option<u32>;
    /// When the process started (to recognise it after a daemon restart).
    fn start_ticks(&self, pid: u32) -> Option<u64>;
}

pub type Launching<'a> = Pin<Box<dyn Future<Output = io::Result<Launched>> + Send + 'a>>;

/// Starts a process for an instance.
pub trait Launcher: Send + Sync {
    fn launch(&self, command: Command) -> Launching<'_>;
}

/// A started process.
pub struct Launched {
    pub pid: u32,
    pub stdin: Option<Input>,
    pub stdout: Option<Output>,
    pub stderr: Option<Output>,
    /// Resolves with the shell-style exit code once the process has been reaped.
    pub exited: oneshot::Receiver<i32>,
    pub processes: Arc<dyn Processes>,
}

impl Launched {
    pub fn signal(&self, signal: Signal) {
        self.processes.signal(self.pid, signal);
    }

    /// Stop (`Stop`, or `StopNow` when forced), `StopNow` after `timeout`, the group
    /// killed as a last resort. Returns the exit code.
    pub async fn stop(&mut self, force: bool, timeout: Duration) -> Option<i32> {
        let grace = if force { Duration::ZERO } else { timeout };
        self.signal(if force { Signal::StopNow } else { Signal::Stop });
        if let Ok(code) = tokio::time::timeout(grace, &mut self.exited).await {
            return code.ok();
        }
        self.signal(Signal::StopNow);
        if let Ok(code) = tokio::time::timeout(Duration::from_secs(5), &mut self.exited).await {
            return code.ok();
        }
        self.signal(Signal::KillGroup);
        tokio::time::timeout(Duration::from_secs(5), &mut self.exited)
            .await
            .ok()
            .and_then(Result::ok)
    }
}

/// The real processes of this machine.
pub struct Os;

impl Processes for Os {
    fn signal(&self, pid: u32, signal: Signal) {
        // A stopped (SIGSTOP) shim would hold a stop until it is continued.
        if matches!(signal, Signal::Stop | Signal::StopNow) {
            let _ = sys::kill(pid, sys::SIGCONT);
        }
        let _ = match signal {
            Signal::Stop => sys::kill(pid, sys::SIGTERM),
            Signal::StopNow => sys::kill(pid, sys::SIGUSR1),
            Signal::KillGroup => sys::kill_group(pid, sys::SIGKILL),
            Signal::StopTimeout(t) => {
                let ms = usize::try_from(t.as_millis()).unwrap_or(usize::MAX);
                sys::queue_signal(pid, sys::SIGUSR2, ms)
            }
        };
    }

    fn server_pid(&self, shim: u32) -> Option<u32> {
        sys::children_of(shim).first().copied()
    }

    fn start_ticks(&self, pid: u32) -> Option<u64> {
        sys::proc_stat(pid).map(|s| s.start_time)
    }
}
