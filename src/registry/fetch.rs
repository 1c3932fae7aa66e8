//! Talking to a registry (API v0.1): `GET /v0.1/servers?search=&cursor=&limit=` for
//! a search, following `metadata.nextCursor`, and `GET
//! /v0.1/servers/NAME/versions/VERSION` (`latest` too) for one entry.
//!
//! Bounded, because a registry is a stranger: one deadline for the whole command
//! (a registry that hangs is an error within it), at most [`MAX_BODY`] bytes per
//! answer, at most [`MAX_PAGES`] pages. `https://`, or plain `http://` to this
//! machine only (a registry served in a test, or through a local tunnel).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::check;
use super::entry::{Listed, Page};

/// The most one answer may hold.
pub const MAX_BODY: usize = 4 * 1024 * 1024;
/// The most pages a search follows.
pub const MAX_PAGES: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("registry URL: {0}")]
    Url(#[from] check::Refused),
    #[error("cannot start the HTTP client: {0}")]
    Client(std::io::Error),
    #[error("cannot reach the registry at {registry}: {why}")]
    Unreachable { registry: String, why: String },
    #[error("the registry at {registry} did not answer within {}", humantime::format_duration(*.after))]
    Timeout { registry: String, after: Duration },
    #[error("the registry at {registry} answered {status} to {path}")]
    Status {
        registry: String,
        path: String,
        status: u16,
    },
    #[error("no entry `{name}`{} in the registry at {registry}", .version.as_ref().map(|v| format!(" at version {v}")).unwrap_or_default())]
    NotFound {
        registry: String,
        name: String,
        version: Option<String>,
    },
    #[error("the registry at {registry} sent more than {} MiB", MAX_BODY / (1024 * 1024))]
    TooBig { registry: String },
    #[error(
        "the registry at {registry} sent something that is not a registry answer to {path}: {why}"
    )]
    Parse {
        registry: String,
        path: String,
        why: String,
    },
}

/// One registry, for the length of one command.
pub struct Registry {
    base: String,
    deadline: Instant,
    budget: Duration,
    runtime: tokio::runtime::Runtime,
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl Registry {
    /// `base` (as `https://registry.modelcontextprotocol.io`), every request of this
    /// command answered within `budget` in all.
    pub fn new(base: &str, budget: Duration) -> Result<Self, Error> {
        let base = base.trim_end_matches('/').to_string();
        check::url("registry", &base, true)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::Client)?;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(budget));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider)
            .map_err(Error::Client)?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self {
            base,
            deadline: Instant::now() + budget,
            budget,
            runtime,
            client,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The latest version of every entry matching `term`, at most `limit` of them.
    pub fn search(&self, term: &str, limit: usize) -> Result<Vec<Listed>, Error> {
        let mut found = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut path = format!(
                "/v0.1/servers?search={}&version=latest&limit={}",
                encode(term),
                limit.clamp(1, 100)
            );
            if let Some(cursor) = &cursor {
                path.push_str(&format!("&cursor={}", encode(cursor)));
            }
            let page: Page = self.get(&path)?;
            found.extend(page.servers.into_iter().filter(Listed::is_latest));
            cursor = page.metadata.next_cursor.filter(|c| !c.is_empty());
            if found.len() >= limit || cursor.is_none() {
                break;
            }
        }
        found.truncate(limit);
        Ok(found)
    }

    /// Entry `name` at `version` (`None`: the latest).
    pub fn entry(&self, name: &str, version: Option<&str>) -> Result<Listed, Error> {
        check::entry_name(name)?;
        if let Some(v) = version {
            check::version(v)?;
        }
        let path = format!(
            "/v0.1/servers/{}/versions/{}",
            encode(name),
            version.map_or("latest".to_string(), encode)
        );
        match self.get::<Listed>(&path) {
            Err(Error::Status { status: 404, .. }) => Err(Error::NotFound {
                registry: self.base.clone(),
                name: name.to_string(),
                version: version.map(str::to_string),
            }),
            other => other,
        }
    }

    fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        let registry = self.base.clone();
        let left = self.deadline.saturating_duration_since(Instant::now());
        let body = self.runtime.block_on(async {
            tokio::time::timeout(left, self.fetch(path))
                .await
                .unwrap_or_else(|_| {
                    Err(Error::Timeout {
                        registry: registry.clone(),
                        after: self.budget,
                    })
                })
        })?;
        serde_json::from_slice(&body).map_err(|e| Error::Parse {
            registry,
            path: path.to_string(),
            why: e.to_string(),
        })
    }

    async fn fetch(&self, path: &str) -> Result<Vec<u8>, Error> {
        let registry = self.base.clone();
        let unreachable = |why: String| Error::Unreachable {
            registry: registry.clone(),
            why,
        };
        let request = hyper::Request::get(format!("{}{path}", self.base))
            .header("accept", "application/json")
            .header("user-agent", concat!("mcpctl/", env!("CARGO_PKG_VERSION")))
            .body(Empty::new())
            .map_err(|e| unreachable(e.to_string()))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| unreachable(error_chain(&e)))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(Error::Status {
                registry: registry.clone(),
                path: path.to_string(),
                status,
            });
        }
        let mut body = response.into_body();
        let mut bytes = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| unreachable(error_chain(&e)))?;
            if let Some(data) = frame.data_ref() {
                if bytes.len() + data.len() > MAX_BODY {
                    return Err(Error::TooBig { registry });
                }
                bytes.extend_from_slice(data);
            }
        }
        Ok(bytes)
    }
}

/// An error with its causes, as one line ("client error (Connect): connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// Percent-encoding of a path segment or a query value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
