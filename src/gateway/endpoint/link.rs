//! One member of an endpoint, reached as an MCP client reaches it: Streamable HTTP on
//! the member's own gateway port (so every kind of member, pools, `per-session`,
//! scale to zero, remote and 2026-07-28 servers, behaves through an endpoint exactly
//! as it does for any client, its bearer included). A [`Link`] is one member session:
//! opened lazily, its calls' SSE answers read event by event (progress and the
//! member's own requests handed to the caller), its `GET /mcp` stream for what the
//! member sends unasked, and a `DELETE` when it is closed.

use std::sync::Mutex;
use std::time::Duration;

use age::secrecy::{ExposeSecret, SecretString};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{self, HeaderValue};
use hyper::{Method, StatusCode, Uri};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::gateway::SUPPORTED_VERSIONS;
use crate::wire::sse::SseEvents;

/// The largest message a member may send us (a line of its child's is bounded the same).
const MAX_MESSAGE: usize = 16 << 20;
/// For everything but a call's answer, which takes as long as the member's
/// `call_timeout` allows.
const QUICK: Duration = Duration::from_secs(30);
const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";

pub(super) type HttpClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<super::super::proxy::Connector>,
    Full<Bytes>,
>;

/// Why a member could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum LinkError {
    /// Not reachable, or not answering as a server does.
    #[error("{0}")]
    Down(String),
    /// Its session is gone (the member was restarted or scaled): open a new one.
    #[error("the member's session ended")]
    SessionGone,
    /// Up, but taking no more now (503: at its session or stream cap): it is not down.
    #[error("busy: {0}")]
    Busy(String),
}

/// Where a member is and how to get in.
#[derive(Clone)]
pub struct Address {
    /// `http://127.0.0.1:PORT/mcp`.
    pub url: Uri,
    /// The member's own bearer, when it has `auth`.
    pub bearer: Option<SecretString>,
}

/// One session with one member.
pub(super) struct Link {
    client: HttpClient,
    url: Uri,
    bearer: Option<HeaderValue>,
    session: Mutex<Option<String>>,
    version: Mutex<String>,
}

impl Link {
    pub(super) fn new(client: HttpClient, address: &Address) -> Self {
        let bearer = address.bearer.as_ref().and_then(|b| {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", b.expose_secret())).ok()?;
            value.set_sensitive(true);
            Some(value)
        });
        Self {
            client,
            url: address.url.clone(),
            bearer,
            session: Mutex::new(None),
            version: Mutex::new(SUPPORTED_VERSIONS[0].to_string()),
        }
    }

    fn request(&self, method: Method) -> hyper::http::request::Builder {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(self.url.clone())
            .header(header::ACCEPT, "application/json, text/event-stream");
        if let Some(id) = self.session.lock().ok().and_then(|s| s.clone()) {
            req = req.header(SESSION_HEADER, id);
        }
        if let Some(version) = self.version.lock().ok().map(|v| v.clone()) {
            req = req.header(VERSION_HEADER, version);
        }
        if let Some(bearer) = &self.bearer {
            req = req.header(header::AUTHORIZATION, bearer.clone());
        }
        req
    }

    async fn post(
        &self,
        body: &Value,
        quick: bool,
    ) -> Result<hyper::Response<hyper::body::Incoming>, LinkError> {
        let mut req = self
            .request(Method::POST)
            .header(header::CONTENT_TYPE, "application/json");
        // A traced call's context is the member's in the header too (an HTTP hop).
        if let Some(traceparent) =
            crate::wire::era::meta(body, crate::wire::trace::TRACEPARENT).and_then(Value::as_str)
        {
            req = req.header(crate::wire::trace::TRACEPARENT, traceparent);
        }
        let req = req
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| LinkError::Down(format!("cannot build a request: {e}")))?;
        let sent = self.client.request(req);
        let response = if quick {
            tokio::time::timeout(QUICK, sent)
                .await
                .map_err(|_| LinkError::Down(format!("no answer within {QUICK:?}")))?
        } else {
            sent.await
        };
        let response = response.map_err(|e| LinkError::Down(unreachable(&e)))?;
        match response.status() {
            StatusCode::NOT_FOUND if self.session.lock().is_ok_and(|s| s.is_some()) => {
                Err(LinkError::SessionGone)
            }
            s if s.is_success() => Ok(response),
            StatusCode::SERVICE_UNAVAILABLE => Err(LinkError::Busy(
                "it answered 503 (at its session or stream cap, or starting)".into(),
            )),
            s => Err(LinkError::Down(format!("answered HTTP {s}"))),
        }
    }

    /// Opens the session: `initialize` (as `capabilities` allow), then
    /// `notifications/initialized`. Returns the member's `initialize` result.
    pub(super) async fn open(&self, capabilities: &Value) -> Result<Value, LinkError> {
        if let Ok(mut s) = self.session.lock() {
            *s = None;
        }
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": SUPPORTED_VERSIONS[0],
            "capabilities": capabilities,
            "clientInfo": {"name": "mcpctl-endpoint", "version": env!("CARGO_PKG_VERSION")},
        }});
        let response = self.post(&init, true).await?;
        let session = response
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let answer = read_answer(response, &json!(0), None)
            .await?
            .ok_or_else(|| LinkError::Down("initialize got no answer".into()))?;
        if let Some(error) = answer.get("error") {
            return Err(LinkError::Down(format!("initialize refused: {error}")));
        }
        let result = answer.get("result").cloned().unwrap_or(Value::Null);
        if let Some(version) = result.get("protocolVersion").and_then(Value::as_str)
            && let Ok(mut v) = self.version.lock()
        {
            *v = version.to_string();
        }
        if let Ok(mut s) = self.session.lock() {
            *s = session;
        }
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await?;
        Ok(result)
    }

    /// One request; its answer. What the member sends before it (progress, its own
    /// requests) goes to `events`.
    pub(super) async fn call(
        &self,
        request: &Value,
        events: Option<&mpsc::Sender<Value>>,
    ) -> Result<Value, LinkError> {
        let id = request.get("id").cloned().unwrap_or(Value::Null);
        let response = self.post(request, false).await?;
        read_answer(response, &id, events)
            .await?
            .ok_or_else(|| LinkError::Down("the member closed the call without an answer".into()))
    }

    /// A notification, or an answer to a request of the member's.
    pub(super) async fn send(&self, message: &Value) -> Result<(), LinkError> {
        self.post(message, true).await.map(drop)
    }

    /// Opens the session's `GET /mcp` stream (waiting until the member has it, so
    /// nothing it sends from then on is missed); [`read_stream`] reads it.
    pub(super) async fn open_stream(&self) -> Result<hyper::body::Incoming, LinkError> {
        let req = self
            .request(Method::GET)
            .header(header::ACCEPT, "text/event-stream")
            .body(Full::new(Bytes::new()))
            .map_err(|e| LinkError::Down(format!("cannot build a request: {e}")))?;
        let response = tokio::time::timeout(QUICK, self.client.request(req))
            .await
            .map_err(|_| LinkError::Down("no stream".into()))?
            .map_err(|e| LinkError::Down(unreachable(&e)))?;
        if !response.status().is_success() {
            return Err(LinkError::Down(format!(
                "stream: HTTP {}",
                response.status()
            )));
        }
        Ok(response.into_body())
    }

    /// Ends the session (`DELETE`), bounded; the member forgets it either way.
    pub(super) async fn close(&self) {
        let Some(_) = self.session.lock().ok().and_then(|s| s.clone()) else {
            return;
        };
        if let Ok(req) = self.request(Method::DELETE).body(Full::new(Bytes::new())) {
            let _ = tokio::time::timeout(Duration::from_secs(5), self.client.request(req)).await;
        }
        if let Ok(mut s) = self.session.lock() {
            *s = None;
        }
    }
}

/// Every message of a session's stream to `events`, until the stream or the receiver
/// ends.
pub(super) async fn read_stream(mut body: hyper::body::Incoming, events: mpsc::Sender<Value>) {
    let mut sse = SseEvents::new(MAX_MESSAGE);
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        let Some(chunk) = frame.data_ref() else {
            continue;
        };
        for event in sse.feed(chunk) {
            if let Ok(msg) = serde_json::from_slice::<Value>(&event)
                && events.send(msg).await.is_err()
            {
                return;
            }
        }
    }
}

/// The answer to request `id` from a response: its JSON body, or the SSE event that
/// carries it (every other event goes to `events`). `None`: it ended without one.
async fn read_answer(
    response: hyper::Response<hyper::body::Incoming>,
    id: &Value,
    events: Option<&mpsc::Sender<Value>>,
) -> Result<Option<Value>, LinkError> {
    let is_sse = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/event-stream"));
    if response.status() == StatusCode::ACCEPTED {
        return Ok(None);
    }
    let mut body = response.into_body();
    if !is_sse {
        let bytes = Limited::new(body, MAX_MESSAGE)
            .collect()
            .await
            .map_err(|e| LinkError::Down(format!("cannot read the answer: {e}")))?
            .to_bytes();
        return serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| LinkError::Down(format!("an answer that is not JSON: {e}")));
    }
    let mut sse = SseEvents::new(MAX_MESSAGE);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| LinkError::Down(format!("the answer broke off: {e}")))?;
        let Some(chunk) = frame.data_ref() else {
            continue;
        };
        for event in sse.feed(chunk) {
            let Ok(msg) = serde_json::from_slice::<Value>(&event) else {
                continue;
            };
            let is_answer = msg.get("method").is_none() && msg.get("id") == Some(id);
            if is_answer {
                return Ok(Some(msg));
            }
            if let Some(events) = events {
                let _ = events.send(msg).await;
            }
        }
    }
    Ok(None)
}

/// What a failed connection says, without the client library's noise.
fn unreachable(e: &hyper_util::client::legacy::Error) -> String {
    use std::error::Error;
    let mut why = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        why = s.to_string();
        source = s.source();
    }
    format!("unreachable: {why}")
}
