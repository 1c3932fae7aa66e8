//! DNS-rebinding protection: a browser page on another site must not reach a local
//! MCP server. Pure functions over header values.

const LOOPBACK_HOSTS: [&str; 4] = ["localhost", "127.0.0.1", "[::1]", "::1"];

/// The host part of `host[:port]` (IPv6 in brackets kept).
fn host_of(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority
            .find(']')
            .map_or(authority, |end| &authority[..=end]);
    }
    authority.split(':').next().unwrap_or(authority)
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
    matches!(scheme, "http" | "https") && is_loopback(host_of(rest.trim_end_matches('/')))
}

/// On a loopback bind, the `Host` a request names must be loopback too: a rebound
/// DNS name pointing at 127.0.0.1 carries its own name here.
pub fn host_allowed(host: Option<&str>, loopback_bind: bool) -> bool {
    if !loopback_bind {
        return true;
    }
    host.is_some_and(|h| is_loopback(host_of(h)))
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
}
