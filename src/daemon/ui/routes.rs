//! The dashboard's HTTP surface: the page's files, the login, the JSON API, and the
//! checks before every route: `Host` a loopback name (DNS rebinding), `Origin` (when
//! sent) this very page, the session cookie on the API, and on a POST the CSRF token
//! the page got from `/api/v1/session` in `x-csrf-token`. Every answer carries the
//! page's security headers (CSP without inline script, no framing, no caching).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::super::Daemon;
use crate::ui::{assets, logins};

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

pub(super) fn router(daemon: Weak<Daemon>, addr: SocketAddr) -> Router {
    let ui = Ui {
        daemon,
        cookie: format!("mcpctl_ui_{}", addr.port()).into(),
    };
    Router::new()
        .route("/", get(page))
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
fn refusal(ui: &Ui, method: &Method, path: &str, headers: &HeaderMap) -> Option<Response> {
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
    if text(header::HeaderName::from_static("sec-fetch-site")) == Some("cross-site") {
        return Some(error(StatusCode::FORBIDDEN, "a request from another site"));
    }
    if !path.starts_with("/api/") {
        return None;
    }
    let Some(csrf) = signed_in(ui, headers) else {
        return Some(error(
            StatusCode::UNAUTHORIZED,
            "not signed in: open the link `mcpctl ui` prints",
        ));
    };
    if method != Method::GET {
        let sent = text(header::HeaderName::from_static("x-csrf-token")).unwrap_or_default();
        if !logins::same_secret(sent, &csrf) {
            return Some(error(
                StatusCode::FORBIDDEN,
                "missing or wrong x-csrf-token (reload the page)",
            ));
        }
    }
    None
}

/// The CSRF token of the request's session, if it has a live one.
fn signed_in(ui: &Ui, headers: &HeaderMap) -> Option<String> {
    let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
    let cookie = logins::cookie(cookies, &ui.cookie)?;
    let daemon = ui.daemon.upgrade()?;
    let mut logins = daemon.board.logins.lock().ok()?;
    logins
        .session(cookie, std::time::Instant::now())
        .map(str::to_string)
}

async fn guard(State(ui): State<Ui>, request: Request, next: Next) -> Response {
    let mut response = match refusal(
        &ui,
        request.method(),
        request.uri().path(),
        request.headers(),
    ) {
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

/// The one-time link: trades its token for a session cookie, then sends the browser to
/// the page without the token (so it stays in no history).
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
    let (Ok(cookie), Ok(csrf)) = (super::random_hex(), super::random_hex()) else {
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
        .and_then(|mut l| l.redeem(token, &cookie, csrf, std::time::Instant::now()));
    if redeemed.is_none() {
        return refused;
    }
    let set = format!("{}={cookie}; HttpOnly; SameSite=Strict; Path=/", ui.cookie);
    let Ok(set) = HeaderValue::from_str(&set) else {
        return refused;
    };
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, set),
            (header::LOCATION, HeaderValue::from_static("/")),
        ],
    )
        .into_response()
}

async fn session(State(ui): State<Ui>, headers: HeaderMap) -> Response {
    match signed_in(&ui, &headers) {
        Some(csrf) => json(StatusCode::OK, &serde_json::json!({ "csrf": csrf })),
        None => error(StatusCode::UNAUTHORIZED, "not signed in"),
    }
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
