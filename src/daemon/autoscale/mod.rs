//! Autoscaling: every second (`MCPCTL_AUTOSCALE_SECS`), and at once when a request
//! finds a server scaled to zero, each autoscaled server's load is read off its
//! instances, the pure `rule` decides, and the decision is carried out by the same
//! resize an apply uses (draining first when it scales down). Each decision is logged
//! and kept for `status`. Skipped while an apply runs: the next tick catches up.

pub(super) mod rule;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::api::{ApplyOptions, ScaleDecision};
use crate::model::ServerSpec;

use super::Daemon;
use super::supervisor::Handle;
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
pub(super) async fn autoscale_every(daemon: Arc<Daemon>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let wake = Arc::clone(&daemon.autoscale_wake);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = wake.notified() => {}
        }
        daemon.autoscale().await;
    }
}

/// The load on a server's instances (those draining included: their sessions count
/// until they end).
fn load_of<'a>(instances: impl Iterator<Item = &'a Handle>, waiting: bool) -> Load {
    let mut load = Load {
        waiting,
        ..Load::default()
    };
    for h in instances {
        if let Some(u) = h.view.borrow().upstream() {
            load.sessions += u.load();
            load.in_flight += u.busy().max(u.in_flight());
        }
    }
    load
}

impl Daemon {
    /// One autoscaling step over every autoscaled server.
    pub(super) async fn autoscale(&self) {
        let Ok(_one_at_a_time) = self.applying.try_lock() else {
            return;
        };
        let now = tokio::time::Instant::now();
        let decisions: Vec<(String, ServerSpec, rule::Decision)> = {
            let mut servers = self.servers.lock().await;
            servers
                .iter_mut()
                .filter_map(|(name, rt)| {
                    let bounds = rt.spec.autoscale?;
                    let current = rt
                        .instances
                        .iter()
                        .filter(|h| h.view.borrow().is_held())
                        .count();
                    let current = u32::try_from(current).unwrap_or(u32::MAX);
                    let load = load_of(rt.instances.iter().chain(&rt.draining), rt.pool.waiting());
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
            return;
        }
        let Some(desired) = self.desired.lock().await.clone() else {
            return;
        };
        for (name, spec, decision) in decisions {
            tracing::info!(
                "{name}: autoscale {} -> {} instance(s): {}",
                decision.from,
                decision.to,
                decision.reason
            );
            let (progress, log) = super::run::progress_to_log();
            let result = self
                .resize(
                    &name,
                    &spec,
                    &ApplyOptions::default(),
                    &progress,
                    desired.secrets(),
                )
                .await;
            drop(progress);
            let _ = log.await;
            if let Err(e) = result {
                tracing::warn!("{name}: autoscale: {e}");
            }
        }
        self.persist().await;
    }
}

/// Used by status: what to call a server with no instance because it scaled to zero.
pub(super) const SCALED_TO_ZERO: &str = "idle (scaled to zero)";
/// ... and one whose last instances are still draining on the way there.
pub(super) const SCALING_TO_ZERO: &str = "scaling to zero (draining)";
