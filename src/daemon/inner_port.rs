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

/// A port of its own for an instance of a local server that speaks HTTP.
pub(super) fn for_spec(spec: &ServerSpec) -> Result<Option<u16>, String> {
    match (spec.mode, spec.transport) {
        (Mode::Local, Transport::StreamableHttp | Transport::Sse) => free().map(Some),
        _ => Ok(None),
    }
}

/// A free port on loopback (the OS picks it).
fn free() -> Result<u16, String> {
    std::net::TcpListener::bind((HOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free inner port: {e}"))
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
         HOST in its environment) on port {port}",
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
