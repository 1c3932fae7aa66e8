//! The dashboard (`mcpctl ui`), pure: the page's files, its logins, the hour of
//! samples it plots and the events it lists. The daemon serves it (`daemon/ui/`): it
//! feeds these with what it measures and answers the page's requests with them.

pub mod assets;
pub mod events;
pub mod history;
pub mod logins;

/// `status` readings for the tests of the dashboard's parts.
#[cfg(test)]
pub(crate) mod fixture {
    use crate::api::{DaemonStatus, ServerStatus};

    /// A server `name` as `status` reads it: `state`, `restarts`, nothing else.
    pub(crate) fn server(name: &str, state: &str, restarts: u32) -> ServerStatus {
        let spec = crate::model::parse("version = 1\n[servers.a]\ncommand = \"a\"\nport = 9000\n")
            .map(|c| c.servers["a"].clone())
            .unwrap_or_else(|_| unreachable!());
        ServerStatus {
            name: name.into(),
            spec,
            status: state.into(),
            created_at: String::new(),
            restarts,
            instances: Vec::new(),
            traffic: None,
            last_scale: None,
            network: None,
            unpinned: Vec::new(),
        }
    }

    /// A daemon's status with `servers`.
    pub(crate) fn status(servers: Vec<ServerStatus>) -> DaemonStatus {
        DaemonStatus {
            pid: 1,
            config: String::new(),
            started_at: String::new(),
            servers,
            usage: None,
            applied: None,
            endpoints: Vec::new(),
            endpoint_failures: Default::default(),
            tokens_used: Default::default(),
            tokens_limited: Default::default(),
            oidc_limited: Default::default(),
        }
    }
}
