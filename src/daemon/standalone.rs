//! `mcpctl gateway`: the daemon's machinery for servers given on the command line, in
//! the foreground, with no file, no control socket and no state kept beyond it. What a
//! container runs: the same supervision, gateway, checks and limits; the servers' log
//! lines go to this process's stderr; SIGTERM or SIGINT end the servers and it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use age::secrecy::{ExposeSecret, SecretString};

use crate::api::ApplyOptions;
use crate::model::ServerSpec;
use crate::secrets::unlock::Unlocked;

use super::*;

/// Serves `servers` (and `/metrics` at `metrics`) until SIGTERM or SIGINT; fails when
/// one cannot start.
/// `hidden_env` names variables of this process that the servers must not inherit;
/// `replicas` is the shared session key and this replica's base URL, when replicas
/// forward each other's sessions.
pub fn run_standalone(
    servers: BTreeMap<String, ServerSpec>,
    metrics: Option<std::net::SocketAddr>,
    telemetry: Option<crate::model::telemetry::TelemetrySpec>,
    secrets: Unlocked,
    hidden_env: Vec<String>,
    config_dir: PathBuf,
    replicas: Option<(SecretString, String)>,
) -> Result<(), Error> {
    let replicas = match replicas {
        Some((key, me)) => Some(Arc::new(
            crate::gateway::replicas::Replicas::new(key.expose_secret().as_bytes(), &me)
                .map_err(|e| Error::NotStarted(e.to_string()))?,
        )),
        None => None,
    };
    // A hidden variable (the clients' token) is in this process's environment: a server
    // of the same user must not read it from /proc/PID/environ.
    if !hidden_env.is_empty()
        && let Err(e) = crate::sys::forbid_inspection()
    {
        tracing::warn!("cannot keep the servers from reading this process: {e}");
    }
    // Logs and the like, gone with this process.
    let runtime_dir = tempfile::Builder::new()
        .prefix("mcpctl-gateway-")
        .tempdir()
        .map_err(io_err("cannot make a runtime folder"))?;
    let runtime = runtime()?;
    let source = Source::Fixed {
        servers,
        metrics,
        telemetry,
        secrets: Arc::new(secrets),
        hidden_env,
        replicas,
    };
    runtime.block_on(serve(source, config_dir, runtime_dir.path().to_path_buf()))
}

/// The foreground's runtime: one thread, as the daemon's.
pub(super) fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    busy_poll::BusyPoll::new(busy_poll::budget_from_env())
        .build(tokio::runtime::Builder::new_current_thread().enable_all())
        .map_err(io_err("cannot start the async runtime"))
}

async fn serve(source: Source, config_dir: PathBuf, runtime_dir: PathBuf) -> Result<(), Error> {
    let config_path = config_dir.join("(command line)");
    let daemon = Arc::new(Daemon::new(source, config_path, config_dir, runtime_dir)?);
    let _ = crate::sys::set_child_subreaper();
    let mut workers = tokio::task::JoinSet::new();
    workers.spawn(run::sweep_orphans_on_sigchld(daemon.spawner.clone()));
    if let Some(every) = run::resync_period() {
        workers.spawn(run::resync_every(Arc::clone(&daemon), every));
    }
    if let Some(every) = sampler::period() {
        workers.spawn(run::sample_every(Arc::clone(&daemon), every));
    }
    workers.spawn(autoscale::autoscale_every(
        Arc::clone(&daemon),
        autoscale::period(),
    ));
    // Signals first: a SIGTERM during the start still ends everything cleanly.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(io_err("cannot handle SIGTERM"))?;
    let (progress, mut lines) = mpsc::channel(64);
    let log = crate::gateway::owned::owned(async move {
        while let Some(line) = lines.recv().await {
            tracing::info!("{line}");
        }
    });
    // A SIGTERM while the server starts ends it all too (exit 0), without waiting.
    let applied = tokio::select! {
        applied = daemon.apply(ApplyOptions { by: crate::api::ApplyBy::Daemon, ..ApplyOptions::default() }, progress) => Some(applied),
        _ = term.recv() => None,
        _ = tokio::signal::ctrl_c() => None,
    };
    let _ = log.await;
    let Some(applied) = applied else {
        workers.abort_all();
        daemon.stop_everything().await;
        crate::gateway::trace::shutdown().await;
        return Ok(());
    };
    let mut failed = match applied {
        Err(e) => Some(e.to_string()),
        Ok(applied) if !applied.failures.is_empty() => Some(
            applied
                .failures
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        Ok(applied) => {
            for (name, endpoints) in &applied.endpoints {
                tracing::info!("{name}: {endpoints}");
            }
            None
        }
    };
    if failed.is_none() {
        // Until a signal, or until nothing will run the server again (a crash loop, or
        // an exit its restart policy leaves): then exit 1, for the orchestrator to act.
        let mut check = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = tokio::signal::ctrl_c() => break,
                _ = check.tick() => {
                    if let Some(why) = given_up(&daemon.status().await) {
                        tracing::error!("{why}");
                        failed = Some(why);
                        break;
                    }
                }
            }
        }
    }
    if failed.is_none() {
        // A replica told to end (Kubernetes rolling it) lets its calls in flight finish
        // first, within the servers' drain_timeout; its pod is being taken out of the
        // Service meanwhile, so new work goes elsewhere.
        daemon.drain_calls().await;
    }
    workers.abort_all();
    daemon.stop_everything().await;
    // The last spans (the servers' ports are closed: no new ones), within a bound.
    crate::gateway::trace::shutdown().await;
    match failed {
        Some(why) => Err(Error::NotStarted(why)),
        None => Ok(()),
    }
}

/// Why a server will not run again without an apply (every instance in a crash loop or
/// exited for good), if so.
fn given_up(status: &crate::api::DaemonStatus) -> Option<String> {
    use crate::api::Phase;
    status.servers.iter().find_map(|s| {
        let done = !s.instances.is_empty()
            && s.instances
                .iter()
                .all(|i| matches!(i.phase, Phase::CrashLoop | Phase::Exited));
        done.then(|| {
            let why = s
                .instances
                .iter()
                .find_map(|i| i.last_exit.clone())
                .unwrap_or_else(|| "it exited".into());
            format!(
                "{}: {} and will not be restarted ({why}); exiting",
                s.name, s.status
            )
        })
    })
}
