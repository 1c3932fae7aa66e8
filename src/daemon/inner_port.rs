//! The inner port of a local server that speaks HTTP itself: chosen free on
//! loopback, given to the server as `{port}`/`{host}` in its args and `PORT`/`HOST`
//! in its environment, and checked after start to listen on loopback only. A server
//! reachable on another address would be reachable around the gateway's Origin,
//! Host and bearer checks.

use std::net::SocketAddr;

use crate::model::ServerSpec;
use crate::model::spec::{Mode, Transport};

/// The host a server behind the gateway must bind.
pub(super) const HOST: &str = "127.0.0.1";

/// Why no inner port could be had.
#[derive(Debug, thiserror::Error)]
pub(super) enum Error {
    #[error("no free inner port: {0}")]
    Bind(#[source] std::io::Error),
    #[error("no free inner port: every one offered is an isolated server's")]
    AllIsolated,
}

/// A port of its own for an instance of a local server that speaks HTTP.
pub(super) fn for_spec(spec: &ServerSpec) -> Result<Option<u16>, Error> {
    match (spec.mode, spec.transport) {
        (Mode::Local, Transport::StreamableHttp | Transport::Sse) => free().map(Some),
        _ => Ok(None),
    }
}

/// A free port on loopback (the OS picks it), and none an isolated server has (its
/// listener is in its own namespace, so the OS does not see it taken).
pub(super) fn free() -> Result<u16, Error> {
    for _ in 0..64 {
        let port = std::net::TcpListener::bind((HOST, 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(Error::Bind)?;
        if !crate::gateway::dial::is_registered(port) {
            return Ok(port);
        }
    }
    Err(Error::AllIsolated)
}

/// `{port}` and `{host}` in one argument.
pub(super) fn fill(arg: &str, port: u16) -> String {
    arg.replace("{port}", &port.to_string())
        .replace("{host}", HOST)
}

/// Addresses beyond loopback where something listens on `port`, from the kernel's
/// socket tables (`/proc/net/tcp`, `/proc/net/tcp6`).
pub(super) fn listening_beyond_loopback(port: u16) -> Vec<SocketAddr> {
    let listening = procfs::net::tcp()
        .into_iter()
        .chain(procfs::net::tcp6())
        .flatten()
        .filter(|e| e.state == procfs::net::TcpState::Listen)
        .map(|e| e.local_address);
    beyond_loopback(listening, port)
}

/// Listening sockets on `port` that no process of group `group` (the instance's: the
/// shim leads it) holds open: another local process that took the port first, and
/// would receive the clients' traffic and the upstream's headers.
pub(super) fn listening_not_ours(port: u16, group: u32) -> Vec<SocketAddr> {
    let listening: Vec<(SocketAddr, u64)> = procfs::net::tcp()
        .into_iter()
        .chain(procfs::net::tcp6())
        .flatten()
        .filter(|e| e.state == procfs::net::TcpState::Listen && e.local_address.port() == port)
        .map(|e| (e.local_address, e.inode))
        .collect();
    let ours: std::collections::HashSet<u64> = crate::sys::group_members(group)
        .into_iter()
        .flat_map(crate::sys::socket_inodes)
        .collect();
    foreign(&listening, &ours)
}

/// PURE: the listeners whose socket is not among `ours`.
fn foreign(
    listening: &[(SocketAddr, u64)],
    ours: &std::collections::HashSet<u64>,
) -> Vec<SocketAddr> {
    listening
        .iter()
        .filter(|(_, inode)| !ours.contains(inode))
        .map(|(addr, _)| *addr)
        .collect()
}

/// Why a start fails when its port is held by a process not of the instance.
pub(super) fn taken(port: u16, addrs: &[SocketAddr]) -> String {
    let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    format!(
        "its inner port {port} is held by a process that is not the server ({}): \
         refused, so no client traffic reaches it; the next start takes another port",
        list.join(", ")
    )
}

/// PURE: of these listening addresses, those on `port` that are not loopback.
fn beyond_loopback(listening: impl IntoIterator<Item = SocketAddr>, port: u16) -> Vec<SocketAddr> {
    listening
        .into_iter()
        .filter(|a| a.port() == port && !is_loopback(a))
        .collect()
}

fn is_loopback(addr: &SocketAddr) -> bool {
    match addr {
        SocketAddr::V4(a) => a.ip().is_loopback(),
        SocketAddr::V6(a) => {
            a.ip().is_loopback() || a.ip().to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Why a start fails when the server listens beyond loopback, naming the fix.
pub(super) fn refusal(port: u16, addrs: &[SocketAddr]) -> String {
    let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    format!(
        "it listens on {} as well as behind the gateway, where clients would reach it \
         around the gateway's checks: make it bind {HOST} (`{{host}}` in its args, or \
         HOST in its environment) on port {port}, or give it a network of its own \
         (`network = \"isolated\"`)",
        list.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_non_loopback_addresses_on_the_port_count() {
        let addrs: Vec<SocketAddr> = [
            "127.0.0.1:9000",
            "[::1]:9000",
            "[::ffff:127.0.0.1]:9000",
            "0.0.0.0:9000",
            "[::]:9000",
            "10.1.2.3:9000",
            "0.0.0.0:9001",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        let beyond: Vec<String> = beyond_loopback(addrs, 9000)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(beyond, ["0.0.0.0:9000", "[::]:9000", "10.1.2.3:9000"]);
    }

    #[test]
    fn a_listener_is_ours_only_when_our_process_holds_its_socket() {
        let a: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let b: SocketAddr = "[::1]:9".parse().unwrap();
        let ours = std::collections::HashSet::from([11]);
        assert_eq!(foreign(&[(a, 11), (b, 12)], &ours), [b]);
        assert!(foreign(&[(a, 11)], &ours).is_empty());
    }

    #[test]
    fn this_processs_own_listener_is_found_by_its_group() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let group = crate::sys::proc_stat(std::process::id()).unwrap().pgrp;
        assert!(listening_not_ours(port, group).is_empty());
        assert_eq!(
            listening_not_ours(port, u32::MAX - 1).len(),
            1,
            "another group's"
        );
    }

    #[test]
    fn placeholders_fill_in_both() {
        assert_eq!(fill("--listen={host}:{port}", 81), "--listen=127.0.0.1:81");
        assert_eq!(fill("plain", 81), "plain");
    }

    #[test]
    fn this_test_s_own_listener_is_seen_only_when_beyond_loopback() {
        let local = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = local.local_addr().unwrap().port();
        assert!(listening_beyond_loopback(port).is_empty());
        let wide = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let port = wide.local_addr().unwrap().port();
        assert_eq!(listening_beyond_loopback(port).len(), 1);
    }
}
