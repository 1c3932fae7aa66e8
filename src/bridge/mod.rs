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
//! session is deleted and the bridge exits 0.
//!
//! When there is nothing to bridge to (no daemon, an unknown or stopped server) the
//! reason goes to stderr once and answers every request as a JSON-RPC error, until
//! the client closes stdin (exit 1).

pub mod target;
pub mod wire;

use std::path::Path;
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
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::sync::{Semaphore, mpsc};
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

/// Runs the bridge to `name` of the file at `config` until stdin closes.
pub fn run(config: &Path, name: &str) -> u8 {
    let target = target::resolve(config, name);
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
    runtime.block_on(serve(name, target))
}

async fn serve(name: &str, target: Result<Target, Unavailable>) -> u8 {
    let (out, queued) = mpsc::channel::<Vec<u8>>(OUT_QUEUE);
    let writer = tokio::spawn(write_out(queued));
    let bridge = target.and_then(|t| Bridge::new(name, t, out.clone()).map(Arc::new));
    if let Err(why) = &bridge {
        crate::note!("mcpctl connect {name}: {why}");
    }
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut calls = JoinSet::new();
    let mut lines = BoundedLines::new(BufReader::new(tokio::io::stdin()), MAX_MESSAGE);
    loop {
        while calls.try_join_next().is_some() {}
        let line = match lines.next_line().await {
            Ok(Some(line)) => line,
            Ok(None) => break,
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
            emit(&out, wire::error_reply(None, wire::INVALID_REQUEST, &why)).await;
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
    calls.abort_all();
    let code = match &bridge {
        Ok(bridge) => {
            bridge.close().await;
            exit::OK
        }
        Err(_) => exit::ERROR,
    };
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

async fn write_out(mut queued: mpsc::Receiver<Vec<u8>>) {
    let mut stdout = tokio::io::stdout();
    while let Some(mut message) = queued.recv().await {
        message.push(b'\n');
        if stdout.write_all(&message).await.is_err() || stdout.flush().await.is_err() {
            return;
        }
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
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    url: String,
    bearer: Option<HeaderValue>,
    session: Mutex<Session>,
    /// The client's `initialize`, to open a new session with when the server restarts.
    init: Mutex<Option<Bytes>>,
    listener: Mutex<Option<AbortHandle>>,
    out: mpsc::Sender<Vec<u8>>,
}

impl Bridge {
    fn new(name: &str, target: Target, out: mpsc::Sender<Vec<u8>>) -> Result<Self, Unavailable> {
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
        let bearer = target.bearer.and_then(|secret| {
            let mut value =
                HeaderValue::from_str(&format!("Bearer {}", secret.expose_secret())).ok()?;
            value.set_sensitive(true);
            Some(value)
        });
        Ok(Self {
            name: name.to_string(),
            http: Client::builder(TokioExecutor::new()).build(connector),
            url: target.url,
            bearer,
            session: Mutex::new(Session::default()),
            init: Mutex::new(None),
            listener: Mutex::new(None),
            out,
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
        // The server was restarted (its sessions end with it): open a new session
        // with the client's own `initialize`, then send the message again, once.
        if matches!(&sent, Err(why) if why == SESSION_ENDED) && !msg.is_initialize() {
            sent = match self.reopen().await {
                Ok(()) => self.exchange(body, &msg).await,
                Err(why) => Err(format!(
                    "{SESSION_ENDED}, and a new one could not be opened: {why}"
                )),
            };
        }
        if let Err(why) = sent {
            crate::note!("mcpctl connect {}: {why}", self.name);
            if let Some(id) = msg.id() {
                emit(
                    &self.out,
                    wire::error_reply(Some(id), wire::UNAVAILABLE, &why),
                )
                .await;
            }
        } else if msg.is_initialize() {
            self.listen();
        }
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
        if let Some(bearer) = &self.bearer {
            req = req.header(header::AUTHORIZATION, bearer.clone());
        }
        req
    }

    /// A new session for the client, from its first `initialize` (whose answer it
    /// already has, so this one is not passed on).
    async fn reopen(self: &Arc<Self>) -> Result<(), String> {
        let Some(init) = self.init.lock().ok().and_then(|i| i.clone()) else {
            return Err("the client never initialized".into());
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
        .map_err(|e| self.unreachable(&e))?;
        if !answer.status().is_success() {
            return Err(format!("initialize answered {}", answer.status()));
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
        let mut events = wire::SseEvents::new(MAX_MESSAGE);
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

    async fn exchange(self: &Arc<Self>, body: Bytes, msg: &Message) -> Result<(), String> {
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
            return Err(SESSION_ENDED.into());
        }
        if msg.id().is_some() && wire::is_message(&bytes) {
            emit(&self.out, bytes.to_vec()).await;
            return Ok(());
        }
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
        Err(format!("{} answered {status}: {}", self.url, text.trim()))
    }

    /// Passes on every event of an SSE answer.
    async fn pump(&self, mut body: Incoming, initialize: bool) -> Result<(), String> {
        let mut events = wire::SseEvents::new(MAX_MESSAGE);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("the stream of {} broke off: {e}", self.url))?;
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

    fn unreachable(&self, e: &hyper_util::client::legacy::Error) -> String {
        let mut why = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            why = format!("{why}: {cause}");
            source = cause.source();
        }
        if e.is_connect() {
            format!(
                "cannot reach `{}` at {} (stopped, or the daemon is gone?): {why}",
                self.name, self.url
            )
        } else {
            format!("the request to {} failed: {why}", self.url)
        }
    }
}
