//! `subscriptions/listen` of a 2026-07-28 client: the child's change notifications it
//! asked for, on a stream of its own.

use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::SSE_BACKLOG;
use super::events::{EventStream, Next, next_notification};
use crate::gateway::Upstream;
use crate::gateway::accept::Hangup;
use crate::gateway::queue;
use crate::wire::era::{self, Era};

/// `subscriptions/listen`: the child's change notifications the client asked for, on
/// a stream of its own, each stamped with the listen's id.
/// `open` counts the stream as activity (a server is not scaled to zero under it).
pub(super) async fn listen(
    state: &super::AppState,
    upstream: Upstream,
    id: Value,
    msg: &Value,
    open: crate::gateway::meter::OpenStream,
    hangup: Option<Hangup>,
) -> Response {
    let asked = msg
        .pointer("/params/notifications")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let flag = |name: &str| asked.get(name).and_then(Value::as_bool) == Some(true);
    let mut honored = Map::new();
    for name in [
        "toolsListChanged",
        "promptsListChanged",
        "resourcesListChanged",
    ] {
        if flag(name) {
            honored.insert(name.into(), json!(true));
        }
    }
    // Resource subscriptions are the legacy child's `resources/subscribe`.
    let uris: Vec<String> = if upstream.era == Era::Legacy {
        asked
            .get("resourceSubscriptions")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    if !uris.is_empty() {
        honored.insert("resourceSubscriptions".into(), json!(uris));
    }
    for uri in &uris {
        upstream.subscribe(uri).await;
    }
    let subscribed = uris.clone();
    let stamp = json!({era::META_SUBSCRIPTION_ID: id});
    let acknowledged = json!({"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged",
                              "params": {"notifications": honored, "_meta": stamp}});
    let wanted = move |msg: &Value| match msg.get("method").and_then(Value::as_str) {
        Some("notifications/tools/list_changed") => flag_of(&honored, "toolsListChanged"),
        Some("notifications/prompts/list_changed") => flag_of(&honored, "promptsListChanged"),
        Some("notifications/resources/list_changed") => flag_of(&honored, "resourcesListChanged"),
        Some("notifications/resources/updated") => msg
            .pointer("/params/uri")
            .and_then(Value::as_str)
            .is_some_and(|u| uris.iter().any(|w| w == u)),
        _ => false,
    };
    let (out, rx) = queue::channel(SSE_BACKLOG);
    out.hang_up_on_cut(hangup);
    let mut notifications = upstream.notifications();
    state.tasks.spawn(async move {
        let _ = out.push(acknowledged);
        loop {
            // Missed notifications cut the stream: the listener is disconnected.
            let Next::Message(mut msg) = next_notification(&mut notifications, &out).await else {
                break;
            };
            if !wanted(&msg) {
                continue;
            }
            if let Some(params) = msg.get_mut("params").and_then(Value::as_object_mut) {
                let meta = params.entry("_meta").or_insert_with(|| json!({}));
                meta[era::META_SUBSCRIPTION_ID] = stamp[era::META_SUBSCRIPTION_ID].clone();
            } else {
                msg["params"] = json!({"_meta": stamp.clone()});
            }
            // A listener that falls behind is disconnected: its stream ends.
            if out.push(msg).is_err() {
                break;
            }
        }
        for uri in subscribed {
            upstream.unsubscribe(&uri).await;
        }
    });
    let mut events = EventStream::new(rx);
    events.on_drop = Some(Box::new(move || drop(open)));
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

pub(super) fn flag_of(honored: &Map<String, Value>, name: &str) -> bool {
    honored.get(name).and_then(Value::as_bool) == Some(true)
}
