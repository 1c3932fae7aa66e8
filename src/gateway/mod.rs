//! The gateway: every running stdio server served on its `bind:port`, Streamable HTTP
//! (2025-06-18 / 2025-11-25, JSON responses) at `/mcp`, many client sessions sharing
//! one child process through [`mux`].
//!
//! The gateway never spawns processes: it reaches instances through [`Instances`],
//! which the daemon implements over its supervised instances.

pub mod accept;
pub mod audit;
pub mod callers;
pub mod dial;
pub mod endpoint;
mod guard;
pub use guard::Auth;
pub mod handshake;
mod http;
pub mod lines;
pub mod meter;
pub mod mux;
pub mod oidc;
pub mod origin;
pub mod owned;
mod owners;
mod proxy;
pub mod queue;
mod random;
pub mod rate;
pub mod replicas;
mod reply;
mod sessions;
pub mod tls;
pub mod tool_gate;
pub mod trace;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub use mux::Upstream;
pub use proxy::{HttpPool, HttpUpstream};

pub use crate::wire::era::SUPPORTED_VERSIONS;

/// Keeps a session's own instance alive; dropping it stops the instance.
pub type Lease = Box<dyn Send + Sync>;

/// What [`Instances::open`] resolves to: the instance, and its lease if it is the
/// session's own.
pub type Opening<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Option<(Upstream, Option<Lease>)>> + Send + 'a>,
>;

pub type Waiting<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>;

/// How the gateway reaches a server's running instances.
pub trait Instances: Send + Sync + 'static {
    /// A ready instance to pin a new session to: the least loaded.
    fn pick(&self) -> Option<Upstream>;

    /// An instance for one session-less (2026-07-28) request, counted against it until
    /// the returned guard drops. By default the least-loaded one.
    fn pick_request(&self) -> Option<(Upstream, mux::Pin)> {
        self.pick().map(|u| {
            let claim = u.claim();
            (u, claim)
        })
    }

    /// Resolves once an instance is ready, or none is starting or waiting to restart: a
    /// client that arrives while the server starts waits for it instead of being
    /// refused. By default at once.
    fn until_ready(&self) -> Waiting<'_> {
        Box::pin(std::future::ready(()))
    }

    /// Whether a request now would be served (`/readyz`): an instance is running, or
    /// one would be started for it. By default: one is running.
    fn ready(&self) -> bool {
        self.pick().is_some()
    }

    /// The instance for a new session. By default a shared one ([`Self::pick`]);
    /// `sharing = "per-session"` starts one of its own, held by the lease.
    /// How its port's spans name it: `None` for a server (the default); an endpoint
    /// says so, and which member a call goes to.
    fn trace_role(&self) -> Option<trace::Role> {
        None
    }

    fn open(&self) -> Opening<'_> {
        Box::pin(async move {
            if self.pick().is_none() {
                self.until_ready().await;
            }
            self.pick().map(|u| (u, None))
        })
    }
}

/// A listening gateway; dropping it closes the port.
pub struct Gateway {
    /// The accept loop (its connections end with it).
    task: owned::Owned<()>,
    pub addr: SocketAddr,
    /// What went through the port.
    pub meter: Arc<meter::Meter>,
    max_sessions: Arc<AtomicUsize>,
    /// How long a session may be idle, in milliseconds, changed in place.
    session_idle: Arc<std::sync::atomic::AtomicU64>,
    /// Ends every session of a stdio server (their streams, calls and own children).
    close_sessions: Option<http::Closer>,
    /// The server's tool policy on this port.
    tools: Arc<tool_gate::ToolGate>,
    /// Counts the sessions in use or seen lately (stdio servers).
    recent_sessions: Option<http::Recent>,
}

impl Gateway {
    /// Sessions with an open stream or a call, or seen within `within`; `None` for a
    /// port that keeps no sessions of its own (a proxied server).
    pub fn recent_sessions(&self, within: std::time::Duration) -> Option<usize> {
        self.recent_sessions.as_ref().map(|count| count(within))
    }

    /// A new tool policy, from the next request on.
    pub fn set_tool_policy(&self, rules: crate::policy::Rules) {
        self.tools.set(rules);
    }

    /// What the pins hid from the server's last list (`tool: why`).
    pub fn unpinned(&self) -> Vec<String> {
        self.tools.unpinned()
    }

    /// `pin = true`: the pinned definitions (`None`: not pinned); whether they changed.
    pub fn set_pins(&self, pins: Option<crate::policy::pin::Pins>) -> bool {
        self.tools.set_pins(pins)
    }

    /// A new `session_idle`, from the janitor's next sweep on.
    pub fn set_session_idle(&self, idle: std::time::Duration) {
        let ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
        self.session_idle.store(ms, Ordering::Relaxed);
    }

    /// A new `max_sessions`, for sessions opened from now on.
    pub fn set_max_sessions(&self, max: usize) {
        self.max_sessions.store(max.max(1), Ordering::Relaxed);
    }

    /// Closes the port and returns once it is closed, so that it can be bound again
    /// at once (dropping only asks the runtime to end the accept loop, later).
    pub async fn shut(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

/// The bounds of one gateway, and who shares its sessions.
#[derive(Clone)]
pub struct Limits {
    /// Live sessions of a stdio server (see `sessions.rs`).
    pub max_sessions: usize,
    /// How long a session may be idle (no request, stream or call) before it is
    /// forgotten.
    pub session_idle: std::time::Duration,
    /// Connections at once and their header timeout (see `accept.rs`).
    pub connections: accept::ConnectionLimits,
    /// Replicas of this gateway that forward each other's sessions (`replicas.rs`).
    pub replicas: Option<Arc<replicas::Replicas>>,
}

/// Stopping a server ends it all: no new connections, and its sessions end with
/// their streams, calls and `per-session` children, even while a client holds a
/// connection open (which keeps the router alive).
impl Drop for Gateway {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(close) = self.close_sessions.take() {
            close();
        }
        self.tools.end_tasks();
    }
}

/// `GET /healthz`: the gateway answers (200). `GET /readyz`: a request now would be
/// served (200), or not (503).
/// With replicas, also the answer to another replica's challenge (it proves the key,
/// and tells nothing else).
fn probes(
    ready: Arc<dyn Fn() -> bool + Send + Sync>,
    replicas: Option<Arc<replicas::Replicas>>,
) -> axum::Router {
    use axum::http::StatusCode;
    let router = match replicas {
        Some(replicas) => axum::Router::new().route(
            replicas::PROOF_PATH,
            axum::routing::get(
                move |query: axum::extract::Query<std::collections::HashMap<String, String>>| {
                    let nonce = query.get("nonce").cloned().unwrap_or_default();
                    let answer =
                        (!nonce.is_empty() && nonce.len() <= 64).then(|| replicas.prove(&nonce));
                    async move {
                        match answer {
                            Some(proof) => (StatusCode::OK, proof),
                            None => (StatusCode::BAD_REQUEST, "a nonce, please\n".into()),
                        }
                    }
                },
            ),
        ),
        None => axum::Router::new(),
    };
    router
        .route("/healthz", axum::routing::get(|| async { "ok\n" }))
        .route(
            "/readyz",
            axum::routing::get(move || {
                let ready = ready();
                async move {
                    if ready {
                        (StatusCode::OK, "ready\n")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "no instance is ready\n")
                    }
                }
            }),
        )
}

/// What a gateway serves: stdio instances through the mux, or an HTTP upstream.
pub enum Backend {
    Stdio(Arc<dyn Instances>),
    Http(HttpUpstream),
}

/// Binds `addr` (so a taken port fails the start before any process runs) and serves,
/// over HTTPS with `tls`. With `auth`, every request must carry the owner's bearer or
/// a caller's token (see [`Auth`]).
pub async fn serve(
    addr: SocketAddr,
    backend: Backend,
    auth: Auth,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: Limits,
    tools: crate::policy::Rules,
) -> std::io::Result<Gateway> {
    let tools = tool_gate::ToolGate::new(tools);
    let listener = accept::bind(addr)?;
    let addr = listener.local_addr()?;
    let loopback = addr.ip().is_loopback();
    let max_sessions = Arc::new(AtomicUsize::new(limits.max_sessions.max(1)));
    let session_idle = Arc::new(std::sync::atomic::AtomicU64::new(
        u64::try_from(limits.session_idle.as_millis()).unwrap_or(u64::MAX),
    ));
    let meter = meter::Meter::new();
    let ready: Arc<dyn Fn() -> bool + Send + Sync> = match &backend {
        Backend::Stdio(instances) => {
            let instances = Arc::clone(instances);
            Arc::new(move || instances.ready())
        }
        Backend::Http(upstream) => {
            let pool = upstream.pool.clone();
            Arc::new(move || pool.as_ref().is_none_or(|p| !p.ports().is_empty()))
        }
    };
    let traced = Arc::new(trace::Where {
        name: auth.target.clone(),
        role: match &backend {
            Backend::Stdio(instances) => instances
                .trace_role()
                .unwrap_or(trace::Role::Server { network: "pipe" }),
            Backend::Http(_) => trace::Role::Server { network: "tcp" },
        },
    });
    let (app, close_sessions, recent_sessions) = match backend {
        Backend::Stdio(instances) => {
            let (app, close, recent) = http::router(
                instances,
                Arc::clone(&tools),
                Arc::clone(&max_sessions),
                Arc::clone(&session_idle),
                Arc::clone(&meter),
                limits.connections.max_connections,
                limits.replicas.clone(),
            )?;
            let app = match &limits.replicas {
                Some(replicas) => app.layer(axum::middleware::from_fn_with_state(
                    Arc::clone(replicas),
                    replicas::layer,
                )),
                None => app,
            };
            (app, Some(close), Some(recent))
        }
        Backend::Http(upstream) => (proxy::router(upstream, Arc::clone(&tools))?, None, None),
    };
    // Inside the guard: what it let in, recorded with the caller it found.
    let app = match &auth.audit {
        Some(audit) => app.layer(axum::middleware::from_fn_with_state(
            audit::Trail {
                audit: Arc::clone(audit),
                target: auth.target.clone(),
                tools: Arc::clone(&tools),
            },
            audit::record,
        )),
        None => app,
    };
    // Inside the guard too: a refused request is no span.
    let app = app.layer(axum::middleware::from_fn_with_state(traced, trace::layer));
    let https = tls.is_some();
    let app = guard::Guard::new(loopback, auth, limits.connections.header_timeout, https).wrap(app);
    // Probes answer before the guard: a kubelet has no bearer, and they tell nothing else.
    let app = probes(ready, limits.replicas.clone()).merge(app);
    let task = owned::owned(accept::serve(
        listener,
        app,
        tls,
        limits.connections,
        Arc::clone(&meter),
    ));
    Ok(Gateway {
        task,
        addr,
        meter,
        max_sessions,
        session_idle,
        close_sessions,
        tools,
        recent_sessions,
    })
}
