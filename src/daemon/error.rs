//! The daemon's errors: each carries the server (and instance) it is about; they are
//! rendered once, where they leave the daemon (the control socket, its log).

use std::net::SocketAddr;

/// Why an apply could not run at all: the file, its secrets, or a server it lacks.
#[derive(Debug, thiserror::Error)]
pub(super) enum ApplyError {
    #[error(transparent)]
    Config(#[from] crate::config::Error),
    /// `apply PLAN`: the file or what runs moved since the plan was made.
    #[error(
        "the saved plan is stale, nothing was applied: {0}\n  = help: make a new one with `mcpctl plan --out FILE`"
    )]
    Stale(String),
}

/// Why one server's action failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum ServerError {
    #[error("{server}: {source}")]
    InnerPort {
        server: String,
        #[source]
        source: super::inner_port::Error,
    },
    #[error("{server}: {source}")]
    Tls {
        server: String,
        #[source]
        source: crate::gateway::tls::Error,
    },
    /// What its gateway would serve cannot be built (a bad url or header).
    #[error("{server}: {source}")]
    Backend {
        server: String,
        #[source]
        source: super::backend::BackendError,
    },
    #[error("{server}: cannot serve on {addr}: {source}")]
    Serve {
        server: String,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{server}: instance {instance} failed to start: {why}{}", log_tail(.tail))]
    Start {
        server: String,
        instance: u32,
        /// Redacted: no secret value reaches an error.
        why: String,
        /// The last lines of the instance's log.
        tail: Vec<String>,
    },
    /// Its apply step ended without an answer (it panicked).
    #[error("{server}: its apply step {why}")]
    Step {
        server: String,
        #[source]
        why: super::named_tasks::TaskEnded,
    },
    /// An endpoint could not be served.
    #[error("{0}")]
    Endpoint(String),
    /// Several instances of one server failed.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Instances(Vec<ServerError>),
}

/// Why `mcpctl tools NAME` has no answer.
#[derive(Debug, thiserror::Error)]
pub(super) enum ToolsError {
    #[error("no server or endpoint `{0}` runs")]
    NotRunning(String),
    #[error("server `{0}` is scaled to zero: asking for its tools would wake it")]
    ScaledToZero(String),
    #[error("server `{0}` is not serving")]
    NotServing(String),
    #[error("server `{server}`: {source}")]
    Asked {
        server: String,
        #[source]
        source: crate::gateway::mux::Gone,
    },
    #[error("server `{server}`: {source}")]
    Listed {
        server: String,
        #[source]
        source: crate::gateway::endpoint::ListError,
    },
}

/// Why an endpoint could not be served.
#[derive(Debug, thiserror::Error)]
pub(super) enum EndpointError {
    #[error("cannot make its HTTP client: {0}")]
    Client(#[source] std::io::Error),
    #[error("cannot make the OIDC issuer's HTTP client: {0}")]
    Oidc(#[source] std::io::Error),
    #[error(transparent)]
    Serve(#[from] crate::gateway::endpoint::ServeError),
}

fn log_tail(lines: &[String]) -> String {
    if lines.is_empty() {
        return String::new();
    }
    let shown: String = lines.iter().map(|l| format!("\n    | {l}")).collect();
    format!("\n  last lines of its log:{shown}")
}

/// What an apply did: changes made, failures per server, and every endpoint.
pub(super) struct Applied {
    pub(super) changed: bool,
    pub(super) failures: Vec<ServerError>,
    pub(super) endpoints: std::collections::BTreeMap<String, String>,
    /// What the plan did, one `start a`, `stop b` per server it changed.
    pub(super) actions: Vec<String>,
}

impl From<Applied> for crate::api::ApplyOutcome {
    fn from(applied: Applied) -> Self {
        Self {
            changed: applied.changed,
            failures: applied.failures.iter().map(ToString::to_string).collect(),
            endpoints: applied.endpoints,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_failure_names_server_instance_and_log() {
        let e = ServerError::Start {
            server: "echo".into(),
            instance: 3,
            why: "exit code 1 before it was ready".into(),
            tail: vec!["boom".into()],
        };
        assert_eq!(
            e.to_string(),
            "echo: instance 3 failed to start: exit code 1 before it was ready\n  last lines of its log:\n    | boom"
        );
    }
}
