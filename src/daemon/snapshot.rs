//! What runs, seen three ways: persisted (`state.json`, for the next daemon to
//! clean up), observed (for the plan) and reported (status).

use std::time::SystemTime;

use crate::api::{DaemonStatus, InstanceStatus, ServerStatus};
use crate::gateway::Upstream;
use crate::plan::{Observed, ObservedServer};

use super::supervisor::{self, Phase};
use super::*;

impl Daemon {
    pub(super) async fn persist(&self) {
        let servers = self.servers.lock().await;
        let persisted = state::Persisted {
            daemon_pid: self.pid,
            servers: servers
                .iter()
                .map(|(name, rt)| {
                    let instances = rt
                        .instances
                        .iter()
                        .filter_map(|h| {
                            let v = h.view.borrow();
                            Some(state::PersistedInstance {
                                pid: v.pid()?,
                                start_ticks: v.start_ticks()?,
                            })
                        })
                        .collect();
                    let server = state::PersistedServer {
                        created_at: timestamp(rt.created_at),
                        instances,
                    };
                    (name.clone(), server)
                })
                .collect(),
        };
        drop(servers);
        state::save(&self.runtime_dir.join(STATE), &persisted);
    }

    pub async fn observe(&self) -> Observed {
        let endpoints = self
            .endpoints
            .lock()
            .await
            .iter()
            .map(|(name, rt)| (name.clone(), rt.spec.clone()))
            .collect();
        let servers = self.servers.lock().await;
        Observed {
            endpoints,
            servers: servers
                .iter()
                .map(|(name, rt)| {
                    let held = rt
                        .instances
                        .iter()
                        .filter(|h| h.view.borrow().is_held())
                        .count();
                    let observed = ObservedServer {
                        spec: rt.spec.clone(),
                        instances: u32::try_from(held).unwrap_or(u32::MAX),
                        scaled_to_zero: rt.scaled_to_zero(),
                    };
                    (name.clone(), observed)
                })
                .collect(),
        }
    }

    /// One sample of every instance's process tree, of each port's traffic and of the
    /// daemon (see `sampler.rs`).
    pub(super) async fn sample(&self) {
        let (shims, meters, limited) = {
            let servers = self.servers.lock().await;
            let shims: Vec<u32> = servers
                .values()
                .flat_map(|rt| rt.instances.iter().filter_map(|h| h.view.borrow().pid()))
                .collect();
            // Instances with a memory limit: (server, handle, shim pid, limit).
            let limited: Vec<(String, supervisor::Handle, u32, u64)> = servers
                .iter()
                .filter_map(|(name, rt)| Some((name, rt, rt.spec.limits.memory_bytes?)))
                .flat_map(|(name, rt, limit)| {
                    rt.instances.iter().filter_map(move |h| {
                        let shim = h.view.borrow().pid()?;
                        Some((name.clone(), h.clone(), shim, limit))
                    })
                })
                .collect();
            let meters: Vec<(String, Arc<crate::gateway::meter::Meter>)> = servers
                .iter()
                .filter_map(|(name, rt)| {
                    Some((name.clone(), Arc::clone(&rt.gateway.as_ref()?.meter)))
                })
                .collect();
            (shims, meters, limited)
        };
        let now = tokio::time::Instant::now();
        if let Ok(mut samples) = self.samples.lock() {
            samples.sample_processes(&shims, now);
            samples.retain_servers(|name| meters.iter().any(|(n, _)| n == name));
            for (name, meter) in meters {
                samples.record_traffic(&name, meter.snapshot(), now);
            }
            for (name, handle, shim, limit) in limited {
                let Some(rss) = samples.usage(shim).map(|u| u.rss_bytes) else {
                    continue;
                };
                if samples.over_limit(shim, rss > limit) >= sampler::OVER_LIMIT_SAMPLES {
                    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
                    let reason = format!(
                        "its memory ({:.1} MiB) stayed above limits.memory ({:.1} MiB) for {} samples: restarted",
                        mib(rss),
                        mib(limit),
                        sampler::OVER_LIMIT_SAMPLES
                    );
                    tracing::warn!("{name} instance {}: {reason}", handle.index);
                    handle.restart(reason);
                }
            }
        }
    }

    pub async fn status(&self) -> DaemonStatus {
        let endpoints = self.endpoint_statuses().await;
        let endpoint_failures = self.endpoint_failures.lock().await.clone();
        let servers = self.servers.lock().await;
        let samples = self.samples.lock().ok();
        let now = tokio::time::Instant::now();
        let servers = servers
            .iter()
            .map(|(name, rt)| {
                let own: Vec<(u32, tokio::sync::watch::Receiver<supervisor::View>, bool)> = rt
                    .pool
                    .session_views
                    .lock()
                    .map(|v| v.iter().map(|(i, w)| (*i, w.clone(), true)).collect())
                    .unwrap_or_default();
                let instances: Vec<InstanceStatus> = rt
                    .instances
                    .iter()
                    .chain(&rt.draining)
                    .map(|h| (h.index, h.view.clone(), false))
                    .chain(own)
                    .map(|(index, view, per_session)| {
                        let v = view.borrow();
                        InstanceStatus {
                            index,
                            phase: v.phase(),
                            pid: v.server_pid().or_else(|| {
                                v.pid()
                                    .and_then(|p| crate::sys::children_of(p).first().copied())
                            }),
                            shim_pid: v.pid(),
                            uptime_secs: v
                                .state
                                .since()
                                .and_then(|t| t.elapsed().ok())
                                .map(|d| d.as_secs()),
                            restarts: v.restarts,
                            last_exit: v.last_exit.clone(),
                            last_restart: v.last_restart.clone(),
                            last_error: v.last_error.clone(),
                            protocol: v.upstream().map(Upstream::protocol),
                            asked_roots_unprompted: v
                                .upstream()
                                .is_some_and(Upstream::asked_roots_unprompted),
                            per_session,
                            inner_port: v.inner_port,
                            usage: v.pid().and_then(|shim| samples.as_ref()?.usage(shim)),
                        }
                    })
                    .collect();
                ServerStatus {
                    name: name.clone(),
                    spec: rt.spec.clone(),
                    status: match (rt.scaled_to_zero(), rt.draining.is_empty()) {
                        (true, true) => super::autoscale::SCALED_TO_ZERO.to_string(),
                        // Its last instance is still finishing what it had.
                        (true, false) => super::autoscale::SCALING_TO_ZERO.to_string(),
                        _ => overall(&instances),
                    },
                    created_at: timestamp(rt.created_at),
                    restarts: instances.iter().map(|i| i.restarts).sum(),
                    instances,
                    last_scale: rt.last_scale.clone(),
                    unpinned: rt
                        .gateway
                        .as_ref()
                        .map(|g| g.unpinned())
                        .unwrap_or_default(),
                    network: Some(
                        if rt.spec.wants_isolation() && self.isolation.is_ok() {
                            "isolated"
                        } else {
                            "host"
                        }
                        .to_string(),
                    ),
                    traffic: rt.gateway.as_ref().map(|g| {
                        let current = g.meter.snapshot();
                        match &samples {
                            Some(s) => s.traffic(name, current, now),
                            None => current,
                        }
                    }),
                }
            })
            .collect();
        DaemonStatus {
            pid: self.pid,
            config: self.config_path.display().to_string(),
            started_at: timestamp(self.started_at),
            servers,
            usage: samples.as_ref().and_then(|s| s.daemon()),
            applied: self.applied.lock().ok().and_then(|a| a.clone()),
            endpoints,
            endpoint_failures,
            tokens_used: self
                .callers
                .last_used()
                .into_iter()
                .map(|(name, at)| (name, timestamp(at)))
                .collect(),
            tokens_limited: self.callers.limited(),
            oidc_limited: self.oidc_buckets.limited(),
        }
    }
}

pub(super) fn overall(instances: &[InstanceStatus]) -> String {
    // Instances scaled away are on their way out: a planned drain is not "degraded".
    let instances: Vec<&InstanceStatus> = instances
        .iter()
        .filter(|i| i.phase != Phase::Draining)
        .collect();
    let count = |phase| instances.iter().filter(|i| i.phase == phase).count();
    let running = count(Phase::Running);
    let starting = count(Phase::Starting) + count(Phase::Backoff);
    if count(Phase::CrashLoop) > 0 {
        "crash-loop".into()
    } else if count(Phase::Unhealthy) > 0 {
        "unhealthy".into()
    } else if running == instances.len() && running > 0 {
        "running".into()
    } else if starting > 0 && running == 0 {
        "starting".into()
    } else if running > 0 {
        "degraded".into()
    } else {
        "exited".into()
    }
}

pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

impl Daemon {
    /// Waits until no port has a request being answered, or the longest
    /// `drain_timeout` of the servers has passed (polled: the meters are atomics).
    pub(super) async fn drain_calls(&self) {
        let (limit, meters) = {
            let servers = self.servers.lock().await;
            let limit = servers
                .values()
                .map(|rt| rt.spec.drain_timeout)
                .max()
                .unwrap_or_default();
            let meters: Vec<_> = servers
                .values()
                .filter_map(|rt| rt.gateway.as_ref().map(|g| Arc::clone(&g.meter)))
                .collect();
            (limit, meters)
        };
        let deadline = tokio::time::Instant::now() + limit;
        while meters.iter().any(|m| m.in_flight() > 0) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}
