//! What a server's gateway serves: its stdio instances, or the URL of a server that
//! speaks HTTP (local on its inner port, or remote), with upstream headers expanded
//! from its env and secrets.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::gateway::{self, Instances};
use crate::model::ServerSpec;
use crate::model::spec::{Mode, Transport};
use crate::secrets::unlock::Unlocked as Secrets;

use super::*;

/// Why what a server's gateway would serve cannot be built.
#[derive(Debug, thiserror::Error)]
pub(super) enum BackendError {
    #[error("bad header name `{name}`: {source}")]
    HeaderName {
        name: String,
        #[source]
        source: axum::http::header::InvalidHeaderName,
    },
    #[error("bad url {url}: {source}")]
    Url {
        url: String,
        #[source]
        source: axum::http::uri::InvalidUri,
    },
}

impl Daemon {
    /// What the gateway of `spec` serves: its stdio instances, or the URL of a server
    /// that speaks HTTP (a local one on its inner port, or a remote one).
    pub(super) fn backend_for(
        &self,
        spec: &ServerSpec,
        pool: &Arc<Pool>,
        secrets: &Secrets,
    ) -> Result<gateway::Backend, BackendError> {
        match (spec.mode, spec.transport) {
            (Mode::Local, Transport::Stdio) => {
                let instances: Arc<dyn Instances> = pool.clone();
                Ok(gateway::Backend::Stdio(instances))
            }
            (Mode::Local, transport) => {
                // The port is each instance's own, filled in per request.
                let path = if transport == Transport::Sse {
                    "sse"
                } else {
                    "mcp"
                };
                let pool: Arc<dyn gateway::HttpPool> = pool.clone();
                let url = format!("http://127.0.0.1:1/{path}");
                http_backend(spec, secrets, url, Some(pool))
            }
            (Mode::Remote, _) => {
                http_backend(spec, secrets, spec.url.clone().unwrap_or_default(), None)
            }
        }
    }
}

/// The configured upstream headers of `spec`, expanded.
pub(super) fn expand_headers(
    spec: &ServerSpec,
    secrets: Option<&BTreeMap<String, age::secrecy::SecretString>>,
) -> Result<Vec<(axum::http::HeaderName, age::secrecy::SecretString)>, BackendError> {
    spec.headers
        .iter()
        .map(|(name, template)| {
            let name = axum::http::HeaderName::from_bytes(name.as_bytes()).map_err(|source| {
                BackendError::HeaderName {
                    name: name.clone(),
                    source,
                }
            })?;
            Ok((name, expand(template, &spec.env, secrets)))
        })
        .collect()
}

/// A proxying backend for `url`, with the server's headers expanded from its env and
/// secrets.
pub(super) fn http_backend(
    spec: &ServerSpec,
    secrets: &Secrets,
    url: String,
    pool: Option<Arc<dyn gateway::HttpPool>>,
) -> Result<gateway::Backend, BackendError> {
    let headers = expand_headers(spec, secrets.values.get(&spec.name))?;
    let url = url
        .parse()
        .map_err(|source| BackendError::Url { url, source })?;
    Ok(gateway::Backend::Http(gateway::HttpUpstream {
        url,
        headers,
        legacy_sse: spec.transport == Transport::Sse,
        pool,
    }))
}

/// `${NAME}` in a header template, from the server's env or secrets.
pub(super) fn expand(
    template: &str,
    env: &BTreeMap<String, String>,
    secrets: Option<&BTreeMap<String, age::secrecy::SecretString>>,
) -> age::secrecy::SecretString {
    use age::secrecy::ExposeSecret;
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let name = &after[..end];
        if let Some(v) = env.get(name) {
            out.push_str(v);
        } else if let Some(v) = secrets.and_then(|s| s.get(name)) {
            out.push_str(v.expose_secret());
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    age::secrecy::SecretString::from(out)
}
