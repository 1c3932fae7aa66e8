//! The per-instance shim: `mcpctl __shim`, started by the daemon as the leader of a
//! new process group, runs the server's command and guarantees that nothing of it
//! outlives the stop or the daemon.
//!
//! Why a shim: PR_SET_PDEATHSIG only covers the direct child, and the real server is
//! often a grandchild (`npx`, `sh -c`). The shim
//! - asks for SIGTERM when the daemon's spawning thread dies, and exits at once if the
//!   daemon is already gone (the race between fork and prctl);
//! - is a child subreaper, so descendants that detach (even with `setsid`) become its
//!   children, and it reaps every one of them: no zombies;
//! - on SIGTERM sends SIGTERM and SIGCONT to its group and its descendants, waits the
//!   stop timeout, then SIGKILLs whatever is left; SIGUSR1 skips the wait (`--force`);
//!   SIGUSR2 carries a new stop timeout in milliseconds (an in-place change);
//! - when the server exits by itself, clears its leftovers the same way and exits
//!   with the server's exit code.
//!
//! It waits for signals synchronously (`sigtimedwait`) with them blocked, so there are
//! no signal handlers and no async-signal-safety concerns.

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::sys::{self, Reaped};

/// Exit code when the command cannot be started (as a shell does).
const CANNOT_START: i32 = 127;
/// How often leftovers are looked for while stopping.
const SWEEP: Duration = Duration::from_millis(50);

/// How the daemon runs a shim: the small `mcpctl-shim` beside the `mcpctl` binary
/// when it is there, else `mcpctl __shim`.
#[derive(Clone, Debug)]
pub struct ShimCommand {
    pub exe: std::path::PathBuf,
    /// `exe` is mcpctl itself: the `__shim` subcommand comes first.
    pub subcommand: bool,
}

impl ShimCommand {
    pub fn find() -> std::io::Result<Self> {
        let me = std::env::current_exe()?;
        let small = me.with_file_name("mcpctl-shim");
        Ok(if small.is_file() {
            Self {
                exe: small,
                subcommand: false,
            }
        } else {
            Self {
                exe: me,
                subcommand: true,
            }
        })
    }
}

/// The arguments after `__shim`, exactly as the daemon writes them:
/// `--stop-timeout-ms N --daemon-pid P -- COMMAND ARGS...`. Read by hand so that a
/// shim starts without building the whole command line interface (it starts once
/// per server process, and its start is part of the server's).
pub fn parse_args(args: &[String]) -> Option<(Duration, u32, Vec<String>)> {
    match args {
        [t, ms, p, pid, dashes, command @ ..]
            if t == "--stop-timeout-ms"
                && p == "--daemon-pid"
                && dashes == "--"
                && !command.is_empty() =>
        {
            Some((
                Duration::from_millis(ms.parse().ok()?),
                pid.parse().ok()?,
                command.to_vec(),
            ))
        }
        _ => None,
    }
}

pub fn run(mut stop_timeout: Duration, daemon_pid: u32, command: &[String]) -> i32 {
    if sys::set_parent_death_signal(sys::SIGTERM).is_err() || sys::getppid() != daemon_pid {
        // The daemon died before the death signal was armed: nobody would stop us.
        return 1;
    }
    let _ = sys::set_child_subreaper();
    let Ok(signals) = sys::block_signals(&[
        sys::SIGTERM,
        sys::SIGINT,
        sys::SIGHUP,
        sys::SIGCHLD,
        sys::SIGUSR1,
        sys::SIGUSR2,
    ]) else {
        return 1;
    };
    let Some((program, args)) = command.split_first() else {
        crate::note!("mcpctl: no command to run");
        return CANNOT_START;
    };
    let mut command = Command::new(program);
    command.args(args);
    sys::prepare_server_exec(&mut command, std::process::id());
    let main_pid = match command.spawn() {
        Ok(child) => child.id(),
        Err(e) => {
            crate::note!("mcpctl: cannot start `{program}`: {e}");
            return CANNOT_START;
        }
    };
    // The server has the pipes now; ours would keep them open after it closes them.
    let _ = sys::stdin_stdout_to_null();

    let me = std::process::id();
    let mut main_status: Option<i32> = None;
    // Set once stopping: when the grace period ends.
    let mut kill_at: Option<Instant> = None;
    // Descendants already asked to stop; ones that show up later (re-parented to us
    // when their parent dies) are asked too.
    let mut asked: HashSet<u32> = HashSet::new();
    loop {
        loop {
            match sys::reap_any() {
                Reaped::Child(pid, code) if pid == main_pid => main_status = Some(code),
                Reaped::Child(..) => {}
                Reaped::Running => break,
                Reaped::NoChildren => return main_status.unwrap_or(1),
            }
        }
        let now = Instant::now();
        if main_status.is_some() && kill_at.is_none() {
            // The server ended by itself: give what it left the same grace.
            kill_at = Some(now + stop_timeout);
        }
        let wait = match kill_at {
            Some(at) if now >= at => {
                for pid in descendants(me) {
                    let _ = sys::kill(pid, sys::SIGKILL);
                }
                SWEEP
            }
            Some(at) => {
                for pid in descendants(me) {
                    if asked.insert(pid) {
                        let _ = sys::kill(pid, sys::SIGTERM);
                        let _ = sys::kill(pid, sys::SIGCONT);
                    }
                }
                (at - now).min(SWEEP)
            }
            None => Duration::from_secs(1),
        };
        match sys::wait_signal(&signals, wait) {
            Some((sys::SIGUSR1, _)) => kill_at = Some(Instant::now()),
            Some((sys::SIGUSR2, ms)) => {
                stop_timeout = Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX));
            }
            Some((sys::SIGTERM | sys::SIGINT | sys::SIGHUP, _)) if kill_at.is_none() => {
                kill_at = Some(Instant::now() + stop_timeout);
            }
            _ => {}
        }
    }
}

/// Live processes in the shim's group, and children re-parented to it.
fn descendants(me: u32) -> Vec<u32> {
    sys::all_pids()
        .into_iter()
        .filter(|&pid| pid != me)
        .filter(|&pid| {
            sys::proc_stat(pid).is_some_and(|s| (s.pgrp == me || s.ppid == me) && !s.zombie)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| (*a).to_string()).collect()
    }

    #[test]
    fn the_daemons_shim_arguments_parse_and_nothing_else_does() {
        let given = strings(&[
            "--stop-timeout-ms",
            "250",
            "--daemon-pid",
            "7",
            "--",
            "srv",
            "-v",
        ]);
        assert_eq!(
            parse_args(&given),
            Some((Duration::from_millis(250), 7, strings(&["srv", "-v"])))
        );
        for bad in [
            strings(&["--stop-timeout-ms", "x", "--daemon-pid", "7", "--", "srv"]),
            strings(&["--stop-timeout-ms", "1", "--daemon-pid", "7", "--"]),
            strings(&["--daemon-pid", "7", "--stop-timeout-ms", "1", "--", "srv"]),
            strings(&[]),
        ] {
            assert_eq!(parse_args(&bad), None, "{bad:?}");
        }
    }
}
