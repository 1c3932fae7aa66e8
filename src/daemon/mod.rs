//! The daemon: one per config file. It owns the server processes and converges them
//! to the file when asked (control socket) or when the file changes (watch).
//!
//! # Theory of operation
//!
//! `run` takes the daemon lock (`.mcpctl/daemon.lock`, one daemon per config), kills
//! what a previous daemon left behind (`state`), binds the control socket and
//! converges once. Every convergence is the same level-triggered step: load the file,
//! snapshot what runs (`observe`), compute the pure `plan`, execute its actions (each
//! server concurrently, one apply at a time). Instances (`instance`) run through the
//! shim (`crate::shim`), forked by the spawner thread (`spawner`), and restart by the
//! pure rules of `policy`.

mod busy_poll;
mod control;
mod inner_port;
pub mod instance;
pub mod logs;
pub mod policy;
mod spawner;
pub mod state;
pub mod watch;

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use tokio::sync::{Mutex, Notify, mpsc};

use crate::api::{ApplyOptions, ApplyOutcome, DaemonStatus, InstanceStatus, ServerStatus};
use crate::config::{self, store};
use crate::gateway::{self, Gateway, Instances, Upstream};
use crate::model::ServerSpec;
use crate::model::spec::{Mode, Sharing, Transport};
use crate::plan::{Action, ActionKind, Observed, ObservedServer, plan};
use crate::secrets::redact::Redactor;
use crate::secrets::unlock::{Unlocked as Secrets, unlock};
use instance::{Handle, InstanceCtx, Phase};
use spawner::Spawner;

pub const SOCKET: &str = "daemon.sock";
pub const LOCK: &str = "daemon.lock";
pub const PID_FILE: &str = "daemon.pid";
pub const STATE: &str = "state.json";
pub const DAEMON_LOG: &str = "daemon.log";
/// Lines of a server's log shown when it fails to start.
const FAILURE_TAIL: usize = 10;

struct ServerRuntime {
    spec: ServerSpec,
    created_at: SystemTime,
    instances: Vec<Handle>,
    /// What the gateway routes to; kept in step with `instances`.
    pool: Arc<Pool>,
    /// Serving `bind:port` (stdio servers); dropped first on stop.
    gateway: Option<Gateway>,
}

/// Views of running instances, by instance number.
type Views = std::sync::Mutex<BTreeMap<u32, tokio::sync::watch::Receiver<instance::View>>>;

/// The gateway's view of a server's instances.
#[derive(Default)]
struct Pool {
    views: std::sync::Mutex<Vec<tokio::sync::watch::Receiver<instance::View>>>,
    /// `sharing = "per-session"`: starts a session's own instance (numbered).
    per_session: Option<Box<dyn Fn() -> (u32, Handle) + Send + Sync>>,
    /// The sessions' own instances while they live, for `status`.
    session_views: Arc<Views>,
    stop_timeout: Duration,
    /// How long a client arriving during a start waits for an instance.
    start_timeout: Duration,
}

/// A session's own instance; stopped when the session ends.
struct SessionInstance {
    handle: Handle,
    stop_timeout: Duration,
    index: u32,
    listed: Arc<Views>,
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
    fn set(&self, handles: &[Handle]) {
        if let Ok(mut views) = self.views.lock() {
            *views = handles.iter().map(|h| h.view.clone()).collect();
        }
    }
}

impl Pool {
    /// The running instance with the least `load`; the lock is held while `then`
    /// runs, so concurrent picks see each other's counts.
    fn least<T>(
        &self,
        load: impl Fn(&Upstream) -> usize,
        then: impl FnOnce(Upstream) -> T,
    ) -> Option<T> {
        let views = self.views.lock().ok()?;
        let upstream = views
            .iter()
            .filter_map(|v| {
                let v = v.borrow();
                if v.phase == Phase::Running {
                    v.upstream.clone()
                } else {
                    None
                }
            })
            .min_by_key(|u| load(u))?;
        Some(then(upstream))
    }
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
                        v.inner_port.filter(|_| v.phase == Phase::Running)
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
                // Marked seen, so `changed` below waits for the next change.
                let phases: Vec<Phase> = starting
                    .iter_mut()
                    .map(|v| v.borrow_and_update().phase)
                    .collect();
                let ready = phases.contains(&Phase::Running);
                let mut phases = phases.into_iter();
                starting.retain(|_| phases.next() == Some(Phase::Starting));
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
            let upstream = settled
                .upstream
                .filter(|_| settled.phase == Phase::Running)?;
            Some((upstream, Some(Box::new(lease) as gateway::Lease)))
        })
    }
}

pub struct Daemon {
    config_path: PathBuf,
    config_dir: PathBuf,
    runtime_dir: PathBuf,
    pid: u32,
    started_at: SystemTime,
    shim: crate::shim::ShimCommand,
    spawner: Spawner,
    servers: Mutex<BTreeMap<String, ServerRuntime>>,
    /// One convergence at a time.
    applying: Mutex<()>,
    changed: Arc<Notify>,
    shutdown: Notify,
    /// The next instance id of each server: ids are never reused while the daemon
    /// runs (a replaced or scaled server's new instances get new ones, and logs).
    instance_ids: std::sync::Mutex<BTreeMap<String, Arc<AtomicU32>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("a daemon already runs for {0}")]
    AlreadyRunning(String),
    #[error("{0}")]
    Config(#[from] config::Error),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

pub struct Options {
    pub watch: bool,
    /// Converge from the file at start. Off when a CLI command starts the daemon on
    /// demand: that command converges itself, with the user watching.
    pub initial_apply: bool,
}

/// Runs the daemon in the foreground until `daemon stop`, SIGTERM or SIGINT.
pub fn run(config_path: &Path, options: &Options) -> Result<(), Error> {
    let config_path =
        std::fs::canonicalize(config_path).map_err(io_err(config_path.display().to_string()))?;
    let runtime_dir = store::runtime_dir(&config_path);
    std::fs::create_dir_all(&runtime_dir).map_err(io_err(runtime_dir.display().to_string()))?;
    let lock_path = runtime_dir.join(LOCK);
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_err(lock_path.display().to_string()))?;
    if lock.try_lock().is_err() {
        return Err(Error::AlreadyRunning(config_path.display().to_string()));
    }
    // One thread: a request hops gateway -> mux -> child -> mux -> gateway without
    // waking another core, which measured lower latency at the same throughput (the
    // child and the clients have the other cores); blocking work has threads of its
    // own (spawner, watcher). It polls a moment before it sleeps (`busy_poll`).
    let runtime = busy_poll::BusyPoll::new(busy_poll::budget_from_env())
        .build(tokio::runtime::Builder::new_current_thread().enable_all())
        .map_err(io_err("cannot start the async runtime"))?;
    let result = runtime.block_on(async_main(config_path, runtime_dir, options));
    drop(lock);
    result
}

async fn async_main(
    config_path: PathBuf,
    runtime_dir: PathBuf,
    options: &Options,
) -> Result<(), Error> {
    let state_path = runtime_dir.join(STATE);
    let leftovers = state::kill_leftovers(&state::load(&state_path));
    if leftovers > 0 {
        tracing::warn!("killed {leftovers} process group(s) left by a previous daemon");
        crate::note!(
            "mcpctl daemon: killed {leftovers} process group(s) left by a previous daemon"
        );
    }
    let config_dir = config_path
        .parent()
        .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
    let daemon = Arc::new(Daemon {
        config_path: config_path.clone(),
        config_dir,
        runtime_dir: runtime_dir.clone(),
        pid: std::process::id(),
        started_at: SystemTime::now(),
        shim: crate::shim::ShimCommand::find()
            .map_err(io_err("cannot find the mcpctl executable"))?,
        spawner: Spawner::start().map_err(io_err("cannot start the spawner thread"))?,
        servers: Mutex::new(BTreeMap::new()),
        applying: Mutex::new(()),
        changed: Arc::new(Notify::new()),
        shutdown: Notify::new(),
        instance_ids: std::sync::Mutex::default(),
    });
    daemon.persist().await;
    let listener = control::bind(&runtime_dir.join(SOCKET))?;
    store::write_runtime(&runtime_dir.join(PID_FILE), &format!("{}\n", daemon.pid))?;
    crate::note!(
        "mcpctl daemon {} serving {}",
        daemon.pid,
        config_path.display()
    );

    // What a killed shim leaves becomes ours (not init's), to be ended on its SIGCHLD.
    let _ = crate::sys::set_child_subreaper();
    tokio::spawn(sweep_orphans_on_sigchld(daemon.spawner.clone()));
    tokio::spawn(control::serve(Arc::clone(&daemon), listener));
    tokio::spawn(persist_on_change(Arc::clone(&daemon)));
    if options.watch {
        watch::spawn_daemon_watch(Arc::clone(&daemon));
    }
    if options.initial_apply {
        initial_apply(&daemon).await;
    }

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(io_err("cannot handle SIGTERM"))?;
    tokio::select! {
        () = daemon.shutdown.notified() => {}
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    daemon.stop_everything().await;
    let _ = std::fs::remove_file(runtime_dir.join(SOCKET));
    let _ = std::fs::remove_file(runtime_dir.join(PID_FILE));
    crate::note!("mcpctl daemon {} stopped", daemon.pid);
    Ok(())
}

/// Converges from the file at start, so a restarted daemon brings back what ran.
async fn initial_apply(daemon: &Arc<Daemon>) {
    let (tx, mut rx) = mpsc::channel(64);
    let first = {
        let daemon = Arc::clone(daemon);
        tokio::spawn(async move { daemon.apply(ApplyOptions::default(), tx).await })
    };
    while let Some(line) = rx.recv().await {
        crate::note!("{line}");
    }
    match first.await {
        Ok(Err(message)) => crate::note!("mcpctl daemon: {message}"),
        Ok(Ok(outcome)) => {
            for failure in outcome.failures {
                crate::note!("mcpctl daemon: {failure}");
            }
        }
        Err(_) => {}
    }
}

/// Every child's death may leave orphans (a killed shim's tree): end them.
async fn sweep_orphans_on_sigchld(spawner: Spawner) {
    let Ok(mut sigchld) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child())
    else {
        tracing::warn!("cannot watch SIGCHLD: a killed shim's leftovers stay until daemon stop");
        return;
    };
    while sigchld.recv().await.is_some() {
        let found = spawner.sweep_orphans();
        if found > 0 {
            tracing::warn!("ended {found} process(es) left by a killed shim");
        }
    }
}

async fn persist_on_change(daemon: Arc<Daemon>) {
    loop {
        daemon.changed.notified().await;
        daemon.persist().await;
    }
}

impl Daemon {
    fn log_path(&self, server: &str, index: u32) -> PathBuf {
        logs::log_path(&self.runtime_dir, server, index)
    }

    async fn persist(&self) {
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
                                pid: v.pid?,
                                start_ticks: v.start_ticks?,
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
        let servers = self.servers.lock().await;
        Observed {
            servers: servers
                .iter()
                .map(|(name, rt)| {
                    let held = rt
                        .instances
                        .iter()
                        .filter(|h| h.view.borrow().phase.is_held())
                        .count();
                    let observed = ObservedServer {
                        spec: rt.spec.clone(),
                        instances: u32::try_from(held).unwrap_or(u32::MAX),
                    };
                    (name.clone(), observed)
                })
                .collect(),
        }
    }

    pub async fn status(&self) -> DaemonStatus {
        let servers = self.servers.lock().await;
        let servers = servers
            .iter()
            .map(|(name, rt)| {
                let own: Vec<(u32, tokio::sync::watch::Receiver<instance::View>, bool)> = rt
                    .pool
                    .session_views
                    .lock()
                    .map(|v| v.iter().map(|(i, w)| (*i, w.clone(), true)).collect())
                    .unwrap_or_default();
                let instances: Vec<InstanceStatus> = rt
                    .instances
                    .iter()
                    .map(|h| (h.index, h.view.clone(), false))
                    .chain(own)
                    .map(|(index, view, per_session)| {
                        let v = view.borrow();
                        InstanceStatus {
                            index,
                            phase: v.phase,
                            pid: v.server_pid.or_else(|| {
                                v.pid
                                    .and_then(|p| crate::sys::children_of(p).first().copied())
                            }),
                            shim_pid: v.pid,
                            uptime_secs: v
                                .started_at
                                .filter(|_| v.phase == Phase::Running)
                                .and_then(|t| t.elapsed().ok())
                                .map(|d| d.as_secs()),
                            restarts: v.restarts,
                            last_exit: v.last_exit.clone(),
                            last_error: v.last_error.clone(),
                            protocol: v.upstream.as_ref().map(Upstream::protocol),
                            per_session,
                            inner_port: v.inner_port,
                        }
                    })
                    .collect();
                ServerStatus {
                    name: name.clone(),
                    spec: rt.spec.clone(),
                    status: overall(&instances),
                    created_at: timestamp(rt.created_at),
                    restarts: instances.iter().map(|i| i.restarts).sum(),
                    instances,
                }
            })
            .collect();
        DaemonStatus {
            pid: self.pid,
            config: self.config_path.display().to_string(),
            started_at: timestamp(self.started_at),
            servers,
        }
    }

    pub fn request_shutdown(&self) {
        self.shutdown.notify_one();
    }

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

    async fn stop_everything(&self) {
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
}

impl Daemon {
    async fn execute(
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
                        match gateway::serve(addr, backend, bearer, tls).await {
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

    /// What the gateway of `spec` serves: its stdio instances, or the URL of a server
    /// that speaks HTTP (a local one on its inner port, or a remote one).
    fn backend_for(
        &self,
        spec: &ServerSpec,
        pool: &Arc<Pool>,
        secrets: &Secrets,
    ) -> Result<gateway::Backend, String> {
        match (spec.mode, spec.transport) {
            (Mode::Local, Transport::Stdio) => {
                let instances: Arc<dyn Instances> = pool.clone();
                Ok(gateway::Backend::Stdio(instances))
            }
            (Mode::Local, transport) => {
                // The port is each instance's own, filled in per request.
                let path = if transport == Transport::Sse {
                    "sse"
                } else {
                    "mcp"
                };
                let pool: Arc<dyn gateway::HttpPool> = pool.clone();
                let url = format!("http://127.0.0.1:1/{path}");
                http_backend(spec, secrets, url, Some(pool))
            }
            (Mode::Remote, _) => {
                http_backend(spec, secrets, spec.url.clone().unwrap_or_default(), None)
            }
        }
    }

    /// The next id for an instance of `server`.
    fn next_id(&self, server: &str) -> u32 {
        self.ids_of(server).fetch_add(1, Ordering::Relaxed)
    }

    fn ids_of(&self, server: &str) -> Arc<AtomicU32> {
        let mut ids = self
            .instance_ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(ids.entry(server.to_string()).or_default())
    }

    /// Starts per-session instances of `spec`, numbered like the others.
    fn session_instances(
        &self,
        spec: &ServerSpec,
        secrets: &Secrets,
    ) -> Box<dyn Fn() -> (u32, Handle) + Send + Sync> {
        let next = self.ids_of(&spec.name);
        let template = self.instance_ctx(spec, 0, secrets, None);
        let runtime_dir = self.runtime_dir.clone();
        Box::new(move || {
            let index = next.fetch_add(1, Ordering::Relaxed);
            let mut ctx = template.clone();
            ctx.index = index;
            ctx.log_path = logs::log_path(&runtime_dir, &ctx.spec.name, index);
            (index, instance::start(ctx))
        })
    }

    fn start_instance(
        &self,
        spec: &ServerSpec,
        index: u32,
        secrets: &Secrets,
        inner_port: Option<u16>,
    ) -> Handle {
        instance::start(self.instance_ctx(spec, index, secrets, inner_port))
    }

    fn instance_ctx(
        &self,
        spec: &ServerSpec,
        index: u32,
        secrets: &Secrets,
        inner_port: Option<u16>,
    ) -> InstanceCtx {
        let mut own = secrets.values.get(&spec.name).cloned().unwrap_or_default();
        // The clients' bearer token is the gateway's, never the server's.
        if let Some(name) = &spec.auth_bearer {
            own.remove(name);
        }
        InstanceCtx {
            redactor: Redactor::new(secrets.all()),
            inner_port,
            secrets: own,
            spec: spec.clone(),
            index,
            config_dir: self.config_dir.clone(),
            log_path: self.log_path(&spec.name, index),
            daemon_pid: self.pid,
            shim: self.shim.clone(),
            spawner: self.spawner.clone(),
            changed: Arc::clone(&self.changed),
        }
    }

    async fn remove_and_stop(&self, name: &str, options: &ApplyOptions) {
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
    async fn resize(
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

    async fn wait_ready(
        &self,
        name: &str,
        views: Vec<(u32, tokio::sync::watch::Receiver<instance::View>)>,
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

/// The configured upstream headers of `spec`, expanded.
fn expand_headers(
    spec: &ServerSpec,
    secrets: Option<&BTreeMap<String, age::secrecy::SecretString>>,
) -> Result<Vec<(axum::http::HeaderName, age::secrecy::SecretString)>, String> {
    spec.headers
        .iter()
        .map(|(name, template)| {
            let name = axum::http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| format!("bad header name `{name}`: {e}"))?;
            Ok((name, expand(template, &spec.env, secrets)))
        })
        .collect()
}

/// A proxying backend for `url`, with the server's headers expanded from its env and
/// secrets.
fn http_backend(
    spec: &ServerSpec,
    secrets: &Secrets,
    url: String,
    pool: Option<Arc<dyn gateway::HttpPool>>,
) -> Result<gateway::Backend, String> {
    let headers = expand_headers(spec, secrets.values.get(&spec.name))?;
    let url = url.parse().map_err(|e| format!("bad url {url}: {e}"))?;
    Ok(gateway::Backend::Http(gateway::HttpUpstream {
        url,
        headers,
        legacy_sse: spec.transport == Transport::Sse,
        pool,
    }))
}

/// `${NAME}` in a header template, from the server's env or secrets.
fn expand(
    template: &str,
    env: &BTreeMap<String, String>,
    secrets: Option<&BTreeMap<String, age::secrecy::SecretString>>,
) -> age::secrecy::SecretString {
    use age::secrecy::ExposeSecret;
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let name = &after[..end];
        if let Some(v) = env.get(name) {
            out.push_str(v);
        } else if let Some(v) = secrets.and_then(|s| s.get(name)) {
            out.push_str(v.expose_secret());
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    age::secrecy::SecretString::from(out)
}

fn stop_timeout(spec: &ServerSpec, options: &ApplyOptions) -> Duration {
    options
        .stop_timeout_ms
        .map_or(spec.stop_timeout, Duration::from_millis)
}

fn overall(instances: &[InstanceStatus]) -> String {
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

/// Stops instances concurrently and waits for all of them.
async fn stop_all(instances: impl IntoIterator<Item = (Handle, Duration)>, force: bool) {
    let mut stops = tokio::task::JoinSet::new();
    for (handle, timeout) in instances {
        stops.spawn(async move { handle.stop(force, timeout).await });
    }
    while stops.join_next().await.is_some() {}
}
