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
        let hierarchy = self.hierarchy_for(spec);
        Box::new(move || {
            let index = next.fetch_add(1, Ordering::Relaxed);
            let mut ctx = template.clone();
            ctx.index = index;
            ctx.cgroup = hierarchy
                .as_ref()
                .and_then(|h| group_of(h, &ctx.spec, index));
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
        let mut ctx = self.instance_ctx(spec, index, secrets, inner_port);
        ctx.cgroup = self
            .hierarchy_for(spec)
            .and_then(|h| group_of(&h, spec, index));
        supervisor::start(ctx)
    }

    /// The daemon's cgroup hierarchy, when `spec` has a limit the kernel can enforce
    /// and the daemon could prepare one (tried once; why not is logged once).
    fn hierarchy_for(&self, spec: &ServerSpec) -> Option<Arc<crate::cgroup::Hierarchy>> {
        let limits = &spec.limits;
        if limits.memory_bytes.is_none() && limits.cpu_millis.is_none() {
            return None;
        }
        self.cgroups
            .get_or_init(|| match crate::cgroup::Hierarchy::adopt() {
                Ok(h) => {
                    tracing::info!("cgroups: memory and cpu limits are enforced by the kernel ({h:?})");
                    Some(Arc::new(h))
                }
                Err(why) => {
                    tracing::warn!(
                        "cgroups: limits.memory is enforced by restarts only, limits.cpu not at all: {why}"
                    );
                    None
                }
            })
            .clone()
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
            cgroup: None,
            tasks: self.instance_tasks.clone(),
            isolated: spec.network == crate::model::spec::Network::Isolated
                && spec.mode == crate::model::spec::Mode::Local
                && self.isolation.is_ok(),
            hidden_env: match &self.source {
                Source::Fixed { hidden_env, .. } => hidden_env.clone(),
                Source::File => Vec::new(),
            },
        }
    }
}

/// A group for instance `index` of `spec` with its limits, or why not (logged).
fn group_of(
    hierarchy: &crate::cgroup::Hierarchy,
    spec: &ServerSpec,
    index: u32,
) -> Option<Arc<crate::cgroup::Group>> {
    let limits = &spec.limits;
    match hierarchy.instance(&spec.name, index, limits.memory_bytes, limits.cpu_millis) {
        Ok(group) => Some(Arc::new(group)),
        Err(why) => {
            tracing::warn!(
                "{} instance {index}: limits not enforced by the kernel: {why}",
                spec.name
            );
            None
        }
    }
}
