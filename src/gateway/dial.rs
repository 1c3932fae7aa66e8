//! Reaching a local HTTP server's inner port. A server that runs in a network namespace
//! of its own (see `crate::shim`) listens on *its* loopback, which no other process of
//! the machine reaches, so another local user cannot call it around the gateway's
//! checks. The daemon reaches it with sockets made inside that namespace: its shim
//! hands one over a Unix socket for each byte the daemon sends ([`Namespace`]).
//!
//! Registered namespaces are looked up by inner port ([`register`]); the proxy's
//! connector and the readiness probe connect through [`connect_loopback`], which
//! falls back to plain loopback for a server that runs without one.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, Weak};

use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::{TcpSocket, TcpStream, UnixStream};

/// The daemon's end of one shim's socket source.
#[derive(Debug)]
pub struct Namespace {
    /// One request at a time: a byte out, a descriptor back.
    shim: tokio::sync::Mutex<UnixStream>,
}

impl Namespace {
    pub fn new(shim: std::os::unix::net::UnixStream) -> io::Result<Self> {
        shim.set_nonblocking(true)?;
        Ok(Self {
            shim: tokio::sync::Mutex::new(UnixStream::from_std(shim)?),
        })
    }

    /// A TCP connection to `port` on the namespace's loopback.
    pub async fn connect(&self, port: u16) -> io::Result<TcpStream> {
        let socket = {
            let mut shim = self.shim.lock().await;
            // A descriptor left over by a request whose caller gave up is as good
            // as a new one.
            match shim.try_io(Interest::READABLE, || receive(&shim)) {
                Ok(socket) => socket,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    shim.write_all(&[1]).await?;
                    loop {
                        shim.readable().await?;
                        match shim.try_io(Interest::READABLE, || receive(&shim)) {
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                            got => break got?,
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        };
        let std = std::net::TcpStream::from(socket);
        std.set_nonblocking(true)?;
        TcpSocket::from_std_stream(std)
            .connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
            .await
    }
}

fn receive(shim: &UnixStream) -> io::Result<std::os::fd::OwnedFd> {
    crate::sys::recv_fd(shim.as_raw_fd())?.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "the server's network namespace is gone (its shim ended)",
        )
    })
}

type Registry = Mutex<HashMap<u16, Weak<Namespace>>>;

fn registry() -> &'static Registry {
    static REGISTRY: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    REGISTRY.get_or_init(Registry::default)
}

/// Connections to inner port `port` go through `namespace` while the returned guard
/// lives (the instance's run).
pub fn register(port: u16, namespace: &Arc<Namespace>) -> Registered {
    if let Ok(mut map) = registry().lock() {
        map.retain(|_, ns| ns.strong_count() > 0);
        map.insert(port, Arc::downgrade(namespace));
    }
    Registered {
        port,
        namespace: Arc::downgrade(namespace),
    }
}

/// Whether a namespace serves `port` now (a new inner port must not collide with one:
/// nothing on the machine's loopback holds it).
pub fn is_registered(port: u16) -> bool {
    lookup(port).is_some()
}

fn lookup(port: u16) -> Option<Arc<Namespace>> {
    registry().lock().ok()?.get(&port)?.upgrade()
}

/// Removes its registration when dropped.
#[derive(Debug)]
pub struct Registered {
    port: u16,
    namespace: Weak<Namespace>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut map) = registry().lock()
            && map
                .get(&self.port)
                .is_some_and(|ns| Weak::ptr_eq(ns, &self.namespace))
        {
            map.remove(&self.port);
        }
    }
}

/// A connection to `127.0.0.1:port`: in the namespace registered for `port`, else on
/// the machine's loopback.
pub async fn connect_loopback(port: u16) -> io::Result<TcpStream> {
    match lookup(port) {
        Some(namespace) => namespace.connect(port).await,
        None => TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await,
    }
}

/// The namespace for a request to `host:port`, when that is one of ours.
pub(super) fn namespace_for(
    host: Option<&str>,
    port: Option<u16>,
) -> Option<(Arc<Namespace>, u16)> {
    let port = port?;
    if !matches!(host?, "127.0.0.1" | "localhost") {
        return None;
    }
    lookup(port).map(|ns| (ns, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in shim: answers each byte with a socket of this process's namespace.
    fn fake_shim() -> Arc<Namespace> {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut theirs = theirs;
            let mut byte = [0u8; 1];
            while matches!(theirs.read(&mut byte), Ok(1)) {
                let socket = crate::sys::tcp_socket().unwrap();
                crate::sys::send_fd(theirs.as_raw_fd(), socket.as_raw_fd()).unwrap();
            }
        });
        Arc::new(Namespace::new(ours).unwrap())
    }

    #[tokio::test]
    async fn a_registered_port_is_reached_through_its_namespace_until_unregistered() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let namespace = fake_shim();
        let registered = register(port, &namespace);
        assert!(is_registered(port));
        let (connected, accepted) = tokio::join!(connect_loopback(port), listener.accept());
        assert!(connected.is_ok() && accepted.is_ok());
        // Many, one after another, over the one socket source.
        for _ in 0..20 {
            let (c, a) = tokio::join!(namespace.connect(port), listener.accept());
            assert!(c.is_ok() && a.is_ok());
        }
        drop(registered);
        assert!(!is_registered(port));
    }

    #[tokio::test]
    async fn a_shim_that_is_gone_is_an_error_not_a_hang() {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        drop(theirs);
        let namespace = Namespace::new(ours).unwrap();
        let err = namespace.connect(9).await.unwrap_err();
        assert!(
            matches!(
                err.kind(),
                io::ErrorKind::ConnectionAborted | io::ErrorKind::BrokenPipe
            ),
            "{err:?}"
        );
    }
}
