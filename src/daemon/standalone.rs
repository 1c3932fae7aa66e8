//! `mcpctl gateway`: the daemon's machinery for servers given on the command line, in
//! the foreground, with no file, no control socket and no state kept beyond it. What a
//! container runs: the same supervision, gateway, checks and limits; the servers' log
//! lines go to this process's stderr; SIGTERM or SIGINT end the servers and it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::api::ApplyOptions;
use crate::model::ServerSpec;
use crate::secrets::unlock::Unlocked;

use super::*;

/// Serves `servers` (and `/metrics` at `metrics`) until SIGTERM or SIGINT; fails when
/// one cannot start.
/// `hidden_env` names variables of this process that the servers must not inherit.
pub fn run_standalone(
    servers: BTreeMap<String, ServerSpec>,
    metrics: Option<std::net::SocketAddr>,
    secrets: Unlocked,
    hidden_env: Vec<String>,
    config_dir: PathBuf,
) -> Result<(), Error> {
    // Logs and the like, gone with this process.
    let runtime_dir = tempfile::Builder::new()
        .prefix("mcpctl-gateway-")
        .tempdir()
        .map_err(io_err("cannot make a runtime folder"))?;
    let runtime = busy_poll::BusyPoll::new(busy_poll::budget_from_env())
        .build(tokio::runtime::Builder::new_current_thread().enable_all())
        .map_err(io_err("cannot start the async runtime"))?;
    let source = Source::Fixed {
        servers,
        metrics,
        secrets: Arc::new(secrets),
        hidden_env,
    };
    runtime.block_on(serve(source, config_dir, runtime_dir.path().to_path_buf()))
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
    // Signals first: a SIGTERM during the start still ends everything cleanly.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(io_err("cannot handle SIGTERM"))?;
    let (progress, mut lines) = mpsc::channel(64);
    let log = tokio::spawn(async move {
        while let Some(line) = lines.recv().await {
            tracing::info!("{line}");
        }
    });
    let applied = daemon.apply(ApplyOptions::default(), progress).await;
    let _ = log.await;
    let failed = match applied {
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
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    workers.abort_all();
    daemon.stop_everything().await;
    match failed {
        Some(why) => Err(Error::NotStarted(why)),
        None => Ok(()),
    }
}
