//! 2025 sessions across replicas without a shared store (`mcpctl gateway
//! --session-key-env VAR --advertise URL`, what `render k8s` runs). Every replica mints
//! session ids that name it, sealed with the key the replicas share; a replica that
//! gets a request of another's session forwards it there (once: a forwarded request is
//! never forwarded again) and streams the answer back as it comes. An id that is not
//! sealed with the key is refused (404) before any lookup; since the name in it cannot
//! be forged, no client can make a replica call an address of its choosing.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::Value;

use super::era::Sealer;
use super::jsonrpc::INVALID_REQUEST;
use super::reply::rpc_error;

/// Marks a request one replica sent another.
const FORWARDED: &str = "x-mcpctl-forwarded";
const SESSION: &str = "mcp-session-id";

/// This replica's name and the replicas' shared key.
pub struct Replicas {
    sealer: Sealer,
    /// Where the other replicas reach this one, e.g. `http://10.0.0.7:8000`.
    me: String,
    client: Client<HttpsConnector<HttpConnector>, Full<bytes::Bytes>>,
}

/// Where a request of a session belongs.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Here,
    /// Another replica's: its `/mcp`.
    There(Uri),
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

impl Replicas {
    /// `secret`: the shared key's text (at least 32 bytes); `me`: this replica's base URL.
    pub fn new(secret: &[u8], me: &str) -> Result<Self, String> {
        if secret.len() < 32 {
            return Err(format!(
                "the session key has {} bytes: give at least 32 random ones (e.g. `openssl rand -hex 32`)",
                secret.len()
            ));
        }
        let me = me.trim_end_matches('/').to_string();
        let parsed: Uri = me
            .parse()
            .map_err(|e| format!("--advertise {me}: not a URL: {e}"))?;
        let plain_path = parsed.path().is_empty() || parsed.path() == "/";
        if !matches!(parsed.scheme_str(), Some("http" | "https"))
            || parsed.authority().is_none()
            || !plain_path
        {
            return Err(format!(
                "--advertise {me}: give this replica's base URL, e.g. http://10.0.0.7:8000"
            ));
        }
        let key = blake3::derive_key("mcpctl 2025 session ids across replicas v1", secret);
        Ok(Self {
            sealer: Sealer::new(key),
            me,
            client: super::proxy::client()
                .map_err(|e| format!("cannot make an HTTP client: {e}"))?,
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
            Some(owner) => format!("{owner}/mcp")
                .parse()
                .map_or(Route::Refused, Route::There),
            None => Route::Refused,
        }
    }
}

/// In front of `/mcp`: a session of this replica goes on; another's is forwarded; one
/// sealed with another key is refused.
pub(super) async fn layer(
    State(replicas): State<Arc<Replicas>>,
    request: Request,
    next: Next,
) -> Response {
    let session = request
        .headers()
        .get(SESSION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let Some(session) = session.filter(|_| request.uri().path() == "/mcp") else {
        return next.run(request).await;
    };
    let forwarded = request.headers().contains_key(FORWARDED);
    match replicas.route(&session) {
        Route::Here => next.run(request).await,
        Route::There(_) if forwarded => unknown("a forwarded session that is not here"),
        Route::Refused => unknown("unknown session: initialize again"),
        Route::There(target) => {
            let mark = [(
                HeaderName::from_static(FORWARDED),
                HeaderValue::from_static("1"),
            )];
            match super::proxy::pass_on(&replicas.client, request, target, &[], &mark).await {
                Ok(answer) => {
                    let (parts, body) = answer.into_parts();
                    Response::from_parts(parts, Body::new(body))
                }
                Err(response) => *response,
            }
        }
    }
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
        assert_eq!(
            b.route(&id),
            Route::There("http://10.0.0.1:8000/mcp".parse().unwrap())
        );
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
    fn a_short_key_or_an_address_that_is_not_a_base_url_is_refused() {
        assert!(
            Replicas::new(b"short", "http://a:1")
                .unwrap_err()
                .contains("32")
        );
        for bad in ["10.0.0.1:8000", "ftp://a:1", "http://a:1/mcp", "http://"] {
            assert!(Replicas::new(KEY, bad).is_err(), "{bad}");
        }
    }
}
