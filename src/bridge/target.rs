//! Where `mcpctl connect NAME` forwards to: NAME's `/mcp` on the local daemon, and
//! the bearer its clients must send when auth is on (decrypted with the identity,
//! held as a secret, never printed).

use std::net::IpAddr;
use std::path::Path;

use age::secrecy::SecretString;

use crate::api::{Reply, Request};
use crate::client;
use crate::model::ServerSpec;
use crate::model::spec::{State, Transport};

/// The endpoint to bridge to.
pub struct Target {
    /// `http://HOST:PORT/mcp` (`https` for a server with `tls`, verified against the
    /// system's roots or `SSL_CERT_FILE`).
    pub url: String,
    pub bearer: Option<SecretString>,
}

/// Why there is nothing to bridge to: a complete sentence for the client and stderr.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

/// Finds NAME in the file at `config`, checks the daemon serves it, and reads its
/// bearer when it has one.
pub fn resolve(config: &Path, name: &str) -> Result<Target, Unavailable> {
    let loaded = crate::config::load(config).map_err(|e| Unavailable(e.to_string()))?;
    let Some(spec) = loaded.config.servers.get(name) else {
        let known: Vec<&str> = loaded.config.servers.keys().map(String::as_str).collect();
        return Err(Unavailable(format!(
            "{} declares no server `{name}` (it declares: {})",
            config.display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )));
    };
    if spec.transport == Transport::Sse {
        return Err(Unavailable(format!(
            "`{name}` is served over legacy SSE only (transport = \"sse\"); connect speaks Streamable HTTP"
        )));
    }
    if spec.state == State::Stopped {
        return Err(Unavailable(format!(
            "`{name}` is stopped (state = \"stopped\"); start it with `mcpctl server start {name}`"
        )));
    }
    check_running(config, name)?;
    let scheme = if spec.tls.is_some() { "https" } else { "http" };
    Ok(Target {
        url: format!("{scheme}://{}/mcp", authority(spec)),
        bearer: bearer(spec)?,
    })
}

/// Asks the daemon whether it serves `name`.
fn check_running(config: &Path, name: &str) -> Result<(), Unavailable> {
    let status = match client::ask(config, &Request::Status) {
        Ok(Reply::Status { status }) => status,
        Ok(other) => return Err(Unavailable(format!("unexpected daemon reply: {other:?}"))),
        Err(client::Error::NotRunning(file)) => {
            return Err(Unavailable(format!(
                "no daemon runs for {file}; start it with `mcpctl apply`"
            )));
        }
        Err(e) => return Err(Unavailable(e.to_string())),
    };
    match status.servers.iter().find(|s| s.name == name) {
        None => Err(Unavailable(format!(
            "`{name}` does not run under the daemon; `mcpctl apply` starts it"
        ))),
        Some(s) if matches!(s.status.as_str(), "exited" | "crash-loop") => Err(Unavailable(
            format!("`{name}` is {} (see `mcpctl server logs {name}`)", s.status),
        )),
        Some(_) => Ok(()),
    }
}

/// `HOST:PORT` to dial: the bind address, or loopback for a wildcard bind.
fn authority(spec: &ServerSpec) -> String {
    match spec.bind {
        IpAddr::V4(ip) if ip.is_unspecified() => format!("127.0.0.1:{}", spec.port),
        IpAddr::V6(ip) if ip.is_unspecified() => format!("[::1]:{}", spec.port),
        IpAddr::V4(ip) => format!("{ip}:{}", spec.port),
        IpAddr::V6(ip) => format!("[{ip}]:{}", spec.port),
    }
}

/// The bearer secret `auth` names, decrypted.
fn bearer(spec: &ServerSpec) -> Result<Option<SecretString>, Unavailable> {
    let Some(key) = &spec.auth_bearer else {
        return Ok(None);
    };
    let Some(secret) = spec.secrets.get(key) else {
        return Err(Unavailable(format!(
            "`{}` names auth secret `{key}`, which it does not have",
            spec.name
        )));
    };
    let identities = crate::secrets::identity::load().map_err(|e| {
        Unavailable(format!(
            "`{}` needs a bearer and the identity cannot be read: {e}",
            spec.name
        ))
    })?;
    crate::secrets::decrypt(&secret.ciphertext, &secret.place, &identities)
        .map(Some)
        .map_err(|e| {
            Unavailable(format!(
                "cannot decrypt `{}`'s bearer `{key}`: {e}",
                spec.name
            ))
        })
}
