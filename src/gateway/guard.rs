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
}

impl Guard {
    pub(super) fn new(loopback: bool, auth: Auth, body_timeout: Duration) -> Self {
        Self {
            loopback,
            auth,
            body_timeout,
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

    /// Who the request comes from (`None`: the owner, or anyone on an open port), or
    /// its refusal: 401 without a token this port takes, 403 with one that grants
    /// nothing here.
    fn admit(&self, headers: &HeaderMap) -> Result<Option<Caller>, Box<Response>> {
        if self.auth.bearer.is_none() && self.auth.callers.is_none() {
            return Ok(None);
        }
        let given = header_str(headers, "authorization").and_then(bearer_token);
        for owner in [&self.auth.bearer, &self.auth.owner].into_iter().flatten() {
            if given
                .is_some_and(|g| constant_time_eq(g.as_bytes(), owner.expose_secret().as_bytes()))
            {
                return Ok(None);
            }
        }
        let refused = match (given, &self.auth.callers) {
            (Some(given), Some(callers)) => match callers.admit(given, &self.auth.target) {
                Ok(caller) => return Ok(Some(caller)),
                Err(refused) => refused,
            },
            _ => Refused::Unknown,
        };
        let response = self.refuse(&refused);
        if let Some(audit) = &self.auth.audit {
            audit.record(&crate::api::AuditEntry {
                at: super::audit::now(),
                caller: refused.caller().map(str::to_string),
                target: self.auth.target.clone(),
                method: None,
                tool: None,
                decision: "refused".into(),
                why: Some(refused.to_string()),
                status: response.status().as_u16(),
                ms: 0,
                bytes: 0,
            });
        }
        Err(response)
    }

    /// The answer to a refused caller.
    fn refuse(&self, refused: &Refused) -> Box<Response> {
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
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"mcpctl\""),
        );
        Box::new(response)
    }
}

async fn check(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    if let Some(refusal) = guard.refusal(request.uri(), request.headers()) {
        return refusal;
    }
    let caller = match guard.admit(request.headers()) {
        Ok(caller) => caller,
        Err(refusal) => return *refusal,
    };
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
        let guard = Guard::new(true, auth, Duration::from_secs(1));
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
        let open = Guard::new(true, Auth::default(), Duration::from_secs(1));
        assert!(
            open.refusal(&Uri::from_static("/mcp"), &headers(&[host]))
                .is_none()
        );
        assert!(matches!(open.admit(&headers(&[host])), Ok(None)));
    }

    #[test]
    fn an_absolute_target_and_a_second_host_or_origin_are_refused() {
        let guard = Guard::new(true, Auth::default(), Duration::from_secs(1));
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
