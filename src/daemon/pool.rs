//! What the gateway leases from a server: its instances' views (the least loaded
//! running one for a new session or request), a starting instance to wait for, and
//! `sharing = "per-session"` instances started for one session and stopped with it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::gateway::{self, Instances, Upstream};

use super::supervisor::{self, Handle, Phase};

/// Views of running instances, by instance number.
pub(super) type Views =
    std::sync::Mutex<BTreeMap<u32, tokio::sync::watch::Receiver<supervisor::View>>>;

/// The gateway's view of a server's instances.
#[derive(Default)]
pub(super) struct Pool {
    pub(super) views: std::sync::Mutex<Vec<tokio::sync::watch::Receiver<supervisor::View>>>,
    /// Bumped whenever `views` is replaced, for requests waiting for an instance.
    pub(super) generation: tokio::sync::watch::Sender<u64>,
    /// Scaled to zero (`autoscale.min = 0`): poked when a request finds no instance.
    pub(super) wake: Option<Arc<tokio::sync::Notify>>,
    /// Requests waiting for an instance to be started for them.
    pub(super) waiting: AtomicUsize,
    /// `sharing = "per-session"`: starts a session's own instance (numbered).
    pub(super) per_session: Option<Box<dyn Fn() -> (u32, Handle) + Send + Sync>>,
    /// The sessions' own instances while they live, for `status`.
    pub(super) session_views: Arc<Views>,
    pub(super) stop_timeout: Duration,
    /// How long a client arriving during a start waits for an instance.
    pub(super) start_timeout: Duration,
}

/// A session's own instance; stopped when the session ends.
pub(super) struct SessionInstance {
    pub(super) handle: Handle,
    pub(super) stop_timeout: Duration,
    pub(super) index: u32,
    pub(super) listed: Arc<Views>,
}

impl Drop for SessionInstance {
    fn drop(&mut self) {
        if let Ok(mut listed) = self.listed.lock() {
            listed.remove(&self.index);
        }
        let (handle, timeout) = (self.handle.clone(), self.stop_timeout);
        // Without a runtime the daemon is exiting, and the shim's death signal stops it.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { handle.stop(false, timeout).await });
        }
    }
}

impl Pool {
    pub(super) fn set(&self, handles: &[Handle]) {
        if let Ok(mut views) = self.views.lock() {
            *views = handles.iter().map(|h| h.view.clone()).collect();
        }
        self.generation.send_modify(|g| *g += 1);
    }

    /// Whether a request waits for an instance (the autoscaler starts one at once).
    pub(super) fn waiting(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) > 0
    }

    /// With no instance at all: asks the autoscaler for one and waits until the pool
    /// changes (or `deadline`). False when nothing can start one.
    async fn wait_for_instances(&self, deadline: tokio::time::Instant) -> bool {
        let Some(wake) = &self.wake else {
            return false;
        };
        let mut changes = self.generation.subscribe();
        if self.views.lock().is_ok_and(|v| !v.is_empty()) {
            return true;
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _counted = scopeguard_dec(&self.waiting);
        wake.notify_one();
        tokio::time::timeout_at(deadline, changes.changed())
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

impl Pool {
    /// The running instance with the least `load`; the lock is held while `then`
    /// runs, so concurrent picks see each other's counts.
    pub(super) fn least<T>(
        &self,
        load: impl Fn(&Upstream) -> usize,
        then: impl FnOnce(Upstream) -> T,
    ) -> Option<T> {
        let views = self.views.lock().ok()?;
        // An instance with calls in flight that has written nothing for a while (stopped
        // with SIGSTOP, wedged, or on a long call) gets new work only when every
        // instance is such: a missed health check takes longer to tell.
        let upstream = views
            .iter()
            .filter_map(|v| v.borrow().serving().cloned())
            .min_by_key(|u| (u.seems_stuck(QUIET), load(u)))?;
        Some(then(upstream))
    }
}

/// How long an instance with calls in flight may write nothing before new work
/// prefers another.
const QUIET: std::time::Duration = std::time::Duration::from_secs(2);

/// Takes one back from `count` when dropped (a waiter that gave up or was served).
fn scopeguard_dec(count: &AtomicUsize) -> impl Drop + '_ {
    struct Dec<'a>(&'a AtomicUsize);
    impl Drop for Dec<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::Relaxed);
        }
    }
    Dec(count)
}

impl gateway::HttpPool for Pool {
    fn ports(&self) -> Vec<u16> {
        self.views
            .lock()
            .map(|views| {
                views
                    .iter()
                    .filter_map(|v| {
                        let v = v.borrow();
                        v.inner_port.filter(|_| v.phase() == Phase::Running)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Instances for Pool {
    fn pick(&self) -> Option<Upstream> {
        self.least(Upstream::load, |u| u)
    }

    fn ready(&self) -> bool {
        // Scaled to zero, a request starts an instance: ready as well.
        let idle = self.wake.is_some() && self.views.lock().is_ok_and(|v| v.is_empty());
        idle || self.per_session.is_some() || self.pick().is_some()
    }

    fn pick_request(&self) -> Option<(Upstream, gateway::mux::Pin)> {
        self.least(Upstream::in_flight, |u| {
            let claim = u.claim();
            (u, claim)
        })
    }

    fn until_ready(&self) -> gateway::Waiting<'_> {
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + self.start_timeout;
            loop {
                let Ok(mut starting) = self.views.lock().map(|views| views.clone()) else {
                    return;
                };
                if starting.is_empty() {
                    if self.wait_for_instances(deadline).await {
                        continue;
                    }
                    return;
                }
                // Marked seen, so `changed` below waits for the next change.
                let phases: Vec<Phase> = starting
                    .iter_mut()
                    .map(|v| v.borrow_and_update().phase())
                    .collect();
                let ready = phases.contains(&Phase::Running);
                let mut phases = phases.into_iter();
                // One waiting to be restarted (killed while starting, say) is still
                // coming: its next start is waited for too, within the same deadline.
                starting
                    .retain(|_| matches!(phases.next(), Some(Phase::Starting | Phase::Backoff)));
                if ready || starting.is_empty() {
                    return;
                }
                let changed = starting.iter_mut().map(|v| Box::pin(v.changed()));
                let any = futures_util::future::select_all(changed);
                if tokio::time::timeout_at(deadline, any).await.is_err() {
                    return;
                }
            }
        })
    }

    fn open(&self) -> gateway::Opening<'_> {
        Box::pin(async move {
            let Some(start) = &self.per_session else {
                if self.pick().is_none() {
                    self.until_ready().await;
                }
                return self.pick().map(|u| (u, None));
            };
            let (index, handle) = start();
            if let Ok(mut listed) = self.session_views.lock() {
                listed.insert(index, handle.view.clone());
            }
            let lease = SessionInstance {
                handle,
                stop_timeout: self.stop_timeout,
                index,
                listed: Arc::clone(&self.session_views),
            };
            let settled = lease.handle.settled().await;
            let upstream = settled.serving().cloned()?;
            Some((upstream, Some(Box::new(lease) as gateway::Lease)))
        })
    }
}
