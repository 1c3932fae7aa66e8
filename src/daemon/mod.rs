//! The daemon: one per config file. It owns the server processes and converges them
//! to the file when asked (control socket) or when the file changes (watch).
//!
//! # Theory of operation
//!
//! `run` takes the daemon lock (`.mcpctl/daemon.lock`, one daemon per config), kills
//! what a previous daemon left behind (`state`), binds the control socket and
//! converges once. Every convergence is the same level-triggered step: load the file,
//! snapshot what runs (`observe`), compute the pure `plan`, execute its actions (each
//! server concurrently, one apply at a time). Instances (`instance`) run through the
//! shim (`crate::shim`), forked by the spawner thread (`spawner`), and restart by the
//! pure rules of `policy`.

mod autoscale;
mod backend;
mod busy_poll;
mod control;
mod endpoints;
mod error;
mod inner_port;
mod instances;
mod metrics;
mod named_tasks;
mod pool;
mod procs;
mod reconciler;
mod reload;
mod resize;
mod run;
mod sampler;
mod snapshot;
mod spawner;
mod standalone;
mod standalone_endpoint;
mod state;
pub mod supervisor;
mod telemetry;
mod ui;
mod watch;

pub use run::run;
pub use snapshot::timestamp;
pub use standalone::run_standalone;
pub use standalone_endpoint::{GivenMember, run_standalone_endpoint};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::SystemTime;

use tokio::sync::{Mutex, Notify};

use crate::config;
use crate::gateway::Gateway;
use crate::model::ServerSpec;
use pool::Pool;
use spawner::Spawner;
use supervisor::Handle;

use crate::runtime_dir::{LOCK, PID_FILE, SOCKET, STATE};
/// Lines of a server's log shown when it fails to start.
const FAILURE_TAIL: usize = 10;

struct ServerRuntime {
    spec: ServerSpec,
    created_at: SystemTime,
    instances: Vec<Handle>,
    /// What the gateway routes to; kept in step with `instances`.
    pool: Arc<Pool>,
    /// Serving `bind:port` (stdio servers); dropped first on stop.
    gateway: Option<Gateway>,
    /// Scaled away, finishing their calls and sessions before they stop (no new
    /// sessions reach them: they are out of the pool).
    draining: Vec<Handle>,
    /// `autoscale`: the rule's memory between steps, and its last decision.
    scaler: autoscale::rule::Scaler,
    last_scale: Option<crate::api::ScaleDecision>,
    /// The gateway's count of requests begun, at the autoscaler's last reading.
    requests_seen: u64,
}

impl ServerRuntime {
    /// Autoscaled to no instance at all, its port still served.
    fn scaled_to_zero(&self) -> bool {
        self.spec.autoscale.is_some_and(|a| a.min == 0) && self.instances.is_empty()
    }
}

/// Where a daemon's desired state comes from.
enum Source {
    /// The config file, read at every apply.
    File,
    /// `mcpctl gateway`: servers given on the command line, with their secrets.
    Fixed {
        servers: BTreeMap<String, ServerSpec>,
        /// `--metrics`: where `/metrics` is served.
        metrics: Option<std::net::SocketAddr>,
        /// `--otlp`: where traces go (none: `OTEL_EXPORTER_OTLP_ENDPOINT`, else off).
        telemetry: Option<crate::model::telemetry::TelemetrySpec>,
        secrets: Arc<crate::secrets::unlock::Unlocked>,
        /// Variables of this process's environment the servers must not get (the
        /// one that held the clients' bearer token).
        hidden_env: Vec<String>,
        /// `--session-key-env` / `--advertise`: replicas forwarding each other's sessions.
        replicas: Option<Arc<crate::gateway::replicas::Replicas>>,
    },
}

pub struct Daemon {
    source: Source,
    config_path: PathBuf,
    config_dir: PathBuf,
    runtime_dir: PathBuf,
    pid: u32,
    started_at: SystemTime,
    shim: crate::shim::ShimCommand,
    spawner: Spawner,
    servers: Mutex<BTreeMap<String, ServerRuntime>>,
    /// One convergence at a time.
    applying: Mutex<()>,
    changed: Arc<Notify>,
    /// Poked by a request that finds a server scaled to zero.
    autoscale_wake: Arc<Notify>,
    shutdown: Notify,
    /// What the last applies asked for (the file as then, secrets decrypted): what a
    /// resync converges to.
    desired: Mutex<Option<reconciler::Desired>>,
    /// The next instance id of each server: ids are never reused while the daemon
    /// runs (a replaced or scaled server's new instances get new ones, and logs).
    instance_ids: std::sync::Mutex<BTreeMap<String, Arc<AtomicU32>>>,
    /// The latest measurements of the instances, the ports and the daemon.
    samples: std::sync::Mutex<sampler::Samples>,
    /// `/metrics`, where `[daemon] metrics` asks for it.
    metrics: Mutex<Option<metrics::Listener>>,
    /// The cgroup v2 groups limits are enforced in (prepared at the first limit).
    cgroups: std::sync::OnceLock<Option<Arc<crate::cgroup::Hierarchy>>>,
    /// Where the last apply's text came from (its digest, and the commit the CLI found).
    applied: std::sync::Mutex<Option<crate::api::AppliedFrom>>,
    /// The endpoints being served.
    endpoints: Mutex<BTreeMap<String, endpoints::EndpointRuntime>>,
    /// Set once the daemon stops: drains end at once (they must not hold the stop).
    stopping: std::sync::atomic::AtomicBool,
    /// Endpoints the last apply could not serve, with why (for `status`).
    endpoint_failures: Mutex<BTreeMap<String, String>>,
    /// What endpoints know of the servers (where each listens, whether it is up).
    members: Arc<endpoints::Members>,
    /// Callers' tokens of the file, checked by every port with `auth.tokens`;
    /// replaced at each apply (a token takes effect without a restart).
    callers: Arc<crate::gateway::callers::Callers>,
    /// Rate buckets of OIDC subjects (`auth.oidc.rate`), shared by the ports (bounded).
    oidc_buckets: Arc<crate::gateway::rate::Buckets>,
    /// `.mcpctl/audit.log`: decisions on ports with `auth` (none when it cannot be
    /// opened: said in the log, and the servers still run).
    audit: Option<Arc<crate::gateway::audit::Audit>>,
    /// The owner's key, for this daemon's life: every port with `auth` lets it in, and
    /// only the control socket hands it out (whoever can use that owns the daemon).
    owner_key: Arc<age::secrecy::SecretString>,
    /// `mcpctl.lock` as last read (for `mcpctl tools`).
    pins: std::sync::RwLock<crate::model::lock::Lock>,
    /// Whether `network = "isolated"` servers get a network namespace here, or why not
    /// (they then run on the machine's network, and `status` says so).
    isolation: Result<(), crate::shim::NoIsolation>,
    /// The dashboard: what it shows beyond `status`, its logins and its port.
    board: ui::Board,
    /// Every instance's task (and its pipes' readers): waited for when the daemon stops.
    instance_tasks: crate::gateway::owned::Scope,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("a daemon already runs for {0}")]
    AlreadyRunning(String),
    #[error("{0}")]
    Config(#[from] config::Error),
    /// `mcpctl gateway`: a server did not start (its log's tail included).
    #[error("{0}")]
    NotStarted(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// 256 random bits, as hex.
fn owner_key() -> Result<age::secrecy::SecretString, Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::Io {
        what: "cannot make the owner's key".into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(age::secrecy::SecretString::from(format!(
        "mcpctl_owner_{hex}"
    )))
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

pub struct Options {
    pub watch: bool,
    /// Converge from the file at start. Off when a CLI command starts the daemon on
    /// demand: that command converges itself, with the user watching.
    pub initial_apply: bool,
}

impl Daemon {
    /// A daemon with nothing running yet; its spawner thread starts here.
    fn new(
        source: Source,
        config_path: PathBuf,
        config_dir: PathBuf,
        runtime_dir: PathBuf,
    ) -> Result<Self, Error> {
        // One descriptor per client connection: take all the system allows.
        let _ = crate::sys::raise_open_file_limit();
        // Before the spawner and its orphan sweep: the probe is a child of the daemon.
        let isolation = crate::shim::probe_isolation();
        if let Err(why) = &isolation {
            tracing::warn!("network = \"isolated\" servers run on the machine's network: {why}");
        }
        Ok(Self {
            isolation,
            board: ui::Board::new(),
            instance_tasks: crate::gateway::owned::Scope::new(),
            endpoints: Mutex::default(),
            endpoint_failures: Mutex::default(),
            stopping: std::sync::atomic::AtomicBool::new(false),
            members: Arc::default(),
            callers: crate::gateway::callers::Callers::new(),
            oidc_buckets: Arc::new(crate::gateway::rate::Buckets::new(
                crate::gateway::rate::MAX_BUCKETS,
            )),
            pins: std::sync::RwLock::default(),
            owner_key: Arc::new(owner_key()?),
            audit: match crate::gateway::audit::Audit::open(&crate::logs::audit_path(&runtime_dir))
            {
                Ok(audit) => Some(audit),
                Err(e) => {
                    tracing::warn!("cannot open the audit log: {e}");
                    None
                }
            },
            source,
            config_path,
            config_dir,
            runtime_dir,
            pid: std::process::id(),
            started_at: SystemTime::now(),
            shim: crate::shim::ShimCommand::find()
                .map_err(io_err("cannot find the mcpctl executable"))?,
            spawner: Spawner::start().map_err(io_err("cannot start the spawner thread"))?,
            servers: Mutex::new(BTreeMap::new()),
            applying: Mutex::new(()),
            changed: Arc::new(Notify::new()),
            autoscale_wake: Arc::new(Notify::new()),
            shutdown: Notify::new(),
            desired: Mutex::new(None),
            instance_ids: std::sync::Mutex::default(),
            samples: std::sync::Mutex::default(),
            metrics: Mutex::default(),
            applied: std::sync::Mutex::default(),
            cgroups: std::sync::OnceLock::new(),
        })
    }

    pub fn request_shutdown(&self) {
        self.shutdown.notify_one();
    }
}
