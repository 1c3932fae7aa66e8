//! Origin, Host and bearer: the checks in front of every route of a gateway port,
//! stdio-backed or proxying, as one layer, so that no handler has to remember them. A
//! session id is never taken as proof of anything. The layer also reads the body, at
//! most [`MAX_BODY`] and within the port's header timeout: a body trickled a byte at a
//! time holds a connection no longer than slow headers may.

use std::sync::Arc;
use std::time::Duration;

use age::secrecy::{ExposeSecret, SecretString};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::Value;

use super::callers::{Caller, Callers, Refused};
use super::oidc::{OIDC_PREFIX, Oidc, OidcRefused};
use super::origin;
use super::reply::rpc_error;
use crate::wire::jsonrpc::INVALID_REQUEST;

/// Who a port lets in. Neither: anyone (a loopback port without `auth`).
#[derive(Clone, Default)]
pub struct Auth {
    /// The server's or endpoint's name: what callers' patterns and the audit name.
    pub target: String,
    /// The owner's bearer: every tool.
    pub bearer: Option<Arc<SecretString>>,
    /// The daemon's owner key (`connect` asks the control socket for it): every tool.
    pub owner: Option<Arc<SecretString>>,
    /// Callers' tokens taken here.
    pub callers: Option<Arc<Callers>>,
    /// Where every decision is recorded (a port with `auth`).
    pub audit: Option<Arc<super::audit::Audit>>,
    /// An OpenID provider whose JWTs are taken (`auth.oidc`).
    pub oidc: Option<Arc<Oidc>>,
}

impl Auth {
    /// Anyone may come in (a loopback port without `auth`).
    fn is_open(&self) -> bool {
        self.bearer.is_none() && self.callers.is_none() && self.oidc.is_none()
    }
}

/// An `Authorization` header longer than this is refused (400) unread.
const MAX_AUTHORIZATION: usize = 16 * 1024;

/// Who a request is, as far as the checks that need no waiting can tell.
enum Admission {
    /// The owner (or anyone, on an open port): every tool.
    Owner,
    /// A caller's token of the file.
    Caller(Caller),
    /// A bearer for the OpenID provider's keys to decide.
    Jwt(String),
}

/// Requests larger than this are refused with 413.
pub(super) const MAX_BODY: usize = 4 * 1024 * 1024;

/// What a port lets in.
#[derive(Clone)]
pub(super) struct Guard {
    /// The port listens on loopback only: Host must name it so (DNS rebinding).
    loopback: bool,
    /// Who may come in: the owner's bearer, callers' tokens, or anyone.
    auth: Auth,
    /// How long a request's body may take to arrive.
    body_timeout: Duration,
    /// The port speaks HTTPS (said in the URLs of its OAuth metadata).
    https: bool,
}

impl Guard {
    pub(super) fn new(loopback: bool, auth: Auth, body_timeout: Duration, https: bool) -> Self {
        Self {
            loopback,
            auth,
            body_timeout,
            https,
        }
    }

    /// `app` behind this guard: a request it refuses never reaches a route.
    pub(super) fn wrap(self, app: Router) -> Router {
        app.layer(middleware::from_fn_with_state(self, check))
    }

    /// The refusal of a request to `uri` with these headers; `None` lets it through.
    fn refusal(&self, uri: &Uri, headers: &HeaderMap) -> Option<Response> {
        // With two, this check could read one and a handler or upstream the other
        // (RFC 9112 3.2: more than one Host is a 400).
        let repeated = |name| headers.get_all(name).iter().nth(1).is_some();
        if repeated(header::HOST) || repeated(header::ORIGIN) {
            return Some(rpc_error(
                StatusCode::BAD_REQUEST,
                Value::Null,
                INVALID_REQUEST,
                "more than one Host or Origin header",
            ));
        }
        // An absolute-form target (`POST http://host/mcp`) names the host itself and
        // outranks the Host header (RFC 9112 3.2.2), so that is the one checked.
        let host = match uri.authority() {
            Some(authority) => Some(authority.as_str()),
            None => header_str(headers, "host"),
        };
        let ok = origin::origin_allowed(header_str(headers, "origin"))
            && origin::host_allowed(host, self.loopback);
        if !ok {
            return Some(rpc_error(
                StatusCode::FORBIDDEN,
                Value::Null,
                INVALID_REQUEST,
                "forbidden origin or host",
            ));
        }
        None
    }

    /// Who the request comes from, or its refusal: 401 without a token this port
    /// takes, 403 with one that grants nothing here.
    fn admit(&self, headers: &HeaderMap) -> Result<Admission, Box<Response>> {
        if self.auth.is_open() {
            return Ok(Admission::Owner);
        }
        let raw = headers.get(header::AUTHORIZATION);
        if raw.is_some_and(|v| v.len() > MAX_AUTHORIZATION) {
            return Err(Box::new(rpc_error(
                StatusCode::BAD_REQUEST,
                Value::Null,
                INVALID_REQUEST,
                "the Authorization header is larger than 16 KiB",
            )));
        }
        let given = header_str(headers, "authorization").and_then(bearer_token);
        for owner in [&self.auth.bearer, &self.auth.owner].into_iter().flatten() {
            if given
                .is_some_and(|g| constant_time_eq(g.as_bytes(), owner.expose_secret().as_bytes()))
            {
                return Ok(Admission::Owner);
            }
        }
        let refused = match (given, &self.auth.callers) {
            (Some(given), Some(callers)) => match callers.admit(given, &self.auth.target) {
                Ok(caller) => return Ok(Admission::Caller(caller)),
                Err(refused) => refused,
            },
            _ => Refused::Unknown,
        };
        // Not one of the file's tokens: a JWT, when the port takes them.
        if let (Some(given), Some(_), Refused::Unknown) = (given, &self.auth.oidc, &refused) {
            return Ok(Admission::Jwt(given.to_string()));
        }
        let response = self.refuse(&refused, headers, given.is_some());
        self.record_refusal(
            refused.caller().map(str::to_string),
            None,
            &refused.to_string(),
            &response,
        );
        Err(response)
    }

    /// A refusal in the audit log (the guard's: a tool only when a call was read).
    fn record_refusal(
        &self,
        caller: Option<String>,
        tool: Option<&str>,
        why: &str,
        response: &Response,
    ) {
        if let Some(audit) = &self.auth.audit {
            audit.record(&crate::api::AuditEntry {
                at: super::audit::now(),
                caller,
                target: self.auth.target.clone(),
                method: tool.map(|_| "tools/call".to_string()),
                tool: tool.map(str::to_string),
                decision: "refused".into(),
                why: Some(why.to_string()),
                status: response.status().as_u16(),
                ms: 0,
                bytes: 0,
            });
        }
    }

    /// `Bearer ...` for a 401 or 403: where an OAuth client learns whom to ask, when
    /// the port takes an OpenID provider's tokens.
    fn challenge(
        &self,
        headers: &HeaderMap,
        error: Option<&str>,
        scope: Option<&str>,
    ) -> HeaderValue {
        let Some(oidc) = &self.auth.oidc else {
            return HeaderValue::from_static("Bearer realm=\"mcpctl\"");
        };
        let mut parts = Vec::new();
        if let Some(error) = error {
            parts.push(format!("error=\"{error}\""));
        }
        if let Some(scope) = scope {
            parts.push(format!("scope=\"{scope}\""));
        }
        let host = header_str(headers, "host");
        parts.push(format!(
            "resource_metadata=\"{}\"",
            oidc.metadata_url(host, self.https)
        ));
        HeaderValue::from_str(&format!("Bearer {}", parts.join(", ")))
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer realm=\"mcpctl\""))
    }

    /// The answer to a refused caller.
    fn refuse(&self, refused: &Refused, headers: &HeaderMap, given: bool) -> Box<Response> {
        if let Refused::NothingHere { .. } = refused {
            return Box::new(rpc_error(
                StatusCode::FORBIDDEN,
                Value::Null,
                INVALID_REQUEST,
                &refused.to_string(),
            ));
        }
        if let Refused::Limited { retry_after, .. } = &refused {
            let mut response = rpc_error(
                StatusCode::TOO_MANY_REQUESTS,
                Value::Null,
                INVALID_REQUEST,
                &refused.to_string(),
            );
            if let Ok(value) = HeaderValue::from_str(&retry_after.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            return Box::new(response);
        }
        let message = match refused {
            Refused::Expired(_) => refused.to_string(),
            _ => "missing or wrong bearer token".to_string(),
        };
        let mut response = rpc_error(
            StatusCode::UNAUTHORIZED,
            Value::Null,
            INVALID_REQUEST,
            &message,
        );
        let error = given.then_some("invalid_token");
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            self.challenge(headers, error, None),
        );
        Box::new(response)
    }

    /// The answer to a JWT refused.
    fn refuse_jwt(&self, refused: &OidcRefused, headers: &HeaderMap) -> Response {
        let (status, error, scope) = match refused {
            OidcRefused::Jwt(_) => (StatusCode::UNAUTHORIZED, "invalid_token", None),
            OidcRefused::NoKeys(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                None,
            ),
            OidcRefused::Limited { .. } => (StatusCode::TOO_MANY_REQUESTS, "", None),
            OidcRefused::NoScope { .. } => {
                let all = self.auth.oidc.as_ref().map(|o| o.all_scopes());
                (StatusCode::FORBIDDEN, "insufficient_scope", all)
            }
        };
        // What went wrong with the provider is for the log and the audit, not for anyone
        // who sends a token.
        let message = match refused {
            OidcRefused::NoKeys(_) => {
                "the issuer's keys cannot be read now; try again shortly".to_string()
            }
            other => other.to_string(),
        };
        let mut response = rpc_error(status, Value::Null, INVALID_REQUEST, &message);
        if let OidcRefused::Limited { retry_after, .. } = refused
            && let Ok(value) = HeaderValue::from_str(&retry_after.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        } else {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                self.challenge(headers, Some(error), scope.as_deref()),
            );
        }
        response
    }

    /// RFC 9728's metadata, answered before any bearer is asked for.
    fn metadata(&self, uri: &Uri, headers: &HeaderMap) -> Option<Response> {
        let oidc = self.auth.oidc.as_ref()?;
        let rest = uri.path().strip_prefix(METADATA_PATH)?;
        if !(rest.is_empty() || rest.starts_with('/')) {
            return None;
        }
        let doc = oidc.metadata(header_str(headers, "host"), self.https);
        Some(super::reply::json_response(StatusCode::OK, &doc))
    }

    /// A 403 for the first `tools/call` in `body` that an OIDC caller's scopes do not
    /// grant (`insufficient_scope`, naming the scopes that would).
    fn beyond_scope(&self, caller: &Caller, body: &[u8], headers: &HeaderMap) -> Option<Response> {
        let oidc = self.auth.oidc.as_ref()?;
        // Most requests call no tool: they are not parsed here (a body with an escape
        // could spell the method otherwise: it is).
        if !body.contains(&b'\\') && !body.windows(10).any(|w| w == b"tools/call") {
            return None;
        }
        let sent: Value = serde_json::from_slice(body).ok()?;
        let messages = match &sent {
            Value::Array(batch) => batch.iter().collect(),
            one => vec![one],
        };
        let (id, tool) = messages.into_iter().find_map(|m| {
            if m.get("method").and_then(Value::as_str) != Some("tools/call") {
                return None;
            }
            let tool = m.pointer("/params/name").and_then(Value::as_str)?;
            (!caller.view.permits(tool)).then(|| (m.get("id").cloned(), tool))
        })?;
        let scopes = oidc.scopes_for(tool).join(" ");
        let mut response = rpc_error(
            StatusCode::FORBIDDEN,
            id.unwrap_or(Value::Null),
            INVALID_REQUEST,
            "insufficient scope for this tool",
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            self.challenge(headers, Some("insufficient_scope"), Some(&scopes)),
        );
        self.record_refusal(
            Some(caller.name.clone()),
            Some(tool),
            "outside the token's scopes",
            &response,
        );
        Some(response)
    }
}

/// Where RFC 9728's metadata is found (and under it, `/mcp`'s).
pub(super) const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

async fn check(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    if let Some(refusal) = guard.refusal(request.uri(), request.headers()) {
        return refusal;
    }
    if let Some(metadata) = guard.metadata(request.uri(), request.headers()) {
        return metadata;
    }
    let caller = match guard.admit(request.headers()) {
        Ok(Admission::Owner) => None,
        Ok(Admission::Caller(caller)) => Some(caller),
        Ok(Admission::Jwt(token)) => {
            let Some(oidc) = &guard.auth.oidc else {
                return StatusCode::UNAUTHORIZED.into_response();
            };
            match oidc.admit(&token, &guard.auth.target).await {
                Ok(caller) => Some(caller),
                Err(refused) => {
                    let response = guard.refuse_jwt(&refused, request.headers());
                    guard.record_refusal(refused.caller(), None, &refused.to_string(), &response);
                    return response;
                }
            }
        }
        Err(refusal) => return *refusal,
    };
    let jwt_caller = caller
        .as_ref()
        .filter(|c| c.name.starts_with(OIDC_PREFIX))
        .cloned();
    let (mut parts, body) = request.into_parts();
    // Handlers read who it is from here (absent: the owner, or an open port).
    if let Some(caller) = caller {
        parts.extensions.insert(caller);
    }
    let read = Limited::new(body, MAX_BODY).collect();
    let body = match tokio::time::timeout(guard.body_timeout, read).await {
        Ok(Ok(body)) => body.to_bytes(),
        Ok(Err(e)) if e.is::<LengthLimitError>() => {
            return rpc_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                Value::Null,
                INVALID_REQUEST,
                "the request is larger than 4 MiB",
            );
        }
        Ok(Err(_)) => return StatusCode::BAD_REQUEST.into_response(),
        Err(_) => {
            return rpc_error(
                StatusCode::REQUEST_TIMEOUT,
                Value::Null,
                INVALID_REQUEST,
                "the request's body did not arrive in time",
            );
        }
    };
    if let Some(caller) = &jwt_caller
        && let Some(refusal) = guard.beyond_scope(caller, &body, &parts.headers)
    {
        return refusal;
    }
    next.run(Request::from_parts(parts, Body::from(body))).await
}

/// A header's value, when it is text.
pub(super) fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The token of an `Authorization: Bearer <token>` value. The scheme is
/// case-insensitive and followed by one or more spaces (RFC 9110, 11.1 and 11.4).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim_start_matches(' ');
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Compares without stopping at the first difference, so timing does not reveal
/// how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in ["Bearer t0k", "bearer t0k", "BEARER t0k", "bEaReR   t0k"] {
            assert_eq!(bearer_token(value), Some("t0k"), "{value}");
        }
        for value in [
            "Basic t0k",
            "Bearer",
            "Bearer ",
            "Bearert0k",
            "Bearer\tt0k",
            "",
        ] {
            assert_eq!(bearer_token(value), None, "{value}");
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            if let Ok(v) = HeaderValue::from_str(value) {
                map.insert(*name, v);
            }
        }
        map
    }

    #[test]
    fn origin_host_and_bearer_are_checked_in_that_order() {
        let auth = Auth {
            bearer: Some(Arc::new(SecretString::from("s3cret".to_string()))),
            ..Auth::default()
        };
        let guard = Guard::new(true, auth, Duration::from_secs(1), false);
        let status = |pairs: &[(&'static str, &str)]| {
            let headers = headers(pairs);
            guard
                .refusal(&Uri::from_static("/mcp"), &headers)
                .or_else(|| guard.admit(&headers).err().map(|r| *r))
                .map(|r| r.status().as_u16())
        };
        let host = ("host", "127.0.0.1:9000");
        assert_eq!(status(&[host, ("authorization", "Bearer s3cret")]), None);
        assert_eq!(status(&[host, ("authorization", "bearer s3cret")]), None);
        assert_eq!(
            status(&[host, ("authorization", "Bearer wrong")]),
            Some(401)
        );
        assert_eq!(status(&[host]), Some(401));
        assert_eq!(
            status(&[
                ("host", "evil.example:9000"),
                ("authorization", "Bearer s3cret")
            ]),
            Some(403)
        );
        assert_eq!(
            status(&[
                host,
                ("origin", "https://evil.example"),
                ("authorization", "Bearer s3cret")
            ]),
            Some(403)
        );
        let open = Guard::new(true, Auth::default(), Duration::from_secs(1), false);
        assert!(
            open.refusal(&Uri::from_static("/mcp"), &headers(&[host]))
                .is_none()
        );
        assert!(matches!(
            open.admit(&headers(&[host])),
            Ok(Admission::Owner)
        ));
        let huge = format!("Bearer {}", "x".repeat(MAX_AUTHORIZATION));
        assert_eq!(status(&[host, ("authorization", huge.as_str())]), Some(400));
    }

    #[test]
    fn an_absolute_target_and_a_second_host_or_origin_are_refused() {
        let guard = Guard::new(true, Auth::default(), Duration::from_secs(1), false);
        let host = || headers(&[("host", "127.0.0.1:9000")]);
        let status = |uri: &'static str, headers: &HeaderMap| {
            guard
                .refusal(&Uri::from_static(uri), headers)
                .map(|r| r.status().as_u16())
        };
        assert_eq!(status("http://evil.example/mcp", &host()), Some(403));
        assert_eq!(status("http://127.0.0.1:9000/mcp", &host()), None);
        let mut two = host();
        two.append("host", HeaderValue::from_static("evil.example"));
        assert_eq!(status("/mcp", &two), Some(400));
        let mut origins = host();
        origins.append("origin", HeaderValue::from_static("http://localhost"));
        origins.append("origin", HeaderValue::from_static("https://evil.example"));
        assert_eq!(status("/mcp", &origins), Some(400));
    }
}
