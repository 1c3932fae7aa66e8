//! Convergence: load the file, observe what runs, plan (the one pure `plan` and
//! `plan::focus`), and execute each action, one apply at a time and each server's
//! action concurrently.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

use crate::api::ApplyOptions;
use crate::config;
use crate::gateway;
use crate::model::ServerSpec;
use crate::model::spec::Sharing;
use crate::plan::{Action, ActionKind, plan};
use crate::secrets::redact::Redactor;
use crate::secrets::unlock::{Unlocked as Secrets, unlock};

use super::error::{Applied, ApplyError, ServerError};
use super::supervisor::{self, Handle, Phase};
use super::*;
use crate::logs;

/// What the applies so far asked for: the servers (as the file had them then) and
/// their decrypted secrets.
#[derive(Clone)]
pub(super) struct Desired {
    servers: BTreeMap<String, ServerSpec>,
    secrets: Arc<Secrets>,
}

impl Desired {
    pub(super) fn secrets_arc(&self) -> Arc<Secrets> {
        Arc::clone(&self.secrets)
    }
}

impl Daemon {
    /// Loads the file, plans against what runs and executes the plan.
    pub(super) async fn apply(
        self: &Arc<Self>,
        options: ApplyOptions,
        progress: mpsc::Sender<String>,
    ) -> Result<Applied, ApplyError> {
        let by = crate::ui::events::by(&options);
        let applied = self.apply_unrecorded(options, progress).await;
        self.board.record_apply(by, &applied);
        applied
    }

    async fn apply_unrecorded(
        self: &Arc<Self>,
        options: ApplyOptions,
        progress: mpsc::Sender<String>,
    ) -> Result<Applied, ApplyError> {
        let _one_at_a_time = self.applying.lock().await;
        if options.only_tokens {
            return self.reload_tokens(&progress).await;
        }
        // `[telemetry]` of the file, or `mcpctl gateway`'s flags (else the environment's).
        let telemetry;
        let (servers, secrets, metrics, digest, endpoints, tokens) = match &self.source {
            Source::File => {
                let mut loaded = match &options.source {
                    Some(text) => config::load_text(
                        &self.config_path,
                        &format!("{} (as the client sent it)", self.config_path.display()),
                        text.clone(),
                    )?,
                    None => config::load(&self.config_path)?,
                };
                let secrets = Arc::new(unlock(&mut loaded)?);
                let digest = config::digest(&loaded.source);
                telemetry = loaded.config.telemetry.take();
                (
                    loaded.config.servers,
                    secrets,
                    loaded.config.metrics,
                    Some(digest),
                    loaded.config.endpoints,
                    loaded.config.tokens,
                )
            }
            Source::Fixed {
                servers,
                secrets,
                metrics,
                telemetry: given,
                ..
            } => {
                telemetry = given.clone();
                (
                    servers.clone(),
                    Arc::clone(secrets),
                    *metrics,
                    None,
                    BTreeMap::new(),
                    BTreeMap::new(),
                )
            }
        };
        if let Some(name) = options
            .only
            .iter()
            .chain(&options.restart)
            .find(|name| !servers.contains_key(*name))
        {
            let known: Vec<String> = servers.keys().cloned().collect();
            return Err(config::edit::unknown_server(name, &known).into());
        }
        let observed = self.observe().await;
        if let Some(expect) = &options.expect {
            let mut moved = Vec::new();
            if digest.as_deref() != Some(expect.file_digest.as_str()) {
                moved.push("the file changed");
            }
            if crate::plan::saved::observed_digest(&observed) != expect.observed_digest {
                moved.push("what runs changed");
            }
            if !moved.is_empty() {
                return Err(ApplyError::Stale(moved.join(", ")));
            }
        }
        // Only an apply that goes ahead moves `/metrics`, and changes who may call.
        self.serve_metrics(metrics, &progress).await;
        self.trace_to(telemetry, &progress).await;
        self.callers.set(&tokens);
        if let Some(digest) = digest {
            self.record_applied(digest, options.origin.as_ref()).await;
        }
        self.remember(&servers, &options, &secrets).await;
        // The lock read before any server starts: a new pinned port serves its pins
        // from its first request.
        self.apply_pins(&progress).await;
        let plan = crate::plan::focus(
            plan(&servers, &observed),
            &options.only,
            options.restart.as_deref(),
        );
        let mut outcome = Applied {
            changed: plan.has_changes(),
            failures: Vec::new(),
            endpoints: BTreeMap::new(),
            actions: plan
                .changes()
                .map(|a| format!("{} {}", a.kind.verb(), a.server))
                .collect(),
        };
        if plan.has_changes() {
            let mut tasks = super::named_tasks::NamedTasks::new();
            for action in plan
                .actions
                .into_iter()
                .filter(|a| a.kind != ActionKind::NoOp)
            {
                let progress = progress.clone();
                let this = Arc::clone(self);
                let options = options.clone();
                let secrets = Arc::clone(&secrets);
                let server = action.server.clone();
                tasks.spawn(server, async move {
                    this.execute(action, &options, &progress, &secrets).await
                });
            }
            while let Some((server, result)) = tasks.join_next().await {
                match result {
                    Ok(Ok(())) => {}
                    Ok(Err(failure)) => outcome.failures.push(failure),
                    // A step that panicked did not succeed.
                    Err(why) => outcome.failures.push(ServerError::Step { server, why }),
                }
            }
            self.persist().await;
        }
        // After the servers: an endpoint finds its members where they now run. A
        // focused apply (`--only`, `--restart`) leaves endpoints as they are.
        if options.only.is_empty() && options.restart.is_none() {
            let failures = self.converge_endpoints(&endpoints, &progress).await;
            outcome
                .failures
                .extend(failures.into_iter().map(ServerError::Endpoint));
        }
        self.apply_pins(&progress).await;
        let servers = self.servers.lock().await;
        outcome.endpoints = servers
            .iter()
            .map(|(n, rt)| (n.clone(), rt.spec.endpoints_line()))
            .collect();
        Ok(outcome)
    }

    /// Records where the text being applied came from: the client's account of it
    /// (commit, modified) when it is of the same text; else (a watch, the daemon's
    /// first apply, a file saved in between) git is asked here.
    async fn record_applied(&self, digest: String, origin: Option<&crate::api::AppliedFrom>) {
        let mut applied = match origin.filter(|o| o.file_digest == digest) {
            Some(told) => told.clone(),
            None => {
                let head = self.git_head().await;
                crate::api::AppliedFrom {
                    file_digest: digest,
                    modified: head.as_ref().is_some_and(|(_, m)| *m),
                    commit: head.map(|(c, _)| c),
                    ..Default::default()
                }
            }
        };
        applied.at = super::timestamp(SystemTime::now());
        if let Ok(mut slot) = self.applied.lock() {
            *slot = Some(applied);
        }
    }

    /// Where the file stands in git, asked without blocking the daemon's runtime: git
    /// runs as a child of the spawner, which lists it (the SIGCHLD sweep kills any
    /// child it does not list), and its answer is awaited.
    async fn git_head(&self) -> Option<(String, bool)> {
        let mut answers = Vec::new();
        for question in crate::git::head_questions(&self.config_path) {
            answers.push(self.spawner.output(question).await);
        }
        let mut answers = answers.into_iter();
        crate::git::head_from(answers.next().flatten(), answers.next().flatten())
    }

    /// Records what this apply asks for: the whole file, or (for a focused apply) the
    /// servers it names, so a resync never applies edits nobody applied.
    async fn remember(
        &self,
        servers: &BTreeMap<String, ServerSpec>,
        options: &ApplyOptions,
        secrets: &Arc<Secrets>,
    ) {
        let mut desired = self.desired.lock().await;
        let focused: Vec<&String> = options.only.iter().chain(&options.restart).collect();
        let mut next = match (desired.take(), focused.is_empty()) {
            (Some(previous), false) => previous.servers,
            _ => BTreeMap::new(),
        };
        for (name, spec) in servers {
            if focused.is_empty() || focused.contains(&name) {
                next.insert(name.clone(), spec.clone());
            }
        }
        if focused.is_empty() {
            next.retain(|name, _| servers.contains_key(name));
        }
        *desired = Some(Desired {
            servers: next,
            secrets: Arc::clone(secrets),
        });
    }

    /// Starts again every server that was applied to run but has nothing running at
    /// all (its start failed before any process ran: a port that was taken, say).
    /// Crash loops and servers their policy left exited keep what they have: those
    /// wait for an apply. Skipped while an apply runs.
    pub(super) async fn resync(self: &Arc<Self>) {
        let Ok(_one_at_a_time) = self.applying.try_lock() else {
            return;
        };
        let Some(desired) = self.desired.lock().await.clone() else {
            return;
        };
        let present: Vec<String> = self.servers.lock().await.keys().cloned().collect();
        let observed = self.observe().await;
        let missing = plan(&desired.servers, &observed)
            .actions
            .into_iter()
            .filter(|a| a.kind == ActionKind::Start && !present.contains(&a.server));
        for action in missing {
            tracing::info!(
                "{}: should run and does not: starting it (resync)",
                action.server
            );
            let (progress, log) = super::run::progress_to_log();
            let result = self
                .execute(
                    action,
                    &ApplyOptions::default(),
                    &progress,
                    &desired.secrets,
                )
                .await;
            drop(progress);
            let _ = log.await;
            if let Err(e) = result {
                tracing::warn!("resync: {e}");
            }
        }
        self.persist().await;
    }

    pub(super) async fn stop_everything(&self) {
        // Drains under way end now; an apply under way then finishes first (bounded),
        // so nothing it starts outlives the stop; past the bound the stop goes ahead.
        self.stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let _no_apply = tokio::time::timeout(Duration::from_secs(20), self.applying.lock()).await;
        let runtimes: Vec<ServerRuntime> = std::mem::take(&mut *self.servers.lock().await)
            .into_values()
            .collect();
        // Instances scaled away and still draining are stopped too.
        let stops = runtimes.iter().flat_map(|rt| {
            rt.instances
                .iter()
                .chain(&rt.draining)
                .map(|h| (h.clone(), rt.spec.stop_timeout))
        });
        stop_all(stops, false).await;
        drop(runtimes);
        // The instances' tasks end once their processes are gone (and their pipes'
        // readers with them): waited for, bounded, so none outlives the daemon's stop.
        if !self.instance_tasks.close(Duration::from_secs(10)).await {
            tracing::warn!(
                "{} instance task(s) still running at stop",
                self.instance_tasks.len()
            );
        }
        self.persist().await;
    }

    pub(super) async fn execute(
        &self,
        action: Action,
        options: &ApplyOptions,
        progress: &mpsc::Sender<String>,
        secrets: &Secrets,
    ) -> Result<(), ServerError> {
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
                    wake: spec
                        .autoscale
                        .filter(|a| a.min == 0)
                        .map(|_| Arc::clone(&self.autoscale_wake)),
                    stop_timeout: spec.stop_timeout,
                    start_timeout: spec.start_timeout,
                    ..Pool::default()
                });
                let inner_ports = (0..spec.instances)
                    .map(|_| inner_port::for_spec(&spec))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|source| ServerError::InnerPort {
                        server: name.clone(),
                        source,
                    })?;
                let tls = match &spec.tls {
                    Some(files) => Some(
                        gateway::tls::load(
                            &self.config_dir.join(&files.cert),
                            &self.config_dir.join(&files.key),
                        )
                        .map_err(|source| ServerError::Tls {
                            server: name.clone(),
                            source,
                        })?,
                    ),
                    None => None,
                };
                // Bind first: a taken port fails the start before any process runs.
                let gateway = match self.backend_for(&spec, &pool, secrets) {
                    Ok(backend) => {
                        let addr = std::net::SocketAddr::new(spec.bind, spec.port);
                        let auth = gateway::Auth {
                            target: spec.name.clone(),
                            audit: spec.has_auth().then(|| self.audit.clone()).flatten(),
                            bearer: spec
                                .auth_bearer
                                .as_ref()
                                .and_then(|name| secrets.values.get(&spec.name)?.get(name).cloned())
                                .map(Arc::new),
                            callers: spec.auth_tokens.then(|| Arc::clone(&self.callers)),
                            owner: spec.has_auth().then(|| Arc::clone(&self.owner_key)),
                            oidc: match &spec.auth_oidc {
                                Some(o) => Some(
                                    gateway::oidc::Oidc::new(o, Arc::clone(&self.oidc_buckets))
                                        .map_err(|source| ServerError::Serve {
                                            server: name.clone(),
                                            addr,
                                            source,
                                        })?,
                                ),
                                None => None,
                            },
                        };
                        let limits = gateway::Limits {
                            max_sessions: spec.max_sessions,
                            session_idle: spec.session_idle,
                            connections: gateway::accept::ConnectionLimits::from_env(),
                            replicas: match &self.source {
                                Source::Fixed { replicas, .. } => replicas.clone(),
                                Source::File => None,
                            },
                        };
                        match gateway::serve(addr, backend, auth, tls, limits, spec.tools.rules())
                            .await
                        {
                            Ok(g) => {
                                g.set_pins(spec.pin.then(|| {
                                    self.pins
                                        .read()
                                        .ok()
                                        .and_then(|l| l.get(&name).cloned())
                                        .unwrap_or_default()
                                }));
                                Some(g)
                            }
                            Err(source) => {
                                return Err(ServerError::Serve {
                                    server: name,
                                    addr,
                                    source,
                                });
                            }
                        }
                    }
                    Err(source) => {
                        return Err(ServerError::Backend {
                            server: name,
                            source,
                        });
                    }
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
                        draining: Vec::new(),
                        scaler: super::autoscale::rule::Scaler::default(),
                        last_scale: None,
                        requests_seen: 0,
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
        if let Some(gateway) = rt.gateway.take() {
            gateway.shut().await;
        }
        let timeout = stop_timeout(&rt.spec, options);
        stop_all(
            rt.instances.iter().map(|h| (h.clone(), timeout)),
            options.force,
        )
        .await;
    }

    pub(super) async fn wait_ready(
        &self,
        name: &str,
        views: Vec<(u32, tokio::sync::watch::Receiver<supervisor::View>)>,
        progress: &mpsc::Sender<String>,
        secrets: &Secrets,
    ) -> Result<(), ServerError> {
        let mut failures = Vec::new();
        for (i, mut view) in views {
            let settled = view
                .wait_for(|v| {
                    v.phase() == Phase::Running || (v.attempts >= 1 && v.phase() != Phase::Starting)
                })
                .await
                .map(|v| v.clone());
            let Ok(v) = settled else { continue };
            if v.phase() == Phase::Running {
                let pid = v
                    .server_pid()
                    .or(v.pid())
                    .map_or_else(|| "remote".to_string(), |p| format!("pid {p}"));
                let _ = progress
                    .send(format!("{name}: instance {i} ready ({pid})"))
                    .await;
            } else {
                let why = v
                    .last_error
                    .or(v.last_exit)
                    .unwrap_or_else(|| "it exited".into());
                failures.push(ServerError::Start {
                    server: name.to_string(),
                    instance: i,
                    why: Redactor::new(secrets.all()).redact(&why),
                    tail: logs::tail(&self.log_path(name, i), FAILURE_TAIL),
                });
            }
        }
        match failures.len() {
            0 => Ok(()),
            1 => Err(failures.remove(0)),
            _ => Err(ServerError::Instances(failures)),
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
