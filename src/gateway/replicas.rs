//! Sessions across replicas without a shared store (`mcpctl gateway --session-key-env
//! VAR --advertise URL`, what `render k8s` runs). Every replica mints 2025 session ids
//! (and tags the `requestState` of a 2026-07-28 call parked on a question) with a name
//! of itself sealed with the key the replicas share; a replica that gets a request of
//! another's session (`Mcp-Session-Id`, `/messages?sessionId=`, or a retry's
//! `requestState`) forwards it there, once (a forwarded request is never forwarded
//! again), and streams the answer back as it comes. An id not sealed with the key is
//! refused (404) before any lookup, so no client can make a replica call an address of
//! its choosing; and before a request (with the client's bearer) goes to an address, the
//! peer there proves it holds the key (a challenge, remembered for a while), since a
//! dead pod's address can be another pod's by now. A replica that is gone answers 404:
//! the client starts a new session.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;

use super::proxy::Connector;
use hyper_util::client::legacy::Client;
use serde_json::Value;

use super::reply::rpc_error;
use crate::wire::era::Sealer;
use crate::wire::jsonrpc::INVALID_REQUEST;

/// Marks a request one replica sent another.
const FORWARDED: &str = "x-mcpctl-forwarded";
const SESSION: &str = "mcp-session-id";
/// Where a replica answers the others' challenge.
pub const PROOF_PATH: &str = "/.well-known/mcpctl-replica";
/// How long a peer's proof is trusted (`MCPCTL_REPLICA_PROOF_MS`, default 5 s): an
/// address is another pod's only after its pod is gone, and then its proof fails.
fn proof_ttl() -> Duration {
    let ms = std::env::var("MCPCTL_REPLICA_PROOF_MS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(5_000);
    Duration::from_millis(ms.min(3_600_000))
}
/// Peers remembered at most (a table of addresses, cleared when full).
const MAX_PEERS: usize = 1024;
/// How long a peer's answer to the challenge may take.
const PROOF_TIMEOUT: Duration = Duration::from_secs(5);

/// This replica's name and the replicas' shared key.
pub struct Replicas {
    sealer: Sealer,
    /// A key of its own (from the same secret) for the challenge's answers.
    prover: Sealer,
    /// Peers that proved the key, by base URL, and when.
    verified: Mutex<HashMap<String, Instant>>,
    proof_ttl: Duration,
    /// Where the other replicas reach this one, e.g. `http://10.0.0.7:8000`.
    me: String,
    client: Client<HttpsConnector<Connector>, Full<bytes::Bytes>>,
}

/// Where a request of a session belongs.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Here,
    /// Another replica's: its base URL.
    There(String),
    /// Not sealed with the shared key (or not a replica's at all).
    Refused,
}

impl std::fmt::Debug for Replicas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Replicas")
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

/// Why replicas cannot share sessions as asked.
#[derive(Debug, thiserror::Error)]
pub enum ReplicasError {
    #[error(
        "the session key has {0} bytes: give at least 32 random ones (e.g. `openssl rand -hex 32`)"
    )]
    ShortKey(usize),
    #[error("--advertise {me}: not a URL: {source}")]
    NotAUrl {
        me: String,
        #[source]
        source: hyper::http::uri::InvalidUri,
    },
    #[error("--advertise {0}: give this replica's base URL, e.g. http://10.0.0.7:8000")]
    NotABaseUrl(String),
    #[error("cannot make an HTTP client: {0}")]
    Client(#[source] std::io::Error),
}

impl Replicas {
    /// `secret`: the shared key's text (at least 32 bytes); `me`: this replica's base URL.
    pub fn new(secret: &[u8], me: &str) -> Result<Self, ReplicasError> {
        if secret.len() < 32 {
            return Err(ReplicasError::ShortKey(secret.len()));
        }
        let me = bracket_ipv6(me.trim_end_matches('/'));
        let parsed: Uri = me.parse().map_err(|source| ReplicasError::NotAUrl {
            me: me.clone(),
            source,
        })?;
        let plain_path = parsed.path().is_empty() || parsed.path() == "/";
        if !matches!(parsed.scheme_str(), Some("http" | "https"))
            || parsed.authority().is_none()
            || !plain_path
        {
            return Err(ReplicasError::NotABaseUrl(me));
        }
        let key = blake3::derive_key("mcpctl 2025 session ids across replicas v1", secret);
        let proof = blake3::derive_key("mcpctl replica proofs v1", secret);
        Ok(Self {
            sealer: Sealer::new(key),
            prover: Sealer::new(proof),
            verified: Mutex::default(),
            proof_ttl: proof_ttl(),
            me,
            client: super::proxy::client().map_err(ReplicasError::Client)?,
        })
    }

    /// A new session id naming this replica (visible ASCII, as MCP asks).
    pub fn mint(&self) -> Option<String> {
        let mut random = [0u8; 16];
        super::random::fill(&mut random).ok()?;
        let random: String = random.iter().map(|b| format!("{b:02x}")).collect();
        Some(
            self.sealer
                .sign(&format!("{}.{random}", B64URL.encode(&self.me))),
        )
    }

    /// The answer to a peer's challenge `nonce`: it names this replica, so that an
    /// impostor cannot relay another replica's answer as its own.
    pub fn prove(&self, nonce: &str) -> String {
        self.prover.sign(&proof_text(&self.me, nonce))
    }

    /// Whether the peer at `base` holds the key: asked (a random nonce) unless it
    /// proved it lately.
    async fn trusted(&self, base: &str) -> bool {
        let ttl = self.proof_ttl;
        let fresh = |t: &Instant| t.elapsed() < ttl;
        if self
            .verified
            .lock()
            .is_ok_and(|v| v.get(base).is_some_and(fresh))
        {
            return true;
        }
        let mut nonce = [0u8; 16];
        if super::random::fill(&mut nonce).is_err() {
            return false;
        }
        let nonce: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
        let Ok(uri) = format!("{base}{PROOF_PATH}?nonce={nonce}").parse::<Uri>() else {
            return false;
        };
        let Ok(ask) = hyper::Request::get(uri).body(Full::new(bytes::Bytes::new())) else {
            return false;
        };
        let answer = async {
            let response = self.client.request(ask).await.ok()?;
            let body = http_body_util::Limited::new(response.into_body(), 1024);
            body.collect().await.ok().map(|b| b.to_bytes())
        };
        let Ok(Some(body)) = tokio::time::timeout(PROOF_TIMEOUT, answer).await else {
            return false;
        };
        let expected = proof_text(base, &nonce);
        let proved = std::str::from_utf8(&body)
            .ok()
            .and_then(|text| self.prover.verify(text.trim()))
            .is_some_and(|payload| payload == expected);
        if proved && let Ok(mut verified) = self.verified.lock() {
            if verified.len() >= MAX_PEERS {
                verified.clear();
            }
            verified.insert(base.to_string(), Instant::now());
        }
        proved
    }

    pub fn route(&self, session: &str) -> Route {
        let Some(payload) = self.sealer.verify(session) else {
            return Route::Refused;
        };
        let owner = payload
            .split_once('.')
            .and_then(|(owner, _)| B64URL.decode(owner).ok())
            .and_then(|owner| String::from_utf8(owner).ok());
        match owner {
            Some(owner) if owner == self.me => Route::Here,
            Some(owner) => Route::There(owner),
            None => Route::Refused,
        }
    }
}

/// What the replica at `base` signs for `nonce`.
fn proof_text(base: &str, nonce: &str) -> String {
    format!("proof {base} {nonce}")
}

/// `http://fd00::5:8000` (what `$(POD_IP)` makes on an IPv6 pod) as `http://[fd00::5]:8000`.
fn bracket_ipv6(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.matches(':').count() < 2 || authority.contains('[') {
        return url.to_string();
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if host.parse::<std::net::Ipv6Addr>().is_ok() => {
            format!("{scheme}://[{host}]:{port}{path}")
        }
        _ => url.to_string(),
    }
}

/// In front of the routes: a session of this replica goes on; another's is forwarded;
/// one sealed with another key is refused.
pub(super) async fn layer(
    State(replicas): State<Arc<Replicas>>,
    request: Request,
    next: Next,
) -> Response {
    let (request, session) = match whose(request).await {
        Ok(found) => found,
        Err(response) => return *response,
    };
    let Some(session) = session else {
        return next.run(request).await;
    };
    let forwarded = request.headers().contains_key(FORWARDED);
    match replicas.route(&session) {
        Route::Here => next.run(request).await,
        Route::There(_) if forwarded => unknown("a forwarded session that is not here"),
        Route::Refused => unknown("unknown session: initialize again"),
        Route::There(owner) => {
            if !replicas.trusted(&owner).await {
                return unknown("the replica that had this session is gone: initialize again");
            }
            let path = request
                .uri()
                .path_and_query()
                .map_or("/mcp", |p| p.as_str())
                .to_string();
            let Ok(target) = format!("{owner}{path}").parse::<Uri>() else {
                return unknown("unknown session: initialize again");
            };
            let mark = [(
                HeaderName::from_static(FORWARDED),
                HeaderValue::from_static("1"),
            )];
            match super::proxy::pass_on(&replicas.client, request, target, &[], &mark).await {
                Ok(answer) => {
                    let (parts, body) = answer.into_parts();
                    Response::from_parts(parts, Body::new(body))
                }
                Err(_) => unknown("the replica that had this session is gone: initialize again"),
            }
        }
    }
}

/// The session a request belongs to, if any: its `Mcp-Session-Id` on `/mcp`, its
/// `sessionId` on `/messages`, or the replica tag of a 2026-07-28 retry's
/// `requestState` (the body is read for that, and put back).
async fn whose(request: Request) -> Result<(Request, Option<String>), Box<Response>> {
    let path = request.uri().path();
    if path == "/messages" {
        let session = request.uri().query().and_then(|q| {
            q.split('&')
                .find_map(|pair| pair.strip_prefix("sessionId="))
                .map(str::to_string)
        });
        return Ok((request, session));
    }
    if path != "/mcp" {
        return Ok((request, None));
    }
    // A 2026-07-28 request has no session: a stray `Mcp-Session-Id` does not route it.
    let modern = request
        .headers()
        .get("mcp-protocol-version")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| crate::wire::era::MODERN_VERSIONS.contains(&v));
    if let Some(session) = request.headers().get(SESSION).and_then(|v| v.to_str().ok())
        && !modern
    {
        let session = session.to_string();
        return Ok((request, Some(session)));
    }
    if request.method() != axum::http::Method::POST {
        return Ok((request, None));
    }
    let (parts, body) = request.into_parts();
    // The guard read it already (at most MAX_BODY): this only takes it back.
    let bytes = match axum::body::to_bytes(body, super::guard::MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(_) => return Err(Box::new(StatusCode::PAYLOAD_TOO_LARGE.into_response())),
    };
    let tag = mentions_request_state(&bytes)
        .then(|| serde_json::from_slice::<Value>(&bytes).ok())
        .flatten()
        .and_then(|msg| {
            let state = msg.pointer("/params/requestState")?.as_str()?.to_string();
            replica_tag(&state).map(str::to_string)
        });
    Ok((Request::from_parts(parts, Body::from(bytes)), tag))
}

fn mentions_request_state(body: &[u8]) -> bool {
    body.windows(b"requestState".len())
        .any(|w| w == b"requestState")
}

/// The replica tag of a `requestState` this gateway's replicas sealed:
/// `PREFIX` `TAG` `~` `STATE`.
pub(super) fn replica_tag(state: &str) -> Option<&str> {
    let rest = state.strip_prefix(super::http::STATE_PREFIX)?;
    rest.split_once('~').map(|(tag, _)| tag)
}

fn unknown(why: &str) -> Response {
    rpc_error(StatusCode::NOT_FOUND, Value::Null, INVALID_REQUEST, why)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn an_id_names_its_replica_and_only_the_shared_key_opens_it() {
        let a = Replicas::new(KEY, "http://10.0.0.1:8000/").unwrap();
        let b = Replicas::new(KEY, "http://10.0.0.2:8000").unwrap();
        let id = a.mint().unwrap();
        assert!(id.bytes().all(|c| (0x21..=0x7e).contains(&c)), "{id}");
        assert_ne!(a.mint(), Some(id.clone()), "random");
        assert_eq!(a.route(&id), Route::Here);
        assert_eq!(b.route(&id), Route::There("http://10.0.0.1:8000".into()));
        let other =
            Replicas::new(b"another key, 32 bytes long......", "http://10.0.0.1:8000").unwrap();
        assert_eq!(other.route(&id), Route::Refused, "sealed with another key");
        // A name swapped in, or any byte changed, breaks the seal.
        let (_, rest) = id.split_once('.').unwrap();
        let evil = format!("{}.{rest}", B64URL.encode("http://169.254.169.254"));
        assert_eq!(b.route(&evil), Route::Refused);
        let mut flipped = id.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        assert_eq!(
            b.route(&String::from_utf8(flipped).unwrap()),
            Route::Refused
        );
        for garbage in ["", ".", "..", "abc", "a.b.c", "ü.ö.ä"] {
            assert_eq!(b.route(garbage), Route::Refused, "{garbage:?}");
        }
    }

    #[test]
    fn an_ipv6_pod_address_is_bracketed_and_the_proof_is_the_keys_own() {
        let me = Replicas::new(KEY, "http://fd00:10:244::5:8000").unwrap();
        assert_eq!(me.me, "http://[fd00:10:244::5]:8000");
        assert_eq!(bracket_ipv6("http://10.0.0.1:80"), "http://10.0.0.1:80");
        assert_eq!(bracket_ipv6("http://[::1]:80"), "http://[::1]:80");
        let other = Replicas::new(b"another key, 32 bytes long......", "http://a:1").unwrap();
        let proof = me.prove("n1");
        assert_eq!(
            me.prover.verify(&proof),
            Some("proof http://[fd00:10:244::5]:8000 n1")
        );
        assert_eq!(other.prover.verify(&proof), None);
        // Another replica's answer to the same nonce names that replica, not this one.
        let b = Replicas::new(KEY, "http://10.0.0.2:8000").unwrap();
        let relayed = b.prove("n1");
        assert_ne!(
            me.prover.verify(&relayed),
            Some(proof_text(&me.me, "n1").as_str())
        );
        // A proof is no session id: its payload names no replica.
        assert_eq!(me.route(&proof), Route::Refused);
    }

    #[test]
    fn a_short_key_or_an_address_that_is_not_a_base_url_is_refused() {
        assert!(
            Replicas::new(b"short", "http://a:1")
                .unwrap_err()
                .to_string()
                .contains("32")
        );
        for bad in ["10.0.0.1:8000", "ftp://a:1", "http://a:1/mcp", "http://"] {
            assert!(Replicas::new(KEY, bad).is_err(), "{bad}");
        }
    }
}
