//! The two protocol eras and the pure translations between them.
//!
//! "Legacy" is every revision with `initialize` (up to 2025-11-25); "modern" is
//! 2026-07-28, where each request carries its version and the client's capabilities
//! in `params._meta` and a server that needs input answers `input_required`.
//! Nothing here does I/O: classification, the request ladder, envelopes, result
//! shapes and the sealed `requestState` are decided from their inputs alone.

use age::secrecy::{ExposeSecret, SecretBox};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde_json::{Map, Value, json};

/// Protocol revisions `/mcp` speaks (2025 era), newest first.
pub const SUPPORTED_VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// 2026-07-28 and later: no `initialize`, no sessions.
pub const MODERN_VERSIONS: [&str; 1] = ["2026-07-28"];

pub const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
pub const META_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
pub const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
pub const META_SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
/// `_meta` keys in this namespace belong to the protocol, not to the application.
const RESERVED_META: &str = "io.modelcontextprotocol/";

/// -32020: a routing header disagrees with the body (or is missing).
pub const HEADER_MISMATCH: i64 = -32020;
/// -32022: the requested protocol version is not served.
pub const UNSUPPORTED_VERSION: i64 = -32022;
pub use super::jsonrpc::{INVALID_PARAMS, METHOD_NOT_FOUND};

/// The requests a 2026-07-28 client may send.
const MODERN_METHODS: [&str; 10] = [
    "server/discover",
    "completion/complete",
    "prompts/get",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "subscriptions/listen",
    "tools/call",
    "tools/list",
];

/// Results a modern client may cache, which must say for how long and for whom.
const CACHEABLE: [&str; 5] = [
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
];

/// Which protocol a peer speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Era {
    Legacy,
    Modern,
}

/// A request refused before it reaches a server: HTTP status and JSON-RPC error.
#[derive(Debug, PartialEq)]
pub struct Rejection {
    pub status: u16,
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl Rejection {
    fn bad_request(code: i64, message: impl Into<String>) -> Self {
        Self {
            status: 400,
            code,
            message: message.into(),
            data: None,
        }
    }

    /// The JSON-RPC error object.
    pub fn error(&self) -> Value {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(data) = &self.data {
            error["data"] = data.clone();
        }
        error
    }
}

/// Every version the gateway serves, both eras, newest first: a dual-era client
/// told this falls back instead of giving up.
pub fn all_versions() -> Vec<&'static str> {
    MODERN_VERSIONS
        .iter()
        .chain(SUPPORTED_VERSIONS.iter())
        .copied()
        .collect()
}

/// -32022 naming every version served.
pub fn unsupported_version(requested: &Value) -> Rejection {
    Rejection {
        status: 400,
        code: UNSUPPORTED_VERSION,
        message: "unsupported protocol version".into(),
        data: Some(json!({"supported": all_versions(), "requested": requested})),
    }
}

/// The value of `params._meta[key]`.
pub fn meta<'m>(msg: &'m Value, key: &str) -> Option<&'m Value> {
    msg.get("params")?.get("_meta")?.get(key)
}

/// Which era a client message belongs to (G1): the envelope or a modern version
/// header make it modern; a handshake-era header, or none, legacy. A version that is
/// neither is refused with every version the gateway speaks.
pub fn classify(version_header: Option<&str>, msg: &Value) -> Result<Era, Rejection> {
    if meta(msg, META_VERSION).is_some() {
        return Ok(Era::Modern);
    }
    match version_header {
        None => Ok(Era::Legacy),
        Some(v) if SUPPORTED_VERSIONS.contains(&v) => Ok(Era::Legacy),
        Some(v) if MODERN_VERSIONS.contains(&v) => Ok(Era::Modern),
        Some(v) => Err(unsupported_version(&json!(v))),
    }
}

/// The routing headers a modern request mirrors from its body.
#[derive(Clone, Copy, Default)]
pub struct RoutingHeaders<'h> {
    pub version: Option<&'h str>,
    pub method: Option<&'h str>,
    pub name: Option<&'h str>,
}

/// The routing headers of a 2026-07-28 request (one whose `params._meta` names its
/// version), for whoever sends it over HTTP; none for a 2025 one.
pub fn routing_headers(method: &str, params: &Value) -> Vec<(&'static str, String)> {
    let Some(version) = params
        .pointer("/_meta")
        .and_then(|m| m.get(META_VERSION))
        .and_then(Value::as_str)
    else {
        return Vec::new();
    };
    let mut headers = vec![
        ("mcp-protocol-version", version.to_string()),
        ("mcp-method", method.to_string()),
    ];
    if let Some(name) = name_param(method)
        .and_then(|k| params.get(k))
        .and_then(Value::as_str)
    {
        headers.push(("mcp-name", encode_header_value(name)));
    }
    headers
}

/// A header value for `text`: as is when it is visible ASCII, else `=?base64?...?=`
/// (what [`decode_header_value`] reads).
pub fn encode_header_value(text: &str) -> String {
    if text.bytes().all(|b| (0x20..0x7f).contains(&b)) && text.trim() == text {
        text.to_string()
    } else {
        let encoded = base64::engine::general_purpose::STANDARD.encode(text);
        format!("=?base64?{encoded}?=")
    }
}

/// The body parameter `Mcp-Name` mirrors for `method`.
fn name_param(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    }
}

/// `Mcp-Name` of a request, for binding input requests to it.
pub fn request_name(msg: &Value) -> Option<String> {
    let method = msg.get("method")?.as_str()?;
    let key = name_param(method)?;
    Some(msg.get("params")?.get(key)?.as_str()?.to_string())
}

/// A header value as sent: plain, or `=?base64?...?=` for values unsafe in HTTP.
/// A malformed sentinel decodes to nothing, so it never matches by accident.
fn decode_header_value(value: &str) -> Option<String> {
    let Some(inner) = value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    else {
        return Some(value.to_string());
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(inner)
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// The 2026-07-28 request ladder: the envelope, then the headers against the body,
/// then the version, then the method. The first failure wins.
pub fn validate_modern(headers: RoutingHeaders<'_>, msg: &Value) -> Result<(), Rejection> {
    let method = msg.get("method").and_then(Value::as_str).unwrap_or("");
    let version = meta(msg, META_VERSION);
    if version.is_none() || meta(msg, META_CAPABILITIES).is_none() {
        return Err(Rejection::bad_request(
            INVALID_PARAMS,
            format!("params._meta must carry {META_VERSION} and {META_CAPABILITIES}"),
        ));
    }
    if headers.version.is_none() || headers.version.map(Value::from).as_ref() != version {
        return Err(Rejection::bad_request(
            HEADER_MISMATCH,
            "the MCP-Protocol-Version header does not match params._meta",
        ));
    }
    if headers.method != Some(method) {
        return Err(Rejection::bad_request(
            HEADER_MISMATCH,
            "the Mcp-Method header does not match the body's method",
        ));
    }
    if let Some(key) = name_param(method)
        && let Some(named) = msg.pointer(&format!("/params/{key}"))
        && headers
            .name
            .and_then(decode_header_value)
            .map(Value::from)
            .as_ref()
            != Some(named)
    {
        return Err(Rejection::bad_request(
            HEADER_MISMATCH,
            format!("the Mcp-Name header does not match params.{key}"),
        ));
    }
    match version.and_then(Value::as_str) {
        None => {
            return Err(Rejection::bad_request(
                INVALID_PARAMS,
                "the protocol version must be a string",
            ));
        }
        Some(v) if !MODERN_VERSIONS.contains(&v) => {
            return Err(unsupported_version(&json!(v)));
        }
        Some(_) => {}
    }
    if !MODERN_METHODS.contains(&method) {
        return Err(Rejection {
            status: 404,
            code: METHOD_NOT_FOUND,
            message: format!("method not found: {method}"),
            data: None,
        });
    }
    Ok(())
}

/// The client capabilities a modern request declares.
pub fn client_capabilities(msg: &Value) -> Value {
    meta(msg, META_CAPABILITIES)
        .cloned()
        .unwrap_or_else(|| json!({}))
}

/// Whether declared capabilities let the client answer a server's questions.
pub fn can_answer(capabilities: &Value) -> bool {
    ["sampling", "elicitation", "roots"]
        .iter()
        .any(|c| capabilities.get(c).is_some())
}

/// RFC 5424 severities as MCP names them, least severe first.
pub fn level_rank(level: &str) -> u8 {
    const LEVELS: [&str; 8] = [
        "debug",
        "info",
        "notice",
        "warning",
        "error",
        "critical",
        "alert",
        "emergency",
    ];
    LEVELS
        .iter()
        .position(|l| *l == level)
        .and_then(|p| u8::try_from(p).ok())
        .unwrap_or(1)
}

/// Params for a legacy child: the protocol's own `_meta` keys removed (a legacy
/// server may refuse a request carrying them), the application's kept.
pub fn strip_envelope(params: &mut Value) {
    let Some(meta) = params.get_mut("_meta").and_then(Value::as_object_mut) else {
        return;
    };
    meta.retain(|k, _| !k.starts_with(RESERVED_META));
    if meta.is_empty()
        && let Some(p) = params.as_object_mut()
    {
        p.remove("_meta");
    }
}

/// What a legacy client's session tells a modern child about the client.
#[derive(Clone, Debug, Default)]
pub struct Envelope {
    pub capabilities: Value,
    pub client_info: Option<Value>,
    pub log_level: Option<String>,
}

/// Params for a modern child on behalf of a legacy client.
pub fn add_envelope(params: Option<Value>, envelope: &Envelope) -> Value {
    let mut params = match params {
        Some(Value::Object(p)) => p,
        _ => Map::new(),
    };
    let meta = params
        .entry("_meta")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    if let Some(meta) = meta {
        meta.insert(META_VERSION.into(), json!(MODERN_VERSIONS[0]));
        meta.insert(META_CAPABILITIES.into(), envelope.capabilities.clone());
        if let Some(info) = &envelope.client_info {
            meta.insert(META_CLIENT_INFO.into(), info.clone());
        }
        if let Some(level) = &envelope.log_level {
            meta.insert(META_LOG_LEVEL.into(), json!(level));
        }
    }
    Value::Object(params)
}

/// A legacy child's response as a modern client expects it: `resultType`, cache
/// hints where they are required, the server's identity; retired error codes mapped.
pub fn modernize_response(method: &str, response: &mut Value, server_info: &Value) {
    if let Some(code) = response.pointer_mut("/error/code")
        && code.as_i64() == Some(-32002)
    {
        *code = json!(INVALID_PARAMS);
    }
    let Some(result) = response.get_mut("result").and_then(Value::as_object_mut) else {
        return;
    };
    result
        .entry("resultType")
        .or_insert_with(|| json!("complete"));
    if CACHEABLE.contains(&method) {
        result.entry("ttlMs").or_insert_with(|| json!(0));
        result
            .entry("cacheScope")
            .or_insert_with(|| json!("private"));
    }
    if !server_info.is_null()
        && let Some(meta) = result
            .entry("_meta")
            .or_insert_with(|| json!({}))
            .as_object_mut()
    {
        meta.insert(META_SERVER_INFO.into(), server_info.clone());
    }
}

/// A modern child's result as a legacy client expects it: without the fields its
/// era does not know (strict clients refuse unknown keys).
pub fn legacy_result(response: &mut Value) {
    let Some(result) = response.get_mut("result").and_then(Value::as_object_mut) else {
        return;
    };
    for key in ["resultType", "ttlMs", "cacheScope"] {
        result.remove(key);
    }
    if let Some(meta) = result.get_mut("_meta").and_then(Value::as_object_mut) {
        meta.retain(|k, _| !k.starts_with(RESERVED_META));
        if meta.is_empty() {
            result.remove("_meta");
        }
    }
}

/// The `server/discover` result for a legacy child, from its `initialize` answer.
pub fn discover_from_initialize(init: &Value) -> Value {
    let mut capabilities = init.get("capabilities").cloned().unwrap_or(json!({}));
    if let Some(c) = capabilities.as_object_mut() {
        // 2025-11-25 tasks are per client; across a shared child they would leak.
        c.remove("tasks");
    }
    let mut result = json!({
        "resultType": "complete",
        "supportedVersions": MODERN_VERSIONS,
        "capabilities": capabilities,
        "ttlMs": 0,
        "cacheScope": "private",
    });
    if let Some(instructions) = init.get("instructions") {
        result["instructions"] = instructions.clone();
    }
    if let Some(info) = init.get("serverInfo") {
        result["_meta"] = json!({ META_SERVER_INFO: info });
    }
    result
}

/// A legacy `initialize` answer from a modern child's `server/discover` result.
pub fn initialize_from_discover(discover: &Value) -> Value {
    let mut result = json!({
        "capabilities": discover.get("capabilities").cloned().unwrap_or(json!({})),
        "serverInfo": discover
            .pointer("/_meta")
            .and_then(|m| m.get(META_SERVER_INFO))
            .cloned()
            .unwrap_or(json!({"name": "unknown", "version": "0"})),
    });
    if let Some(instructions) = discover.get("instructions") {
        result["instructions"] = instructions.clone();
    }
    result
}

/// Whether a `server/discover` answer shows a modern server we can speak to.
pub fn is_modern_discover(response: &Value) -> bool {
    response
        .pointer("/result/supportedVersions")
        .and_then(Value::as_array)
        .is_some_and(|v| v.iter().any(|v| MODERN_VERSIONS.iter().any(|m| v == m)))
}

/// What a sealed `requestState` stands for: a call parked at the gateway, waiting
/// for the client's answers, bound to the request and the client that made it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ticket {
    /// The parked call.
    pub handle: u64,
    pub method: String,
    pub name: Option<String>,
    /// A digest of the credentials the client presented ("" without any).
    pub principal: String,
    /// Milliseconds since the Unix epoch.
    pub expires_ms: u64,
}

/// Why a `requestState` is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("requestState is not one this gateway issued")]
    Forged,
    #[error("requestState has expired")]
    Expired,
}

/// Seals tickets with a key that lives only in this process: a state is
/// authenticated (keyed BLAKE3), never trusted as given, and dies with the gateway.
pub struct Sealer {
    key: SecretBox<[u8; 32]>,
}

impl Sealer {
    /// A sealer with `key`, which must be secret and random (see `gateway::random`):
    /// a guessable key would let clients forge states.
    pub fn new(key: [u8; 32]) -> Self {
        Self {
            key: SecretBox::new(Box::new(key)),
        }
    }

    fn mac(&self, payload: &str) -> blake3::Hash {
        blake3::keyed_hash(self.key.expose_secret(), payload.as_bytes())
    }

    /// A digest of a client's credentials that only this gateway can compute.
    pub fn principal(&self, credentials: &str) -> String {
        self.mac(credentials).to_hex()[..32].to_string()
    }

    pub fn seal(&self, ticket: &Ticket) -> String {
        let payload = B64URL.encode(serde_json::to_vec(ticket).unwrap_or_default());
        self.sign(&payload)
    }

    /// `payload.MAC`: `payload` (visible ASCII) and its keyed digest.
    pub fn sign(&self, payload: &str) -> String {
        format!("{payload}.{}", self.mac(payload).to_hex())
    }

    /// The payload of a [`Self::sign`]ed text, if this key signed it.
    pub fn verify<'t>(&self, signed: &'t str) -> Option<&'t str> {
        let (payload, mac) = signed.rsplit_once('.')?;
        let mac = blake3::Hash::from_hex(mac).ok()?;
        // `Hash` compares in constant time.
        (self.mac(payload) == mac).then_some(payload)
    }

    /// The ticket a state stands for, if this gateway sealed it and it is still due.
    pub fn open(&self, state: &str, now_ms: u64) -> Result<Ticket, StateError> {
        let payload = self.verify(state).ok_or(StateError::Forged)?;
        let bytes = B64URL.decode(payload).map_err(|_| StateError::Forged)?;
        let ticket: Ticket = serde_json::from_slice(&bytes).map_err(|_| StateError::Forged)?;
        if ticket.expires_ms <= now_ms {
            return Err(StateError::Expired);
        }
        Ok(ticket)
    }
}

#[cfg(test)]
mod tests;
