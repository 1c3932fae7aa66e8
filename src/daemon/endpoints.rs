//! The daemon's endpoints: each `[endpoints.NAME]` served on its port, converged after
//! the servers at every apply (a changed policy, rename or member list is adopted
//! live; a changed port or bind re-binds), and the directory through which endpoints
//! find their members (where each listens, its bearer, whether it is up).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use age::secrecy::SecretString;
use tokio::sync::mpsc;

use crate::gateway::endpoint::table::MemberState;
use crate::gateway::endpoint::{Address, Directory, Endpoint, MemberInfo};
use crate::gateway::{self, Gateway};
use crate::model::endpoint::EndpointSpec;

use super::*;

/// One endpoint while it runs.
pub(super) struct EndpointRuntime {
    pub(super) spec: EndpointSpec,
    pub(super) endpoint: Arc<Endpoint>,
    /// Dropped first on stop: the port closes, sessions end.
    pub(super) gateway: Option<Gateway>,
    /// Ends with it.
    _catalog: gateway::endpoint::Catalog,
}

/// What endpoints know of the daemon's servers, refreshed by the daemon.
#[derive(Default)]
pub(super) struct Members(RwLock<BTreeMap<String, MemberInfo>>);

impl Directory for Members {
    fn member(&self, name: &str) -> MemberInfo {
        self.0
            .read()
            .ok()
            .and_then(|m| m.get(name).cloned())
            .unwrap_or_else(|| MemberInfo {
                address: None,
                state: MemberState::Down("not running".into()),
                idle: false,
                can_idle: false,
                generation: 0,
                policy: crate::policy::Rules::default(),
            })
    }
}

/// How often the directory is refreshed from what runs.
const REFRESH: Duration = Duration::from_millis(500);

impl Daemon {
    /// Refreshes the members' directory now.
    pub(super) async fn refresh_members(&self) {
        let bearers = self.bearers().await;
        let servers = self.servers.lock().await;
        let members: BTreeMap<String, MemberInfo> = servers
            .iter()
            .map(|(name, rt)| (name.clone(), member_info(rt, bearers.get(name).cloned())))
            .collect();
        drop(servers);
        if let Ok(mut m) = self.members.0.write() {
            *m = members;
        }
    }

    /// Each server's bearer, when it has `auth` (from what the last apply decrypted);
    /// the daemon's owner key for one that takes only callers' tokens or an issuer's
    /// JWTs (every port with `auth` lets the owner in; the endpoint's own `auth` then
    /// decides who reaches it).
    async fn bearers(&self) -> BTreeMap<String, SecretString> {
        let desired = self.desired.lock().await;
        let Some(desired) = desired.as_ref() else {
            return BTreeMap::new();
        };
        let secrets = desired.secrets_arc();
        let servers = self.servers.lock().await;
        servers
            .values()
            .filter_map(|rt| {
                let value = match &rt.spec.auth_bearer {
                    Some(name) => secrets.values.get(&rt.spec.name)?.get(name)?.clone(),
                    None if rt.spec.has_auth() => (*self.owner_key).clone(),
                    None => return None,
                };
                Some((rt.spec.name.clone(), value))
            })
            .collect()
    }

    /// Serves, updates and closes endpoints to match `desired`; each change said on
    /// `progress`, each failure returned.
    pub(super) async fn converge_endpoints(
        self: &Arc<Self>,
        desired: &BTreeMap<String, EndpointSpec>,
        progress: &mpsc::Sender<String>,
    ) -> Vec<String> {
        self.refresh_members().await;
        let mut failures = Vec::new();
        let mut why_not = BTreeMap::new();
        let mut running = self.endpoints.lock().await;
        let gone: Vec<String> = running
            .keys()
            .filter(|name| !desired.contains_key(*name))
            .cloned()
            .collect();
        for name in gone {
            if let Some(mut rt) = running.remove(&name) {
                if let Some(g) = rt.gateway.take() {
                    g.shut().await;
                }
                let _ = progress.send(format!("endpoint {name}: closed")).await;
            }
        }
        for (name, spec) in desired {
            if let Some(rt) = running.get_mut(name) {
                if &rt.spec == spec {
                    continue;
                }
                if rt.spec.port == spec.port
                    && rt.spec.bind == spec.bind
                    && rt.spec.auth_tokens == spec.auth_tokens
                    && rt.spec.auth_oidc == spec.auth_oidc
                {
                    rt.endpoint.set_pins(self.endpoint_pins(spec));
                    rt.endpoint.update(spec.clone());
                    rt.spec = spec.clone();
                    let _ = progress
                        .send(format!("endpoint {name}: updated in place"))
                        .await;
                    continue;
                }
                if let Some(mut old) = running.remove(name)
                    && let Some(g) = old.gateway.take()
                {
                    g.shut().await;
                }
            }
            match self.start_endpoint(spec).await {
                Ok(rt) => {
                    let _ = progress
                        .send(format!("endpoint {name}: serving {}", spec.url()))
                        .await;
                    running.insert(name.clone(), rt);
                }
                Err(why) => {
                    why_not.insert(name.clone(), why.to_string());
                    let why = format!("endpoint {name}: {why}");
                    let _ = progress.send(why.clone()).await;
                    failures.push(why);
                }
            }
        }
        *self.endpoint_failures.lock().await = why_not;
        failures
    }

    async fn start_endpoint(
        self: &Arc<Self>,
        spec: &EndpointSpec,
    ) -> Result<EndpointRuntime, super::error::EndpointError> {
        use super::error::EndpointError;
        let directory: Arc<dyn Directory> = self.members.clone();
        let endpoint = Endpoint::new(spec.clone(), directory).map_err(EndpointError::Client)?;
        endpoint.set_pins(self.endpoint_pins(spec));
        endpoint.prime().await;
        let addr = std::net::SocketAddr::new(spec.bind, spec.port);
        let guarded = spec.auth_tokens || spec.auth_oidc.is_some();
        let auth = gateway::Auth {
            target: spec.name.clone(),
            callers: spec.auth_tokens.then(|| Arc::clone(&self.callers)),
            audit: self.audit.clone().filter(|_| guarded),
            owner: guarded.then(|| Arc::clone(&self.owner_key)),
            bearer: None,
            oidc: match &spec.auth_oidc {
                Some(o) => Some(
                    gateway::oidc::Oidc::new(o, Arc::clone(&self.oidc_buckets))
                        .map_err(EndpointError::Oidc)?,
                ),
                None => None,
            },
        };
        let served = gateway::endpoint::serve(&endpoint, addr, auth, None).await?;
        Ok(EndpointRuntime {
            spec: spec.clone(),
            endpoint,
            gateway: Some(served.gateway),
            _catalog: served.catalog,
        })
    }

    /// What `spec` is pinned to (`pin = true`): its table of the lock, else nothing.
    pub(super) fn endpoint_pins(&self, spec: &EndpointSpec) -> Option<crate::policy::pin::Pins> {
        spec.pin.then(|| {
            self.pins
                .read()
                .ok()
                .and_then(|l| l.get(&spec.name).cloned())
                .unwrap_or_default()
        })
    }

    /// Keeps the members' directory current until the daemon ends.
    pub(super) async fn refresh_members_every(self: Arc<Self>) {
        loop {
            tokio::time::sleep(REFRESH).await;
            if !self.endpoints.lock().await.is_empty() {
                self.refresh_members().await;
            }
        }
    }

    /// Every endpoint closed (the daemon stops).
    pub(super) async fn close_endpoints(&self) {
        let mut running = self.endpoints.lock().await;
        for (_, mut rt) in std::mem::take(&mut *running) {
            if let Some(g) = rt.gateway.take() {
                g.shut().await;
            }
        }
    }
}

/// What an endpoint may know of a running server.
fn member_info(rt: &ServerRuntime, bearer: Option<SecretString>) -> MemberInfo {
    let spec = &rt.spec;
    let policy = spec.tools.rules();
    let down = |why: String| MemberInfo {
        address: None,
        state: MemberState::Down(why),
        idle: false,
        can_idle: false,
        generation: 0,
        policy: spec.tools.rules(),
    };
    let Some(gateway) = &rt.gateway else {
        return down("not served".into());
    };
    if spec.tls.is_some() {
        return down("served over TLS, which endpoints cannot reach yet".into());
    }
    let ip = if gateway.addr.ip().is_unspecified() {
        std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
    } else {
        gateway.addr.ip()
    };
    let url = match ip {
        std::net::IpAddr::V6(ip) => format!("http://[{ip}]:{}/mcp", gateway.addr.port()),
        std::net::IpAddr::V4(ip) => format!("http://{ip}:{}/mcp", gateway.addr.port()),
    };
    let Ok(url) = url.parse() else {
        return down(format!("no URL for {}", gateway.addr));
    };
    let address = Some(Address { url, bearer });
    let idle = rt.scaled_to_zero();
    let per_session = spec.sharing == crate::model::spec::Sharing::PerSession;
    let views: Vec<_> = rt
        .instances
        .iter()
        .map(|h| h.view.borrow().phase())
        .collect();
    let running = views.contains(&supervisor::Phase::Running);
    let state = if idle || per_session || running || spec.mode == crate::model::spec::Mode::Remote {
        MemberState::Up
    } else {
        let phase = views.first().map_or_else(
            || "no instance".to_string(),
            |p| format!("{p:?}").to_lowercase(),
        );
        MemberState::Down(phase)
    };
    // Instance ids are never reused while the daemon runs: a new set means new
    // processes (a restart, a replace), whose lists may differ.
    let generation = rt.instances.iter().fold(0u64, |g, h| {
        g.wrapping_mul(1_000_003)
            .wrapping_add(u64::from(h.index) + 1)
    });
    MemberInfo {
        address,
        state,
        idle,
        can_idle: spec.autoscale.is_some_and(|a| a.min == 0),
        generation,
        policy,
    }
}

impl Daemon {
    pub(super) async fn endpoint_statuses(&self) -> Vec<crate::api::EndpointStatus> {
        let running = self.endpoints.lock().await;
        running
            .values()
            .map(|rt| crate::api::EndpointStatus {
                name: rt.spec.name.clone(),
                url: rt.spec.url(),
                members: rt.spec.members.clone(),
                down: down_lines(&rt.endpoint),
                tools: rt.endpoint.table().tools.listed.len(),
                calls: rt.endpoint.calls(),
                discovery_calls: if rt.spec.discovery.is_some() {
                    rt.endpoint.discovery_calls()
                } else {
                    BTreeMap::new()
                },
            })
            .collect()
    }

    /// `mcpctl tools NAME`: an endpoint's table, or a server's own list with its
    /// policy's decisions.
    pub(super) async fn tools_report(
        &self,
        name: &str,
    ) -> Result<crate::api::ToolsReport, super::error::ToolsError> {
        use super::error::ToolsError;
        use crate::api::{ToolLine, ToolsReport};
        if let Some(rt) = self.endpoints.lock().await.get(name) {
            let table = rt.endpoint.table();
            let shown = table
                .tools
                .listed
                .iter()
                .filter_map(|t| {
                    let shown = t.get("name")?.as_str()?;
                    let route = table.tools.routes.get(shown)?;
                    Some(ToolLine {
                        name: shown.to_string(),
                        member: Some(route.member.clone()),
                        original: route.original.clone(),
                        description: t
                            .get("description")
                            .and_then(|d| d.as_str())
                            .map(str::to_string),
                        why: None,
                        digest: Some(crate::policy::pin::digest(t)),
                    })
                })
                .collect();
            let hidden = table
                .tools
                .hidden
                .iter()
                .map(|h| ToolLine {
                    name: h.advertised.clone(),
                    member: Some(h.member.clone()),
                    original: h.original.clone(),
                    description: None,
                    why: Some(h.why.clone()),
                    digest: h.digest.clone(),
                })
                .collect();
            return Ok(ToolsReport {
                kind: "endpoint".into(),
                name: name.to_string(),
                shown,
                hidden,
                down: down_lines(&rt.endpoint),
                notes: table.notes.clone(),
                discovery: table
                    .discovery
                    .as_ref()
                    .map(|d| crate::api::DiscoveryReport {
                        on: d.on,
                        when_over: d.spec.when_over,
                        initial: d.initial(&table.tools.listed),
                        kept_out: d.kept_out(&table.tools.listed),
                    }),
            });
        }
        self.refresh_members().await;
        let (spec, upstream) = {
            let servers = self.servers.lock().await;
            let Some(rt) = servers.get(name) else {
                return Err(ToolsError::NotRunning(name.to_string()));
            };
            if rt.scaled_to_zero() {
                return Err(ToolsError::ScaledToZero(name.to_string()));
            }
            let upstream = rt
                .instances
                .iter()
                .find_map(|h| h.view.borrow().upstream().cloned());
            (rt.spec.clone(), upstream)
        };
        let tools = match upstream {
            Some(upstream) => {
                let answer = upstream
                    .request("tools/list", Some(serde_json::json!({})))
                    .await
                    .map_err(|source| ToolsError::Asked {
                        server: name.to_string(),
                        source,
                    })?;
                answer
                    .pointer("/result/tools")
                    .and_then(|t| t.as_array())
                    .cloned()
                    .unwrap_or_default()
            }
            // A server that speaks HTTP: asked as a client asks it.
            None => {
                let info = self.members.member(name);
                let address = info
                    .address
                    .ok_or_else(|| ToolsError::NotServing(name.to_string()))?;
                crate::gateway::endpoint::list_tools(&address)
                    .await
                    .map_err(|source| ToolsError::Listed {
                        server: name.to_string(),
                        source,
                    })?
            }
        };
        let rules = spec.tools.rules();
        let pins = spec.pin.then(|| {
            self.pins
                .read()
                .ok()
                .and_then(|l| l.get(name).cloned())
                .unwrap_or_default()
        });
        let mut report = ToolsReport {
            kind: "server".into(),
            name: name.to_string(),
            ..ToolsReport::default()
        };
        for tool in &tools {
            let Some(original) = tool.get("name").and_then(|n| n.as_str()) else {
                continue;
            };
            let line = ToolLine {
                name: original.to_string(),
                member: None,
                original: original.to_string(),
                description: tool
                    .get("description")
                    .and_then(|d| d.as_str())
                    .map(str::to_string),
                why: None,
                digest: Some(crate::policy::pin::digest(tool)),
            };
            let verdict = crate::policy::decide(&rules, original, tool)
                .map_err(|why| why.to_string())
                .and_then(|()| match &pins {
                    Some(pins) => crate::policy::pin::check(pins, original, tool)
                        .map_err(|why| why.to_string()),
                    None => Ok(()),
                });
            match verdict {
                Ok(()) => report.shown.push(line),
                Err(why) => report.hidden.push(ToolLine {
                    why: Some(why),
                    ..line
                }),
            }
        }
        Ok(report)
    }
}

/// An endpoint's members down, as `member: why`.
fn down_lines(endpoint: &Endpoint) -> Vec<String> {
    endpoint
        .down()
        .into_iter()
        .map(|(m, why)| format!("{m}: {why}"))
        .collect()
}
