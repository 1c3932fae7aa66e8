//! Convergence: load the file, observe what runs, plan (the one pure `plan` and
//! `plan::focus`), and execute each action, one apply at a time and each server's
//! action concurrently.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

use crate::api::{ApplyOptions, ApplyOutcome};
use crate::config;
use crate::gateway;
use crate::model::ServerSpec;
use crate::model::spec::Sharing;
use crate::plan::{Action, ActionKind, plan};
use crate::secrets::redact::Redactor;
use crate::secrets::unlock::{Unlocked as Secrets, unlock};

use super::supervisor::{self, Handle, Phase};
use super::*;
use crate::logs;

impl Daemon {
    /// Loads the file, plans against what runs and executes the plan.
    pub async fn apply(
        self: &Arc<Self>,
        options: ApplyOptions,
        progress: mpsc::Sender<String>,
    ) -> Result<ApplyOutcome, String> {
        let _one_at_a_time = self.applying.lock().await;
        let mut loaded = config::load(&self.config_path).map_err(|e| e.to_string())?;
        let secrets = Arc::new(unlock(&mut loaded).map_err(|e| e.to_string())?);
        if let Some(name) = options
            .only
            .iter()
            .chain(&options.restart)
            .find(|name| !loaded.config.servers.contains_key(*name))
        {
            let known: Vec<String> = loaded.config.servers.keys().cloned().collect();
            return Err(config::edit::unknown_server(name, &known).to_string());
        }
        let observed = self.observe().await;
        let plan = crate::plan::focus(
            plan(&loaded.config.servers, &observed),
            &options.only,
            options.restart.as_deref(),
        );
        let mut outcome = ApplyOutcome {
            changed: plan.has_changes(),
            failures: Vec::new(),
            endpoints: BTreeMap::new(),
        };
        if plan.has_changes() {
            let mut tasks = tokio::task::JoinSet::new();
            for action in plan
                .actions
                .into_iter()
                .filter(|a| a.kind != ActionKind::NoOp)
            {
                let progress = progress.clone();
                let this = Arc::clone(self);
                let options = options.clone();
                let secrets = Arc::clone(&secrets);
                tasks.spawn(
                    async move { this.execute(action, &options, &progress, &secrets).await },
                );
            }
            while let Some(result) = tasks.join_next().await {
                if let Ok(Err(failure)) = result {
                    outcome.failures.push(failure);
                }
            }
            self.persist().await;
        }
        let servers = self.servers.lock().await;
        outcome.endpoints = servers
            .iter()
            .map(|(n, rt)| (n.clone(), rt.spec.endpoints_line()))
            .collect();
        Ok(outcome)
    }

    pub(super) async fn stop_everything(&self) {
        let runtimes: Vec<ServerRuntime> = std::mem::take(&mut *self.servers.lock().await)
            .into_values()
            .collect();
        let stops = runtimes.iter().flat_map(|rt| {
            rt.instances
                .iter()
                .map(|h| (h.clone(), rt.spec.stop_timeout))
        });
        stop_all(stops, false).await;
        self.persist().await;
    }

    pub(super) async fn execute(
        &self,
        action: Action,
        options: &ApplyOptions,
        progress: &mpsc::Sender<String>,
        secrets: &Secrets,
    ) -> Result<(), String> {
        let name = action.server.clone();
        let say = |msg: String| async move {
            let _ = progress.send(msg).await;
        };
        match action.kind {
            ActionKind::NoOp => Ok(()),
            ActionKind::Stop => {
                say(format!("{name}: stopping")).await;
                self.remove_and_stop(&name, options).await;
                say(format!("{name}: stopped")).await;
                Ok(())
            }
            ActionKind::Start | ActionKind::Replace => {
                let Some(spec) = action.target else {
                    return Ok(());
                };
                if action.kind == ActionKind::Replace {
                    say(format!("{name}: stopping for replacement")).await;
                }
                self.remove_and_stop(&name, options).await;
                let pool = Arc::new(Pool {
                    per_session: (spec.sharing == Sharing::PerSession)
                        .then(|| self.session_instances(&spec, secrets)),
                    stop_timeout: spec.stop_timeout,
                    start_timeout: spec.start_timeout,
                    ..Pool::default()
                });
                let inner_ports = (0..spec.instances)
                    .map(|_| inner_port::for_spec(&spec))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("{name}: {e}"))?;
                let tls = match &spec.tls {
                    Some(files) => Some(
                        gateway::tls::load(
                            &self.config_dir.join(&files.cert),
                            &self.config_dir.join(&files.key),
                        )
                        .map_err(|e| format!("{name}: {e}"))?,
                    ),
                    None => None,
                };
                // Bind first: a taken port fails the start before any process runs.
                let gateway = match self.backend_for(&spec, &pool, secrets) {
                    Ok(backend) => {
                        let addr = std::net::SocketAddr::new(spec.bind, spec.port);
                        let bearer = spec
                            .auth_bearer
                            .as_ref()
                            .and_then(|name| secrets.values.get(&spec.name)?.get(name).cloned());
                        let limits = gateway::Limits {
                            max_sessions: spec.max_sessions,
                        };
                        match gateway::serve(addr, backend, bearer, tls, limits).await {
                            Ok(g) => Some(g),
                            Err(e) => return Err(format!("{name}: cannot serve on {addr}: {e}")),
                        }
                    }
                    Err(why) => return Err(format!("{name}: {why}")),
                };
                say(format!("{name}: starting {} instance(s)", spec.instances)).await;
                let created_at = SystemTime::now();
                let handles: Vec<Handle> = inner_ports
                    .into_iter()
                    .map(|port| self.start_instance(&spec, self.next_id(&name), secrets, port))
                    .collect();
                let views: Vec<_> = handles.iter().map(|h| (h.index, h.view.clone())).collect();
                pool.set(&handles);
                self.servers.lock().await.insert(
                    name.clone(),
                    ServerRuntime {
                        spec: spec.clone(),
                        created_at,
                        instances: handles,
                        pool,
                        gateway,
                    },
                );
                self.wait_ready(&name, views, progress, secrets).await
            }
            ActionKind::ScaleUp | ActionKind::ScaleDown | ActionKind::Update => {
                let Some(spec) = action.target else {
                    return Ok(());
                };
                self.resize(&name, &spec, options, progress, secrets).await
            }
        }
    }

    pub(super) async fn remove_and_stop(&self, name: &str, options: &ApplyOptions) {
        let Some(mut rt) = self.servers.lock().await.remove(name) else {
            return;
        };
        // No new traffic to instances that are going away.
        drop(rt.gateway.take());
        let timeout = stop_timeout(&rt.spec, options);
        stop_all(
            rt.instances.iter().map(|h| (h.clone(), timeout)),
            options.force,
        )
        .await;
    }

    /// Scale to `spec.instances` (dead slots are replaced first) and adopt in-place fields.
    pub(super) async fn resize(
        &self,
        name: &str,
        spec: &ServerSpec,
        options: &ApplyOptions,
        progress: &mpsc::Sender<String>,
        secrets: &Secrets,
    ) -> Result<(), String> {
        let mut servers = self.servers.lock().await;
        let Some(rt) = servers.get_mut(name) else {
            return Ok(());
        };
        // Ports for the instances to add, first, so that a failure changes nothing.
        let wanted = usize::try_from(spec.instances).unwrap_or(0);
        let held = rt
            .instances
            .iter()
            .filter(|h| h.view.borrow().phase.is_held())
            .count();
        let mut ports = (held..wanted)
            .map(|_| inner_port::for_spec(spec))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{name}: {e}"))?
            .into_iter();
        let mut retired: Vec<Handle> = Vec::new();
        let (alive, dead): (Vec<Handle>, Vec<Handle>) = std::mem::take(&mut rt.instances)
            .into_iter()
            .partition(|h| h.view.borrow().phase.is_held());
        retired.extend(dead);
        let mut keep = alive;
        let want = usize::try_from(spec.instances).unwrap_or(usize::MAX);
        while keep.len() > want {
            if let Some(h) = keep.pop() {
                retired.push(h);
            }
        }
        for h in &keep {
            h.update(spec).await;
        }
        let mut new_views = Vec::new();
        while keep.len() < want {
            let index = self.next_id(name);
            let h = self.start_instance(spec, index, secrets, ports.next().flatten());
            new_views.push((h.index, h.view.clone()));
            keep.push(h);
        }
        let before = held;
        rt.instances = keep;
        rt.pool.set(&rt.instances);
        if let Some(gateway) = &rt.gateway {
            gateway.set_max_sessions(spec.max_sessions);
        }
        rt.spec = spec.clone();
        drop(servers);
        let timeout = stop_timeout(spec, options);
        stop_all(retired.iter().map(|h| (h.clone(), timeout)), options.force).await;
        let _ = progress
            .send(format!(
                "{name}: {} instance(s) (was {before})",
                spec.instances
            ))
            .await;
        self.wait_ready(name, new_views, progress, secrets).await
    }

    pub(super) async fn wait_ready(
        &self,
        name: &str,
        views: Vec<(u32, tokio::sync::watch::Receiver<supervisor::View>)>,
        progress: &mpsc::Sender<String>,
        secrets: &Secrets,
    ) -> Result<(), String> {
        let mut failures = Vec::new();
        for (i, mut view) in views {
            let settled = view
                .wait_for(|v| {
                    v.phase == Phase::Running || (v.attempts >= 1 && v.phase != Phase::Starting)
                })
                .await
                .map(|v| v.clone());
            let Ok(v) = settled else { continue };
            if v.phase == Phase::Running {
                let pid = v
                    .server_pid
                    .or(v.pid)
                    .map_or_else(|| "remote".to_string(), |p| format!("pid {p}"));
                let _ = progress
                    .send(format!("{name}: instance {i} ready ({pid})"))
                    .await;
            } else {
                let why = v
                    .last_error
                    .or(v.last_exit)
                    .unwrap_or_else(|| "it exited".into());
                let why = Redactor::new(secrets.all()).redact(&why);
                let tail = logs::tail(&self.log_path(name, i), FAILURE_TAIL);
                let tail = tail
                    .iter()
                    .map(|l| format!("\n    | {l}"))
                    .collect::<String>();
                failures.push(format!(
                    "{name}: instance {i} failed to start: {why}{}",
                    if tail.is_empty() {
                        String::new()
                    } else {
                        format!("\n  last lines of its log:{tail}")
                    }
                ));
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("\n"))
        }
    }
}

pub(super) fn stop_timeout(spec: &ServerSpec, options: &ApplyOptions) -> Duration {
    options
        .stop_timeout_ms
        .map_or(spec.stop_timeout, Duration::from_millis)
}

/// Stops instances concurrently and waits for all of them.
pub(super) async fn stop_all(instances: impl IntoIterator<Item = (Handle, Duration)>, force: bool) {
    let mut stops = tokio::task::JoinSet::new();
    for (handle, timeout) in instances {
        stops.spawn(async move { handle.stop(force, timeout).await });
    }
    while stops.join_next().await.is_some() {}
}
