//! Where `mcpctl connect NAME` forwards to: NAME's `/mcp` on the local daemon, and
//! the bearer its clients must send when auth is on (decrypted with the identity,
//! held as a secret, never printed); starting the daemon and NAME when they are not
//! running, and telling, later, whether NAME went away for good.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use age::secrecy::SecretString;

use crate::api::{ApplyOptions, Reply, Request};
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

/// How long `connect` waits for the daemon and NAME to start: 60 s, or
/// `MCPCTL_CONNECT_TIMEOUT_MS`.
pub fn start_timeout() -> Duration {
    std::env::var("MCPCTL_CONNECT_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&ms: &u64| ms > 0)
        .map_or(Duration::from_secs(60), Duration::from_millis)
}

/// NAME's endpoint, once it runs: the daemon is started when none runs, and NAME
/// when the daemon does not run it (or it exited), as `mcpctl server start` would,
/// within `timeout`. The file is never edited: a server it says is stopped was
/// stopped on purpose, and a client launching `connect` does not overrule that.
pub fn reach(config: &Path, name: &str, timeout: Duration) -> Result<Target, Unavailable> {
    if let Some(endpoint) = declared_endpoint(config, name) {
        if !endpoint_served(config, name)? {
            start(config, name, ApplyOptions::default(), timeout)?;
        }
        return Ok(Target {
            url: endpoint.url(),
            bearer: if endpoint.auth_tokens {
                Some(owner_key(config)?)
            } else {
                None
            },
        });
    }
    let spec = declared(config, name)?;
    if needs_start(config, name)? {
        let options = ApplyOptions {
            only: vec![name.to_string()],
            ..ApplyOptions::default()
        };
        start(config, name, options, timeout)?;
        if let Some(why) = gone(config, name) {
            return Err(Unavailable(why));
        }
    }
    let mut target = target_of(&spec)?;
    if target.bearer.is_none() && spec.auth_tokens {
        // Callers' tokens only: the owner comes in with the daemon's owner key.
        target.bearer = Some(owner_key(config)?);
    }
    Ok(target)
}

/// The daemon's owner key (asked over its control socket, which only the owner can use).
fn owner_key(config: &Path) -> Result<SecretString, Unavailable> {
    match client::ask(config, &Request::OwnerKey) {
        Ok(Reply::OwnerKey { key }) => Ok(SecretString::from(key)),
        Ok(other) => Err(Unavailable(format!("unexpected daemon reply: {other:?}"))),
        Err(e) => Err(Unavailable(format!(
            "cannot get the owner's key from the daemon: {e}"
        ))),
    }
}

/// NAME as an endpoint of the file, when it is one.
fn declared_endpoint(config: &Path, name: &str) -> Option<crate::model::endpoint::EndpointSpec> {
    let loaded = crate::config::load(config).ok()?;
    loaded.config.endpoints.get(name).cloned()
}

/// Whether the daemon serves endpoint `name` now (`false` too when none runs).
fn endpoint_served(config: &Path, name: &str) -> Result<bool, Unavailable> {
    match client::ask(config, &Request::Status) {
        Ok(Reply::Status { status }) => Ok(status.endpoints.iter().any(|e| e.name == name)),
        Ok(other) => Err(Unavailable(format!("unexpected daemon reply: {other:?}"))),
        Err(client::Error::NotRunning(_)) => Ok(false),
        Err(e) => Err(Unavailable(e.to_string())),
    }
}

/// NAME as the file declares it, when it can be reached at all.
fn declared(config: &Path, name: &str) -> Result<ServerSpec, Unavailable> {
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
    Ok(spec.clone())
}

fn target_of(spec: &ServerSpec) -> Result<Target, Unavailable> {
    let scheme = if spec.tls.is_some() { "https" } else { "http" };
    Ok(Target {
        url: format!("{scheme}://{}/mcp", authority(spec)),
        bearer: bearer(spec)?,
    })
}

/// NAME's bearer as the file has it now (after a rotation, say).
pub fn current_bearer(config: &Path, name: &str) -> Result<Option<SecretString>, Unavailable> {
    if let Some(endpoint) = declared_endpoint(config, name) {
        // An endpoint has no bearer of its own; one taking callers' tokens lets the
        // owner in with the daemon's key.
        return if endpoint.auth_tokens {
            owner_key(config).map(Some)
        } else {
            Ok(None)
        };
    }
    let spec = declared(config, name)?;
    match bearer(&spec)? {
        None if spec.auth_tokens => owner_key(config).map(Some),
        found => Ok(found),
    }
}

/// What the daemon says of NAME: `None` when no daemon runs.
fn daemon_status(config: &Path, name: &str) -> Result<Option<Option<String>>, Unavailable> {
    match client::ask(config, &Request::Status) {
        Ok(Reply::Status { status }) => Ok(Some(
            status
                .servers
                .into_iter()
                .find(|s| s.name == name)
                .map(|s| s.status),
        )),
        Ok(other) => Err(Unavailable(format!("unexpected daemon reply: {other:?}"))),
        Err(client::Error::NotRunning(_)) => Ok(None),
        Err(e) => Err(Unavailable(e.to_string())),
    }
}

/// Whether NAME must be started: no daemon, not under it, exited or stopped. A crash loop is
/// the daemon's to resolve (its backoff), not a reason to start it again.
fn needs_start(config: &Path, name: &str) -> Result<bool, Unavailable> {
    match daemon_status(config, name)? {
        None | Some(None) => Ok(true),
        // Stopped by the daemon while the file now says running: `server start`'s case.
        Some(Some(status)) if matches!(status.as_str(), "exited" | "stopped") => Ok(true),
        Some(Some(status)) if status == "crash-loop" => Err(Unavailable(format!(
            "`{name}` is in a crash loop (see `mcpctl server logs {name}`)"
        ))),
        Some(Some(_)) => Ok(false),
    }
}

/// Starts the daemon (as every command does) and has it converge (NAME alone, for a
/// server; the file, for an endpoint), within `timeout`; its progress goes to stderr,
/// never to stdout (the client's channel).
fn start(
    config: &Path,
    name: &str,
    options: ApplyOptions,
    timeout: Duration,
) -> Result<(), Unavailable> {
    let (done, result) = std::sync::mpsc::channel();
    let (config_path, server) = (config.to_path_buf(), name.to_string());
    // A thread, so the wait is bounded whatever the daemon does; left behind on a
    // timeout, it ends with the process.
    let spawned = std::thread::Builder::new()
        .name("connect-start".into())
        .spawn(move || {
            let applied = client::connect_or_start(&config_path).and_then(|stream| {
                client::request(stream, &Request::Apply(Box::new(options)), |line| {
                    crate::note!("mcpctl connect {server}: {}", line.trim_end());
                })
            });
            let _ = done.send(applied);
        });
    if let Err(e) = spawned {
        return Err(Unavailable(format!("cannot start `{name}`: {e}")));
    }
    crate::note!("mcpctl connect {name}: starting `{name}` (it was not running)");
    match result.recv_timeout(timeout) {
        Ok(Ok(Reply::Applied { outcome })) if outcome.failures.is_empty() => Ok(()),
        Ok(Ok(Reply::Applied { outcome })) => Err(Unavailable(format!(
            "`{name}` could not be started: {}",
            outcome.failures.join("; ")
        ))),
        Ok(Ok(other)) => Err(Unavailable(format!("unexpected daemon reply: {other:?}"))),
        Ok(Err(e)) => Err(Unavailable(format!("cannot start `{name}`: {e}"))),
        Err(_) => Err(Unavailable(format!(
            "`{name}` did not start within {timeout:?} (see `mcpctl server logs {name}`)"
        ))),
    }
}

/// Why NAME cannot be reached any more and will not come back by itself: the file
/// dropped it or says stopped, no daemon runs, or the daemon no longer runs it (or it
/// exited, or loops crashing). `None` while it runs or (re)starts.
pub fn gone(config: &Path, name: &str) -> Option<String> {
    if declared_endpoint(config, name).is_some() {
        return match endpoint_served(config, name) {
            Ok(true) => None,
            Ok(false) => Some(format!("endpoint `{name}` is no longer served")),
            Err(why) => Some(why.0),
        };
    }
    if let Err(why) = declared(config, name) {
        return Some(why.0);
    }
    match daemon_status(config, name) {
        Err(why) => Some(why.0),
        Ok(None) => Some(format!("no daemon runs for {} any more", config.display())),
        // Still declared running but not under the daemon: an apply replacing it (it
        // is out of the daemon's table between its stop and its start). Bounded.
        Ok(Some(None)) if !reappears(config, name) => {
            Some(format!("`{name}` no longer runs under the daemon"))
        }
        Ok(Some(None)) => None,
        Ok(Some(Some(status)))
            if matches!(status.as_str(), "exited" | "stopped" | "crash-loop") =>
        {
            Some(format!(
                "`{name}` is {status} (see `mcpctl server logs {name}`)"
            ))
        }
        Ok(Some(Some(_))) => None,
    }
}

/// Whether `name` is back under the daemon within a few seconds (polled; on a
/// blocking thread).
fn reappears(config: &Path, name: &str) -> bool {
    for _ in 0..REAPPEAR_POLLS {
        std::thread::sleep(std::time::Duration::from_millis(100));
        if let Ok(Some(Some(_))) = daemon_status(config, name) {
            return true;
        }
    }
    false
}

/// How many times (100 ms apart) `gone` looks again for a server being replaced.
const REAPPEAR_POLLS: u32 = 100;

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
        let hint = e.hint().map(|h| format!(" ({h})")).unwrap_or_default();
        Unavailable(format!(
            "`{}` needs a bearer and the identity cannot be read: {e}{hint}",
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
