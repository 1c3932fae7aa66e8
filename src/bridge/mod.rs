//! `mcpctl connect NAME`: a stdio MCP server for clients that only launch commands.
//! Each line the client writes is POSTed, byte for byte, to NAME's Streamable HTTP
//! endpoint on the local daemon (`/mcp`, both eras), and every message of the answer,
//! JSON or SSE, is written back as one line. So every client shares the one
//! supervised server, whose gateway already multiplexes sessions.
//!
//! Shape: one reader of stdin (messages bounded to the gateway's own 4 MiB), one
//! writer of stdout fed by a bounded queue, one task per request in flight (at most
//! [`MAX_IN_FLIGHT`]; beyond that stdin is not read), and, once a 2025 session is
//! open, its `GET /mcp` stream for what the server sends unasked. Notifications and
//! responses are sent in order, before the next line is read. When stdin closes the
//! requests in flight are still answered, then the session is deleted and the bridge
//! exits 0, its stdin and stdout as blocking as they were.
//!
//! Before the first line is read, NAME is made to run: the daemon is started when
//! none runs and NAME when the daemon does not run it ([`target::reach`], bounded).
//! When there is still nothing to bridge to (no config file, a server the file lacks
//! or says is stopped, one that cannot start in time) the reason goes to stderr once
//! and answers every request as a JSON-RPC error with the request's id, until the
//! client closes stdin (exit 1): a stdio client shows that answer, where a bridge that
//! just exited is only "disconnected". When NAME goes away for good while bridged
//! (`server stop`, the daemon stopped) the request that found out is answered, the
//! reason said, and the bridge exits 1 at once. When stdout closes it exits (0, a
//! broken pipe). A 401 (the bearer was rotated) re-reads the bearer once and retries.

mod stdio;
pub mod target;
pub mod wire;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use age::secrecy::ExposeSecret;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::io::BufReader;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::{AbortHandle, JoinSet};

use crate::exit;
use crate::gateway::lines::BoundedLines;
use target::{Target, Unavailable};
use wire::{Kind, Message};

/// The largest message either way, as the gateway's own bound on a body.
const MAX_MESSAGE: usize = 4 << 20;
/// Requests in flight at once; the next line waits for one to end.
const MAX_IN_FLIGHT: usize = 64;
/// Messages queued for stdout.
const OUT_QUEUE: usize = 256;
/// To open a connection to the gateway.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// For everything but a request's answer (which may take as long as its call).
const QUICK_TIMEOUT: Duration = Duration::from_secs(30);
const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
const SESSION_ENDED: &str = "the session ended (the server was restarted or stopped)";

/// Runs the bridge to `name` of the file at `config` (or why there is no file)
/// until stdin or stdout closes, or NAME goes away for good.
pub fn run<E: std::fmt::Display>(config: Result<PathBuf, E>, name: &str) -> u8 {
    // Dropped last, once the runtime (and its hold on stdin and stdout) is gone.
    let _restore = stdio::Restore::record();
    let target = config
        .map_err(|e| Unavailable(e.to_string()))
        .and_then(|config| {
            let target = target::reach(&config, name, target::start_timeout())?;
            Ok((config, target))
        });
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            crate::note!("mcpctl connect {name}: cannot start: {e}");
            return exit::ERROR;
        }
    };
    let code = runtime.block_on(serve(name, target));
    // Not a plain drop, which waits for the blocking read of stdin: a bridge that
    // ends while stdin is open (stdout closed, the server gone) must not hang there.
    runtime.shutdown_background();
    code
}

async fn serve(name: &str, target: Result<(PathBuf, Target), Unavailable>) -> u8 {
    let (out, queued) = mpsc::channel::<Vec<u8>>(OUT_QUEUE);
    // Set (to the exit code) by whatever ends the bridge before stdin does.
    let (end, mut ended) = watch::channel(None::<u8>);
    let end = Arc::new(end);
    let writer = tokio::spawn(write_out(queued, Arc::clone(&end)));
    // A client ends its bridge with a signal as often as by closing stdin: it ends the
    // same way (session deleted, stdio's blocking mode put back, exit 0).
    let signals = tokio::spawn({
        let end = Arc::clone(&end);
        async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
                signal(SignalKind::hangup()),
            ) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
                _ = hup.recv() => {}
            }
            end.send_if_modified(|code| {
                code.get_or_insert(exit::OK);
                true
            });
        }
    });
    let bridge = target.and_then(|(config, t)| {
        Bridge::new(name, config, t, out.clone(), Arc::clone(&end)).map(Arc::new)
    });
    if let Err(why) = &bridge {
        crate::note!("mcpctl connect {name}: {why}");
    }
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut calls = JoinSet::new();
    let mut lines = BoundedLines::new(BufReader::new(stdio::stdin()), MAX_MESSAGE);
    let mut eof = false;
    loop {
        while calls.try_join_next().is_some() {}
        let next = tokio::select! {
            next = lines.next_line() => next,
            _ = ended.wait_for(Option::is_some) => break,
        };
        let line = match next {
            Ok(Some(line)) => line,
            Ok(None) => {
                eof = true;
                break;
            }
            Err(e) => {
                crate::note!("mcpctl connect {name}: cannot read stdin: {e}");
                break;
            }
        };
        if line.is_cut() {
            let why = format!(
                "a message of {} bytes is larger than the bound of {MAX_MESSAGE}",
                line.len
            );
            crate::note!("mcpctl connect {name}: {why}");
            let id = wire::cut_request_id(line.head, line.tail);
            emit(
                &out,
                wire::error_reply(id.as_deref(), wire::INVALID_REQUEST, &why),
            )
            .await;
            continue;
        }
        let body = line.head.trim_ascii().to_vec();
        if body.is_empty() {
            continue;
        }
        let msg = match wire::parse(&body) {
            Ok(msg) => msg,
            Err(refused) => {
                let reply =
                    wire::error_reply(refused.id.as_deref(), refused.code, &refused.message);
                emit(&out, reply).await;
                continue;
            }
        };
        let bridge = match &bridge {
            Ok(bridge) => Arc::clone(bridge),
            Err(why) => {
                if let Some(id) = msg.id() {
                    emit(&out, wire::error_reply(Some(id), wire::UNAVAILABLE, &why.0)).await;
                }
                continue;
            }
        };
        match msg.kind {
            // The session it opens is needed by everything after it.
            Kind::Request { .. } if !msg.is_initialize() => {
                let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                    break;
                };
                calls.spawn(async move {
                    bridge.forward(body, msg).await;
                    drop(permit);
                });
            }
            _ => bridge.forward(body, msg).await,
        }
    }
    // A client may write its requests and close stdin at once (`printf ... | mcpctl
    // connect`): what it asked is still answered, unless stdout closed or NAME went.
    while eof {
        tokio::select! {
            joined = calls.join_next() => eof = joined.is_some(),
            _ = ended.wait_for(Option::is_some) => break,
        }
    }
    calls.abort_all();
    // Read and let go at once: holding the watch's borrow across the awaits below
    // blocked the writer task's `send` on the one thread (both pipes closed: a hang).
    let ended_with = *ended.borrow();
    let code = match (&bridge, ended_with) {
        (Ok(bridge), code) => {
            bridge.close().await;
            code.unwrap_or(exit::OK)
        }
        (Err(_), code) => code.unwrap_or(exit::ERROR),
    };
    signals.abort();
    drop(bridge);
    drop(calls);
    drop(out);
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    code
}

/// Queues one message for stdout as one line: the line breaks a JSON text may hold
/// between its tokens become spaces (inside strings they are always escaped).
async fn emit(out: &mpsc::Sender<Vec<u8>>, message: impl Into<Vec<u8>>) {
    let mut message = message.into();
    for b in &mut message {
        if matches!(*b, b'\n' | b'\r') {
            *b = b' ';
        }
    }
    let _ = out.send(message).await;
}

/// Writes the queued messages; when stdout is closed (the client went away) the
/// bridge ends, as a broken pipe: exit 0.
async fn write_out(mut queued: mpsc::Receiver<Vec<u8>>, end: Arc<watch::Sender<Option<u8>>>) {
    let mut stdout = stdio::stdout();
    let gone = |end: &watch::Sender<Option<u8>>| {
        end.send_if_modified(|code| {
            code.get_or_insert(exit::OK);
            true
        });
    };
    // Watched apart from the writes, so they stay one plain loop.
    let closed = stdout.closed();
    let watch = {
        let end = Arc::clone(&end);
        tokio::spawn(async move {
            closed.await;
            gone(&end);
        })
    };
    while let Some(mut message) = queued.recv().await {
        message.push(b'\n');
        if stdout.write(&message).await.is_err() {
            gone(&end);
            break;
        }
    }
    watch.abort();
}

/// Why one message did not get through.
#[derive(Debug)]
enum Failure {
    /// The server's session is gone (404): it was restarted or stopped.
    SessionEnded,
    /// 401: the bearer is not (or no longer) the server's.
    Unauthorized(String),
    /// No connection to the server's port, or it broke off.
    Unreachable(String),
    Other(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::SessionEnded => f.write_str(SESSION_ENDED),
            Failure::Unauthorized(why) | Failure::Unreachable(why) | Failure::Other(why) => {
                f.write_str(why)
            }
        }
    }
}

impl From<String> for Failure {
    fn from(why: String) -> Self {
        Failure::Other(why)
    }
}

/// The 2025 session the bridge holds for its client, once `initialize` opened one.
#[derive(Debug, Default, Clone)]
struct Session {
    id: Option<String>,
    version: Option<String>,
}

struct Bridge {
    name: String,
    /// The config file, read again when NAME fails (gone for good?) or refuses the
    /// bearer (rotated?).
    config: PathBuf,
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    url: String,
    bearer: Mutex<Option<HeaderValue>>,
    session: Mutex<Session>,
    /// The client's `initialize`, to open a new session with when the server restarts.
    init: Mutex<Option<Bytes>>,
    listener: Mutex<Option<AbortHandle>>,
    out: mpsc::Sender<Vec<u8>>,
    end: Arc<watch::Sender<Option<u8>>>,
}

impl Bridge {
    fn new(
        name: &str,
        config: PathBuf,
        target: Target,
        out: mpsc::Sender<Vec<u8>>,
        end: Arc<watch::Sender<Option<u8>>>,
    ) -> Result<Self, Unavailable> {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        connector.enforce_http(false);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let connector = match hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider)
        {
            Ok(builder) => builder
                .https_or_http()
                .enable_http1()
                .wrap_connector(connector),
            Err(e) if target.url.starts_with("https:") => {
                return Err(Unavailable(format!(
                    "`{name}` is served over HTTPS and no trusted roots can be read ({e}); point SSL_CERT_FILE at its CA"
                )));
            }
            // Plain HTTP needs no roots: an https_or_http connector without any.
            Err(_) => {
                let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .map_err(|e| Unavailable(e.to_string()))?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
                hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(config)
                    .https_or_http()
                    .enable_http1()
                    .wrap_connector(connector)
            }
        };
        Ok(Self {
            name: name.to_string(),
            config,
            http: Client::builder(TokioExecutor::new()).build(connector),
            url: target.url,
            bearer: Mutex::new(bearer_header(target.bearer)),
            session: Mutex::new(Session::default()),
            init: Mutex::new(None),
            listener: Mutex::new(None),
            out,
            end,
        })
    }

    fn session(&self) -> Session {
        self.session.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn update_session(&self, change: impl FnOnce(&mut Session)) {
        if let Ok(mut session) = self.session.lock() {
            change(&mut session);
        }
    }

    /// Sends one message and passes its answer on; a failure is said on stderr and,
    /// for a request, answered as a JSON-RPC error.
    async fn forward(self: &Arc<Self>, body: Vec<u8>, msg: Message) {
        let body = Bytes::from(body);
        if msg.is_initialize()
            && let Ok(mut init) = self.init.lock()
        {
            *init = Some(body.clone());
        }
        let mut sent = self.exchange(body.clone(), &msg).await;
        // The bearer was rotated since the bridge read it: read it again, once.
        if matches!(&sent, Err(Failure::Unauthorized(_))) && self.refresh_bearer().await {
            sent = self.exchange(body.clone(), &msg).await;
        }
        // The server was restarted (its sessions end with it): open a new session
        // with the client's own `initialize`, then send the message again, once.
        if matches!(&sent, Err(Failure::SessionEnded)) && !msg.is_initialize() {
            sent = match self.reopen().await {
                Ok(()) => self.exchange(body, &msg).await,
                Err(why) => Err(Failure::Unreachable(format!(
                    "{SESSION_ENDED}, and a new one could not be opened: {why}"
                ))),
            };
        }
        let Err(failure) = sent else {
            if msg.is_initialize() {
                self.listen();
            }
            return;
        };
        // Unreachable: gone for good (then the bridge ends), or (re)starting.
        let gone = match &failure {
            Failure::Unreachable(_) | Failure::SessionEnded => self.gone().await,
            _ => None,
        };
        let why = match &gone {
            Some(gone) => format!("{failure}; {gone}"),
            None => failure.to_string(),
        };
        crate::note!("mcpctl connect {}: {why}", self.name);
        if let Some(id) = msg.id() {
            emit(
                &self.out,
                wire::error_reply(Some(id), wire::UNAVAILABLE, &why),
            )
            .await;
        }
        if gone.is_some() {
            crate::note!("mcpctl connect {}: exiting", self.name);
            self.end.send_if_modified(|code| {
                code.get_or_insert(exit::ERROR);
                true
            });
        }
    }

    /// Why NAME will not come back (asked of the file and the daemon, off the loop).
    async fn gone(&self) -> Option<String> {
        let (config, name) = (self.config.clone(), self.name.clone());
        tokio::task::spawn_blocking(move || target::gone(&config, &name))
            .await
            .ok()
            .flatten()
    }

    /// Reads NAME's bearer from the file again; whether it changed.
    async fn refresh_bearer(&self) -> bool {
        let (config, name) = (self.config.clone(), self.name.clone());
        let read = tokio::task::spawn_blocking(move || target::current_bearer(&config, &name));
        let fresh = match read.await {
            Ok(Ok(secret)) => bearer_header(secret),
            Ok(Err(why)) => {
                crate::note!("mcpctl connect {}: {why}", self.name);
                return false;
            }
            Err(_) => return false,
        };
        let Ok(mut bearer) = self.bearer.lock() else {
            return false;
        };
        if *bearer == fresh {
            return false;
        }
        *bearer = fresh;
        true
    }

    fn request(&self, method: Method, session: &Session) -> hyper::http::request::Builder {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(&self.url)
            .header(header::ACCEPT, "application/json, text/event-stream");
        if let Some(id) = &session.id {
            req = req.header(SESSION_HEADER, id);
        }
        if let Some(version) = &session.version {
            req = req.header(VERSION_HEADER, version);
        }
        if let Some(bearer) = self.bearer.lock().ok().and_then(|b| b.clone()) {
            req = req.header(header::AUTHORIZATION, bearer);
        }
        req
    }

    /// A new session for the client, from its first `initialize` (whose answer it
    /// already has, so this one is not passed on).
    async fn reopen(self: &Arc<Self>) -> Result<(), Failure> {
        let Some(init) = self.init.lock().ok().and_then(|i| i.clone()) else {
            return Err(Failure::Other("the client never initialized".to_string()));
        };
        if let Ok(mut listener) = self.listener.lock()
            && let Some(task) = listener.take()
        {
            task.abort();
        }
        self.update_session(|s| *s = Session::default());
        let post = |session: &Session, body: Bytes| {
            self.request(Method::POST, session)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Full::new(body))
                .map_err(|e| e.to_string())
        };
        let answer = tokio::time::timeout(
            QUICK_TIMEOUT,
            self.http.request(post(&Session::default(), init)?),
        )
        .await
        .map_err(|_| format!("no answer within {QUICK_TIMEOUT:?}"))?
        .map_err(|e| self.unreachable(&e).to_string())?;
        if !answer.status().is_success() {
            return Err(Failure::Other(format!(
                "initialize answered {}",
                answer.status()
            )));
        }
        let id = answer
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = Limited::new(answer.into_body(), MAX_MESSAGE)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        // JSON, or the one event of an SSE answer.
        let mut events = crate::wire::sse::SseEvents::new(MAX_MESSAGE);
        let result = events
            .feed(&bytes)
            .into_iter()
            .next()
            .map_or(bytes.to_vec(), |e| e);
        self.update_session(|s| s.id = id);
        self.negotiated(&result);
        let initialized =
            Bytes::from_static(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        let session = self.session();
        let _ = tokio::time::timeout(
            QUICK_TIMEOUT,
            self.http.request(post(&session, initialized)?),
        )
        .await;
        crate::note!(
            "mcpctl connect {}: the server's session ended; opened a new one",
            self.name
        );
        self.listen();
        Ok(())
    }

    async fn exchange(self: &Arc<Self>, body: Bytes, msg: &Message) -> Result<(), Failure> {
        // A 2026-07-28 request is stateless: its own headers, no session.
        let session = if msg.modern_headers.is_empty() {
            self.session()
        } else {
            Session::default()
        };
        let mut req = self
            .request(Method::POST, &session)
            .header(header::CONTENT_TYPE, "application/json");
        for (name, value) in &msg.modern_headers {
            req = req.header(*name, value);
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        let sent = self.http.request(req);
        let response = if matches!(msg.kind, Kind::Request { .. }) {
            sent.await
        } else {
            tokio::time::timeout(QUICK_TIMEOUT, sent)
                .await
                .map_err(|_| format!("{} did not answer within {QUICK_TIMEOUT:?}", self.url))?
        }
        .map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        if msg.is_initialize()
            && status.is_success()
            && let Some(id) = response
                .headers()
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
        {
            let id = id.to_string();
            self.update_session(|s| s.id = Some(id));
        }
        if status == StatusCode::ACCEPTED {
            return Ok(());
        }
        let is_sse = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if status.is_success() && is_sse {
            return self.pump(response.into_body(), msg.is_initialize()).await;
        }
        let bytes = Limited::new(response.into_body(), MAX_MESSAGE)
            .collect()
            .await
            .map_err(|e| format!("the answer of {} broke off: {e}", self.url))?
            .to_bytes();
        if status.is_success() {
            if msg.is_initialize() {
                self.negotiated(&bytes);
            }
            if !bytes.is_empty() {
                emit(&self.out, bytes.to_vec()).await;
            }
            return Ok(());
        }
        if status == StatusCode::NOT_FOUND && session.id.is_some() {
            self.update_session(|s| *s = Session::default());
            return Err(Failure::SessionEnded);
        }
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
        let why = format!("{} answered {status}: {}", self.url, text.trim());
        if status == StatusCode::UNAUTHORIZED {
            return Err(Failure::Unauthorized(why));
        }
        // The gateway's own refusal (id null: it never read the request), as the
        // answer to this request; an answer the server gave is passed on as it is.
        if let Some(id) = msg.id() {
            match wire::refusal_for(id, &bytes) {
                Some(answer) => emit(&self.out, answer).await,
                None if wire::is_message(&bytes) => emit(&self.out, bytes.to_vec()).await,
                None => return Err(Failure::Other(why)),
            }
            return Ok(());
        }
        Err(Failure::Other(why))
    }

    /// Passes on every event of an SSE answer.
    async fn pump(&self, mut body: Incoming, initialize: bool) -> Result<(), Failure> {
        let mut events = crate::wire::sse::SseEvents::new(MAX_MESSAGE);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                Failure::Other(format!("the stream of {} broke off: {e}", self.url))
            })?;
            let Some(data) = frame.data_ref() else {
                continue;
            };
            for event in events.feed(data) {
                if event.is_empty() {
                    continue;
                }
                if initialize {
                    self.negotiated(&event);
                }
                emit(&self.out, event).await;
            }
        }
        if events.dropped > 0 {
            crate::note!(
                "mcpctl connect {}: dropped {} message(s) larger than {MAX_MESSAGE} bytes",
                self.name,
                events.dropped
            );
        }
        Ok(())
    }

    fn negotiated(&self, answer: &[u8]) {
        if let Some(version) = wire::negotiated_version(answer) {
            self.update_session(|s| s.version = Some(version));
        }
    }

    /// Opens the session's `GET /mcp` stream (what the server sends unasked: list
    /// changes, logs); a gateway that offers none is fine.
    fn listen(self: &Arc<Self>) {
        let session = self.session();
        if session.id.is_none() {
            return;
        }
        let this = Arc::clone(self);
        let task = tokio::spawn(async move {
            let Ok(req) = this
                .request(Method::GET, &session)
                .body(Full::new(Bytes::new()))
            else {
                return;
            };
            let Ok(response) = this.http.request(req).await else {
                return;
            };
            if response.status() == StatusCode::OK
                && let Err(why) = this.pump(response.into_body(), false).await
            {
                crate::note!("mcpctl connect {}: {why}", this.name);
            }
        });
        if let Ok(mut listener) = self.listener.lock() {
            *listener = Some(task.abort_handle());
        }
    }

    /// Ends the session (the gateway frees it at once rather than at its idle expiry).
    async fn close(&self) {
        if let Ok(mut listener) = self.listener.lock()
            && let Some(task) = listener.take()
        {
            task.abort();
        }
        let session = self.session();
        if session.id.is_none() {
            return;
        }
        if let Ok(req) = self
            .request(Method::DELETE, &session)
            .body(Full::new(Bytes::new()))
        {
            let _ = tokio::time::timeout(Duration::from_secs(2), self.http.request(req)).await;
        }
    }

    fn unreachable(&self, e: &hyper_util::client::legacy::Error) -> Failure {
        let mut why = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            why = format!("{why}: {cause}");
            source = cause.source();
        }
        // Either way the server may be gone (a kept-alive connection it closed).
        Failure::Unreachable(if e.is_connect() {
            format!("cannot reach `{}` at {}: {why}", self.name, self.url)
        } else {
            format!("the request to {} failed: {why}", self.url)
        })
    }
}

/// `Authorization: Bearer ...` for `secret`, marked sensitive (never logged).
fn bearer_header(secret: Option<age::secrecy::SecretString>) -> Option<HeaderValue> {
    let secret = secret?;
    let mut value = HeaderValue::from_str(&format!("Bearer {}", secret.expose_secret())).ok()?;
    value.set_sensitive(true);
    Some(value)
}
