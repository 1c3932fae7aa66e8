//! The bridge's stdin and stdout: polled by its runtime itself when they are pipes or
//! a socket (what clients give a stdio server), so a line costs no hand-off to a
//! blocking thread (tokio's `stdin()`/`stdout()` read and write on one, which doubled
//! the bridge's latency: `bench/report-2026-12-02-connect.md`); tokio's otherwise (a
//! file, a terminal).

use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, Interest};

/// The blocking mode stdin and stdout had when the bridge started, put back when this
/// is dropped (after the runtime is gone): making a pipe pollable sets `O_NONBLOCK` on
/// the open file description, which the client shares, and a shell handed back a
/// non-blocking terminal or pipe fails its next read with EAGAIN.
pub(super) struct Restore([(i32, Option<bool>); 2]);

impl Restore {
    pub(super) fn record() -> Self {
        Self([0, 1].map(|fd| (fd, crate::sys::is_nonblocking(fd))))
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        for (fd, was) in self.0 {
            if let Some(was) = was
                && crate::sys::is_nonblocking(fd) != Some(was)
            {
                // Nothing to do about a failure at exit but leave it as it is.
                let _ = crate::sys::set_nonblocking(fd, was);
            }
        }
    }
}

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

/// stdout, the same way, and whether its reader went away.
pub(super) struct Stdout {
    writer: Box<dyn AsyncWrite + Unpin + Send + Sync>,
    /// A pipe's write end, watched for the error epoll reports once its read end is
    /// closed; nothing to watch for a socket or tokio's stdout.
    pipe: Option<Arc<tokio::net::unix::pipe::Sender>>,
}

pub(super) fn stdout() -> Stdout {
    let std = || Stdout {
        writer: Box::new(tokio::io::stdout()),
        pipe: None,
    };
    match polled(std::io::stdout().as_fd()) {
        Some(Polled::Pipe(fd)) => match tokio::net::unix::pipe::Sender::from_owned_fd(fd) {
            Ok(pipe) => {
                let pipe = Arc::new(pipe);
                Stdout {
                    writer: Box::new(SharedPipe(Arc::clone(&pipe))),
                    pipe: Some(pipe),
                }
            }
            Err(_) => std(),
        },
        Some(Polled::Socket(socket)) => Stdout {
            writer: Box::new(socket),
            pipe: None,
        },
        None => std(),
    }
}

impl Stdout {
    /// Writes one message and flushes it.
    pub(super) async fn write(&mut self, message: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(message).await?;
        self.writer.flush().await
    }

    /// What resolves once nobody reads stdout any more (never, when that cannot be
    /// seen before a write fails), to be awaited apart from the writes.
    pub(super) fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        let pipe = self.pipe.clone();
        async move {
            let Some(pipe) = pipe else {
                return std::future::pending().await;
            };
            match pipe.ready(Interest::ERROR).await {
                Ok(ready) if !ready.is_error() => std::future::pending().await,
                _ => {}
            }
        }
    }
}

/// A pipe written through a shared handle (the watch for its closing holds another).
struct SharedPipe(Arc<tokio::net::unix::pipe::Sender>);

impl AsyncWrite for SharedPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        loop {
            std::task::ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                done => return Poll::Ready(done),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
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
