//! PURE. `auth = { oidc = { issuer, audience, scopes, rate } }`: a server's or an
//! endpoint's port as an OAuth 2.1 resource server (the MCP authorization spec). The
//! issuer is where its keys are found, so it must be https (or http on loopback, for
//! a provider on this machine); the audience is this resource's identifier, which
//! tokens must name in `aud` (RFC 8707).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::locate::{KeyPath, Locator};
use super::raw::Oidc as RawOidc;
use super::token::Rate;
use crate::diag::Diagnostic;
use crate::policy::Glob;
use crate::policy::jwt::Expect;

/// An issuer's tokens as a port takes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcSpec {
    pub issuer: String,
    pub audience: String,
    /// Scope -> tool globs it grants here. Empty: a valid token may call every tool.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scopes: BTreeMap<String, Vec<String>>,
    /// Per subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
}

impl OidcSpec {
    /// What a token must be (the patterns were checked when the file was read).
    pub fn expect(&self) -> Expect {
        Expect {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            scopes: self
                .scopes
                .iter()
                .map(|(scope, globs)| {
                    (
                        scope.clone(),
                        globs.iter().filter_map(|g| Glob::new(g).ok()).collect(),
                    )
                })
                .collect(),
        }
    }
}

/// Whether `url` may name an issuer: https, or http to this machine. `Err` says why not.
pub fn check_issuer(url: &str) -> Result<(), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("`{url}` is not an http(s) URL"))?;
    let host_port = rest.split('/').next().unwrap_or_default();
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.rsplit_once(':').map_or(host_port, |(h, _)| h),
    };
    if host.is_empty() || host_port.contains('@') {
        return Err(format!("`{url}` names no host"));
    }
    if url.contains(['?', '#']) || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("`{url}` has a query, fragment or spaces"));
    }
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match scheme {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(format!(
            "`{url}` is plain http to another machine: its keys could be replaced on the way"
        )),
        _ => Err(format!("`{url}` is not an http(s) URL")),
    }
}

/// `oidc` of the `auth` at `auth_path`, checked; `None` (with diagnostics) when wrong.
pub(super) fn resolve_oidc(
    raw: &RawOidc,
    auth_path: &KeyPath,
    owner: &str,
    loc: &Locator<'_>,
    diags: &mut Vec<Diagnostic>,
) -> Option<OidcSpec> {
    let before = diags.len();
    let at = |field: &str| {
        let mut path = auth_path.clone();
        path.extend(["oidc".to_string(), field.to_string()]);
        loc.value(&path)
    };
    if let Err(why) = check_issuer(&raw.issuer) {
        diags.push(
            Diagnostic::new(format!("`auth.oidc` of {owner}: bad `issuer`: {why}"))
                .at(at("issuer"), "here")
                .hint("the issuer's URL as its tokens say it in `iss`, e.g. \"https://login.example.com/realms/mcp\""),
        );
    }
    let audience_url = raw.audience.starts_with("https://") || raw.audience.starts_with("http://");
    if raw.audience.trim().is_empty()
        || raw.audience.len() > 1024
        || !raw
            .audience
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')
        || (audience_url && raw.audience.contains(['?', '#']))
    {
        diags.push(
            Diagnostic::new(format!(
                "`auth.oidc` of {owner}: `audience` is empty, too long, or has spaces, quotes, `\\`, a query or a fragment"
            ))
                .at(at("audience"), "here")
                .hint("this port's URL as clients reach it, e.g. \"https://mcp.example.com/mcp\" (tokens name it in `aud`)"),
        );
    }
    for (scope, globs) in raw.scopes.iter().flatten() {
        let bad_name = scope.is_empty()
            || !scope
                .chars()
                .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\');
        let bad_glob = globs.iter().find_map(|g| Glob::new(g).err());
        if let Some(why) = bad_glob.or(bad_name.then(|| {
            format!("`{scope}` is not a scope (printable ASCII, no spaces, quotes or `\\`)")
        })) {
            diags.push(
                Diagnostic::new(format!("`auth.oidc.scopes` of {owner}: {why}"))
                    .at(at("scopes"), "here")
                    .hint("`scopes = { \"mcp:read\" = [\"read_*\", \"search\"] }`: a scope and the tools it grants here"),
            );
        }
    }
    let rate = match raw.rate.as_deref().map(Rate::parse) {
        None => None,
        Some(Ok(rate)) => Some(rate),
        Some(Err(why)) => {
            diags.push(
                Diagnostic::new(format!("`auth.oidc` of {owner}: bad `rate`: {why}"))
                    .at(at("rate"), "here")
                    .hint("e.g. `rate = \"600/min\"` (per subject)"),
            );
            None
        }
    };
    (diags.len() == before).then(|| OidcSpec {
        issuer: raw.issuer.clone(),
        audience: raw.audience.clone(),
        scopes: raw.scopes.clone().unwrap_or_default(),
        rate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issuer_is_https_or_http_on_loopback() {
        for ok in [
            "https://login.example.com/realms/mcp",
            "http://127.0.0.1:8080",
            "http://localhost:9/x",
            "http://[::1]:9/",
        ] {
            assert!(check_issuer(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://login.example.com",
            "ftp://x",
            "login.example.com",
            "https://",
            "https://user@evil.example",
            "https://x/?a=b",
            "https://x/ y",
            "http://127.0.0.1.evil.example/",
        ] {
            assert!(check_issuer(bad).is_err(), "{bad}");
        }
    }
}
