//! The file as written: serde structs that mirror `mcpctl.toml` and nothing more.
//!
//! Every table uses `deny_unknown_fields`, so a typo is an error with a span. No
//! defaults are filled in and nothing is derived here; `resolve` does that once the
//! whole file is known.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The whole `mcpctl.toml`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "mcpctl.toml",
    description = "Declarative MCP server configuration for mcpctl"
)]
pub struct RawConfig {
    /// Format version of this file. Only `1` exists.
    pub version: Option<i64>,
    /// Who can read the secrets: every value in a `secrets` table is encrypted to all
    /// of these age recipients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<SecretsSection>,
    /// The daemon itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daemon: Option<DaemonSection>,
    /// The MCP registry `mcpctl search`, `add` and `outdated` ask.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<RegistrySection>,
    /// Fields inherited by every server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<Layer>,
    /// Environment overlays. A server selects one with `profile = "NAME"`; `default`
    /// always exists. `[profiles.NAME.servers.SERVER]` overrides fields of one server.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub profiles: BTreeMap<String, Layer>,
    /// The MCP servers mcpctl manages, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub servers: BTreeMap<String, Layer>,
    /// Sets of servers served behind one port, with a tool policy, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub endpoints: BTreeMap<String, Endpoint>,
    /// Callers' tokens (`mcpctl token create`), by name: what each may call where
    /// `auth = { tokens = true }`. The file holds a hash of each, never the token.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tokens: BTreeMap<String, Token>,
    /// OpenTelemetry traces of MCP requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<super::telemetry::TelemetrySection>,
}

/// `[tokens.NAME]`: one caller's token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Token {
    /// `TARGET/TOOL` globs (TARGET a server or endpoint) the caller may see and call.
    pub allow: Vec<String>,
    /// `TARGET/TOOL` globs it may not, whatever `allow` says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deny: Option<Vec<String>>,
    /// When it stops working (RFC 3339, UTC), if ever.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Requests it may make, `N/sec`, `N/min` or `N/hour` (bursts up to N); more get 429.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
    /// `blake3:HEX` of the token (written by `mcpctl token create`).
    pub hash: String,
}

/// Which tools an agent sees and may call: `allow` and `deny` are globs (`*`, `?`) on
/// tool names; deny wins; an empty or missing allow allows all; `read_only = true`
/// keeps only tools whose `annotations.readOnlyHint` is true.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolRules {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deny: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
}

/// How an endpoint names its members' tools and prompts.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Prefix {
    /// `server__name`, always.
    Always,
    /// The member's own name, prefixed only where two members share it.
    OnCollision,
    /// The member's own name; of two members with one name, the first in `servers`
    /// order wins (the other is reported as shadowed).
    Never,
}

/// What an endpoint does while a member is down.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Failure {
    /// Its tools vanish from the lists; calls to them get an error naming it.
    Open,
    /// The endpoint answers 503 until every member is up.
    Closed,
}

/// `[endpoints.NAME]`: a set of servers behind one port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// Where clients reach it (`/mcp`, `/sse`).
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i64>,
    /// The address to listen on. Default `127.0.0.1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// The members, in order (the order decides which wins a clash).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub servers: Option<Vec<String>>,
    /// Instead of `servers`: every server that uses this profile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// `always` (default): tools and prompts are named `server__name`; `on-collision`;
    /// `never`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<Prefix>,
    /// `open` (default): a failing member's tools vanish; `closed`: 503 while any
    /// member is down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// The endpoint's tool policy, on the names it advertises.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<ToolRules>,
    /// Advertised name -> the name the agent sees instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rename: Option<BTreeMap<String, String>>,
    /// Advertised (or renamed) name -> the description the agent sees instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub descriptions: Option<BTreeMap<String, String>>,
    /// Tools on demand: `true` (always on), `false`, or `{ when_over = 40, always =
    /// ["fs__read_file"] }`. When on, a session's `tools/list` holds `find_tools`,
    /// `use_tools` and the `always` tools; the agent pulls in the rest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery: Option<Discovery>,
    /// `auth = { tokens = true }`: callers' tokens of `[tokens.*]` only, each seeing and
    /// calling the advertised names its patterns allow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<EndpointAuth>,
    /// Only tools whose advertised definition is pinned in `mcpctl.lock` (`mcpctl tools
    /// NAME --pin`) are listed and callable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin: Option<bool>,
}

/// An endpoint's `auth`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointAuth {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tokens: bool,
    /// An OAuth 2.1 resource server: JWTs of this issuer, for this audience.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oidc: Option<Oidc>,
}

/// `oidc = { issuer, audience, scopes, rate }`: take JWTs of an OpenID provider
/// (the MCP authorization spec's resource server).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Oidc {
    /// The issuer's URL, as its tokens say it in `iss` (https, or http on loopback).
    /// Its keys are found through its discovery document.
    pub issuer: String,
    /// This resource's identifier, which tokens must name in `aud`: the port's URL as
    /// clients reach it, e.g. `https://mcp.example.com/mcp`.
    pub audience: String,
    /// Scope -> tool patterns it grants here. Missing: a valid token may call every tool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<BTreeMap<String, Vec<String>>>,
    /// At most this many requests per subject, e.g. `"600/min"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
}

/// `discovery = true | false | { when_over, always }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Discovery {
    Switch(bool),
    Table(DiscoveryTable),
}

/// `discovery = { when_over = 40, always = [...] }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryTable {
    /// On only while the endpoint would list more tools than this (at least 1).
    /// Missing: always on.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub when_over: Option<i64>,
    /// Advertised tool names always listed in full.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub always: Option<Vec<String>>,
}

// By hand, not `untagged`: a bad table keeps its own error ("unknown field
// `when_ove`") instead of serde's "did not match any variant".
impl<'de> Deserialize<'de> for Discovery {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Discovery;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("`true`, `false` or a table `{ when_over = 40, always = [...] }`")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Discovery, E> {
                Ok(Discovery::Switch(v))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Discovery, A::Error> {
                DiscoveryTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(Discovery::Table)
            }
        }
        d.deserialize_any(Visit)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// Name of the secret (in this server's `secrets`) holding the owner's bearer
    /// token (every tool).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearer: Option<String>,
    /// Callers' tokens of `[tokens.*]` are taken too, each seeing and calling only
    /// what its patterns allow here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<bool>,
    /// An OAuth 2.1 resource server: JWTs of this issuer, for this audience.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oidc: Option<Oidc>,
}

/// HTTPS for a server's gateway port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// PEM file with the certificate chain, leaf first (relative to the config file's folder).
    pub cert: String,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: String,
}

/// The liveness check of a running stdio server: an MCP `ping` every `interval`,
/// answered within `timeout`; after `failures` misses in a row it is restarted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// Time between pings, e.g. `"30s"`. Default `30s`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// How long a ping may take, e.g. `"10s"`. Default `10s`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Missed pings in a row before a restart, 1-100. Default 3.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub failures: Option<i64>,
}

/// The instance count kept from the live load, instead of a fixed `instances`: between
/// `min` and `max`, enough instances that each has at most `target_sessions` sessions
/// and `target_inflight` calls in flight. Scaling up happens at once; down, one instance
/// at a time after `scale_down_after` of lower load. With `min = 0` every instance stops
/// after `idle_after` without a session or a call, and the next request starts one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Autoscale {
    /// Fewest instances, 0-64. Default 1; 0 scales to zero when idle.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 64))]
    pub min: Option<i64>,
    /// Most instances, 1-64.
    #[schemars(range(min = 1, max = 64))]
    pub max: i64,
    /// Client sessions one instance should carry.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub target_sessions: Option<i64>,
    /// Calls in flight one instance should carry.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub target_inflight: Option<i64>,
    /// How long the load must stay lower before one instance is removed, e.g. `"5m"`.
    /// Default `5m`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale_down_after: Option<String>,
    /// With `min = 0`: how long without a session or a call before every instance
    /// stops, e.g. `"10m"`. Default `10m`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_after: Option<String>,
}

/// What one instance may use. `memory`: an instance whose process tree stays above it
/// for two samples in a row is restarted, the reason in its status and log. `nofile`:
/// the open-file limit of the server's processes (setrlimit). Where the daemon can make
/// cgroup v2 groups, `memory` is also the group's `memory.max` and `cpu` (cores) its
/// `cpu.max`; where it cannot, `validate` says why (`cpu` is then not enforced).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// e.g. `"512MiB"`, `"2GiB"`, `"800MB"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// Open files per process, 16-1048576.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 16, max = 1048576))]
    pub nofile: Option<i64>,
    /// Cores, e.g. `1.5` (cgroup v2 `cpu.max`, where the daemon can make groups).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DaemonSection {
    /// Serve Prometheus metrics at `http://ADDR/metrics`, e.g. `"127.0.0.1:9464"`.
    /// Off unless set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<String>,
    /// Serve the dashboard (`mcpctl ui`) at `http://ADDR/`, e.g. `"127.0.0.1:9470"`;
    /// loopback only. Unset: `mcpctl ui` picks a free port and remembers it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ui: Option<String>,
}

/// `[registry]`: the catalogue of MCP servers (the registry API v0.1).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistrySection {
    /// Its base URL, e.g. `"https://registry.example.com"` (a company's own);
    /// `--registry` and `MCPCTL_REGISTRY` come first. Default: the official registry,
    /// `https://registry.modelcontextprotocol.io`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretsSection {
    /// age X25519 recipients (`age1...`); `mcpctl config secret recipients add` keeps
    /// every value encrypted to all of them.
    #[serde(default)]
    pub recipients: Vec<String>,
}

impl RawConfig {
    /// Every layer with the key path of its table: `[defaults]`, `[servers.N]`,
    /// `[profiles.P]`, `[profiles.P.servers.N]`.
    pub fn layers(&self) -> Vec<(Vec<String>, &Layer)> {
        let path = |parts: &[&str]| parts.iter().map(|p| p.to_string()).collect::<Vec<_>>();
        let mut out = Vec::new();
        if let Some(d) = &self.defaults {
            out.push((path(&["defaults"]), d));
        }
        for (name, layer) in &self.servers {
            out.push((path(&["servers", name]), layer));
        }
        for (profile, layer) in &self.profiles {
            out.push((path(&["profiles", profile]), layer));
            for (name, over) in layer.servers.iter().flatten() {
                out.push((path(&["profiles", profile, "servers", name]), over));
            }
        }
        out
    }
}

/// What the process behind a server speaks.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// JSON-RPC over the child's stdin and stdout.
    Stdio,
    /// The legacy HTTP+SSE transport.
    Sse,
    /// Streamable HTTP.
    StreamableHttp,
}

/// Where the server runs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// mcpctl starts and supervises the process.
    Local,
    /// The server lives at `url`; mcpctl only proxies to it.
    Remote,
}

/// How client sessions share a stdio server's processes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Sharing {
    /// Many sessions over one process (the gateway rewrites ids).
    Multiplex,
    /// Each session gets a process of its own, for servers that keep per-client state.
    PerSession,
}

/// The network a local server's processes run in.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Network {
    /// The machine's: the server reaches the network, and every local process, any
    /// user's, reaches what it listens on.
    Host,
    /// A network namespace of its own with only a loopback interface: nothing else on
    /// the machine reaches what it listens on (only the gateway, through mcpctl's shim),
    /// and it reaches nothing beyond itself.
    Isolated,
}

/// Whether the server should be running.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Running,
    Stopped,
}

/// When a process that exited is started again.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

// One layer of server fields. The same shape serves `[defaults]`, `[servers.NAME]`,
// `[profiles.NAME]` and `[profiles.NAME.servers.SERVER]`; `resolve` refuses the
// fields a given place may not hold (`servers` outside a profile, `profile` inside one).
// It is one struct because serde's `deny_unknown_fields` does not work through
// `flatten`, and two copies of the field list would drift apart.
/// Server fields: in `[defaults]`, `[servers.NAME]`, `[profiles.NAME]` and
/// `[profiles.NAME.servers.SERVER]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// Program to run (local mode). Looked up on PATH when not a path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Arguments passed to `command`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// Working folder of the process, relative to the config file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Environment variables; layers merge key by key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    /// Secret environment variables, age-encrypted (`age:...`); set them with
    /// `mcpctl config secret set`. Never plaintext.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secrets: Option<BTreeMap<String, String>>,
    /// What the process speaks: `stdio`, `sse` or `streamable-http`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport: Option<Transport>,
    /// `local` (mcpctl runs it) or `remote` (it lives at `url`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// Address of a remote server (`http://` or `https://`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Port where mcpctl serves this server (`/mcp` and `/sse`), 1-65535.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i64>,
    /// Address the port is bound to. Default `127.0.0.1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// Profile this server uses. Default `default`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// `running` or `stopped`. Default `running`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<State>,
    /// `multiplex` (default): sessions share processes; `per-session`: each client
    /// session gets a process of its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sharing: Option<Sharing>,
    /// Number of processes behind the port. Default 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 64))]
    pub instances: Option<i64>,
    /// Keep the count within bounds from the live load instead of fixing it, e.g.
    /// `{ min = 1, max = 4, target_sessions = 20 }`. Replaces `instances`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<Autoscale>,
    /// `always`, `on-failure` or `never`. Default `on-failure`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartPolicy>,
    /// Grace period between SIGTERM and SIGKILL, e.g. `"10s"`, `"1m 30s"`. Default `10s`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<String>,
    /// How long a start may take before the server counts as failed, e.g. `"30s"`. Default `30s`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_timeout: Option<String>,
    /// How long one call may wait for the server's answer; progress notifications
    /// start the wait over. e.g. `"30s"`. Default `5m`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_timeout: Option<String>,
    /// When instances are scaled away: how long their calls in flight and open
    /// sessions may take to finish before they stop, e.g. `"30s"`. Default `30s`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_timeout: Option<String>,
    /// How long a client session may go without a request (and with no open stream or
    /// call) before it is forgotten, e.g. `"10m"`. Default `30m`; `5m` with `sharing =
    /// "per-session"`, where each session is a process of its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_idle: Option<String>,
    /// Live client sessions the gateway keeps for a stdio server; at the cap a new one
    /// evicts the longest-idle session without an open stream, or gets 503 when every
    /// one has a stream. Default `10000`; `100` with `sharing = "per-session"`, where
    /// each session is a process of its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_sessions: Option<i64>,
    /// Liveness check of a stdio server: `health = { interval = "30s", timeout = "10s",
    /// failures = 3 }` (the defaults).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// Resource limits of each instance, e.g. `{ memory = "512MiB", nofile = 4096 }`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// Headers sent upstream when proxying an HTTP or remote server, e.g.
    /// `{ Authorization = "Bearer ${API_TOKEN}" }`; `${NAME}` names one of the server's
    /// env vars or secrets. A client's own `Authorization` is never passed upstream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    /// Client authentication at the gateway: `auth = { bearer = "SECRET_NAME" }` names
    /// one of the server's secrets; clients must send `Authorization: Bearer <it>`.
    /// Required when `bind` is not a loopback address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<Auth>,
    /// `isolated`: a local server runs in a network namespace of its own, so no other
    /// local user can reach its inner port around `auth`, and it has no network access
    /// itself; `host`: the machine's network. Default: `isolated` for a local server
    /// that speaks HTTP and has `auth`, else `host`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    /// The server's tool policy, on its own names: holds on its own port and in every
    /// endpoint, e.g. `{ deny = ["delete_*"] }`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<ToolRules>,
    /// Only tools whose definitions match `mcpctl.lock` (`mcpctl tools NAME --pin`) are
    /// shown and called: a tool changed or added since it was reviewed is hidden.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin: Option<bool>,
    /// Serve this server's port over HTTPS: `tls = { cert = "cert.pem", key = "key.pem" }`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
    /// The container image its command runs in on Kubernetes (`mcpctl render k8s`),
    /// e.g. `"node:22-bookworm-slim"`. Default: one for `npx` and `uvx` commands.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Per-server overrides; only inside `[profiles.NAME]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub servers: Option<BTreeMap<String, Layer>>,
}
