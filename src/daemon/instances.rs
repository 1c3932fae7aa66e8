//! Making instances: their ids (never reused while the daemon runs), their context
//! (spec, secrets, log, shim), and per-session starts.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::model::ServerSpec;
use crate::secrets::redact::Redactor;
use crate::secrets::unlock::Unlocked as Secrets;

use super::supervisor::{self, Handle, InstanceCtx};
use super::*;
use crate::logs;

impl Daemon {
    pub(super) fn log_path(&self, server: &str, index: u32) -> PathBuf {
        logs::log_path(&self.runtime_dir, server, index)
    }

    /// The next id for an instance of `server`.
    pub(super) fn next_id(&self, server: &str) -> u32 {
        self.ids_of(server).fetch_add(1, Ordering::Relaxed)
    }

    pub(super) fn ids_of(&self, server: &str) -> Arc<AtomicU32> {
        let mut ids = self
            .instance_ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(ids.entry(server.to_string()).or_default())
    }

    /// Starts per-session instances of `spec`, numbered like the others.
    pub(super) fn session_instances(
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
            (index, supervisor::start(ctx))
        })
    }

    pub(super) fn start_instance(
        &self,
        spec: &ServerSpec,
        index: u32,
        secrets: &Secrets,
        inner_port: Option<u16>,
    ) -> Handle {
        supervisor::start(self.instance_ctx(spec, index, secrets, inner_port))
    }

    pub(super) fn instance_ctx(
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
            launcher: Arc::new(self.spawner.clone()),
            changed: Arc::clone(&self.changed),
            tee_logs: matches!(self.source, Source::Fixed { .. }),
            hidden_env: match &self.source {
                Source::Fixed { hidden_env, .. } => hidden_env.clone(),
                Source::File => Vec::new(),
            },
        }
    }
}
