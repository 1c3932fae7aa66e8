//! Tasks with an owner: every task of the gateway and the daemon is started here, so
//! none is detached. [`owned`] ends its task when the handle is dropped (the struct,
//! scope or set that holds it is its owner); [`Tracked`] is a set whose tasks finish by
//! themselves (an instance stopping, a pipe's reader reaching its end) and that its
//! owner waits for, bounded, when it closes. `tests/it/architecture.rs` refuses a bare
//! `tokio::spawn` anywhere else in `src/daemon` and `src/gateway`.

use std::future::Future;
use std::time::Duration;

pub use tokio_util::task::AbortOnDropHandle as Owned;
use tokio_util::task::TaskTracker;

/// Runs `task`; dropping the handle ends it.
pub fn owned<F>(task: F) -> Owned<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    Owned::new(tokio::spawn(task))
}

/// Tasks that end by themselves, waited for by their owner when it closes.
#[derive(Clone, Default)]
pub struct Tracked(TaskTracker);

impl Tracked {
    pub fn new() -> Self {
        Self(TaskTracker::new())
    }

    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        // Its handle is not needed: the tracker knows when it ends.
        drop(self.0.spawn(task));
    }

    /// Takes no new task and waits for the running ones, at most `within`; whether
    /// they all ended.
    pub async fn close(&self, within: Duration) -> bool {
        self.0.close();
        tokio::time::timeout(within, self.0.wait()).await.is_ok()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dropping_the_handle_ends_the_task() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = owned(async move {
            let _tx = tx;
            std::future::pending::<()>().await;
        });
        drop(handle);
        // The sender is dropped with the task: the receiver sees it closed.
        assert!(rx.await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_tracked_set_is_waited_for_with_a_bound() {
        let tracked = Tracked::new();
        tracked.spawn(async { tokio::time::sleep(Duration::from_secs(1)).await });
        assert_eq!(tracked.len(), 1);
        assert!(tracked.clone().close(Duration::from_secs(5)).await);
        let stuck = Tracked::new();
        stuck.spawn(std::future::pending());
        assert!(!stuck.close(Duration::from_secs(5)).await, "bounded");
    }
}
