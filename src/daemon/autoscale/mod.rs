//! Autoscaling: every second (`MCPCTL_AUTOSCALE_SECS`), and at once when a request
//! finds a server scaled to zero, each autoscaled server's load is read off its
//! instances, the pure `rule` decides, and the decision is carried out by the same
//! resize an apply uses (draining first when it scales down). Each decision is logged
//! and kept for `status`. Skipped while an apply runs: the next tick catches up.

pub(super) mod rule;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use std::collections::HashSet;

use crate::api::{ApplyOptions, ScaleDecision};
use crate::model::ServerSpec;
use crate::secrets::unlock::Unlocked as Secrets;

use super::Daemon;
use super::resize::Resized;
use rule::Load;

pub(super) fn period() -> Duration {
    let secs = std::env::var("MCPCTL_AUTOSCALE_SECS")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(1.0);
    Duration::from_secs_f64(secs.clamp(0.05, 3600.0))
}

/// Steps the autoscaler every `every`, and whenever a request waits for an instance.
/// A resize's slow part (drains, stops, starts) runs here as a task of its own, so that
/// no server waits for another's; a server with one running is not stepped meanwhile.
pub(super) async fn autoscale_every(daemon: Arc<Daemon>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let wake = Arc::clone(&daemon.autoscale_wake);
    // Named, so a resize that panics still clears its server's busy mark.
    let mut finishing = super::named_tasks::NamedTasks::<()>::new();
    let mut busy: HashSet<String> = HashSet::new();
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = wake.notified() => {}
            Some((name, done)) = finishing.join_next() => {
                if let Err(why) = done {
                    tracing::warn!("{name}: autoscale: the resize {why}");
                }
                busy.remove(&name);
                continue;
            }
        }
        for (name, resized, secrets) in daemon.autoscale(&busy).await {
            busy.insert(name.clone());
            let daemon = Arc::clone(&daemon);
            finishing.spawn(name.clone(), async move {
                let (progress, log) = super::run::progress_to_log();
                if let Err(e) = daemon.finish_resize(resized, &progress, &secrets).await {
                    tracing::warn!("{name}: autoscale: {e}");
                }
                drop(progress);
                let _ = log.await;
                daemon.persist().await;
            });
        }
    }
}

/// The load on a server's instances (those draining included: their sessions count
/// until they end), and whether requests came since the last reading.
fn load_of(rt: &mut super::ServerRuntime) -> Load {
    let mut load = Load {
        waiting: rt.pool.waiting(),
        ..Load::default()
    };
    for h in rt.instances.iter().chain(&rt.draining) {
        let view = h.view.borrow();
        if view.phase() == super::supervisor::Phase::Unhealthy {
            load.unhealthy += 1;
        }
        if let Some(u) = view.upstream() {
            load.sessions += u.load();
            load.in_flight += u.busy().max(u.in_flight());
        }
    }
    if let Some(gateway) = &rt.gateway {
        if let Some(bounds) = rt.spec.autoscale {
            load.recent_sessions = gateway.recent_sessions(bounds.idle_after);
        }
        let (begun, answering) = gateway.meter.activity();
        load.active = begun != rt.requests_seen || answering > 0;
        rt.requests_seen = begun;
    }
    load
}

impl Daemon {
    /// One autoscaling step over every autoscaled server not in `busy`: decides, and
    /// changes the pools (quick, under the apply lock); returns what is left to finish.
    pub(super) async fn autoscale(
        &self,
        busy: &HashSet<String>,
    ) -> Vec<(String, Resized, Arc<Secrets>)> {
        let Ok(_one_at_a_time) = self.applying.try_lock() else {
            return Vec::new();
        };
        let now = tokio::time::Instant::now();
        let decisions: Vec<(String, ServerSpec, rule::Decision)> = {
            let mut servers = self.servers.lock().await;
            servers
                .iter_mut()
                .filter(|(name, _)| !busy.contains(*name))
                .filter_map(|(name, rt)| {
                    let bounds = rt.spec.autoscale?;
                    // Slots, whatever their phase: a slot's restarts are its policy's.
                    let current = u32::try_from(rt.instances.len()).unwrap_or(u32::MAX);
                    let load = load_of(rt);
                    let decision = rt.scaler.step(&bounds, current, load, now)?;
                    let spec = ServerSpec {
                        instances: decision.to,
                        ..rt.spec.clone()
                    };
                    rt.last_scale = Some(ScaleDecision {
                        at: super::timestamp(SystemTime::now()),
                        from: decision.from,
                        to: decision.to,
                        reason: decision.reason.clone(),
                    });
                    Some((name.clone(), spec, decision))
                })
                .collect()
        };
        if decisions.is_empty() {
            return Vec::new();
        }
        let Some(desired) = self.desired.lock().await.clone() else {
            return Vec::new();
        };
        let secrets = desired.secrets_arc();
        let mut out = Vec::new();
        for (name, spec, decision) in decisions {
            tracing::info!(
                "{name}: autoscale {} -> {} instance(s): {}",
                decision.from,
                decision.to,
                decision.reason
            );
            let options = ApplyOptions::default();
            match self
                .resize_pool(&name, &spec, &options, &secrets, false)
                .await
            {
                Ok(Some(resized)) => out.push((name, resized, Arc::clone(&secrets))),
                Ok(None) => {}
                Err(e) => tracing::warn!("{name}: autoscale: {e}"),
            }
        }
        out
    }
}

/// Used by status: what to call a server with no instance because it scaled to zero.
pub(super) const SCALED_TO_ZERO: &str = "idle (scaled to zero)";
/// ... and one whose last instances are still draining on the way there.
pub(super) const SCALING_TO_ZERO: &str = "scaling to zero (draining)";
