//! The accept loop of a gateway port, plain or TLS, with bounds: at most
//! `max_connections` at once, and at most `total` for every port of the process
//! together (either full, the loop stops accepting until one closes, so the kernel
//! queues newcomers instead of the daemon running out of descriptors), and a timeout
//! for a request's headers, which is also how long an idle keep-alive connection may
//! wait for its next request. A slow or silent client holds a slot for that long, no
//! more. The connections belong to the loop: when it ends (the server stops), every one
//! of them is closed, idle keep-alive connections included.
//!
//! Every request carries its connection's [`Hangup`] (an extension): a handler whose
//! stream is cut fires it, and the connection is closed at once. The HTTP server only
//! polls a response body when the socket takes more, so a client that stopped reading
//! would otherwise keep its connection, and the bytes buffered for it, forever.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::http::Request;
use hyper::body::Incoming;
use hyper::service::Service as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::meter::Meter;

/// A client that has not finished its TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// See [`ConnectionLimits::write_stall`].
const WRITE_STALL: Duration = Duration::from_secs(30);

/// Closes one connection when fired (from any task, before or after the connection
/// waits for it: the one firing that counts is kept).
#[derive(Debug, Clone, Default)]
pub struct Hangup(Arc<Notify>);

impl Hangup {
    pub fn fire(&self) {
        self.0.notify_one();
    }

    /// Resolves once fired.
    pub async fn fired(&self) {
        self.0.notified().await;
    }
}

/// The bounds of a port's connections.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    /// How long a write may make no progress (a client that stops reading) before
    /// the connection is closed, and what the server had for it freed.
    pub write_stall: Duration,
    /// Connections of every port of the process together (see [`process_wide`]).
    pub total: Arc<Semaphore>,
}

/// The bound on the connections of all ports together, one for the process: each
/// port's own bound keeps one port from taking them all, but many busy ports could
/// still run the daemon out of descriptors (and then its children and its control
/// socket with it). `MCPCTL_MAX_CONNECTIONS_TOTAL`, or three quarters of the open-file
/// limit (at most 16,384), leaving the rest for children's pipes, logs and sockets.
fn process_wide() -> Arc<Semaphore> {
    static TOTAL: std::sync::OnceLock<Arc<Semaphore>> = std::sync::OnceLock::new();
    Arc::clone(TOTAL.get_or_init(|| {
        let fd_limit = crate::sys::open_file_limit().unwrap_or(1024);
        let default = usize::try_from(fd_limit / 4 * 3)
            .unwrap_or(16_384)
            .clamp(16, 16_384);
        let total = std::env::var("MCPCTL_MAX_CONNECTIONS_TOTAL")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or(default);
        Arc::new(Semaphore::new(total.min(Semaphore::MAX_PERMITS)))
    }))
}

impl ConnectionLimits {
    /// `MCPCTL_MAX_CONNECTIONS` (default: half the open-file limit, at most 8,192) and
    /// `MCPCTL_HEADER_TIMEOUT_MS` (default 10 s) from the daemon's environment.
    pub fn from_env() -> Self {
        let fd_limit = crate::sys::open_file_limit().unwrap_or(1024);
        let default_max = usize::try_from(fd_limit / 2)
            .unwrap_or(8192)
            .clamp(16, 8192);
        let number = |name: &str| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|&n| n > 0)
        };
        Self {
            max_connections: number("MCPCTL_MAX_CONNECTIONS")
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(default_max),
            header_timeout: number("MCPCTL_HEADER_TIMEOUT_MS")
                .map_or(Duration::from_secs(10), Duration::from_millis),
            write_stall: number("MCPCTL_WRITE_STALL_MS").map_or(WRITE_STALL, Duration::from_millis),
            total: process_wide(),
        }
    }
}

/// The listen backlog when the system's maximum cannot be read (Linux's default
/// `somaxconn` since 5.4).
const FALLBACK_BACKLOG: u32 = 4096;

/// Binds `addr` and listens with the system's largest backlog: a burst of connects
/// beyond a small queue (the usual 128) is dropped by the kernel, and those clients
/// retry only after a second or more, while the loop below could have taken them.
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does: a restarted server gets its port back at once.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog(
        std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .as_deref(),
    ))
}

/// The backlog to ask for, given the text of `net.core.somaxconn` (the kernel caps
/// any request at that anyway).
fn backlog(somaxconn: Option<&str>) -> u32 {
    somaxconn
        .and_then(|text| text.trim().parse::<u32>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(FALLBACK_BACKLOG)
}

/// Serves `app` on `listener` with the bounds of `limits`, uncounted (the daemon's own
/// `/metrics`), until the task is aborted.
pub async fn serve_plain(listener: TcpListener, app: Router, limits: ConnectionLimits) {
    serve(listener, app, None, limits, Meter::new()).await;
}

/// Serves `app` on `listener` (over TLS with `tls`) until the task is aborted, which
/// also ends every connection it accepted.
pub(super) async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<ServerConfig>>,
    limits: ConnectionLimits,
    meter: Arc<Meter>,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut connections = JoinSet::new();
    loop {
        // Finished connections are reaped as they end, so the set holds only live ones.
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot,
            Some(_) = connections.join_next() => continue,
        };
        let Ok(slot) = slot else { return };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next() => continue,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(_) => {
                // Out of descriptors, most likely: let connections close first.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // The same policy when every port together is full: this one connection
        // waits, and no other is accepted (the kernel queues newcomers) until one of
        // any port closes. Taken after the accept, so that an idle port holds none.
        let shared = loop {
            tokio::select! {
                shared = Arc::clone(&limits.total).acquire_owned() => break shared,
                Some(_) = connections.join_next() => {}
            }
        };
        let Ok(shared) = shared else { return };
        let hangup = Hangup::default();
        let service = {
            let app = TowerToHyperService::new(app.clone());
            let hangup = hangup.clone();
            hyper::service::service_fn(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(hangup.clone());
                app.call(request)
            })
        };
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout);
        let acceptor = acceptor.clone();
        let tcp = Counted {
            inner: tcp,
            meter: Arc::clone(&meter),
            stall_limit: limits.write_stall,
            stalled: None,
        };
        let open = meter.connection();
        connections.spawn(async move {
            let _slot = (slot, shared);
            let _open = open;
            // Fired, the connection is dropped (closed) wherever it is.
            match acceptor {
                Some(acceptor) => {
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = http.serve_connection(TokioIo::new(stream), service) => {}
                        () = hangup.fired() => {}
                    }
                }
                None => {
                    tokio::select! {
                        _ = http.serve_connection(TokioIo::new(tcp), service) => {}
                        () = hangup.fired() => {}
                    }
                }
            }
        });
    }
}

/// A connection whose bytes in and out are counted on the port's meter (as they cross
/// the socket: TLS records included), and whose writes may not stall for longer than
/// `stall_limit`: a client that stops reading is cut, and what waited for it (an answer
/// of megabytes in the HTTP stack's buffer) freed.
struct Counted<S> {
    inner: S,
    meter: Arc<Meter>,
    stall_limit: Duration,
    /// Since a write last made no progress: fires at the limit (and wakes the task).
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> Counted<S> {
    /// After a write: progress clears the stall; no progress starts (or checks) it.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let limit = self.stall_limit;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client read nothing for too long",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.meter.read(buf.filled().len() - before);
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = polled {
            self.meter.wrote(n);
        }
        self.watch(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            self.meter.wrote(n);
        }
        self.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backlog_is_the_systems_maximum() {
        assert_eq!(backlog(Some("4096\n")), 4096);
        assert_eq!(backlog(Some("65535")), 65535);
        assert_eq!(backlog(Some("0")), FALLBACK_BACKLOG);
        assert_eq!(backlog(Some("lots")), FALLBACK_BACKLOG);
        assert_eq!(backlog(None), FALLBACK_BACKLOG);
    }
}
