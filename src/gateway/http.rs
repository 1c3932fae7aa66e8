//! `/mcp`: the 2025-era Streamable HTTP transport, JSON responses.
//!
//! The gateway answers `initialize` itself (from the child's cached answer, at the
//! version this client asked for when supported), mints a session id of 128 random
//! bits, and forwards every other request through the child's shared channel.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::{Instances, SUPPORTED_VERSIONS, Upstream, origin};

/// Requests larger than this are refused with 413.
const MAX_BODY: usize = 4 * 1024 * 1024;
const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";

struct Session {
    upstream: Upstream,
}

struct AppState {
    instances: Arc<dyn Instances>,
    sessions: Mutex<HashMap<String, Session>>,
    loopback: bool,
}

pub(super) fn router(instances: Arc<dyn Instances>, loopback: bool) -> Router {
    let state = Arc::new(AppState {
        instances,
        sessions: Mutex::new(HashMap::new()),
        loopback,
    });
    Router::new()
        .route("/mcp", post(post_mcp).get(get_mcp).delete(delete_mcp))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn rpc_error(status: StatusCode, id: Value, code: i64, message: &str) -> Response {
    json_response(
        status,
        &json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}),
    )
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Origin and Host checks for every route; `Some` is the refusal.
fn refuse(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    let ok = origin::origin_allowed(header_str(headers, "origin"))
        && origin::host_allowed(header_str(headers, "host"), state.loopback);
    (!ok).then(|| {
        rpc_error(
            StatusCode::FORBIDDEN,
            Value::Null,
            -32600,
            "forbidden origin or host",
        )
    })
}

fn session(headers: &HeaderMap) -> Option<&str> {
    header_str(headers, SESSION_HEADER)
}

async fn post_mcp(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(refusal) = refuse(&state, &headers) {
        return refusal;
    }
    let Ok(msg) = serde_json::from_slice::<Value>(&body) else {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            Value::Null,
            -32700,
            "parse error: the body is not JSON",
        );
    };
    if !msg.is_object() {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            Value::Null,
            -32600,
            "expected one JSON-RPC message (batches are not supported)",
        );
    }
    if let Some(version) = header_str(&headers, VERSION_HEADER)
        && !SUPPORTED_VERSIONS.contains(&version)
    {
        let message = format!(
            "unsupported MCP-Protocol-Version {version}; supported: {}",
            SUPPORTED_VERSIONS.join(", ")
        );
        return rpc_error(
            StatusCode::BAD_REQUEST,
            msg.get("id").cloned().unwrap_or(Value::Null),
            -32600,
            &message,
        );
    }
    let method = msg
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let id = msg.get("id").cloned();
    if method == "initialize" {
        return initialize(&state, id.unwrap_or(Value::Null), &msg);
    }
    let Some(session_id) = session(&headers) else {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            id.unwrap_or(Value::Null),
            -32600,
            "missing Mcp-Session-Id: initialize first",
        );
    };
    let upstream = state
        .sessions
        .lock()
        .ok()
        .and_then(|s| s.get(session_id).map(|s| s.upstream.clone()));
    let Some(upstream) = upstream else {
        return rpc_error(
            StatusCode::NOT_FOUND,
            id.unwrap_or(Value::Null),
            -32600,
            "unknown session: initialize again",
        );
    };
    let Some(id) = id else {
        // Notifications: `initialized` belongs to this session's handshake, answered here.
        return StatusCode::ACCEPTED.into_response();
    };
    if msg.get("method").is_none() {
        // A response to a server request: none are routed yet.
        return StatusCode::ACCEPTED.into_response();
    }
    if method == "ping" {
        return json_response(
            StatusCode::OK,
            &json!({"jsonrpc": "2.0", "id": id, "result": {}}),
        );
    }
    match upstream.request(&method, msg.get("params").cloned()).await {
        Ok(mut response) => {
            response["id"] = id;
            json_response(StatusCode::OK, &response)
        }
        Err(gone) => {
            if let Ok(mut sessions) = state.sessions.lock() {
                sessions.remove(session_id);
            }
            rpc_error(
                StatusCode::OK,
                id,
                -32603,
                &format!("{gone}; initialize again"),
            )
        }
    }
}

fn initialize(state: &AppState, id: Value, msg: &Value) -> Response {
    let Some(upstream) = state.instances.pick() else {
        return rpc_error(
            StatusCode::SERVICE_UNAVAILABLE,
            id,
            -32603,
            "the server is not running",
        );
    };
    let asked = msg
        .pointer("/params/protocolVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let version = if SUPPORTED_VERSIONS.contains(&asked) {
        asked
    } else {
        SUPPORTED_VERSIONS[0]
    };
    let mut result = (*upstream.init).clone();
    result["protocolVersion"] = json!(version);
    let session_id = new_session_id();
    if let Ok(mut sessions) = state.sessions.lock() {
        sessions.insert(session_id.clone(), Session { upstream });
    }
    let mut response = json_response(
        StatusCode::OK,
        &json!({"jsonrpc": "2.0", "id": id, "result": result}),
    );
    if let Ok(value) = HeaderValue::from_str(&session_id) {
        response.headers_mut().insert(SESSION_HEADER, value);
    }
    response
}

/// 128 random bits, hex.
fn new_session_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No randomness means no safe session ids: fall back to a hash of fresh state.
        let seed = format!(
            "{:?}{:?}",
            std::time::SystemTime::now(),
            std::thread::current().id()
        );
        bytes.copy_from_slice(&blake3::hash(seed.as_bytes()).as_bytes()[..16]);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn get_mcp(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(refusal) = refuse(&state, &headers) {
        return refusal;
    }
    // No server-to-client stream yet.
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, "POST, DELETE")],
    )
        .into_response()
}

async fn delete_mcp(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(refusal) = refuse(&state, &headers) {
        return refusal;
    }
    let Some(id) = session(&headers) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let removed = state.sessions.lock().ok().and_then(|mut s| s.remove(id));
    if removed.is_some() {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
    .into_response()
}
