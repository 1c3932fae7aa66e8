//! OpenTelemetry traces of MCP requests (`[telemetry]`, `mcpctl gateway --otlp`).
//!
//! Theory of operation: one process-wide tracer, off unless configured (as
//! OpenTelemetry's own global provider). [`layer`] sits on every gateway port, inside
//! the guard: with no tracer it hands the request on untouched (one atomic load);
//! with one, each JSON-RPC request gets a SERVER span named after the semantic
//! conventions for MCP (`tools/call NAME`) and a CLIENT child for the hop to the
//! server, whose context the server receives in `params._meta.traceparent` (and the
//! `traceparent` header, which HTTP upstreams are passed). The client's context (the
//! `traceparent` header, else `params._meta.traceparent`) is continued, its sampling
//! decision followed; a new trace is sampled at `sample_ratio`.
//!
//! Finished spans go into a bounded queue ([`QUEUE`], [`queue`]): when it is full the
//! span is dropped and counted ([`Counts`], `/metrics`), never waited for. The
//! exporter ([`export`]) is one task that takes them in batches and posts OTLP/HTTP
//! protobuf with a timeout; a collector that is down, slow or failing costs only
//! that task's time and the dropped spans. [`configure`] replaces the tracer live (an
//! apply); [`shutdown`] ends the exporter after a bounded flush.

mod bounds;
pub mod context;
mod export;
mod layer;
pub mod otlp;
mod queue;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

pub(super) use layer::layer;
pub use layer::{MemberOf, Role, Where};
pub(crate) use otlp::SpanData;

/// Finished spans waiting for the exporter; past this they are dropped.
pub const QUEUE: usize = 4096;

/// The most spans in one export request.
pub const MAX_BATCH: usize = 512;

/// How long a flush at shutdown or at a change of settings may take.
pub const FLUSH_BOUND: Duration = Duration::from_secs(3);

/// Where and how much to export.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The collector's base URL (`http://127.0.0.1:4318`); spans go to `/v1/traces`.
    pub endpoint: String,
    /// The share of new traces recorded, 0 to 1; a client's decision is followed.
    pub sample_ratio: f64,
    /// How long a span may wait for its batch (`OTEL_BSP_SCHEDULE_DELAY`, ms).
    pub delay: Duration,
    /// How long one export may take (`OTEL_EXPORTER_OTLP_TIMEOUT`, ms).
    pub timeout: Duration,
}

impl Settings {
    /// `endpoint` and `sample_ratio` as configured, the batch delay and the export
    /// timeout from the standard OpenTelemetry variables when they are set.
    pub fn new(endpoint: &str, sample_ratio: f64) -> Self {
        let ms = |name: &str, default: u64| {
            Duration::from_millis(
                std::env::var(name)
                    .ok()
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(default),
            )
        };
        Self {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            sample_ratio: sample_ratio.clamp(0.0, 1.0),
            delay: ms("OTEL_BSP_SCHEDULE_DELAY", 1000),
            timeout: ms("OTEL_EXPORTER_OTLP_TIMEOUT", 10_000),
        }
    }

    /// `OTEL_EXPORTER_OTLP_ENDPOINT`, what applies when the file says nothing.
    pub fn from_env() -> Option<Self> {
        let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok()?;
        let endpoint = endpoint.trim();
        (!endpoint.is_empty()).then(|| Self::new(endpoint, 1.0))
    }

    /// The URL spans are posted to.
    pub fn traces_url(&self) -> String {
        format!("{}/v1/traces", self.endpoint)
    }
}

/// Why tracing could not start.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("`{url}` is not a URL to export traces to: {why}")]
    BadEndpoint { url: String, why: String },
    #[error("no HTTP client for the collector: {0}")]
    Client(#[source] std::io::Error),
}

/// What the exporter did, since the process started (`/metrics`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub exported: u64,
    /// Spans lost: the queue was full, or their export failed.
    pub dropped: u64,
    /// Export requests that failed (unreachable, timed out, not 2xx).
    pub failed_exports: u64,
}

static EXPORTED: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);
static FAILED_EXPORTS: AtomicU64 = AtomicU64::new(0);

pub fn counts() -> Counts {
    Counts {
        exported: EXPORTED.load(Ordering::Relaxed),
        dropped: DROPPED.load(Ordering::Relaxed),
        failed_exports: FAILED_EXPORTS.load(Ordering::Relaxed),
    }
}

/// The process's tracer, and the exporter task it feeds.
pub(crate) struct Tracer {
    settings: Settings,
    /// A new trace is sampled when its random draw is below this.
    threshold: u64,
    queue: Arc<queue::Queue>,
}

/// The last holder gone (replaced, shut down, its last request ended): the exporter
/// sends what is queued and ends.
impl Drop for Tracer {
    fn drop(&mut self) {
        self.queue.close();
    }
}

impl Tracer {
    /// Whether a new trace is recorded.
    pub(crate) fn sample(&self, draw: u64) -> bool {
        self.threshold == u64::MAX || draw < self.threshold
    }

    /// Hands a finished span to the exporter, or counts it dropped.
    pub(crate) fn finish(&self, span: SpanData) {
        if !self.queue.push(span) {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

struct Installed {
    tracer: Arc<Tracer>,
    /// Dropping it ends the exporter.
    task: super::owned::Owned<()>,
}

/// Set while a tracer is installed: the one load a request pays when tracing is off.
static ON: AtomicBool = AtomicBool::new(false);
static CURRENT: RwLock<Option<Arc<Tracer>>> = RwLock::new(None);
/// The owner of the exporter task.
static EXPORTER: Mutex<Option<Installed>> = Mutex::new(None);

/// The tracer, when tracing is on.
pub(crate) fn current() -> Option<Arc<Tracer>> {
    if !ON.load(Ordering::Relaxed) {
        return None;
    }
    CURRENT.read().ok()?.clone()
}

/// The settings in force (none: off).
pub fn settings() -> Option<Settings> {
    current().map(|t| t.settings.clone())
}

/// Puts `settings` in force from the next request on (none: off), replacing the
/// exporter when they changed; the old one flushes within [`FLUSH_BOUND`]. Returns
/// whether anything changed. Needs a tokio runtime (the exporter is a task).
pub async fn configure(settings: Option<Settings>) -> Result<bool, TraceError> {
    if current().map(|t| t.settings.clone()) == settings {
        return Ok(false);
    }
    let installed = match settings {
        Some(settings) => Some(start(settings)?),
        None => None,
    };
    let old = {
        let Ok(mut slot) = EXPORTER.lock() else {
            return Ok(false);
        };
        if let Ok(mut current) = CURRENT.write() {
            *current = installed.as_ref().map(|i| Arc::clone(&i.tracer));
        }
        ON.store(installed.is_some(), Ordering::Relaxed);
        std::mem::replace(&mut *slot, installed)
    };
    if let Some(old) = old {
        end(old).await;
    }
    Ok(true)
}

/// Turns tracing off and ends the exporter: what is queued is sent within
/// [`FLUSH_BOUND`], then the task is aborted.
pub async fn shutdown() {
    let _ = configure(None).await;
}

fn start(settings: Settings) -> Result<Installed, TraceError> {
    let url: hyper::Uri =
        settings
            .traces_url()
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| TraceError::BadEndpoint {
                url: settings.endpoint.clone(),
                why: e.to_string(),
            })?;
    let client = super::proxy::client().map_err(TraceError::Client)?;
    let queue = Arc::new(queue::Queue::new(QUEUE, MAX_BATCH));
    let threshold = if settings.sample_ratio >= 1.0 {
        u64::MAX
    } else {
        (settings.sample_ratio * u64::MAX as f64) as u64
    };
    let exporter = export::Exporter {
        client,
        url,
        delay: settings.delay,
        timeout: settings.timeout,
        resource: Arc::new(export::resource()),
    };
    let task = super::owned::owned(exporter.run(Arc::clone(&queue)));
    Ok(Installed {
        tracer: Arc::new(Tracer {
            settings,
            threshold,
            queue,
        }),
        task,
    })
}

/// The old exporter's queue closes once the last request holding its tracer ends;
/// it sends what it has and stops, or is aborted after [`FLUSH_BOUND`].
async fn end(old: Installed) {
    let Installed { tracer, mut task } = old;
    drop(tracer);
    // Past the bound, dropping the handle ends it.
    let _ = tokio::time::timeout(FLUSH_BOUND, &mut task).await;
}

fn exported(n: usize) {
    EXPORTED.fetch_add(n as u64, Ordering::Relaxed);
}

fn lost(n: usize) {
    DROPPED.fetch_add(n as u64, Ordering::Relaxed);
    FAILED_EXPORTS.fetch_add(1, Ordering::Relaxed);
}

/// Random ids: a per-thread SplitMix64 seeded from the OS once, so a span costs no
/// system call.
pub(crate) fn random_u64() -> u64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let mut seed = [0u8; 8];
            let _ = getrandom::fill(&mut seed);
            // Never the same stream on two threads, even without the OS's randomness.
            let here = &seed as *const _ as u64;
            u64::from_le_bytes(seed) ^ here.rotate_left(32)
        });
    }
    STATE.with(|state| {
        let next = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        state.set(next);
        let mut z = next;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

/// A non-zero span id.
pub(crate) fn span_id() -> [u8; 8] {
    loop {
        let id = random_u64();
        if id != 0 {
            return id.to_be_bytes();
        }
    }
}

/// A non-zero trace id.
pub(crate) fn trace_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&random_u64().to_be_bytes());
    id[8..].copy_from_slice(&span_id());
    id
}
