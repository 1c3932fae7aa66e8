//! Tasks with an owner: every task of the gateway and the daemon is started here, so
//! none is detached. [`owned`] ends its task when the handle is dropped (the struct,
//! scope or set that holds it is its owner); a [`Scope`] holds the tasks of one owner
//! (the daemon's instances and their children's loops, a port, an endpoint): each ends
//! when it is done or when the scope ends, and its owner may wait for them, bounded. `tests/it/architecture.rs` refuses a bare
//! `tokio::spawn` anywhere else in `src/daemon` and `src/gateway`.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
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

/// The tasks of one owner (the daemon's instances, a port, an endpoint): each runs
/// until it is done or the scope ends. Clones are the same scope.
#[derive(Clone, Default)]
pub struct Scope {
    tracker: TaskTracker,
    end: CancellationToken,
}

impl Scope {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        drop(self.spawn_abortable(task));
    }

    /// [`Scope::spawn`], and what ends this one task early.
    pub fn spawn_abortable<F>(&self, task: F) -> tokio::task::AbortHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let end = self.end.clone();
        self.tracker
            .spawn(async move {
                tokio::select! {
                    () = end.cancelled() => {}
                    () = task => {}
                }
            })
            .abort_handle()
    }

    /// Ends every task now.
    pub fn end(&self) {
        self.end.cancel();
        self.tracker.close();
    }

    /// Ends every task once they are all done or `grace` has passed, whichever comes
    /// first (what a closing port still has to say upstream, say cancellations, gets
    /// that long).
    pub fn end_within(&self, grace: Duration) {
        let this = self.clone();
        this.tracker.close();
        // Bounded by `grace`: it owns nothing but the end of this scope.
        drop(tokio::spawn(async move {
            let _ = tokio::time::timeout(grace, this.tracker.wait()).await;
            this.end.cancel();
        }));
    }

    /// Waits for every task to be done, at most `within`, then ends those left;
    /// whether they were all done in time.
    pub async fn close(&self, within: Duration) -> bool {
        self.tracker.close();
        let done = tokio::time::timeout(within, self.tracker.wait())
            .await
            .is_ok();
        self.end.cancel();
        done
    }

    pub fn len(&self) -> usize {
        self.tracker.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tracker.is_empty()
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
    async fn a_scope_ends_its_tasks_at_once_or_after_a_grace() {
        let scope = Scope::new();
        scope.spawn(std::future::pending());
        scope.spawn(async { tokio::time::sleep(Duration::from_millis(10)).await });
        assert_eq!(scope.len(), 2);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(scope.len(), 1, "a task that is done leaves");
        scope.end_within(Duration::from_secs(2));
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(scope.is_empty(), "the stuck one ended with the grace");
        let now = Scope::new();
        now.spawn(std::future::pending());
        now.end();
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
        assert!(now.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_scope_is_waited_for_with_a_bound() {
        let scope = Scope::new();
        scope.spawn(async { tokio::time::sleep(Duration::from_secs(1)).await });
        assert_eq!(scope.len(), 1);
        assert!(scope.clone().close(Duration::from_secs(5)).await);
        let stuck = Scope::new();
        stuck.spawn(std::future::pending());
        assert!(!stuck.close(Duration::from_secs(5)).await, "bounded");
        tokio::task::yield_now().await;
        assert!(stuck.is_empty(), "what was left is ended");
    }
}
