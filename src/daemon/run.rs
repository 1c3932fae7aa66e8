//! Bootstrap: the daemon lock, leftovers of a previous daemon, the control socket,
//! the workers (control, persistence, orphan sweep, watch), the first convergence, and
//! the shutdown that stops everything.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::api::ApplyOptions;
use crate::config::store;

use super::spawner::Spawner;
use super::*;

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

pub(super) async fn async_main(
    config_path: PathBuf,
    runtime_dir: PathBuf,
    options: &Options,
) -> Result<(), Error> {
    let state_path = runtime_dir.join(STATE);
    let leftovers = state::kill_leftovers(&state::load(&state_path));
    if leftovers > 0 {
        tracing::warn!("killed {leftovers} process group(s) left by a previous daemon");
        tracing::info!(
            "mcpctl daemon: killed {leftovers} process group(s) left by a previous daemon"
        );
    }
    let config_dir = config_path
        .parent()
        .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
    let daemon = Arc::new(Daemon::new(
        Source::File,
        config_path.clone(),
        config_dir,
        runtime_dir.clone(),
    )?);
    daemon.persist().await;
    let listener = control::bind(&runtime_dir.join(SOCKET))?;
    store::write_runtime(&runtime_dir.join(PID_FILE), &format!("{}\n", daemon.pid))?;
    tracing::info!(
        "mcpctl daemon {} serving {}",
        daemon.pid,
        config_path.display()
    );

    // What a killed shim leaves becomes ours (not init's), to be ended on its SIGCHLD.
    let _ = crate::sys::set_child_subreaper();
    // It holds every server's secrets: the servers (processes of the same user) must
    // not read its memory or attach to it.
    if let Err(e) = crate::sys::forbid_inspection() {
        tracing::warn!("cannot keep the servers from reading the daemon's memory: {e}");
    }
    // Every worker is owned here and ends with the daemon.
    let mut workers = tokio::task::JoinSet::new();
    workers.spawn(sweep_orphans_on_sigchld(daemon.spawner.clone()));
    workers.spawn(control::serve(Arc::clone(&daemon), listener));
    workers.spawn(persist_on_change(Arc::clone(&daemon)));
    workers.spawn(Arc::clone(&daemon).refresh_members_every());
    workers.spawn(ui::tick_every(Arc::clone(&daemon)));
    if let Some(every) = resync_period() {
        workers.spawn(resync_every(Arc::clone(&daemon), every));
    }
    if let Some(every) = sampler::period() {
        workers.spawn(sample_every(Arc::clone(&daemon), every));
    }
    workers.spawn(autoscale::autoscale_every(
        Arc::clone(&daemon),
        autoscale::period(),
    ));
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
    workers.abort_all();
    daemon.close_endpoints().await;
    daemon.stop_everything().await;
    // The last spans (every port is closed: no new ones), within a bound.
    crate::gateway::trace::shutdown().await;
    let _ = std::fs::remove_file(runtime_dir.join(SOCKET));
    let _ = std::fs::remove_file(runtime_dir.join(PID_FILE));
    tracing::info!("mcpctl daemon {} stopped", daemon.pid);
    Ok(())
}

/// Converges from the file at start, so a restarted daemon brings back what ran.
pub(super) async fn initial_apply(daemon: &Arc<Daemon>) {
    let (tx, mut rx) = mpsc::channel(64);
    let first = {
        let daemon = Arc::clone(daemon);
        crate::gateway::owned::owned(async move {
            daemon
                .apply(
                    ApplyOptions {
                        by: crate::api::ApplyBy::Daemon,
                        ..ApplyOptions::default()
                    },
                    tx,
                )
                .await
        })
    };
    while let Some(line) = rx.recv().await {
        tracing::info!("{line}");
    }
    match first.await {
        Ok(Err(message)) => tracing::info!("mcpctl daemon: {message}"),
        Ok(Ok(outcome)) => {
            for failure in outcome.failures {
                tracing::info!("mcpctl daemon: {failure}");
            }
        }
        Err(_) => {}
    }
}

/// A progress channel for work nobody watches (a resync, an autoscale): its lines go
/// to the daemon's log. Drop the sender, then await the task.
pub(super) fn progress_to_log() -> (mpsc::Sender<String>, crate::gateway::owned::Owned<()>) {
    let (progress, mut lines) = mpsc::channel::<String>(16);
    let log = crate::gateway::owned::owned(async move {
        while let Some(line) = lines.recv().await {
            tracing::info!("{line}");
        }
    });
    (progress, log)
}

/// How often the daemon converges to what was last applied (`MCPCTL_RESYNC_SECS`,
/// default 30; 0 turns it off).
pub(super) fn resync_period() -> Option<Duration> {
    let secs = std::env::var("MCPCTL_RESYNC_SECS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(30);
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// Level-triggered: besides every apply, a resync on a timer.
pub(super) async fn resync_every(daemon: Arc<Daemon>, every: Duration) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        daemon.resync().await;
    }
}

/// Measures the instances, the ports and the daemon every `every`.
pub(super) async fn sample_every(daemon: Arc<Daemon>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        daemon.sample().await;
    }
}

/// Every child's death may leave orphans (a killed shim's tree): end them.
pub(super) async fn sweep_orphans_on_sigchld(spawner: Spawner) {
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

pub(super) async fn persist_on_change(daemon: Arc<Daemon>) {
    loop {
        daemon.changed.notified().await;
        daemon.persist().await;
    }
}
