//! What the page is sent as it happens, over server-sent events: the overview and the
//! events (`/api/v1/events`), and a server's log (`/api/v1/servers/NAME/logs`). One
//! tick makes each overview for every open page; streams are bounded in number, and a
//! page that falls behind gets the latest overview instead of what it missed.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::broadcast::error::RecvError;

use super::Frame;
use super::routes::{Ui, error, stopping};
use crate::logs::{self, Level};

/// Lines of the log sent when a page opens it, at most.
const MAX_TAIL: usize = 1000;
/// How often a followed log is looked at.
const LOG_POLL: Duration = Duration::from_millis(250);
/// Keep-alive comments, so that proxies and browsers keep an idle stream open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

fn frame(frame: &Frame) -> Event {
    match frame {
        Frame::Overview(json) => Event::default().event("overview").data(&**json),
        Frame::Event(json) => Event::default().event("event").data(&**json),
    }
}

fn busy() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "too many dashboard streams open; close a tab",
    )
}

pub(super) async fn events(State(ui): State<Ui>) -> Response {
    let Some(daemon) = ui.daemon() else {
        return stopping();
    };
    let Ok(slot) = Arc::clone(&daemon.board.streams).try_acquire_owned() else {
        return busy();
    };
    let live = daemon.board.live.subscribe();
    let status = daemon.status().await;
    let overview: Arc<str> = daemon.overview(&status).await.to_string().into();
    let mut first: VecDeque<Event> = VecDeque::from([frame(&Frame::Overview(overview))]);
    for past in daemon.board.events() {
        if let Ok(json) = serde_json::to_string(&past) {
            first.push_back(frame(&Frame::Event(json.into())));
        }
    }
    // The tick goes to its one-second pace now that a page watches.
    daemon.board.poke.notify_one();
    let board = Arc::downgrade(&daemon);
    drop(daemon);
    let state = (first, live, board, slot);
    let stream = stream::unfold(state, |(mut first, mut live, board, slot)| async move {
        if let Some(event) = first.pop_front() {
            return Some((Ok::<_, Infallible>(event), (first, live, board, slot)));
        }
        loop {
            match live.recv().await {
                Ok(f) => return Some((Ok(frame(&f)), (first, live, board, slot))),
                // Behind: what it missed is in the latest overview.
                Err(RecvError::Lagged(_)) => {
                    let latest = board
                        .upgrade()
                        .and_then(|d| d.board.overview.lock().ok().and_then(|o| o.clone()));
                    if let Some(json) = latest {
                        let event = frame(&Frame::Overview(json));
                        return Some((Ok(event), (first, live, board, slot)));
                    }
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

/// `?instance=N&level=warn&lines=200`: the log's last lines, then what is written.
pub(super) async fn logs(
    State(ui): State<Ui>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(daemon) = ui.daemon() else {
        return stopping();
    };
    // The name becomes part of a path: only a server's name is one.
    if crate::model::names::check_name(&name).is_err() {
        return error(StatusCode::NOT_FOUND, "no such server");
    }
    let logged = logs::instances_with_logs(&daemon.runtime_dir, &name);
    let wanted = query.get("instance").and_then(|i| i.parse::<u32>().ok());
    let instance = match wanted {
        Some(i) if logged.contains(&i) => i,
        Some(i) => {
            return error(
                StatusCode::NOT_FOUND,
                &format!("server `{name}` has no log of instance {i}"),
            );
        }
        None => match logged.last() {
            Some(&i) => i,
            None => {
                return error(
                    StatusCode::NOT_FOUND,
                    &format!("server `{name}` has no log yet"),
                );
            }
        },
    };
    let level = query.get("level").and_then(|l| level_named(l));
    let lines = query
        .get("lines")
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(200)
        .min(MAX_TAIL);
    let follow = query
        .get("follow")
        .is_some_and(|f| f != "0" && f != "false");
    let Ok(slot) = Arc::clone(&daemon.board.streams).try_acquire_owned() else {
        return busy();
    };
    let file = logs::log_path(&daemon.runtime_dir, &name, instance);
    drop(daemon);
    let keep = move |line: &str| {
        level.is_none_or(|min| logs::detect_level(logs::message_of(line)).is_some_and(|l| l >= min))
    };
    // Filter first, then take the last `lines`, as `server logs --level` does.
    let tail: VecDeque<String> = {
        let all = logs::tail(&file, if level.is_some() { 100_000 } else { lines });
        let kept: Vec<String> = all.into_iter().filter(|l| keep(l)).collect();
        let skip = kept.len().saturating_sub(lines);
        kept.into_iter().skip(skip).collect()
    };
    let follower = follow.then(|| logs::Follower::from_end(&file));
    let state = LogState {
        tail,
        follower,
        _slot: slot,
    };
    let stream = stream::unfold(state, move |mut state| async move {
        loop {
            if let Some(line) = state.tail.pop_front() {
                return Some((Ok::<_, Infallible>(line_event(&line)), state));
            }
            let follower = state.follower.as_mut()?;
            tokio::time::sleep(LOG_POLL).await;
            state.tail = follower
                .new_lines()
                .into_iter()
                .filter(|l| keep(l))
                .collect();
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

struct LogState {
    tail: VecDeque<String>,
    follower: Option<logs::Follower>,
    /// Its share of the dashboard's streams.
    _slot: OwnedSemaphorePermit,
}

fn line_event(line: &str) -> Event {
    let level = logs::detect_level(logs::message_of(line));
    let json = serde_json::json!({ "line": line, "level": level });
    Event::default().event("line").data(json.to_string())
}

fn level_named(name: &str) -> Option<Level> {
    Some(match name {
        "trace" => Level::Trace,
        "debug" => Level::Debug,
        "info" => Level::Info,
        "warn" => Level::Warn,
        "error" => Level::Error,
        _ => return None,
    })
}
