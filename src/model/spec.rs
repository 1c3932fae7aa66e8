//! Validated, effective server specs: what one server really is once defaults,
//! its own fields, its profile and the profile's per-server override are applied.
//!
//! `ServerSpec::attributes` is the one list of what a spec holds and what a change
//! to each part means (restart, in-place update, scale). The spec hash and the plan's
//! attribute diffs both read it, so a new field cannot be forgotten by one of them.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use super::raw::{Mode, Network, RestartPolicy, Sharing, State, Transport};

/// The effective spec of one server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerSpec {
    pub name: String,
    /// `None` for remote servers, which run no process.
    pub command: Option<String>,
    pub args: Vec<String>,
    pub cwd: Option<String>,
    pub env: BTreeMap<String, String>,
    /// Secret environment variables: ciphertexts only, with a digest of the
    /// plaintext once decrypted (see `crate::secrets`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, SecretRef>,
    pub transport: Transport,
    /// Which of its tools agents see and may call, on its own port and in endpoints.
    #[serde(default, skip_serializing_if = "ToolPolicy::is_open")]
    pub tools: ToolPolicy,
    /// Only tools as pinned in `mcpctl.lock` are shown and called.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pin: bool,
    /// The network its processes run in (see [`Network`]).
    #[serde(default = "host_network")]
    pub network: Network,
    pub mode: Mode,
    pub url: Option<String>,
    pub port: u16,
    pub bind: IpAddr,
    pub profile: String,
    pub state: State,
    #[serde(default = "multiplex")]
    pub sharing: Sharing,
    /// The count to start with; with `autoscale`, what the autoscaler last chose.
    pub instances: u32,
    /// The count kept from the live load, within bounds (replaces a fixed count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<Autoscale>,
    pub restart: RestartPolicy,
    #[serde(with = "human_duration")]
    pub stop_timeout: Duration,
    #[serde(with = "human_duration")]
    pub start_timeout: Duration,
    /// How long a call waits for its answer (progress starts the wait over).
    #[serde(with = "human_duration", default = "default_call_timeout")]
    pub call_timeout: Duration,
    /// How long instances scaled away may finish their calls and sessions.
    #[serde(with = "human_duration", default = "default_drain_timeout")]
    pub drain_timeout: Duration,
    /// How long a client session may be idle (no request, no stream, no call).
    #[serde(with = "human_duration", default = "default_session_idle")]
    pub session_idle: Duration,
    /// Live client sessions the gateway keeps (stdio servers).
    #[serde(default = "default_max_sessions")]
    pub max_sessions: usize,
    /// The liveness check of a stdio server.
    #[serde(default)]
    pub health: HealthCheck,
    /// What one instance may use.
    #[serde(default)]
    pub limits: ResourceLimits,
    /// Headers for the upstream of a proxied server (templates: `${NAME}` unexpanded).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The secret whose value clients must present as a bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_bearer: Option<String>,
    /// `auth = { tokens = true }`: callers' tokens of `[tokens.*]` are taken too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auth_tokens: bool,
    /// `auth = { oidc = ... }`: JWTs of an OpenID provider are taken too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_oidc: Option<super::oidc::OidcSpec>,
    /// HTTPS on the gateway port: the certificate and key files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<super::raw::Tls>,
    /// The container image on Kubernetes (only `render k8s` reads it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// `tools = { allow, deny, read_only }`, its patterns checked (see `crate::policy`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolPolicy {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

impl ToolPolicy {
    pub fn is_open(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty() && !self.read_only
    }

    /// The compiled rules (patterns were checked when the file was read; one that
    /// does not compile matches nothing).
    pub fn rules(&self) -> crate::policy::Rules {
        let compile = |texts: &[String]| {
            texts
                .iter()
                .filter_map(|t| crate::policy::Glob::new(t).ok())
                .collect()
        };
        crate::policy::Rules {
            allow: compile(&self.allow),
            deny: compile(&self.deny),
            read_only: self.read_only,
        }
    }

    /// For plans: each part on its own, so a change names what changed.
    pub(super) fn parts(&self) -> Option<AttrValue> {
        if self.is_open() {
            return None;
        }
        let mut parts = BTreeMap::new();
        if !self.allow.is_empty() {
            parts.insert("allow".to_string(), AttrValue::List(self.allow.clone()));
        }
        if !self.deny.is_empty() {
            parts.insert("deny".to_string(), AttrValue::List(self.deny.clone()));
        }
        if self.read_only {
            parts.insert("read_only".to_string(), AttrValue::Bool(true));
        }
        Some(AttrValue::Record(parts))
    }
}

/// `autoscale = { ... }`, validated: `min <= max`, durations parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Autoscale {
    pub min: u32,
    pub max: u32,
    /// Sessions one instance should carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_sessions: Option<u32>,
    /// Calls in flight one instance should carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_inflight: Option<u32>,
    #[serde(with = "human_duration")]
    pub scale_down_after: Duration,
    #[serde(with = "human_duration")]
    pub idle_after: Duration,
}

impl Autoscale {
    /// `1-3, 2 sessions/instance`: the bounds and targets on one line.
    pub fn describe(&self) -> String {
        let mut out = format!("{}-{}", self.min, self.max);
        if let Some(s) = self.target_sessions {
            out.push_str(&format!(", {s} sessions/instance"));
        }
        if let Some(r) = self.target_inflight {
            out.push_str(&format!(", {r} calls in flight/instance"));
        }
        out
    }

    /// The count a start begins with: `min`, and one even with `min = 0`, so that
    /// an apply shows the server can start.
    pub fn initial(&self) -> u32 {
        self.min.max(1)
    }
}

/// An MCP `ping` every `interval`, answered within `timeout`; `failures` misses in a
/// row restart the instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceLimits {
    /// Restart an instance whose tree stays above this (two samples in a row).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// RLIMIT_NOFILE of the server's processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nofile: Option<u64>,
    /// Thousandths of a core (not enforced yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_millis: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    #[serde(with = "human_duration")]
    pub interval: Duration,
    #[serde(with = "human_duration")]
    pub timeout: Duration,
    pub failures: u32,
}

impl Default for HealthCheck {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            failures: 3,
        }
    }
}

/// `max_sessions` when the file sets none.
pub const DEFAULT_MAX_SESSIONS: usize = 10_000;

fn default_max_sessions() -> usize {
    DEFAULT_MAX_SESSIONS
}

fn default_call_timeout() -> Duration {
    Duration::from_secs(300)
}

/// `session_idle` when the file sets none (a shared server).
pub const DEFAULT_SESSION_IDLE: Duration = Duration::from_secs(30 * 60);

fn default_session_idle() -> Duration {
    DEFAULT_SESSION_IDLE
}

fn default_drain_timeout() -> Duration {
    Duration::from_secs(30)
}

/// One secret of a spec, as the file holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRef {
    /// Where it is written (`servers.NAME.KEY`, `defaults.KEY`, ...); the encrypted
    /// payload names the same place, so a value moved elsewhere is refused.
    pub place: String,
    pub ciphertext: String,
    /// A keyed digest of the plaintext, filled in after decryption. The spec hash uses
    /// it, so re-encrypting the same value changes nothing.
    pub digest: Option<String>,
}

/// What applying a change to an attribute takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Effect {
    /// The running instances must be replaced: part of the spec hash.
    Restart,
    /// The supervisor adopts it without touching the processes.
    InPlace,
    /// Instances are added or removed.
    Scale,
}

/// A value as the plan shows and compares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum AttrValue {
    Text(String),
    Number(u64),
    List(Vec<String>),
    /// Names to text: env, headers, secrets' digests.
    Map(BTreeMap<String, String>),
    /// A setting's parts, each with its own type (`health`, `autoscale`), so a number
    /// shows as one (`failures = 3`, never `"3"`).
    Record(BTreeMap<String, AttrValue>),
    Bool(bool),
}

/// One named part of a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub name: &'static str,
    pub value: Option<AttrValue>,
    pub effect: Effect,
    /// Shown as `(sensitive)`, never as its value.
    pub sensitive: bool,
}

impl ServerSpec {
    /// `key -> digest` (a placeholder until decrypted); `None` without secrets.
    pub(super) fn secret_digests(&self) -> Option<BTreeMap<String, String>> {
        let digests: BTreeMap<String, String> = self
            .secrets
            .iter()
            .map(|(k, s)| {
                (
                    k.clone(),
                    s.digest.clone().unwrap_or_else(|| "(not decrypted)".into()),
                )
            })
            .collect();
        (!digests.is_empty()).then_some(digests)
    }

    /// What a careful operator should know before running this spec.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        // Whether cgroups enforce `limits` depends on the machine: see the cgroup module.
        if self.mode == Mode::Local
            && self.transport != Transport::Stdio
            && self.has_auth()
            && self.network == Network::Host
        {
            out.push(format!(
                "server `{}` has `auth` but runs on the machine's network (network = \"host\"): any local user can call its inner port on 127.0.0.1 without the bearer",
                self.name
            ));
        }
        if !self.bind.is_loopback() && self.tls.is_none() {
            out.push(format!(
                "server `{}` is served on {} without TLS: its traffic and bearer token cross the network in clear",
                self.name, self.bind
            ));
        }
        out
    }

    /// Clients must authenticate (an owner's bearer, callers' tokens, or both).
    pub fn has_auth(&self) -> bool {
        self.auth_bearer.is_some() || self.auth_tokens || self.auth_oidc.is_some()
    }

    /// Asks for a network of its own (a local server with `network = "isolated"`).
    pub fn wants_isolation(&self) -> bool {
        self.network == Network::Isolated && self.mode == Mode::Local
    }

    /// What runs instead when this server asks for a network of its own and the
    /// machine gives none (`why`), and the risk of it.
    pub fn unisolated_warning(&self, why: &str) -> Option<String> {
        if !self.wants_isolation() {
            return None;
        }
        let risk = if self.transport == Transport::Stdio {
            "it can reach the network".to_string()
        } else if self.has_auth() {
            "any local user can call its inner port on 127.0.0.1 without the bearer `auth` asks for, with its secrets in its environment".to_string()
        } else {
            "any local user can reach its inner port on 127.0.0.1".to_string()
        };
        Some(format!(
            "server `{}` runs on the machine's network, not isolated ({why}): {risk}",
            self.name
        ))
    }

    /// Where clients reach this server: `http://BIND:PORT` (`https` with `tls`).
    pub fn base_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        match self.bind {
            IpAddr::V6(ip) => format!("{scheme}://[{ip}]:{}", self.port),
            IpAddr::V4(ip) => format!("{scheme}://{ip}:{}", self.port),
        }
    }

    /// What the gateway serves for this server, as `(transport, URL)`: a stdio server
    /// both transports; a server that speaks HTTP itself, its own one, proxied.
    pub fn endpoints(&self) -> Vec<(&'static str, String)> {
        let base = self.base_url();
        let mcp = ("Streamable HTTP", format!("{base}/mcp"));
        let sse = ("SSE", format!("{base}/sse"));
        match self.transport {
            Transport::Stdio => vec![mcp, sse],
            Transport::StreamableHttp => vec![mcp],
            Transport::Sse => vec![sse],
        }
    }

    /// [`Self::endpoints`] on one line.
    pub fn endpoints_line(&self) -> String {
        self.endpoints()
            .iter()
            .map(|(kind, url)| format!("{kind} {url}"))
            .collect::<Vec<_>>()
            .join("   ")
    }
}

fn host_network() -> Network {
    Network::Host
}

fn multiplex() -> Sharing {
    Sharing::Multiplex
}

pub(super) fn non_empty_list(list: &[String]) -> Option<Vec<String>> {
    (!list.is_empty()).then(|| list.to_vec())
}

pub(super) fn non_empty_map(map: &BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!map.is_empty()).then(|| map.clone())
}

/// The kebab-case name serde gives a unit enum variant.
pub(super) fn kebab<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        other => format!("{other:?}"),
    }
}

/// `Duration` as a human string (`"10s"`) in serialized specs.
mod human_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}
