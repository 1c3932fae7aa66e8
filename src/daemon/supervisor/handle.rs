//! An instance is a handle plus a task: the handle sends control messages (stop,
//! update) and watches the task's view of the instance.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use age::secrecy::SecretString;
use tokio::sync::{Notify, mpsc, oneshot, watch};

use super::*;
use crate::model::ServerSpec;
use crate::secrets::redact::Redactor;

/// Everything an instance needs, none of it shared with other instances but the launcher.
#[derive(Clone)]
pub struct InstanceCtx {
    pub spec: ServerSpec,
    pub index: u32,
    pub config_dir: PathBuf,
    pub log_path: PathBuf,
    pub daemon_pid: u32,
    pub shim: crate::shim::ShimCommand,
    /// Starts its processes (the daemon's spawner; a scripted child in tests).
    pub launcher: Arc<dyn Launcher>,
    /// Poked whenever something worth persisting changed (a new pid).
    pub changed: Arc<Notify>,
    /// For servers that speak HTTP themselves: the port they listen on, behind the
    /// gateway's (given to them as `{port}` in args and `PORT` in env).
    pub inner_port: Option<u16>,
    /// This server's secrets, handed to the process as environment variables only.
    pub secrets: BTreeMap<String, SecretString>,
    /// Removes every known secret from what is logged.
    pub redactor: Redactor,
    /// The log's lines also go to the daemon's own log (`mcpctl gateway`).
    pub tee_logs: bool,
    /// Variables of the daemon's environment kept from the server.
    pub hidden_env: Vec<String>,
    /// The instance's own cgroup (limits enforced by the kernel), where there is one.
    pub cgroup: Option<Arc<crate::cgroup::Group>>,
    /// Runs in a network namespace of its own (`network = "isolated"` where this
    /// kernel allows it).
    pub isolated: bool,
    /// The daemon's instance tasks: this one's task and its pipes' readers join them,
    /// and the daemon waits for them when it stops.
    pub tasks: crate::gateway::owned::Scope,
}

pub enum Control {
    Stop {
        force: bool,
        timeout: Duration,
        done: oneshot::Sender<()>,
    },
    /// Adopt fields that need no restart (restart policy, timeouts).
    Update(Box<ServerSpec>),
    /// Take no new work; the calls and sessions it has finish (it is stopped later).
    Drain,
    /// End the running process gracefully for this reason (a resource limit), a
    /// failure for the restart policy.
    Restart(String),
}

#[derive(Clone)]
pub struct Handle {
    /// The instance's id: unique among the server's instances for the daemon's life.
    pub index: u32,
    control: mpsc::Sender<Control>,
    pub view: watch::Receiver<View>,
}

pub fn start(ctx: InstanceCtx) -> Handle {
    let (control, rx) = mpsc::channel(8);
    let (tx, view) = watch::channel(View::new(ctx.inner_port));
    let index = ctx.index;
    ctx.tasks.clone().spawn(run(ctx, rx, tx));
    Handle {
        index,
        control,
        view,
    }
}

impl Handle {
    /// Stops the instance and waits until its process group is gone.
    pub async fn stop(&self, force: bool, timeout: Duration) {
        let (done, wait) = oneshot::channel();
        if self
            .control
            .send(Control::Stop {
                force,
                timeout,
                done,
            })
            .await
            .is_ok()
        {
            let _ = wait.await;
        }
    }

    /// Asks for a restart (see [`Control::Restart`]); dropped when one is already queued.
    pub fn restart(&self, reason: String) {
        let _ = self.control.try_send(Control::Restart(reason));
    }

    /// Marks the instance draining (see [`Control::Drain`]).
    pub async fn drain(&self) {
        let _ = self.control.send(Control::Drain).await;
    }

    pub async fn update(&self, spec: &ServerSpec) {
        let _ = self
            .control
            .send(Control::Update(Box::new(spec.clone())))
            .await;
    }

    /// Waits until the first start has succeeded or failed.
    pub async fn settled(&self) -> View {
        let mut view = self.view.clone();
        let settled = view
            .wait_for(|v| {
                v.phase() == Phase::Running || (v.attempts >= 1 && v.phase() != Phase::Starting)
            })
            .await
            .map(|v| v.clone());
        settled.unwrap_or_else(|_| view.borrow().clone())
    }
}
