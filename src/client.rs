//! The CLI side of the control socket, and starting the daemon on demand.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::api::{Reply, Request};
use crate::config::store;
use crate::logs;
use crate::runtime_dir::{DAEMON_LOG, SOCKET};

/// How long a freshly started daemon has to open its socket.
const START_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no daemon is running for {0}")]
    NotRunning(String),
    #[error("cannot talk to the daemon: {0}")]
    Io(#[from] std::io::Error),
    #[error("the daemon did not start:\n{0}")]
    DidNotStart(String),
    #[error(
        "the daemon {pid} did not answer within {secs} s (stopped or wedged?); `kill {pid}` ends it and its servers"
    )]
    NotAnswering { pid: String, secs: f64 },
    #[error("the daemon sent a reply this mcpctl does not understand: {0}")]
    BadReply(String),
    /// The daemon refused or failed the request; its message is complete.
    #[error("{0}")]
    Daemon(String),
}

fn absolute(config: &Path) -> PathBuf {
    std::fs::canonicalize(config).unwrap_or_else(|_| config.to_path_buf())
}

pub fn socket_path(config: &Path) -> PathBuf {
    store::runtime_dir(&absolute(config)).join(SOCKET)
}

/// Connects to the running daemon, if there is one.
pub fn connect(config: &Path) -> Result<Option<UnixStream>, Error> {
    match UnixStream::connect(socket_path(config)) {
        Ok(s) => Ok(Some(s)),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Connects, starting a detached daemon first when none runs.
pub fn connect_or_start(config: &Path) -> Result<UnixStream, Error> {
    if let Some(stream) = connect(config)? {
        return Ok(stream);
    }
    let config = absolute(config);
    let runtime = store::runtime_dir(&config);
    std::fs::create_dir_all(&runtime)?;
    let log_path = runtime.join(DAEMON_LOG);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)?;
    let mut command = Command::new(std::env::current_exe()?);
    command
        .arg("--file")
        .arg(&config)
        .arg("daemon")
        .arg("--on-demand")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .env_remove("MCPCTL_FILE");
    // The daemon decrypts with the identity this command was given.
    if let Ok(identity) = crate::secrets::identity::path() {
        command.env("MCPCTL_IDENTITY", identity);
    }
    // A session of its own (a Ctrl-C in this terminal must not reach it), and none of
    // this command's descriptors beyond stdio.
    crate::sys::detach_on_exec(&mut command);
    let mut child = command.spawn()?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(stream) = connect(&config)? {
            return Ok(stream);
        }
        if let Some(status) = child.try_wait()? {
            // Another command may have started one at the same moment: while that
            // daemon holds the lock it is starting or running, so wait for its socket.
            if daemon_lock_held(&runtime)
                && let Some(stream) = wait_for_socket(&config, deadline)
            {
                return Ok(stream);
            }
            let tail = logs::tail(&log_path, 10).join("\n");
            return Err(Error::DidNotStart(format!(
                "it exited ({status}); {}:\n{tail}",
                log_path.display()
            )));
        }
        if Instant::now() > deadline {
            return Err(Error::DidNotStart(format!(
                "no socket after {START_TIMEOUT:?}; see {}",
                log_path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Whether some process holds the daemon lock of `runtime` (a daemon runs or starts).
fn daemon_lock_held(runtime: &Path) -> bool {
    std::fs::OpenOptions::new()
        .write(true)
        .open(runtime.join(crate::runtime_dir::LOCK))
        .is_ok_and(|f| f.try_lock().is_err())
}

fn wait_for_socket(config: &Path, deadline: Instant) -> Option<UnixStream> {
    while Instant::now() < deadline {
        if let Ok(Some(stream)) = connect(config) {
            return Some(stream);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    None
}

/// Sends `request` and returns the final reply; progress lines go to `on_progress`.
pub fn request(
    mut stream: UnixStream,
    request: &Request,
    mut on_progress: impl FnMut(&str),
) -> Result<Reply, Error> {
    let mut line = serde_json::to_string(request).map_err(|e| Error::BadReply(e.to_string()))?;
    line.push('\n');
    stream.write_all(line.as_bytes())?;
    for line in BufReader::new(stream).lines() {
        let line = line?;
        match serde_json::from_str::<Reply>(&line) {
            Ok(Reply::Progress { message }) => on_progress(&message),
            Ok(Reply::Error { message }) => return Err(Error::Daemon(message)),
            Ok(reply) => return Ok(reply),
            Err(e) => return Err(Error::BadReply(format!("{e}: {line}"))),
        }
    }
    Err(Error::BadReply(
        "the connection closed without a reply".into(),
    ))
}

/// How long a one-shot request (status, observe, stop) may wait for the daemon:
/// 15 s, or `MCPCTL_ASK_TIMEOUT_MS`.
fn ask_timeout() -> Duration {
    std::env::var("MCPCTL_ASK_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&ms: &u64| ms > 0)
        .map_or(Duration::from_secs(15), Duration::from_millis)
}

/// A one-shot request to a running daemon (none running: `Error::NotRunning`); a
/// daemon that does not answer in time is an error naming it, not a hang.
pub fn ask(config: &Path, req: &Request) -> Result<Reply, Error> {
    let Some(stream) = connect(config)? else {
        return Err(Error::NotRunning(config.display().to_string()));
    };
    let timeout = ask_timeout();
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    request(stream, req, |_| {}).map_err(|e| match e {
        Error::Io(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            let pid_file = store::runtime_dir(&absolute(config)).join(crate::runtime_dir::PID_FILE);
            Error::NotAnswering {
                pid: std::fs::read_to_string(pid_file)
                    .map(|p| p.trim().to_string())
                    .unwrap_or_else(|_| "?".into()),
                secs: timeout.as_secs_f64(),
            }
        }
        other => other,
    })
}
