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

/// What the daemon tells a shim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShimArgs {
    pub stop_timeout: Duration,
    pub daemon_pid: u32,
    /// Run the server in a network namespace of its own.
    pub isolate_network: bool,
    /// The shim's stdin is the daemon's socket for reaching the (isolated) server's
    /// loopback, not the server's stdin (see [`hand_out_sockets`]).
    pub serve_sockets: bool,
    pub command: Vec<String>,
}

/// The arguments after `__shim`, exactly as the daemon writes them:
/// `--stop-timeout-ms N --daemon-pid P [--netns [--sockets]] -- COMMAND ARGS...`. Read by hand so
/// that a shim starts without building the whole command line interface (it starts
/// once per server process, and its start is part of the server's).
pub fn parse_args(args: &[String]) -> Option<ShimArgs> {
    let [t, ms, p, pid, rest @ ..] = args else {
        return None;
    };
    if t != "--stop-timeout-ms" || p != "--daemon-pid" {
        return None;
    }
    let (isolate_network, rest) = match rest {
        [flag, rest @ ..] if flag == "--netns" => (true, rest),
        _ => (false, rest),
    };
    let (serve_sockets, rest) = match rest {
        [flag, rest @ ..] if flag == "--sockets" && isolate_network => (true, rest),
        _ => (false, rest),
    };
    match rest {
        [dashes, command @ ..] if dashes == "--" && !command.is_empty() => Some(ShimArgs {
            stop_timeout: Duration::from_millis(ms.parse().ok()?),
            daemon_pid: pid.parse().ok()?,
            isolate_network,
            serve_sockets,
            command: command.to_vec(),
        }),
        _ => None,
    }
}

/// Whether servers can run in a network namespace of their own here: `Err` says why
/// not (the kernel or its policy refuses unprivileged user namespaces, say). Asked of a
/// short-lived `mcpctl __netns-probe`, since a process that made a namespace stays in it.
pub fn probe_isolation() -> Result<(), NoIsolation> {
    let me = std::env::current_exe().map_err(NoIsolation::NoSelf)?;
    let out = Command::new(me)
        .arg("__netns-probe")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .map_err(NoIsolation::NoProbe)?;
    if out.status.success() {
        return Ok(());
    }
    let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
    Err(if why.is_empty() {
        NoIsolation::Ended(out.status)
    } else {
        NoIsolation::Refused(why)
    })
}

/// Why servers cannot have a network namespace of their own here.
#[derive(Debug, thiserror::Error)]
pub enum NoIsolation {
    #[error("cannot find mcpctl itself: {0}")]
    NoSelf(#[source] std::io::Error),
    #[error("cannot run the probe: {0}")]
    NoProbe(#[source] std::io::Error),
    #[error("the probe ended with {0}")]
    Ended(std::process::ExitStatus),
    #[error("this kernel refuses a network namespace to this user: {0}")]
    Refused(String),
}

/// `mcpctl __netns-probe`: 0 when this process could move into a network namespace
/// of its own, else 1 with why on stderr.
pub fn probe_main() -> u8 {
    match sys::isolate_network() {
        Ok(()) => 0,
        Err(e) => {
            crate::note!("{e}");
            1
        }
    }
}

/// Exit code when the server's network namespace cannot be made.
const CANNOT_ISOLATE: i32 = 126;

pub fn run(args: ShimArgs) -> i32 {
    let ShimArgs {
        mut stop_timeout,
        daemon_pid,
        isolate_network,
        serve_sockets,
        command,
    } = args;
    if sys::set_parent_death_signal(sys::SIGTERM).is_err() || sys::getppid() != daemon_pid {
        // The daemon died before the death signal was armed: nobody would stop us.
        return 1;
    }
    // Before any thread exists: a user namespace refuses a threaded process.
    if isolate_network && let Err(e) = sys::isolate_network() {
        crate::note!("mcpctl: cannot give the server a network of its own: {e}");
        return CANNOT_ISOLATE;
    }
    let sockets = if serve_sockets {
        use std::os::fd::AsFd;
        match std::io::stdin().as_fd().try_clone_to_owned() {
            Ok(daemon) => Some(daemon),
            Err(e) => {
                crate::note!("mcpctl: no socket to the daemon: {e}");
                return CANNOT_ISOLATE;
            }
        }
    } else {
        None
    };
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
    if sockets.is_some() {
        // The daemon's socket stays the shim's.
        command.stdin(std::process::Stdio::null());
    }
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
    if let Some(daemon) = sockets {
        // Signals stay blocked in this thread too (it inherits the mask).
        let _ = std::thread::Builder::new()
            .name("sockets".into())
            .spawn(move || hand_out_sockets(daemon));
    }

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

/// Hands the daemon a TCP socket made in the server's network namespace for each byte
/// it sends, until it closes its end: connected by the daemon, such a socket reaches
/// the server's loopback, which nothing else on the machine can.
fn hand_out_sockets(daemon: std::os::fd::OwnedFd) {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let mut daemon = std::os::unix::net::UnixStream::from(daemon);
    let mut byte = [0u8; 1];
    while matches!(daemon.read(&mut byte), Ok(1)) {
        let sent = sys::tcp_socket()
            .and_then(|socket| sys::send_fd(daemon.as_raw_fd(), socket.as_raw_fd()));
        if sent.is_err() {
            // Closing tells the daemon: no more connections to this server.
            break;
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
            Some(ShimArgs {
                stop_timeout: Duration::from_millis(250),
                daemon_pid: 7,
                isolate_network: false,
                serve_sockets: false,
                command: strings(&["srv", "-v"])
            })
        );
        let isolated = strings(&[
            "--stop-timeout-ms",
            "250",
            "--daemon-pid",
            "7",
            "--netns",
            "--sockets",
            "--",
            "--netns",
        ]);
        assert_eq!(
            parse_args(&isolated).map(|a| (a.isolate_network, a.serve_sockets, a.command)),
            Some((true, true, strings(&["--netns"])))
        );
        for bad in [
            strings(&["--stop-timeout-ms", "x", "--daemon-pid", "7", "--", "srv"]),
            strings(&["--stop-timeout-ms", "1", "--daemon-pid", "7", "--"]),
            strings(&[
                "--stop-timeout-ms",
                "1",
                "--daemon-pid",
                "7",
                "--netns",
                "srv",
            ]),
            // Sockets come only from an isolated server's shim.
            strings(&[
                "--stop-timeout-ms",
                "1",
                "--daemon-pid",
                "7",
                "--sockets",
                "--",
                "srv",
            ]),
            strings(&["--daemon-pid", "7", "--stop-timeout-ms", "1", "--", "srv"]),
            strings(&[]),
        ] {
            assert_eq!(parse_args(&bad), None, "{bad:?}");
        }
    }
}
