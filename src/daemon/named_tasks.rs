//! Tasks that carry a name: when one panics, its owner still knows which it was (a
//! bare `JoinError` does not say), so a panicked resize clears its server's busy mark
//! and a panicked apply step is reported as that server's failure, not as a success.

use std::collections::HashMap;
use std::future::Future;

use tokio::task::{Id, JoinSet};

/// Why a task gave no output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum TaskEnded {
    #[error("was cancelled")]
    Cancelled,
    #[error("panicked: {0}")]
    Panicked(String),
}

pub(super) struct NamedTasks<T> {
    set: JoinSet<T>,
    names: HashMap<Id, String>,
}

impl<T: Send + 'static> NamedTasks<T> {
    pub(super) fn new() -> Self {
        Self {
            set: JoinSet::new(),
            names: HashMap::new(),
        }
    }

    pub(super) fn spawn(&mut self, name: String, task: impl Future<Output = T> + Send + 'static) {
        let handle = self.set.spawn(task);
        self.names.insert(handle.id(), name);
    }

    /// The next task to end: its name, and its output or why it did not give one
    /// (panicked, cancelled). `None` when none is left.
    pub(super) async fn join_next(&mut self) -> Option<(String, Result<T, TaskEnded>)> {
        let done = self.set.join_next_with_id().await?;
        let (id, result) = match done {
            Ok((id, value)) => (id, Ok(value)),
            Err(e) => (e.id(), Err(describe(e))),
        };
        let name = self.names.remove(&id).unwrap_or_default();
        Some((name, result))
    }
}

fn describe(e: tokio::task::JoinError) -> TaskEnded {
    if e.is_cancelled() {
        return TaskEnded::Cancelled;
    }
    match e.try_into_panic() {
        Ok(payload) => TaskEnded::Panicked(
            payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into()),
        ),
        Err(_) => TaskEnded::Cancelled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_panics_is_still_known_by_its_name() {
        let mut tasks = NamedTasks::new();
        tasks.spawn("ok".into(), async { 1 });
        tasks.spawn("boom".into(), async { panic!("resize went wrong") });
        let mut seen = Vec::new();
        while let Some((name, result)) = tasks.join_next().await {
            seen.push((name, result));
        }
        seen.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(seen[0].0, "boom");
        assert!(
            seen[0]
                .1
                .as_ref()
                .is_err_and(|e| e.to_string().contains("resize went wrong")),
            "{:?}",
            seen[0].1
        );
        assert_eq!(seen[1], ("ok".to_string(), Ok(1)));
    }
}
