//! Every child is forked by one thread that lives as long as the daemon.
//!
//! PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not the
//! process. Forking from tokio's blocking pool (threads retire after 10 s idle) would
//! kill healthy servers; forking from this thread ties the death signal to the daemon.

use std::io;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use std::sync::mpsc;

use tokio::sync::oneshot;

pub struct Spawned {
    pub pid: u32,
    pub stdin: Option<ChildStdin>,
    pub stdout: Option<ChildStdout>,
    pub stderr: Option<ChildStderr>,
    /// Resolves with the shell-style exit code once the process has been reaped.
    pub exited: oneshot::Receiver<i32>,
}

type Job = (Command, oneshot::Sender<io::Result<Spawned>>);

#[derive(Clone)]
pub struct Spawner {
    jobs: mpsc::Sender<Job>,
}

impl Spawner {
    pub fn start() -> io::Result<Self> {
        let (jobs, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("mcpctl-spawner".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn().map(watch_exit));
                }
            })?;
        Ok(Self { jobs })
    }

    pub async fn spawn(&self, command: Command) -> io::Result<Spawned> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send((command, tx))
            .map_err(|_| io::Error::other("the spawner thread is gone"))?;
        rx.await
            .map_err(|_| io::Error::other("the spawner thread is gone"))?
    }
}

/// Takes the pipes and reaps the child on a thread of its own.
fn watch_exit(mut child: Child) -> Spawned {
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
            let _ = tx.send(code);
        });
    spawned
}
