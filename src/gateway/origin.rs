//! DNS-rebinding protection: a browser page on another site must not reach a local
//! MCP server. Pure functions over header values.

const LOOPBACK_HOSTS: [&str; 4] = ["localhost", "127.0.0.1", "[::1]", "::1"];

/// The host part of `host[:port]` (IPv6 in brackets kept), or `None` when what follows
/// the host is anything but `:DIGITS` (`127.0.0.1:80@evil.example`, `[::1]evil`): only
/// a whole authority is judged, never a prefix of one.
fn host_of(authority: &str) -> Option<&str> {
    let (host, rest) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        authority.split_at(end + 1)
    } else {
        match authority.find(':') {
            Some(at) => authority.split_at(at),
            None => (authority, ""),
        }
    };
    let port_ok = match rest.strip_prefix(':') {
        None => rest.is_empty(),
        Some(port) => {
            !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
        }
    };
    port_ok.then_some(host)
}

fn is_loopback(host: &str) -> bool {
    LOOPBACK_HOSTS.iter().any(|h| h.eq_ignore_ascii_case(host))
}

/// An absent `Origin` (not a browser) is allowed; a present one must be a loopback
/// page. `null` and malformed origins are refused.
pub fn origin_allowed(origin: Option<&str>) -> bool {
    let Some(origin) = origin else { return true };
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https")
        && host_of(rest.trim_end_matches('/')).is_some_and(is_loopback)
}

/// On a loopback bind, the `Host` a request names must be loopback too: a rebound
/// DNS name pointing at 127.0.0.1 carries its own name here.
pub fn host_allowed(host: Option<&str>, loopback_bind: bool) -> bool {
    if !loopback_bind {
        return true;
    }
    host.and_then(host_of).is_some_and(is_loopback)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert!(origin_allowed(None));
        assert!(origin_allowed(Some("http://localhost:3000")));
        assert!(origin_allowed(Some("http://127.0.0.1")));
        assert!(origin_allowed(Some("https://[::1]:8443")));
        assert!(!origin_allowed(Some("https://evil.example")));
        assert!(!origin_allowed(Some("http://localhost.evil.example")));
        assert!(!origin_allowed(Some("null")));
        assert!(!origin_allowed(Some("file://localhost")));
    }

    #[test]
    fn hosts() {
        assert!(host_allowed(Some("127.0.0.1:8000"), true));
        assert!(host_allowed(Some("localhost"), true));
        assert!(host_allowed(Some("[::1]:8000"), true));
        assert!(!host_allowed(Some("rebind.evil.example:8000"), true));
        assert!(!host_allowed(None, true));
        assert!(host_allowed(Some("anything"), false));
    }

    /// From the attack: only a whole authority is judged, never a prefix of one.
    #[test]
    fn a_loopback_prefix_does_not_pass_a_foreign_authority() {
        for host in [
            "127.0.0.1:8000@evil.example",
            "127.0.0.1:evil.example",
            "[::1].evil.example",
            "[::1]evil",
            "localhost:",
            "127.0.0.1:123456",
        ] {
            assert!(!host_allowed(Some(host), true), "{host}");
        }
        for origin in [
            "http://localhost:1@evil.example",
            "http://[::1]evil.example",
        ] {
            assert!(!origin_allowed(Some(origin)), "{origin}");
        }
        assert!(host_allowed(Some("LOCALHOST:8000"), true));
    }
}
