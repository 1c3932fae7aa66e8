//! Busy-polling for a moment before the daemon's runtime sleeps.
//!
//! A gateway call wakes the daemon twice: when the client's request arrives and when
//! the child answers. On the small VMs this is measured on, a thread that sleeps in
//! `epoll_wait` and is woken again costs more than the whole call's own work (the
//! switch, and the other core leaving its idle state), while the answer it waits for
//! usually comes within tens of microseconds. So before the runtime parks, it checks
//! its epoll instance without blocking, for at most a small budget: an event that
//! arrives meanwhile is taken with no sleep and no wake-up. An idle daemon parks after
//! one budget and then sleeps as before; one core gets no spinning at all, since the
//! process it waits for would need that core.
//!
//! The budget is [`DEFAULT_BUDGET`], or `MCPCTL_BUSY_POLL_US` microseconds (0 turns it
//! off).

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// Covers a fast child's answer and a client's next request in a loop, measured on
/// the gateway benchmark (30 us gained less; 200 us no more than this).
const DEFAULT_BUDGET: Duration = Duration::from_micros(100);

/// The environment variable that sets the budget in microseconds.
const BUDGET_VAR: &str = "MCPCTL_BUSY_POLL_US";

/// The budget for `setting` (the variable's value, if set) on a machine with `cores`.
fn budget(setting: Option<&str>, cores: usize) -> Duration {
    if cores < 2 {
        return Duration::ZERO;
    }
    match setting.map(|s| s.trim().parse::<u64>()) {
        Some(Ok(micros)) => Duration::from_micros(micros),
        _ => DEFAULT_BUDGET,
    }
}

/// The budget this process runs with.
pub(super) fn budget_from_env() -> Duration {
    // Online processors, not `available_parallelism`: that reads cgroup files, whose
    // code would stay resident in an idle daemon.
    budget(
        std::env::var(BUDGET_VAR).ok().as_deref(),
        crate::sys::online_cpus(),
    )
}

/// The epoll instance to watch, known only once the runtime that owns it is built.
#[derive(Clone)]
pub(super) struct BusyPoll {
    epoll: Arc<AtomicI32>,
    budget: Duration,
}

impl BusyPoll {
    pub(super) fn new(budget: Duration) -> Self {
        Self {
            epoll: Arc::new(AtomicI32::new(-1)),
            budget,
        }
    }

    /// Builds a runtime with `builder` and watches its epoll instance: the one that
    /// holds a socket registered with the new runtime (tokio does not name it). When
    /// it cannot be found nothing is watched, and parking is as usual.
    pub(super) fn build(
        &self,
        builder: &mut tokio::runtime::Builder,
    ) -> std::io::Result<tokio::runtime::Runtime> {
        if self.budget.is_zero() {
            return builder.build();
        }
        let poll = self.clone();
        let runtime = builder
            .on_thread_park(move || {
                poll.wait();
            })
            .build()?;
        let found = runtime.block_on(async {
            let (probe, _peer) = tokio::net::UnixStream::pair().ok()?;
            crate::sys::epoll_watching(probe.as_raw_fd())
        });
        match found {
            Some(epoll) => {
                self.epoll.store(epoll, Ordering::Relaxed);
                tracing::debug!("busy-polling up to {:?} before sleeping", self.budget);
            }
            None => tracing::debug!("no epoll instance found: no busy-polling"),
        }
        Ok(runtime)
    }

    /// Whether the runtime's epoll instance was found.
    #[cfg(test)]
    fn is_watching(&self) -> bool {
        self.epoll.load(Ordering::Relaxed) >= 0
    }

    /// Polls until an event is ready or the budget is spent; true when one is ready.
    pub(super) fn wait(&self) -> bool {
        let epoll = self.epoll.load(Ordering::Relaxed);
        if epoll < 0 {
            return false;
        }
        let start = Instant::now();
        loop {
            if crate::sys::readable_now(epoll) {
                return true;
            }
            if start.elapsed() >= self.budget {
                return false;
            }
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_off_on_one_core_and_settable_otherwise() {
        assert_eq!(budget(None, 1), Duration::ZERO);
        assert_eq!(budget(Some("500"), 1), Duration::ZERO);
        assert_eq!(budget(None, 2), DEFAULT_BUDGET);
        assert_eq!(budget(Some("0"), 8), Duration::ZERO);
        assert_eq!(budget(Some(" 250 "), 2), Duration::from_micros(250));
        assert_eq!(budget(Some("lots"), 2), DEFAULT_BUDGET);
        assert_eq!(budget(Some("-3"), 2), DEFAULT_BUDGET);
    }

    #[test]
    fn the_runtime_is_watched_and_an_event_ends_the_wait() {
        let poll = BusyPoll::new(Duration::from_millis(1));
        let runtime = poll
            .build(tokio::runtime::Builder::new_current_thread().enable_all())
            .unwrap();
        assert!(poll.is_watching());
        runtime.block_on(async {
            let (writer, mut reader) = tokio::net::UnixStream::pair().unwrap();
            // Registered with the runtime's epoll: waiting on it parks the runtime.
            let read = crate::gateway::owned::owned(async move {
                let mut byte = [0u8; 1];
                tokio::io::AsyncReadExt::read_exact(&mut reader, &mut byte)
                    .await
                    .map(|_| byte[0])
            });
            tokio::task::yield_now().await;
            assert!(!poll.wait(), "nothing is ready yet");
            // A write from outside the runtime makes its epoll readable.
            std::thread::spawn(move || {
                use std::io::Write;
                let mut std_writer = writer.into_std().unwrap();
                std_writer.set_nonblocking(false).unwrap();
                std_writer.write_all(b"k").unwrap();
                std_writer
            })
            .join()
            .unwrap();
            assert!(poll.wait());
            assert_eq!(read.await.unwrap().unwrap(), b'k');
        });
    }

    #[test]
    fn a_zero_budget_builds_an_ordinary_runtime() {
        let poll = BusyPoll::new(Duration::ZERO);
        let runtime = poll
            .build(tokio::runtime::Builder::new_current_thread().enable_all())
            .unwrap();
        assert!(!poll.is_watching());
        assert!(!poll.wait());
        runtime.block_on(async {});
    }
}
