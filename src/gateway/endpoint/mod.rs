//! An endpoint: a set of servers behind one port (`[endpoints.NAME]`).
//!
//! Theory of operation. The endpoint's port is a gateway like a server's (the same
//! accept loop, guard, sessions, `/mcp` in both eras, `/sse`), whose "child" is an
//! in-process aggregator ([`session`]) speaking JSON-RPC over in-memory pipes, one per
//! client session (so a client's member sessions are its own, and end with it). The
//! aggregator answers the lists from the endpoint's [`table::Table`] and routes each
//! call by name or URI to a member, reached as any client reaches it ([`link`]).
//!
//! The catalog task keeps what each member last listed: it re-reads a member's lists
//! when it comes up, when a session sees its `list_changed`, or when asked; a member
//! scaled to zero is listed from what it listed last, without waking it. Every change
//! of the lists or of a policy rebuilds the table, and open sessions get
//! `list_changed` once.
//!
//! Tools on demand (`discovery`, [`discovery`]): while on, a session lists the
//! meta-tools `find_tools` (ranked by [`rank`]) and `use_tools`, the `always` tools and
//! what it pulled in; each session keeps its own working set and hears its own
//! `list_changed`. Calls still go by the table, so policy alone decides what runs.

mod catalog;
pub mod discovery;
mod link;
pub mod rank;
mod session;
pub mod table;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{Notify, watch};

use catalog::list_member;
pub use catalog::{ListError, Lists, list_tools};
pub use link::Address;
use link::{HttpClient, Link};
use table::{Member, MemberState, Table};

use crate::gateway::{Instances, Opening, Upstream, handshake, mux};
use crate::model::endpoint::EndpointSpec;
use crate::policy::Rules;

/// How long one member may take to list everything.
const LIST_TIMEOUT: Duration = Duration::from_secs(10);
/// The most items of one kind taken from one member (a member that lists more is
/// cut there, and reported).
pub const MAX_ITEMS: usize = 2_000;
/// Pages followed per list, at most.
const MAX_PAGES: usize = 100;
/// How often members' states are looked at.
const POLL: Duration = Duration::from_secs(1);
/// Member sessions one endpoint holds with one member, at most (every client session
/// that uses the member has one): a client opening sessions by the thousand must not
/// exhaust a member's own session and stream caps for its other clients.
pub const MAX_MEMBER_SESSIONS: usize = 256;

/// Why a client session has no session with a member.
#[derive(Debug, thiserror::Error)]
enum MemberError {
    #[error("{0} is broken")]
    Broken(&'static str),
    #[error(
        "member {member}: this endpoint holds {MAX_MEMBER_SESSIONS} sessions with it already; try again later"
    )]
    Full { member: String },
    #[error("member {member} is down: {why}")]
    Down { member: String, why: String },
    #[error("member {member} is not running")]
    NotRunning { member: String },
    #[error("member {member}: {source}")]
    Open {
        member: String,
        #[source]
        source: link::LinkError,
    },
}

/// What the daemon knows of a member now.
#[derive(Clone)]
pub struct MemberInfo {
    /// Where to reach it, when it runs.
    pub address: Option<Address>,
    pub state: MemberState,
    /// Scaled to zero: listed from its last lists, not asked (that would wake it).
    pub idle: bool,
    /// It may scale to zero (`autoscale` with `min = 0`): the endpoint holds no stream
    /// open on it (that would keep it awake).
    pub can_idle: bool,
    /// Changes when its processes are replaced (a restart, a new spec): its lists are
    /// read again.
    pub generation: u64,
    /// Its own tool policy.
    pub policy: Rules,
}

/// The daemon's side: members by name.
pub trait Directory: Send + Sync + 'static {
    fn member(&self, name: &str) -> MemberInfo;
}

/// One endpoint while it runs.
pub struct Endpoint {
    spec: watch::Sender<Arc<EndpointSpec>>,
    directory: Arc<dyn Directory>,
    client: HttpClient,
    catalog: Mutex<BTreeMap<String, Lists>>,
    table: watch::Sender<Arc<Table>>,
    /// Poked to re-read every member's lists (a `list_changed` was seen).
    refresh: Arc<Notify>,
    /// The members' states when the table was last built.
    states: Mutex<BTreeMap<String, MemberState>>,
    /// Calls routed, by member (a member of the spec: bounded).
    calls: Mutex<BTreeMap<String, crate::api::MemberCalls>>,
    /// `find_tools` and `use_tools` calls answered (discovery).
    discovery_calls: [AtomicU64; 2],
    /// Member sessions held, by member (see [`MAX_MEMBER_SESSIONS`]).
    member_slots: Mutex<BTreeMap<String, Arc<tokio::sync::Semaphore>>>,
    /// Per member: the generation its lists were read at, and the task that holds a
    /// session's stream open on it to hear its `list_changed`.
    watchers: Mutex<BTreeMap<String, Watcher>>,
    /// `pin = true`: the lock's digests of its advertised tools (none: nothing pinned).
    pins: Mutex<Option<Arc<crate::policy::pin::Pins>>>,
    /// Its tasks (members' watches, client sessions' aggregators): they end with it.
    tasks: crate::gateway::owned::Scope,
}

/// A member's watch: the generation it started at, its task, and what ends it (its
/// member session is then closed, not left to expire).
struct Watcher {
    generation: u64,
    task: tokio::task::AbortHandle,
    stop: Arc<Notify>,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        if let Ok(watchers) = self.watchers.lock() {
            for w in watchers.values() {
                w.stop.notify_one();
            }
        }
        // The watches close their member sessions first (a moment), then all end.
        self.tasks.end_within(std::time::Duration::from_secs(5));
    }
}

impl Endpoint {
    /// Its tasks (a client session's aggregator is one).
    pub(super) fn tasks(&self) -> crate::gateway::owned::Scope {
        self.tasks.clone()
    }

    pub fn new(spec: EndpointSpec, directory: Arc<dyn Directory>) -> std::io::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            spec: watch::Sender::new(Arc::new(spec)),
            directory,
            client: super::proxy::client()?,
            catalog: Mutex::default(),
            table: watch::Sender::new(Arc::new(Table::default())),
            refresh: Arc::new(Notify::new()),
            states: Mutex::default(),
            calls: Mutex::default(),
            discovery_calls: Default::default(),
            member_slots: Mutex::default(),
            watchers: Mutex::default(),
            pins: Mutex::default(),
            tasks: crate::gateway::owned::Scope::new(),
        }))
    }

    pub fn spec(&self) -> Arc<EndpointSpec> {
        self.spec.borrow().clone()
    }

    /// A changed policy, rename or member list, adopted live: the table is rebuilt.
    pub fn update(&self, spec: EndpointSpec) {
        self.spec.send_replace(Arc::new(spec));
        self.refresh.notify_one();
    }

    /// The lock's digests of its tools from now on (`None`: not pinned); the table is
    /// rebuilt when they differ.
    pub fn set_pins(&self, pins: Option<crate::policy::pin::Pins>) {
        let Ok(mut held) = self.pins.lock() else {
            return;
        };
        if held.as_deref() != pins.as_ref() {
            *held = pins.map(Arc::new);
            drop(held);
            self.refresh.notify_one();
        }
    }

    /// Counts one call routed to `member`.
    fn record(&self, member: &str, elapsed: Duration, failed: bool) {
        use crate::gateway::meter::{BUCKETS, bucket};
        let Ok(mut calls) = self.calls.lock() else {
            return;
        };
        let entry = calls
            .entry(member.to_string())
            .or_insert_with(|| crate::api::MemberCalls {
                member: member.to_string(),
                buckets: vec![0; BUCKETS.len() + 1],
                ..Default::default()
            });
        entry.calls += 1;
        entry.errors += u64::from(failed);
        entry.sum_secs += elapsed.as_secs_f64();
        if let Some(slot) = entry.buckets.get_mut(bucket(elapsed)) {
            *slot += 1;
        }
    }

    /// Counts one call of a meta-tool (`find_tools`, `use_tools`).
    fn count_discovery(&self, tool: &str) {
        let at = usize::from(tool == discovery::USE);
        if let Some(n) = self.discovery_calls.get(at) {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Meta-tool calls answered, by tool.
    pub fn discovery_calls(&self) -> BTreeMap<String, u64> {
        [discovery::FIND, discovery::USE]
            .iter()
            .zip(&self.discovery_calls)
            .map(|(tool, n)| (tool.to_string(), n.load(Ordering::Relaxed)))
            .collect()
    }

    /// What was routed to each member.
    pub fn calls(&self) -> Vec<crate::api::MemberCalls> {
        self.calls
            .lock()
            .map(|c| c.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn table(&self) -> Arc<Table> {
        self.table.borrow().clone()
    }

    fn tables(&self) -> watch::Receiver<Arc<Table>> {
        self.table.subscribe()
    }

    /// Members down now, with why.
    pub fn down(&self) -> Vec<(String, String)> {
        self.states
            .lock()
            .map(|s| {
                s.iter()
                    .filter_map(|(name, state)| match state {
                        MemberState::Down(why) => Some((name.clone(), why.clone())),
                        MemberState::Up => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The members' `initialize` answers, as last read (for the endpoint's own).
    fn inits(&self) -> Vec<(String, Value)> {
        let spec = self.spec();
        let catalog = self.catalog.lock();
        let Ok(catalog) = catalog else {
            return Vec::new();
        };
        spec.members
            .iter()
            .filter_map(|m| Some((m.clone(), catalog.get(m)?.init.clone()?)))
            .collect()
    }

    /// A slot for one more session with `member`, or why not (the endpoint holds
    /// [`MAX_MEMBER_SESSIONS`] with it already). Held as long as the session.
    fn member_slot(&self, member: &str) -> Result<tokio::sync::OwnedSemaphorePermit, MemberError> {
        let slots = self
            .member_slots
            .lock()
            .map_err(|_| MemberError::Broken("the endpoint's table of member sessions"))?
            .entry(member.to_string())
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(MAX_MEMBER_SESSIONS)))
            .clone();
        slots.try_acquire_owned().map_err(|_| MemberError::Full {
            member: member.to_string(),
        })
    }

    /// A new link to `member` (not yet opened), or why there is none.
    fn link(&self, member: &str) -> Result<Link, MemberError> {
        let info = self.directory.member(member);
        if let MemberState::Down(why) = info.state {
            return Err(MemberError::Down {
                member: member.to_string(),
                why,
            });
        }
        let address = info.address.ok_or_else(|| MemberError::NotRunning {
            member: member.to_string(),
        })?;
        Ok(Link::new(self.client.clone(), &address))
    }

    /// Reads every member's lists once (before the port is served, so a first
    /// client finds them).
    pub async fn prime(&self) {
        self.step(true).await;
    }

    /// Keeps the table current (lists re-read on every poke, states polled), until
    /// the endpoint is dropped.
    pub async fn run_catalog(self: Arc<Self>) {
        loop {
            let asked = {
                tokio::select! {
                    () = self.refresh.notified() => {
                        // Coalesce a burst of changes into one re-read.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        true
                    }
                    () = tokio::time::sleep(POLL) => false,
                }
            };
            self.step(asked).await;
        }
    }

    /// Lists members that need it (all when `asked`; else those that came up or were
    /// never listed), then rebuilds the table when anything changed.
    async fn step(&self, asked: bool) {
        let spec = self.spec();
        let infos: Vec<(String, MemberInfo)> = spec
            .members
            .iter()
            .map(|m| (m.clone(), self.directory.member(m)))
            .collect();
        let before = self.states.lock().map(|s| s.clone()).unwrap_or_default();
        let listed: Vec<String> = self
            .catalog
            .lock()
            .map(|c| {
                c.iter()
                    .filter(|(_, l)| l.error.is_none() && l.init.is_some())
                    .map(|(n, _)| n.clone())
                    .collect()
            })
            .unwrap_or_default();
        let watched = self.watch(&infos);
        let due: Vec<&(String, MemberInfo)> = infos
            .iter()
            .filter(|(name, info)| {
                info.state == MemberState::Up
                    && !info.idle
                    && info.address.is_some()
                    && (asked
                        || !listed.contains(name)
                        || before.get(name) != Some(&MemberState::Up)
                        || watched.contains(name))
            })
            .collect();
        let fetched = futures_util::future::join_all(due.iter().map(|(name, info)| async move {
            let lists = match &info.address {
                Some(address) => list_member(&self.client, address).await,
                None => Lists::default(),
            };
            (name.clone(), lists)
        }))
        .await;
        if let Ok(mut catalog) = self.catalog.lock() {
            for (name, lists) in fetched {
                if lists.busy {
                    // Busy is not down: what it listed stands.
                    continue;
                }
                match (&lists.error, catalog.get_mut(&name)) {
                    // A failed re-read keeps what was listed, and says why.
                    (Some(error), Some(kept)) => kept.error = Some(error.clone()),
                    _ => {
                        catalog.insert(name, lists);
                    }
                }
            }
            catalog.retain(|name, _| spec.members.contains(name));
        }
        let states: BTreeMap<String, MemberState> = infos
            .iter()
            .map(|(name, info)| {
                let error = self
                    .catalog
                    .lock()
                    .ok()
                    .and_then(|c| c.get(name).and_then(|l| l.error.clone()));
                let state = match (&info.state, error) {
                    (MemberState::Down(why), _) => MemberState::Down(why.clone()),
                    (MemberState::Up, Some(why)) if !info.idle => {
                        MemberState::Down(why.to_string())
                    }
                    _ => MemberState::Up,
                };
                (name.clone(), state)
            })
            .collect();
        log_changes(&spec.name, &before, &states);
        self.rebuild(&spec, &infos, &states);
        if let Ok(mut s) = self.states.lock() {
            *s = states;
        }
    }

    /// Holds a stream open on each member that is up (and may not scale to zero), to
    /// hear its `list_changed` whether or not a client uses it; returns the members
    /// whose watch was (re)started, whose lists must be read again (it is new, it
    /// restarted, or its stream ended).
    fn watch(&self, infos: &[(String, MemberInfo)]) -> Vec<String> {
        let Ok(mut watchers) = self.watchers.lock() else {
            return Vec::new();
        };
        watchers.retain(|name, w| {
            let keep = infos.iter().any(|(n, info)| {
                n == name
                    && info.state == MemberState::Up
                    && !info.can_idle
                    && info.generation == w.generation
            }) && !w.task.is_finished();
            if !keep {
                w.stop.notify_one();
            }
            keep
        });
        let mut started = Vec::new();
        for (name, info) in infos {
            if info.state != MemberState::Up || info.can_idle || watchers.contains_key(name) {
                continue;
            }
            let Some(address) = info.address.clone() else {
                continue;
            };
            let link = Link::new(self.client.clone(), &address);
            let refresh = Arc::clone(&self.refresh);
            let stop = Arc::new(Notify::new());
            let stopped = Arc::clone(&stop);
            let task = self.tasks.spawn_abortable(async move {
                let watch = async {
                    link.open(&json!({})).await.ok()?;
                    let stream = link.open_stream().await.ok()?;
                    Some(stream)
                };
                let stream = tokio::select! {
                    stream = watch => stream,
                    () = stopped.notified() => None,
                };
                let Some(stream) = stream else {
                    link.close().await;
                    return;
                };
                let (tx, mut rx) = tokio::sync::mpsc::channel::<Value>(16);
                let heard = async {
                    while let Some(msg) = rx.recv().await {
                        let method = msg.get("method").and_then(Value::as_str).unwrap_or("");
                        if method.ends_with("/list_changed") {
                            refresh.notify_one();
                        }
                    }
                };
                tokio::select! {
                    ((), ()) = async { tokio::join!(link::read_stream(stream, tx), heard) } => {
                        // Its stream ended (it restarted, say): the next step reads it again.
                        refresh.notify_one();
                    }
                    () = stopped.notified() => {}
                }
                link.close().await;
            });
            watchers.insert(
                name.clone(),
                Watcher {
                    generation: info.generation,
                    task,
                    stop,
                },
            );
            started.push(name.clone());
        }
        started
    }

    fn rebuild(
        &self,
        spec: &EndpointSpec,
        infos: &[(String, MemberInfo)],
        states: &BTreeMap<String, MemberState>,
    ) {
        let Ok(catalog) = self.catalog.lock() else {
            return;
        };
        let empty = Lists::default();
        let members: Vec<Member<'_>> = infos
            .iter()
            .map(|(name, info)| {
                let lists = catalog.get(name).unwrap_or(&empty);
                Member {
                    name,
                    state: states.get(name).cloned().unwrap_or(MemberState::Up),
                    policy: &info.policy,
                    tools: &lists.tools,
                    prompts: &lists.prompts,
                    resources: &lists.resources,
                    templates: &lists.templates,
                }
            })
            .collect();
        let pins = self.pins.lock().ok().and_then(|p| p.clone());
        let mut table = table::build(spec, &members, pins.as_deref());
        let clashes: Vec<String> = table
            .uri_clashes
            .iter()
            .map(|(uri, first, other)| {
                format!("resource {uri} is listed by {first} and {other}: {first}'s is served")
            })
            .collect();
        table.notes.extend(clashes);
        for (name, lists) in catalog.iter() {
            table
                .notes
                .extend(lists.notes.iter().map(|n| format!("member {name}: {n}")));
        }
        drop(members);
        drop(catalog);
        self.table.send_if_modified(|current| {
            if same(current, &table) {
                return false;
            }
            *current = Arc::new(table);
            true
        });
    }
}

/// Members that went down or came back since the last step, said in the log (before
/// the table changes, so a client that sees the change finds the line written).
fn log_changes(
    endpoint: &str,
    before: &BTreeMap<String, MemberState>,
    now: &BTreeMap<String, MemberState>,
) {
    for (member, state) in now {
        match (before.get(member), state) {
            (Some(was), MemberState::Down(why)) if was != state => {
                tracing::warn!("endpoint {endpoint}: member {member} is down: {why}");
            }
            (Some(MemberState::Down(_)), MemberState::Up) => {
                tracing::info!("endpoint {endpoint}: member {member} is up again");
            }
            (None, MemberState::Down(why)) => {
                tracing::warn!("endpoint {endpoint}: member {member} is down: {why}");
            }
            _ => {}
        }
    }
}

/// Whether two tables show and route the same (a rebuild that changes nothing sends
/// no `list_changed`).
fn same(a: &Table, b: &Table) -> bool {
    a.tools.listed == b.tools.listed
        && a.prompts.listed == b.prompts.listed
        && a.resources == b.resources
        && a.templates == b.templates
        && a.tools.hidden == b.tools.hidden
        && a.tools.down == b.tools.down
        && a.discovery.as_ref().map(|d| (&d.spec, d.on))
            == b.discovery.as_ref().map(|d| (&d.spec, d.on))
}

/// The endpoint as the gateway sees it: every client session gets an aggregator of
/// its own; session-less (2026-07-28) requests share one.
pub struct EndpointInstances {
    endpoint: Arc<Endpoint>,
    shared: Upstream,
    /// The shared aggregator lives as long as the endpoint's port.
    _shared: session::Lease,
}

impl EndpointInstances {
    pub async fn new(endpoint: Arc<Endpoint>) -> std::io::Result<Arc<Self>> {
        let (shared, lease) = start_session(&endpoint, true)
            .await
            .map_err(|e| std::io::Error::other(format!("the endpoint's aggregator: {e}")))?;
        Ok(Arc::new(Self {
            endpoint,
            shared,
            _shared: lease,
        }))
    }
}

/// A new aggregator, handshaken like a child: its upstream and what ends it.
async fn start_session(
    endpoint: &Arc<Endpoint>,
    sessionless: bool,
) -> Result<(Upstream, session::Lease), handshake::HandshakeError> {
    let (to_child, child_in) = tokio::io::duplex(1 << 16);
    let (child_out, from_child) = tokio::io::duplex(1 << 16);
    let lease = session::spawn(Arc::clone(endpoint), child_in, child_out, sessionless);
    let limits = mux::Limits {
        max_message: mux::MAX_MESSAGE,
        // Members time their own calls out; this only bounds a member that never does.
        call_timeout: Duration::from_secs(3600),
    };
    let upstream = handshake::connect(
        &endpoint.tasks,
        to_child,
        from_child,
        limits,
        Arc::new(|_: &Value| {}),
        Arc::new(|_: &str| {}),
    )
    .await?;
    Ok((upstream, lease))
}

impl Instances for EndpointInstances {
    fn trace_role(&self) -> Option<crate::gateway::trace::Role> {
        let endpoint = Arc::clone(&self.endpoint);
        Some(crate::gateway::trace::Role::Endpoint {
            member_of: Box::new(move |method, name| {
                endpoint.table().member_of(method, name).map(str::to_string)
            }),
        })
    }

    fn pick(&self) -> Option<Upstream> {
        self.ready().then(|| self.shared.clone())
    }

    fn ready(&self) -> bool {
        use crate::model::raw::Failure;
        self.endpoint.spec().failure == Failure::Open || self.endpoint.down().is_empty()
    }

    fn open(&self) -> Opening<'_> {
        Box::pin(async move {
            if !self.ready() {
                return None;
            }
            let (upstream, lease) = start_session(&self.endpoint, false).await.ok()?;
            let lease: crate::gateway::Lease = Box::new(lease);
            Some((upstream, Some(lease)))
        })
    }
}

/// An endpoint being served: its port, and its catalog task (aborted when dropped).
pub struct Served {
    pub gateway: crate::gateway::Gateway,
    pub catalog: Catalog,
}

/// The catalog task of a served endpoint; dropping it ends the task.
/// The catalog's loop; dropped, it ends.
pub struct Catalog {
    _task: crate::gateway::owned::Owned<()>,
}

/// Why an endpoint could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot start the endpoint's aggregator: {0}")]
    Aggregator(#[source] std::io::Error),
    #[error("cannot serve {addr}: {source}")]
    Port {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Serves `endpoint` (its lists read already: [`Endpoint::prime`]) at `addr` with the
/// gateway's front, `auth` and `tls`, its catalog kept current until the result drops.
pub async fn serve(
    endpoint: &Arc<Endpoint>,
    addr: std::net::SocketAddr,
    auth: crate::gateway::Auth,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<Served, ServeError> {
    use crate::gateway::{self, Backend};
    let instances = EndpointInstances::new(Arc::clone(endpoint))
        .await
        .map_err(ServeError::Aggregator)?;
    let catalog = Catalog {
        _task: crate::gateway::owned::owned(Arc::clone(endpoint).run_catalog()),
    };
    let limits = gateway::Limits {
        // Fewer client sessions than the member sessions it may hold with one member
        // (room for its own watch, and for evicted sessions still closing theirs): a
        // client that hangs up without DELETE leaves its session until the oldest is
        // evicted for a new one, instead of filling the members' slots for
        // `session_idle` (found by the soak: `bench/soak`).
        max_sessions: MAX_MEMBER_SESSIONS - 16,
        session_idle: crate::model::spec::DEFAULT_SESSION_IDLE,
        connections: gateway::accept::ConnectionLimits::from_env(),
        replicas: None,
    };
    let gateway = gateway::serve(
        addr,
        Backend::Stdio(instances),
        auth,
        tls,
        limits,
        // The endpoint's policy is its table's, applied by its aggregator.
        Rules::default(),
    )
    .await
    .map_err(|source| ServeError::Port { addr, source })?;
    Ok(Served { gateway, catalog })
}
