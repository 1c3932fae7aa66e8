//! Every child is forked by one thread that lives as long as the daemon.
//!
//! PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not the
//! process. Forking from tokio's blocking pool (threads retire after 10 s idle) would
//! kill healthy servers; forking from this thread ties the death signal to the daemon.
//!
//! The daemon is a child subreaper: when a shim is killed, what it leaves (a server
//! that outlived its SIGKILL death signal for a moment, a `setsid` grandchild) becomes
//! the daemon's child. Every child that is not a shim spawned here is such a leftover:
//! [`Spawner::sweep_orphans`] kills it and reaps it.

use std::collections::HashSet;
use std::io;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use std::sync::{Arc, Mutex, mpsc};

use crate::sys;

use tokio::sync::oneshot;

pub(super) struct Spawned {
    pub pid: u32,
    pub stdin: Option<ChildStdin>,
    pub stdout: Option<ChildStdout>,
    pub stderr: Option<ChildStderr>,
    /// Resolves with the shell-style exit code once the process has been reaped.
    pub exited: oneshot::Receiver<i32>,
}

type Job = (Command, oneshot::Sender<io::Result<Spawned>>);

/// The shims alive (spawned and not yet reaped). Held while forking, so a sweep
/// never sees a shim before it is listed.
type Shims = Arc<Mutex<HashSet<u32>>>;

#[derive(Clone)]
pub(super) struct Spawner {
    jobs: mpsc::Sender<Job>,
    shims: Shims,
}

impl Spawner {
    pub(super) fn start() -> io::Result<Self> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let shims = Shims::default();
        let listed = Arc::clone(&shims);
        std::thread::Builder::new()
            .name("mcpctl-spawner".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    let mut alive = listed
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    let spawned = command.spawn();
                    if let Ok(child) = &spawned {
                        alive.insert(child.id());
                    }
                    drop(alive);
                    let _ = reply.send(spawned.map(|c| watch_exit(c, Arc::clone(&listed))));
                }
            })?;
        Ok(Self { jobs, shims })
    }

    /// Kills and reaps every child of the daemon that is not a live shim: what a
    /// killed shim left behind. Returns how many were found.
    pub(super) fn sweep_orphans(&self) -> usize {
        let shims = self
            .shims
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let orphans: Vec<u32> = sys::children_of(std::process::id())
            .into_iter()
            .filter(|pid| !shims.contains(pid))
            .collect();
        drop(shims);
        for &pid in &orphans {
            if !sys::reap_if_ended(pid) {
                let _ = sys::kill(pid, sys::SIGKILL);
                // Killed processes are reaped on the SIGCHLD their death sends.
                sys::reap_if_ended(pid);
            }
        }
        orphans.len()
    }

    async fn spawn(&self, command: Command) -> io::Result<Spawned> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send((command, tx))
            .map_err(|_| io::Error::other("the spawner thread is gone"))?;
        rx.await
            .map_err(|_| io::Error::other("the spawner thread is gone"))?
    }
}

impl Spawner {
    /// Runs `command` (stdout piped) to its end, listed like a shim so no sweep kills
    /// it: what it printed (at most 1 MiB), when it exited 0.
    pub(super) async fn output(&self, command: Command) -> Option<String> {
        use tokio::io::AsyncReadExt;
        let spawned = self.spawn(command).await.ok()?;
        let mut text = String::new();
        if let Some(stdout) = spawned
            .stdout
            .and_then(|p| tokio::process::ChildStdout::from_std(p).ok())
        {
            let _ = stdout.take(1 << 20).read_to_string(&mut text).await;
        }
        (spawned.exited.await.ok()? == 0).then_some(text)
    }
}

/// Takes the pipes and reaps the child on a thread of its own.
fn watch_exit(mut child: Child, shims: Shims) -> Spawned {
    let (tx, exited) = oneshot::channel();
    let spawned = Spawned {
        pid: child.id(),
        stdin: child.stdin.take(),
        stdout: child.stdout.take(),
        stderr: child.stderr.take(),
        exited,
    };
    let _ = std::thread::Builder::new()
        .name("mcpctl-reaper".into())
        .spawn(move || {
            use std::os::unix::process::ExitStatusExt;
            let code = match child.wait() {
                Ok(status) => status
                    .code()
                    .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
                Err(_) => -1,
            };
            if let Ok(mut shims) = shims.lock() {
                shims.remove(&child.id());
            }
            let _ = tx.send(code);
        });
    spawned
}

/// The daemon's launcher: the shim's pipes as async streams, its signals through the OS.
impl super::supervisor::Launcher for Spawner {
    fn launch(&self, command: Command) -> super::supervisor::Launching<'_> {
        use super::supervisor::{Input, Launched, Os, Output};
        Box::pin(async move {
            let spawned = self.spawn(command).await?;
            let stdin = spawned
                .stdin
                .and_then(|p| tokio::process::ChildStdin::from_std(p).ok())
                .map(|p| Box::new(p) as Input);
            let stdout = spawned
                .stdout
                .and_then(|p| tokio::process::ChildStdout::from_std(p).ok())
                .map(|p| Box::new(p) as Output);
            let stderr = spawned
                .stderr
                .and_then(|p| tokio::process::ChildStderr::from_std(p).ok())
                .map(|p| Box::new(p) as Output);
            Ok(Launched {
                pid: spawned.pid,
                stdin,
                stdout,
                stderr,
                exited: spawned.exited,
                processes: Arc::new(Os),
            })
        })
    }
}
