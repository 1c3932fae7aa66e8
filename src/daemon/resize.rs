//! Changing a server's instance count in place (an apply's scale, `server scale`, the
//! autoscaler): the pool gets its new instances at once and loses those scaled away at
//! once (marked draining); then, outside any lock, those finish their calls and
//! sessions (up to `drain_timeout`) and stop, and the new ones are waited for.

use std::time::Duration;

use tokio::sync::mpsc;

use crate::api::ApplyOptions;
use crate::model::ServerSpec;
use crate::secrets::unlock::Unlocked as Secrets;

use super::error::ServerError;
use super::reconciler::{stop_all, stop_timeout};
use super::supervisor::{self, Handle};
use super::*;

/// What a resize leaves to do once the pool is changed.
pub(super) struct Resized {
    name: String,
    /// Out of the pool, draining.
    scaled_away: Vec<Handle>,
    /// Dead slots replaced by new instances: stopped at once.
    retired: Vec<Handle>,
    /// The new instances, to wait for.
    started: Vec<(u32, tokio::sync::watch::Receiver<supervisor::View>)>,
    before: usize,
    after: u32,
    drain_timeout: Duration,
    stop_timeout: Duration,
    force: bool,
}

impl Daemon {
    /// Scale to `spec.instances` (dead slots are replaced first) and adopt in-place fields.
    pub(super) async fn resize(
        &self,
        name: &str,
        spec: &ServerSpec,
        options: &ApplyOptions,
        progress: &mpsc::Sender<String>,
        secrets: &Secrets,
    ) -> Result<(), ServerError> {
        match self.resize_pool(name, spec, options, secrets, true).await? {
            Some(resized) => self.finish_resize(resized, progress, secrets).await,
            None => Ok(()),
        }
    }

    /// The pool's part of a resize, quick: instances started, those scaled away out
    /// of the pool and marked draining. With `replace_dead`, slots whose instance is
    /// not running are replaced (an apply converging); without, each stays with its
    /// restart policy (the autoscaler only adds and removes slots).
    pub(super) async fn resize_pool(
        &self,
        name: &str,
        spec: &ServerSpec,
        options: &ApplyOptions,
        secrets: &Secrets,
        replace_dead: bool,
    ) -> Result<Option<Resized>, ServerError> {
        let mut servers = self.servers.lock().await;
        let Some(rt) = servers.get_mut(name) else {
            return Ok(None);
        };
        let counts = |h: &Handle| !replace_dead || h.view.borrow().is_held();
        let held = rt.instances.iter().filter(|h| counts(h)).count();
        let want = usize::try_from(spec.instances).unwrap_or(usize::MAX);
        // Ports for the instances to add, first, so that a failure changes nothing.
        let mut ports = (held..want)
            .map(|_| inner_port::for_spec(spec))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| ServerError::InnerPort {
                server: name.to_string(),
                source,
            })?
            .into_iter();
        let (mut keep, retired): (Vec<Handle>, Vec<Handle>) = std::mem::take(&mut rt.instances)
            .into_iter()
            .partition(counts);
        // The least busy go (the newest of equals): the fewest calls and sessions wait.
        keep.sort_by_key(|h| std::cmp::Reverse(work_of(h)));
        let scaled_away = keep.split_off(want.min(keep.len()));
        keep.sort_by_key(|h| h.index);
        for h in &scaled_away {
            h.drain().await;
        }
        for h in &keep {
            h.update(spec).await;
        }
        let mut started = Vec::new();
        while keep.len() < want {
            let index = self.next_id(name);
            let h = self.start_instance(spec, index, secrets, ports.next().flatten());
            started.push((h.index, h.view.clone()));
            keep.push(h);
        }
        rt.instances = keep;
        rt.pool.set(&rt.instances);
        if let Some(gateway) = &rt.gateway {
            gateway.set_max_sessions(spec.max_sessions);
            gateway.set_session_idle(spec.session_idle);
            if spec.tools != rt.spec.tools {
                gateway.set_tool_policy(spec.tools.rules());
                // Open sessions hear it once: their list is not what it was.
                for h in &rt.instances {
                    if let Some(upstream) = h.view.borrow().upstream() {
                        upstream.publish(
                            serde_json::json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}),
                        );
                    }
                }
            }
        }
        rt.spec = spec.clone();
        rt.draining.extend(scaled_away.iter().cloned());
        Ok(Some(Resized {
            name: name.to_string(),
            scaled_away,
            retired,
            started,
            before: held,
            after: spec.instances,
            drain_timeout: spec.drain_timeout,
            stop_timeout: stop_timeout(spec, options),
            force: options.force,
        }))
    }

    /// The slow part of a resize: drain and stop what left the pool, wait for what
    /// joined it. Holds no lock.
    pub(super) async fn finish_resize(
        &self,
        r: Resized,
        progress: &mpsc::Sender<String>,
        secrets: &Secrets,
    ) -> Result<(), ServerError> {
        let name = &r.name;
        if !r.scaled_away.is_empty() && !r.force {
            let _ = progress
                .send(format!(
                    "{name}: draining {} instance(s): calls and sessions finish first (up to {})",
                    r.scaled_away.len(),
                    humantime::format_duration(r.drain_timeout)
                ))
                .await;
            // Scaling to zero was decided with no session in use or seen within
            // `idle_after`: sessions left without a DELETE do not hold the drain (their
            // clients get 404 and initialize again); calls in flight still do.
            drain(&r.scaled_away, r.drain_timeout, r.after > 0, &self.stopping).await;
        }
        let stopping = r.retired.iter().chain(&r.scaled_away);
        stop_all(stopping.map(|h| (h.clone(), r.stop_timeout)), r.force).await;
        if let Some(rt) = self.servers.lock().await.get_mut(name) {
            rt.draining
                .retain(|d| !r.scaled_away.iter().any(|s| s.index == d.index));
        }
        let _ = progress
            .send(format!(
                "{name}: {} instance(s) (was {})",
                r.after, r.before
            ))
            .await;
        self.wait_ready(name, r.started, progress, secrets).await
    }
}

/// Calls in flight and sessions pinned to an instance: what scaling it away interrupts.
pub(super) fn work_of(h: &Handle) -> usize {
    h.view
        .borrow()
        .upstream()
        .map_or(0, |u| u.busy() + u.load() + u.in_flight())
}

/// Calls in flight at an instance.
fn calls_of(h: &Handle) -> usize {
    h.view
        .borrow()
        .upstream()
        .map_or(0, |u| u.busy() + u.in_flight())
}

/// Waits until none of `instances` has a call in flight or (with `sessions`) a session
/// pinned to it, or `limit` has passed. (Their counters are atomics the gateway moves:
/// polled.)
async fn drain(
    instances: &[Handle],
    limit: Duration,
    sessions: bool,
    stopping: &std::sync::atomic::AtomicBool,
) {
    let deadline = tokio::time::Instant::now() + limit;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tick.tick().await;
        // The daemon is stopping: no drain outlasts it.
        if stopping.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let idle = instances.iter().all(|h| {
            if sessions {
                work_of(h) == 0
            } else {
                calls_of(h) == 0
            }
        });
        if idle || tokio::time::Instant::now() >= deadline {
            return;
        }
    }
}
