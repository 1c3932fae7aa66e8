//! The bridge's stdin and stdout: polled by its runtime itself when they are pipes or
//! a socket (what clients give a stdio server), so a line costs no hand-off to a
//! blocking thread (tokio's `stdin()`/`stdout()` read and write on one, which doubled
//! the bridge's latency: `bench/report-2026-12-02-connect.md`); tokio's otherwise (a
//! file, a terminal).

use std::os::fd::AsFd;

use tokio::io::{AsyncRead, AsyncWrite};

/// stdin: polled by the runtime itself when it is a pipe or a socket (what clients
/// give a stdio server: pipes, or a socket pair from Node's `child_process`), else
/// tokio's stdin, which reads on a blocking thread, a hand-off per line.
pub(super) fn stdin() -> Box<dyn AsyncRead + Unpin + Send> {
    match polled(std::io::stdin().as_fd()) {
        Some(Polled::Pipe(fd)) => match tokio::net::unix::pipe::Receiver::from_owned_fd(fd) {
            Ok(pipe) => Box::new(pipe),
            Err(_) => Box::new(tokio::io::stdin()),
        },
        Some(Polled::Socket(socket)) => Box::new(socket),
        None => Box::new(tokio::io::stdin()),
    }
}

/// stdout, the same way.
pub(super) fn stdout() -> Box<dyn AsyncWrite + Unpin + Send> {
    match polled(std::io::stdout().as_fd()) {
        Some(Polled::Pipe(fd)) => match tokio::net::unix::pipe::Sender::from_owned_fd(fd) {
            Ok(pipe) => Box::new(pipe),
            Err(_) => Box::new(tokio::io::stdout()),
        },
        Some(Polled::Socket(socket)) => Box::new(socket),
        None => Box::new(tokio::io::stdout()),
    }
}

enum Polled {
    Pipe(std::os::fd::OwnedFd),
    Socket(tokio::net::UnixStream),
}

/// A copy of `fd` the runtime can poll, when it is a pipe or a socket (made
/// non-blocking, which only this process's end shares).
fn polled(fd: std::os::fd::BorrowedFd<'_>) -> Option<Polled> {
    use std::os::unix::fs::FileTypeExt;
    let fd = fd.try_clone_to_owned().ok()?;
    let file = std::fs::File::from(fd);
    let kind = file.metadata().ok()?.file_type();
    if kind.is_fifo() {
        return Some(Polled::Pipe(file.into()));
    }
    if kind.is_socket() {
        let socket = std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(file));
        socket.set_nonblocking(true).ok()?;
        return tokio::net::UnixStream::from_std(socket)
            .ok()
            .map(Polled::Socket);
    }
    None
}
