//! The dashboard (`mcpctl ui`), served by the daemon on loopback: the page, its JSON
//! API, live updates over SSE and the owner's actions. The `Board` keeps what the page
//! shows beyond `status` (an hour of samples, recent events, the logins) and a tick
//! that feeds it; `routes` answers the page; `live` streams; `actions` edits the file
//! and converges, as the CLI does.

mod actions;
mod live;
mod routes;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, broadcast};

use super::Daemon;
use super::error::{Applied, ApplyError};
use crate::api::DaemonStatus;
use crate::ui::events::{self, Event, Log};
use crate::ui::history::History;
use crate::ui::logins::Logins;

/// Frames waiting for a slow page, at most; one that falls behind gets a fresh
/// overview instead of what it missed.
const LIVE_CAPACITY: usize = 64;
/// Where the port `mcpctl ui` picked is remembered, in the runtime folder.
const REMEMBERED: &str = "ui.addr";
/// Audit log bytes read per tick, at most (refusals shown as events).
const AUDIT_CHUNK: u64 = 64 * 1024;

/// What the page is sent live.
#[derive(Clone)]
pub(super) enum Frame {
    /// The whole overview document (JSON), when it changed.
    Overview(Arc<str>),
    /// One event (JSON).
    Event(Arc<str>),
}

pub(super) struct Board {
    history: Mutex<History>,
    events: Mutex<Log>,
    logins: Mutex<Logins>,
    live: broadcast::Sender<Frame>,
    /// The last overview sent, to send only changes.
    overview: Mutex<Option<Arc<str>>>,
    /// Wakes the tick at once (an apply ended).
    poke: Notify,
    listener: tokio::sync::Mutex<Option<Listener>>,
    /// Open SSE streams of every page together, at most [`MAX_STREAMS`].
    streams: Arc<tokio::sync::Semaphore>,
    /// The file as it last could be read (shown while it cannot).
    last_config: Mutex<Option<crate::model::Config>>,
}

/// Live streams (events, log tails) of all pages together.
const MAX_STREAMS: usize = 32;

/// A serving dashboard; dropping it closes the port and every page's connection.
struct Listener {
    addr: SocketAddr,
    _task: crate::gateway::owned::Owned<()>,
}

#[derive(Debug, thiserror::Error)]
pub(super) enum UiError {
    #[error("the dashboard listens on loopback only, not on {0} (reach it through `ssh -L`)")]
    NotLoopback(std::net::IpAddr),
    #[error("cannot serve the dashboard on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot make a login token: {0}")]
    Random(std::io::Error),
}

impl Board {
    pub(super) fn new() -> Self {
        Self {
            history: Mutex::default(),
            events: Mutex::default(),
            logins: Mutex::default(),
            live: broadcast::channel(LIVE_CAPACITY).0,
            overview: Mutex::default(),
            poke: Notify::new(),
            listener: tokio::sync::Mutex::default(),
            streams: Arc::new(tokio::sync::Semaphore::new(MAX_STREAMS)),
            last_config: Mutex::default(),
        }
    }

    /// Lists an apply that ended (`by`: who asked).
    pub(super) fn record_apply(&self, by: &str, applied: &Result<Applied, ApplyError>) {
        let at = super::timestamp(std::time::SystemTime::now());
        let event = match applied {
            Ok(a) => {
                let failures: Vec<String> = a.failures.iter().map(ToString::to_string).collect();
                events::applied(&at, by, &a.actions, &failures)
            }
            Err(e) => events::applied(&at, by, &[], &[e.to_string()]),
        };
        self.push(vec![event]);
        self.poke.notify_one();
    }

    fn push(&self, new: Vec<Event>) {
        let Ok(mut log) = self.events.lock() else {
            return;
        };
        for event in new {
            let event = log.push(event);
            if let Ok(json) = serde_json::to_string(&event) {
                // No page open: nobody to tell.
                let _ = self.live.send(Frame::Event(json.into()));
            }
        }
    }

    fn events(&self) -> Vec<Event> {
        self.events.lock().map(|l| l.all()).unwrap_or_default()
    }
}

fn random_hex() -> Result<String, UiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| UiError::Random(std::io::Error::other(e.to_string())))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Daemon {
    /// `mcpctl ui`: serves the dashboard (on `bind`, else `[daemon] ui`, else the port
    /// picked last time, else a free one) and returns a fresh one-time login URL.
    pub(super) async fn open_ui(
        self: &Arc<Self>,
        bind: Option<SocketAddr>,
    ) -> Result<String, UiError> {
        let configured = crate::config::load(&self.config_path)
            .ok()
            .and_then(|l| l.config.ui);
        let remembered = self.runtime_dir.join(REMEMBERED);
        let wanted = bind.or(configured);
        if let Some(addr) = wanted
            && !addr.ip().is_loopback()
        {
            return Err(UiError::NotLoopback(addr.ip()));
        }
        let mut current = self.board.listener.lock().await;
        let keep = current.as_ref().is_some_and(|l| {
            wanted.is_none_or(|w| w == l.addr || (w.port() == 0 && w.ip() == l.addr.ip()))
        });
        if !keep {
            // The new port first: one that cannot be taken leaves the served one be.
            let listener = match wanted {
                Some(addr) => self
                    .listen_ui(addr)
                    .map_err(|source| UiError::Bind { addr, source })?,
                None => {
                    let last = std::fs::read_to_string(&remembered)
                        .ok()
                        .and_then(|t| t.trim().parse::<SocketAddr>().ok())
                        .filter(|a| a.ip().is_loopback());
                    let any = SocketAddr::from(([127, 0, 0, 1], 0));
                    // The port of last time, unless something else took it meanwhile.
                    match last.map(|a| self.listen_ui(a)) {
                        Some(Ok(l)) => l,
                        _ => self
                            .listen_ui(any)
                            .map_err(|source| UiError::Bind { addr: any, source })?,
                    }
                }
            };
            let _ =
                crate::config::store::write_runtime(&remembered, &format!("{}\n", listener.addr));
            if current.is_some() {
                // Pages of the old port keep calling it: whoever takes it must find
                // nothing they send usable.
                if let Ok(mut logins) = self.board.logins.lock() {
                    logins.clear();
                }
            }
            *current = Some(listener);
        }
        let addr = current
            .as_ref()
            .map_or(SocketAddr::from(([127, 0, 0, 1], 0)), |l| l.addr);
        drop(current);
        let token = random_hex()?;
        if let Ok(mut logins) = self.board.logins.lock() {
            logins.add_link(&token, std::time::Instant::now());
        }
        Ok(format!("http://{addr}/login?token={token}"))
    }

    fn listen_ui(self: &Arc<Self>, addr: SocketAddr) -> std::io::Result<Listener> {
        let listener = crate::gateway::accept::bind(addr)?;
        let addr = listener.local_addr()?;
        let app = routes::router(Arc::downgrade(self), addr.port());
        let limits = crate::gateway::accept::ConnectionLimits {
            max_connections: 64,
            ..crate::gateway::accept::ConnectionLimits::from_env()
        };
        let task = crate::gateway::owned::owned(crate::gateway::accept::serve_plain(
            listener, app, limits,
        ));
        Ok(Listener { addr, _task: task })
    }

    /// The overview the page draws: the `status --format json` document, the daemon,
    /// where what runs was applied from (and whether the file moved since).
    pub(super) async fn overview(&self, status: &DaemonStatus) -> serde_json::Value {
        let loaded = crate::config::load(&self.config_path);
        // A file that cannot be read now: its servers as it last could be.
        let config = match &loaded {
            Ok(l) => {
                if let Ok(mut last) = self.board.last_config.lock() {
                    *last = Some(l.config.clone());
                }
                Some(l.config.clone())
            }
            Err(_) => self.board.last_config.lock().ok().and_then(|c| c.clone()),
        };
        let (servers, endpoints) =
            crate::render::status::reports(&config.unwrap_or_default(), Some(status));
        let origin = match (&loaded, &status.applied) {
            (Ok(l), Some(applied)) => {
                let o = crate::render::status::origin(
                    applied,
                    &crate::config::digest(&l.source),
                    &self.config_path,
                );
                serde_json::json!({ "line": o.line, "warning": o.warning })
            }
            (Err(e), _) => {
                serde_json::json!({ "line": "", "warning": format!("the file cannot be read: {e}") })
            }
            (Ok(_), None) => serde_json::Value::Null,
        };
        serde_json::json!({
            "daemon": {
                "pid": status.pid,
                "config": status.config,
                "started_at": status.started_at,
                "usage": status.usage,
            },
            "origin": origin,
            "status": crate::render::status::json(&servers, &endpoints),
        })
    }
}

/// How often the board reads `status`: every second while a page is open, else at
/// the sample period (the hour of samples and the events are kept either way).
fn tick_period(watched: bool) -> Duration {
    if watched {
        Duration::from_secs(1)
    } else {
        super::sampler::period().unwrap_or(Duration::from_secs(5))
    }
}

/// The board's tick, owned by the daemon's workers: events from what moved, a point
/// of history per sample period, refusals from the audit log, and the overview to the
/// open pages when it changed.
pub(super) async fn tick_every(this: Arc<Daemon>) {
    let board = &this.board;
    let mut before: Option<DaemonStatus> = None;
    let mut recorded: Option<tokio::time::Instant> = None;
    let mut plotted: Vec<String> = Vec::new();
    let mut audit = AuditTail::new(crate::logs::audit_path(&this.runtime_dir));
    loop {
        let status = this.status().await;
        let at = super::timestamp(std::time::SystemTime::now());
        if let Some(before) = &before {
            board.push(events::changes(before, &status, &at));
        }
        board.push(audit.refusals());
        let now = tokio::time::Instant::now();
        let names: Vec<String> = status.servers.iter().map(|s| s.name.clone()).collect();
        // A point per sample period, and at once for a server new to the plots.
        if recorded.is_none_or(|r| now.duration_since(r) >= tick_period(false)) || names != plotted
        {
            recorded = Some(now);
            plotted = names;
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            if let Ok(mut history) = board.history.lock() {
                history.record(&status, t);
            }
        }
        let watched = board.live.receiver_count() > 0;
        if watched {
            let json: Arc<str> = this.overview(&status).await.to_string().into();
            let changed = board
                .overview
                .lock()
                .map(|mut last| {
                    let changed = last.as_deref() != Some(&*json);
                    *last = Some(Arc::clone(&json));
                    changed
                })
                .unwrap_or(true);
            if changed {
                let _ = board.live.send(Frame::Overview(json));
            }
        }
        before = Some(status);
        tokio::select! {
            () = board.poke.notified() => {}
            () = tokio::time::sleep(tick_period(watched)) => {}
        }
    }
}

/// The audit log read from where the last read ended: its refusals become events.
struct AuditTail(crate::logs::Follower);

impl AuditTail {
    fn new(path: PathBuf) -> Self {
        Self(crate::logs::Follower::from_end(&path))
    }

    fn refusals(&mut self) -> Vec<Event> {
        self.0
            .new_lines_at_most(AUDIT_CHUNK)
            .iter()
            .filter_map(|line| serde_json::from_str::<crate::api::AuditEntry>(line).ok())
            .filter(|e| e.decision == "refused")
            .map(|e| events::refused(&e))
            .collect()
    }
}
