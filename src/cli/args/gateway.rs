//! `mcpctl gateway`'s flags: one server (a command or `--url`), or an endpoint over
//! several servers (`--upstream`, repeated).

use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Args)]
pub struct GatewayArgs {
    /// Port of /mcp and /sse
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Address to bind; beyond loopback needs --auth-bearer-env or --oidc-issuer
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
    /// Sessions share processes (multiplex), or each gets its own (per-session)
    #[arg(long, value_enum, default_value_t = SharingArg::Multiplex, conflicts_with = "upstreams")]
    pub sharing: SharingArg,
    /// Processes behind the port
    #[arg(long, default_value_t = 1, conflicts_with = "upstreams")]
    pub instances: u32,
    /// A header for a remote server (--url), `NAME=VALUE`; `${VAR}` in the value is
    /// this process's environment variable VAR (repeatable)
    #[arg(
        long = "header",
        value_name = "NAME=VALUE",
        conflicts_with = "upstreams"
    )]
    pub headers: Vec<String>,
    /// Clients must send `Authorization: Bearer <the value of VAR>` (kept from the server)
    #[arg(long, value_name = "VAR")]
    pub auth_bearer_env: Option<String>,
    /// Take JWTs of this OpenID provider (OAuth 2.1 resource server; https, or http on
    /// loopback): its keys are found through its discovery document
    #[arg(long, value_name = "URL", requires = "oidc_audience")]
    pub oidc_issuer: Option<String>,
    /// ... for this resource: tokens must name it in `aud` (this port's URL as clients
    /// reach it, e.g. https://mcp.example.com/mcp)
    #[arg(long, value_name = "AUD", requires = "oidc_issuer")]
    pub oidc_audience: Option<String>,
    /// ... a scope and the tools it grants, `SCOPE=GLOB[,GLOB...]` (repeatable; none:
    /// a valid token may call every tool)
    #[arg(
        long = "oidc-scope",
        value_name = "SCOPE=GLOBS",
        requires = "oidc_issuer"
    )]
    pub oidc_scopes: Vec<String>,
    /// ... at most this many requests per subject, e.g. 600/min
    #[arg(long, value_name = "N/PERIOD", requires = "oidc_issuer")]
    pub oidc_rate: Option<String>,
    /// Serve beyond loopback without a bearer: only where the network is trusted (a
    /// cluster's pod network behind its own policy); said once as a warning
    #[arg(long)]
    pub allow_no_auth: bool,
    /// Replicas: the environment variable holding the key they share (at least 32
    /// bytes); session ids name the replica that minted them, sealed with it, and a
    /// replica forwards another's session there
    #[arg(
        long,
        value_name = "VAR",
        requires = "advertise",
        conflicts_with = "upstreams"
    )]
    pub session_key_env: Option<String>,
    /// Replicas: the base URL the others reach this one at, e.g. http://$(POD_IP):8000
    #[arg(long, value_name = "URL", requires = "session_key_env")]
    pub advertise: Option<String>,
    /// Serve HTTPS with this PEM certificate chain
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// ... and this PEM private key
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Serve a remote Streamable HTTP server at this URL instead of running a command
    #[arg(
        long,
        conflicts_with = "command",
        required_unless_present_any = ["command", "upstreams"]
    )]
    pub url: Option<String>,
    /// Write the log (this process's and the server's lines) as JSON lines on stderr,
    /// one object per event, for a container's log collector
    #[arg(long)]
    pub json_log: bool,
    /// Export OpenTelemetry traces of every MCP request to this OTLP/HTTP collector
    /// (base URL, e.g. http://127.0.0.1:4318; spans go to URL/v1/traces). Default:
    /// OTEL_EXPORTER_OTLP_ENDPOINT, else off
    #[arg(long, value_name = "URL")]
    pub otlp: Option<String>,
    /// The share of new traces exported, 0 to 1 (a client's sampled context is followed)
    #[arg(long, value_name = "R", requires = "otlp")]
    pub otlp_sample_ratio: Option<f64>,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9464)
    #[arg(long, value_name = "ADDR", conflicts_with = "upstreams")]
    pub metrics: Option<String>,
    /// Tool policy: show and allow only tools matching GLOB (`*`, `?`); on a server's
    /// own names, or on an endpoint's advertised names (repeatable)
    #[arg(long = "tools-allow", value_name = "GLOB")]
    pub tools_allow: Vec<String>,
    /// Tool policy: hide and refuse tools matching GLOB; deny wins (repeatable)
    #[arg(long = "tools-deny", value_name = "GLOB")]
    pub tools_deny: Vec<String>,
    /// Tool policy: only tools whose `annotations.readOnlyHint` is true
    #[arg(long)]
    pub read_only: bool,
    /// Serve an endpoint over these servers instead of one server: `NAME=URL` of each
    /// member's Streamable HTTP endpoint (repeatable; the order decides name clashes)
    #[arg(long = "upstream", value_name = "NAME=URL", conflicts_with_all = ["command", "url"])]
    pub upstreams: Vec<String>,
    /// Endpoint: a member's bearer, `NAME=VAR` with VAR holding the token (repeatable)
    #[arg(
        long = "upstream-bearer-env",
        value_name = "NAME=VAR",
        requires = "upstreams"
    )]
    pub upstream_bearers: Vec<String>,
    /// Endpoint: its name, in its log lines [default: endpoint]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Endpoint: members' tool and prompt names as `server__name` always, only where
    /// two members share one, or never
    #[arg(long, value_enum)]
    pub prefix: Option<PrefixArg>,
    /// Endpoint: a member that is down drops out of the lists (open), or the endpoint
    /// answers 503 until every member is up (closed)
    #[arg(long, value_enum)]
    pub failure: Option<FailureArg>,
    /// Endpoint: advertise a tool under another name, `ADVERTISED=NEW` (repeatable)
    #[arg(long = "rename", value_name = "NAME=NEW")]
    pub renames: Vec<String>,
    /// Endpoint: a tool's description replaced, `ADVERTISED=TEXT` (repeatable)
    #[arg(long = "describe", value_name = "NAME=TEXT")]
    pub descriptions: Vec<String>,
    /// Endpoint: tools on demand, always (sessions start with find_tools and use_tools)
    #[arg(long)]
    pub discovery: bool,
    /// Endpoint: tools on demand while it would list more than N tools
    #[arg(long, value_name = "N")]
    pub discovery_over: Option<i64>,
    /// Endpoint: with discovery, a tool listed in full from the start (repeatable)
    #[arg(long, value_name = "ADVERTISED")]
    pub discovery_always: Vec<String>,
    /// The stdio server to run, after `--`
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

impl GatewayArgs {
    /// An endpoint over `--upstream`s, not one server.
    pub fn is_endpoint(&self) -> bool {
        !self.upstreams.is_empty()
    }

    /// The endpoint-only flags given (a one-server gateway refuses them).
    pub fn endpoint_flags(&self) -> Vec<&'static str> {
        [
            ("--upstream-bearer-env", !self.upstream_bearers.is_empty()),
            ("--name", self.name.is_some()),
            ("--prefix", self.prefix.is_some()),
            ("--failure", self.failure.is_some()),
            ("--rename", !self.renames.is_empty()),
            ("--describe", !self.descriptions.is_empty()),
            ("--discovery", self.discovery),
            ("--discovery-over", self.discovery_over.is_some()),
            ("--discovery-always", !self.discovery_always.is_empty()),
        ]
        .into_iter()
        .filter_map(|(flag, given)| given.then_some(flag))
        .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SharingArg {
    Multiplex,
    PerSession,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PrefixArg {
    Always,
    OnCollision,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailureArg {
    Open,
    Closed,
}
