//! The dashboard's HTTP surface: the page's files, the login, the JSON API, and the
//! checks before every route: `Host` a loopback name (DNS rebinding), `Origin` (when
//! sent) this very page; on the API the session's cookie and its key (the
//! `x-mcpctl-key` header, which also makes a POST impossible to forge from another
//! site; `?key=` on the event streams, which cannot send headers). Every answer carries
//! the page's security headers (CSP without inline script, no framing, no caching).

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::super::Daemon;
use crate::ui::{assets, logins};

/// The header that carries the session's key.
const KEY_HEADER: &str = "x-mcpctl-key";

#[derive(Clone)]
pub(super) struct Ui {
    pub(super) daemon: Weak<Daemon>,
    /// Cookies are not kept apart by port: each daemon's dashboard has its own name.
    cookie: Arc<str>,
}

impl Ui {
    pub(super) fn daemon(&self) -> Option<Arc<Daemon>> {
        self.daemon.upgrade()
    }
}

pub(super) fn router(daemon: Weak<Daemon>, port: u16) -> Router {
    let ui = Ui {
        daemon,
        cookie: format!("mcpctl_ui_{port}").into(),
    };
    Router::new()
        .route("/", get(page))
        .route("/index.html", get(page))
        .route("/app.js", get(page))
        .route("/app.css", get(page))
        .route("/login", get(login))
        .route("/api/v1/session", get(session))
        .route("/api/v1/status", get(status))
        .route("/api/v1/overview", get(overview))
        .route("/api/v1/events", get(super::live::events))
        .route("/api/v1/servers/{name}/logs", get(super::live::logs))
        .route("/api/v1/servers/{name}/metrics", get(metrics))
        .route("/api/v1/servers/{name}/tools", get(tools))
        .route("/api/v1/servers/{name}/{action}", post(super::actions::act))
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024))
        .layer(middleware::from_fn_with_state(ui.clone(), guard))
        .with_state(ui)
}

/// A JSON answer.
pub(super) fn json(status: StatusCode, value: &impl serde::Serialize) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The answer once the daemon is going away.
pub(super) fn stopping() -> Response {
    error(StatusCode::SERVICE_UNAVAILABLE, "the daemon is stopping")
}

/// `{"error": why}` with `status`.
pub(super) fn error(status: StatusCode, why: &str) -> Response {
    json(status, &serde_json::json!({ "error": why }))
}

/// What a request must pass before any route, in order; `None`: it may go on.
fn refusal(
    ui: &Ui,
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Option<Response> {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let host = text(header::HOST);
    if !crate::gateway::origin::host_allowed(host, true) {
        return Some(error(StatusCode::FORBIDDEN, "Host is not a loopback name"));
    }
    // A page elsewhere (or a rebound name) is not this page.
    let this_page = host.map(|h| format!("http://{h}"));
    if let Some(origin) = text(header::ORIGIN)
        && Some(origin) != this_page.as_deref()
    {
        return Some(error(StatusCode::FORBIDDEN, "Origin is not this dashboard"));
    }
    // The page and the login may be reached from elsewhere (the link opened from a
    // file or a terminal): nothing of the daemon's is in them.
    if !path.starts_with("/api/") {
        return None;
    }
    if text(header::HeaderName::from_static("sec-fetch-site")) == Some("cross-site") {
        return Some(error(StatusCode::FORBIDDEN, "a request from another site"));
    }
    // Only the event streams (GET) may carry the key in their address.
    let key = match (text(header::HeaderName::from_static(KEY_HEADER)), method) {
        (Some(key), _) => Some(key.to_string()),
        (None, &Method::GET) => query_key(query),
        (None, _) => None,
    };
    if !signed_in(ui, headers, key.as_deref().unwrap_or_default()) {
        return Some(error(
            StatusCode::UNAUTHORIZED,
            "not signed in: open the link `mcpctl ui` prints",
        ));
    }
    None
}

/// `key=...` of a query string.
fn query_key(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("key="))
        .map(str::to_string)
}

/// Whether the request's cookie and `key` are one live session.
fn signed_in(ui: &Ui, headers: &HeaderMap, key: &str) -> bool {
    let Some(cookie) = headers
        .get(header::COOKIE)
        .and_then(|c| c.to_str().ok())
        .and_then(|c| logins::cookie(c, &ui.cookie))
    else {
        return false;
    };
    let Some(daemon) = ui.daemon.upgrade() else {
        return false;
    };
    daemon
        .board
        .logins
        .lock()
        .is_ok_and(|mut l| l.signed_in(cookie, key, std::time::Instant::now()))
}

async fn guard(State(ui): State<Ui>, request: Request, next: Next) -> Response {
    let uri = request.uri();
    let refused = refusal(
        &ui,
        request.method(),
        uri.path(),
        uri.query(),
        request.headers(),
    );
    let mut response = match refused {
        Some(refused) => refused,
        None => next.run(request).await,
    };
    for (name, value) in assets::SECURITY_HEADERS {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    response
}

async fn page(request: Request) -> Response {
    match assets::get(request.uri().path()) {
        Some(asset) => ([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response(),
        None => error(StatusCode::NOT_FOUND, "no such page"),
    }
}

const LOGIN_FAILED: &str = "<!doctype html><title>mcpctl</title><p>This login link is unknown, \
    used or expired. Run <code>mcpctl ui</code> for a new one.</p>";

/// The one-time link: trades its token for a session, the cookie set here and the key
/// handed to the page in the fragment of the address it goes on to (never sent to a
/// server; the page keeps it in its origin's session storage). An answer of its own,
/// not a redirect: the browser goes on from this page, so the SameSite cookie goes
/// along even when the link was opened from a file or another program.
async fn login(State(ui): State<Ui>, Query(query): Query<HashMap<String, String>>) -> Response {
    let refused = (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        LOGIN_FAILED,
    )
        .into_response();
    let Some(token) = query.get("token") else {
        return refused;
    };
    let (Ok(cookie), Ok(key)) = (super::random_hex(), super::random_hex()) else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the OS random source failed",
        );
    };
    let Some(daemon) = ui.daemon() else {
        return refused;
    };
    let redeemed = daemon
        .board
        .logins
        .lock()
        .ok()
        .and_then(|mut l| l.redeem(token, &cookie, &key, std::time::Instant::now()));
    if redeemed.is_none() {
        return refused;
    }
    let set = format!("{}={cookie}; HttpOnly; SameSite=Strict; Path=/", ui.cookie);
    let Ok(set) = HeaderValue::from_str(&set) else {
        return refused;
    };
    let page = format!(
        "<!doctype html><meta http-equiv=\"refresh\" content=\"0;url=/#key={key}\">\
         <title>mcpctl</title><p>Signing in…</p>\n"
    );
    (
        StatusCode::OK,
        [
            (header::SET_COOKIE, set),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
        ],
        page,
    )
        .into_response()
}

/// Answers when the session (cookie and key, checked before any route) is live.
async fn session() -> Response {
    json(StatusCode::OK, &serde_json::json!({ "signed_in": true }))
}

async fn overview(State(ui): State<Ui>) -> Response {
    let Some(daemon) = ui.daemon() else {
        return stopping();
    };
    let status = daemon.status().await;
    json(StatusCode::OK, &daemon.overview(&status).await)
}

/// The same document as `status --format json`.
async fn status(State(ui): State<Ui>) -> Response {
    let Some(daemon) = ui.daemon() else {
        return stopping();
    };
    let status = daemon.status().await;
    let overview = daemon.overview(&status).await;
    json(StatusCode::OK, &overview["status"])
}

async fn metrics(
    State(ui): State<Ui>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(daemon) = ui.daemon() else {
        return stopping();
    };
    let since = query
        .get("since")
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0);
    let points = daemon
        .board
        .history
        .lock()
        .ok()
        .and_then(|h| h.since(&name, since));
    match points {
        Some(points) => json(StatusCode::OK, &points),
        None => error(
            StatusCode::NOT_FOUND,
            &format!("no samples of server `{name}`"),
        ),
    }
}

async fn tools(State(ui): State<Ui>, Path(name): Path<String>) -> Response {
    let Some(daemon) = ui.daemon() else {
        return stopping();
    };
    match daemon.tools_report(&name).await {
        Ok(report) => json(StatusCode::OK, &report),
        Err(e) => error(StatusCode::NOT_FOUND, &e.to_string()),
    }
}
