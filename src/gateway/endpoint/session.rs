//! One client session of an endpoint: the aggregator the gateway runs as its "child",
//! over in-memory pipes. It answers `initialize` and the lists from the endpoint's
//! table, routes calls by name (tools, prompts, completions) or URI (resources) to a
//! member session it opens on first use, passes progress, logging and the members' own
//! requests (sampling, elicitation, roots) through, and closes its member sessions
//! when the client's session ends. With discovery on it answers `find_tools` and
//! `use_tools` itself and lists its own working set ([`super::discovery`]).
//!
//! Bounds: calls in flight ([`MAX_CALLS`]; beyond that the pipe is not read, which
//! holds the gateway's mux back, not memory), queued messages ([`QUEUE`]), one line
//! ([`crate::gateway::mux::MAX_MESSAGE`]), member requests waiting for an answer
//! ([`MAX_ASKS`]).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::sync::{OnceCell, Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;

use super::MemberError;
use super::discovery::{self, WorkingSet};
use super::link::{Link, LinkError};
use super::table::Table;
use super::{Endpoint, MAX_ITEMS};
use crate::gateway::lines::BoundedLines;
use crate::gateway::mux::MAX_MESSAGE;
use crate::model::raw::Failure;
use crate::wire::jsonrpc::{self, INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND};

/// Calls of one session in flight at once.
const MAX_CALLS: usize = 64;
/// Messages waiting to be written to the gateway, or coming from members.
const QUEUE: usize = 256;
/// Member requests (sampling...) waiting for the client's answer.
const MAX_ASKS: usize = 64;
/// Items in one page of the endpoint's own lists.
const PAGE: usize = 500;
/// JSON-RPC: resource not found (MCP).
const RESOURCE_NOT_FOUND: i64 = -32002;

/// Ends the session's aggregator when dropped: its member sessions are closed.
pub(super) struct Lease {
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts an aggregator reading the gateway's messages from `input` and writing its
/// own to `output`; `sessionless` when it serves every session-less client at once
/// (it then keeps no working set: that would be shared between clients).
pub(super) fn spawn(
    endpoint: Arc<Endpoint>,
    input: DuplexStream,
    output: DuplexStream,
    sessionless: bool,
) -> Lease {
    let (stop, stopped) = oneshot::channel();
    let tasks = endpoint.tasks();
    tasks.spawn(run(endpoint, input, output, stopped, sessionless));
    Lease { stop: Some(stop) }
}

/// A member session and its slot among the endpoint's sessions with that member.
#[derive(Clone)]
struct Held {
    link: Arc<Link>,
    _slot: Arc<tokio::sync::OwnedSemaphorePermit>,
}

/// What the session's call tasks share.
struct Shared {
    endpoint: Arc<Endpoint>,
    /// Member sessions, opened on first use, each with its slot at the endpoint.
    links: Mutex<HashMap<String, Arc<OnceCell<Held>>>>,
    /// Their `GET /mcp` streams, ended with the session.
    /// The members' streams being read: dropped with the aggregator, they end.
    listeners: Mutex<Vec<crate::gateway::owned::Owned<()>>>,
    /// From members: (member, message).
    events: mpsc::Sender<(String, Value)>,
    /// What the client can answer (as the gateway declared it), declared to members.
    capabilities: Mutex<Value>,
    /// `logging/setLevel`, applied to member sessions opened later too.
    log_level: Mutex<Option<Value>>,
    /// To the gateway: a call's progress goes here before its answer, in order.
    out: mpsc::Sender<Value>,
    /// Member requests passed to the client: our id -> (member, its id).
    asks: Mutex<HashMap<String, (String, Value)>>,
    next_ask: AtomicU64,
}

impl Shared {
    /// The session with `member`, opened now if it is not yet.
    async fn link(&self, member: &str) -> Result<Arc<Link>, MemberError> {
        let cell = {
            let Ok(mut links) = self.links.lock() else {
                return Err(MemberError::Broken("the session's table of members"));
            };
            Arc::clone(links.entry(member.to_string()).or_default())
        };
        cell.get_or_try_init(|| async {
            let slot = Arc::new(self.endpoint.member_slot(member)?);
            let link = Arc::new(self.endpoint.link(member)?);
            let capabilities = self
                .capabilities
                .lock()
                .map(|c| c.clone())
                .unwrap_or_else(|_| json!({}));
            link.open(&capabilities)
                .await
                .map_err(|source| MemberError::Open {
                    member: member.to_string(),
                    source,
                })?;
            // Every log message of the member's: the gateway in front of this session
            // filters by the level its client set.
            let level = self
                .log_level
                .lock()
                .ok()
                .and_then(|l| l.clone())
                .unwrap_or_else(|| json!("debug"));
            let set = json!({"jsonrpc": "2.0", "id": "mcpctl-level", "method": "logging/setLevel", "params": {"level": level}});
            let _ = link.call(&set, None).await;
            // The stream is open before the first call, so nothing sent during it is lost.
            if let Ok(stream) = link.open_stream().await {
                self.listen(member, stream);
            }
            Ok(Held { link, _slot: slot })
        })
        .await
        .map(|held| Arc::clone(&held.link))
    }

    /// Forgets a member session that ended, so the next use opens a new one.
    fn forget(&self, member: &str) {
        if let Ok(mut links) = self.links.lock() {
            links.remove(member);
        }
    }

    fn listen(&self, member: &str, stream: hyper::body::Incoming) {
        let (tx, mut rx) = mpsc::channel::<Value>(QUEUE);
        let events = self.events.clone();
        let name = member.to_string();
        let task = crate::gateway::owned::owned(async move {
            let forward = async {
                while let Some(msg) = rx.recv().await {
                    if events.send((name.clone(), msg)).await.is_err() {
                        break;
                    }
                }
            };
            // A stream that ends leaves calls working: only what the member sends
            // unasked is missed, until the session is opened again.
            tokio::join!(super::link::read_stream(stream, tx), forward);
        });
        if let Ok(mut listeners) = self.listeners.lock() {
            listeners.retain(|l| !l.is_finished());
            listeners.push(task);
        }
    }

    /// A message a member sent unasked or during a call, passed to the client: its
    /// notifications as they are, its requests under an id of ours (the answer goes
    /// back to it under its own); a `list_changed` re-reads the lists instead.
    async fn relay(&self, member: &str, mut msg: Value) {
        let method = msg
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match (msg.get("id").cloned(), method) {
            (_, "") => {}
            (Some(their_id), _) => {
                let ours = format!(
                    "mcpctl-ep-{}",
                    self.next_ask.fetch_add(1, Ordering::Relaxed)
                );
                let admitted = self.asks.lock().is_ok_and(|mut asks| {
                    (asks.len() < MAX_ASKS)
                        && asks
                            .insert(
                                json!(ours).to_string(),
                                (member.to_string(), their_id.clone()),
                            )
                            .is_none()
                });
                if !admitted {
                    if let Ok(link) = self.link(member).await {
                        let refused =
                            error(&their_id, INTERNAL_ERROR, "too many questions at once");
                        let _ = link.send(&refused).await;
                    }
                    return;
                }
                msg["id"] = json!(ours);
                let _ = self.out.send(msg).await;
            }
            (None, m) if m.ends_with("/list_changed") => self.endpoint.refresh.notify_one(),
            (None, _) => {
                let _ = self.out.send(msg).await;
            }
        }
    }

    async fn open_links(&self) -> Vec<Arc<Link>> {
        let cells: Vec<Arc<OnceCell<Held>>> = self
            .links
            .lock()
            .map(|l| l.values().cloned().collect())
            .unwrap_or_default();
        cells
            .iter()
            .filter_map(|c| c.get().map(|h| Arc::clone(&h.link)))
            .collect()
    }
}

async fn run(
    endpoint: Arc<Endpoint>,
    input: DuplexStream,
    mut output: DuplexStream,
    mut stopped: oneshot::Receiver<()>,
    sessionless: bool,
) {
    let (out, mut queued) = mpsc::channel::<Value>(QUEUE);
    let writer = async move {
        while let Some(msg) = queued.recv().await {
            let mut line = jsonrpc::to_text(&msg).into_bytes();
            line.push(b'\n');
            if output.write_all(&line).await.is_err() {
                break;
            }
        }
    };
    let (events_tx, mut events) = mpsc::channel::<(String, Value)>(QUEUE);
    let mut session = Session {
        shared: Arc::new(Shared {
            endpoint: Arc::clone(&endpoint),
            links: Mutex::default(),
            listeners: Mutex::default(),
            events: events_tx,
            capabilities: Mutex::new(json!({})),
            log_level: Mutex::default(),
            out: out.clone(),
            asks: Mutex::default(),
            next_ask: AtomicU64::new(1),
        }),
        out: out.clone(),
        calls: JoinSet::new(),
        slots: Arc::new(Semaphore::new(MAX_CALLS)),
        in_flight: Arc::new(Mutex::new(HashMap::new())),
        table: endpoint.table(),
        working: WorkingSet::default(),
        sessionless,
    };
    let mut tables = endpoint.tables();
    let mut lines = BoundedLines::new(tokio::io::BufReader::new(input), MAX_MESSAGE);
    let serve = async {
        loop {
            while session.calls.try_join_next().is_some() {}
            tokio::select! {
                line = lines.next_line() => match line {
                    Ok(Some(line)) if !line.is_cut() => {
                        if let Ok(msg) = serde_json::from_slice::<Value>(line.head) {
                            session.handle(msg).await;
                        }
                    }
                    Ok(Some(_)) => {}
                    _ => break,
                },
                Some((member, msg)) = events.recv() => session.shared.relay(&member, msg).await,
                changed = tables.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let table = tables.borrow_and_update().clone();
                    session.table_changed(table).await;
                }
                _ = &mut stopped => break,
            }
        }
    };
    tokio::select! {
        () = serve => {}
        () = writer => {}
    }
    // The client's session ended: so do its member sessions (bounded).
    session.calls.abort_all();
    let links = session.shared.open_links().await;
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        futures_util::future::join_all(links.iter().map(|l| l.close())),
    )
    .await;
}

struct Session {
    shared: Arc<Shared>,
    out: mpsc::Sender<Value>,
    calls: JoinSet<()>,
    slots: Arc<Semaphore>,
    /// The gateway's id of each call in flight (as JSON text) -> its member.
    in_flight: Arc<Mutex<HashMap<String, String>>>,
    table: Arc<Table>,
    /// Tools this session pulled in with `use_tools` (discovery).
    working: WorkingSet,
    sessionless: bool,
}

fn error(id: &Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

fn result(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// A tool's answer of one text (a meta-tool's; `failed`: a tool error the model can
/// read and correct, as MCP asks for bad arguments).
fn tool_text(text: &str, failed: bool) -> Value {
    json!({"content": [{"type": "text", "text": text}], "isError": failed})
}

impl Session {
    async fn send(&self, msg: Value) {
        let _ = self.out.send(msg).await;
    }

    async fn handle(&mut self, msg: Value) {
        let id = msg.get("id").cloned();
        let Some(method) = msg
            .get("method")
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            // An answer to a member's request we passed on.
            let asked = id
                .as_ref()
                .and_then(|i| self.shared.asks.lock().ok()?.remove(&i.to_string()));
            if let Some((member, their_id)) = asked
                && let Ok(link) = self.shared.link(&member).await
            {
                let mut answer = msg;
                answer["id"] = their_id;
                let _ = link.send(&answer).await;
            }
            return;
        };
        let Some(id) = id else {
            self.notification(&method, &msg).await;
            return;
        };
        let params = msg.get("params").cloned().unwrap_or(json!({}));
        match method.as_str() {
            "initialize" => {
                if let (Ok(mut c), Some(declared)) =
                    (self.shared.capabilities.lock(), params.get("capabilities"))
                {
                    c.clone_from(declared);
                }
                let reply = result(&id, self.initialize(&params));
                self.send(reply).await;
            }
            "server/discover" => {
                // Legacy: the gateway bridges 2026-07-28 clients itself.
                self.send(error(&id, METHOD_NOT_FOUND, "server/discover"))
                    .await;
            }
            "ping" => self.send(result(&id, json!({}))).await,
            "tools/list" => {
                let table = self.shared.endpoint.table();
                let tools = self.tools_view(&table);
                self.list(&id, &params, "tools", &tools).await;
            }
            "prompts/list" => {
                let table = self.shared.endpoint.table();
                self.list(&id, &params, "prompts", &table.prompts.listed)
                    .await;
            }
            "resources/list" => {
                let table = self.shared.endpoint.table();
                self.list(&id, &params, "resources", &table.resources).await;
            }
            "resources/templates/list" => {
                let table = self.shared.endpoint.table();
                self.list(&id, &params, "resourceTemplates", &table.templates)
                    .await;
            }
            "tools/call" if self.meta_call(&params) => self.meta(&id, &params).await,
            "logging/setLevel" => {
                if let Ok(mut level) = self.shared.log_level.lock() {
                    *level = params.get("level").cloned();
                }
                for link in self.shared.open_links().await {
                    let set = json!({"jsonrpc": "2.0", "id": "mcpctl-level", "method": method, "params": params});
                    let _ = link.call(&set, None).await;
                }
                self.send(result(&id, json!({}))).await;
            }
            _ => self.route(id, method, params).await,
        }
    }

    async fn notification(&mut self, method: &str, msg: &Value) {
        if method != "notifications/cancelled" {
            return;
        }
        let Some(request) = msg.pointer("/params/requestId") else {
            return;
        };
        let member = self
            .in_flight
            .lock()
            .ok()
            .and_then(|f| f.get(&request.to_string()).cloned());
        if let Some(member) = member
            && let Ok(link) = self.shared.link(&member).await
        {
            let _ = link.send(msg).await;
        }
    }

    /// The endpoint's own `initialize` answer: what its members can do, their
    /// instructions labelled with their names.
    fn initialize(&self, params: &Value) -> Value {
        let endpoint = &self.shared.endpoint;
        let inits = endpoint.inits();
        let has = |cap: &str| {
            inits
                .iter()
                .any(|(_, i)| i.pointer(&format!("/capabilities/{cap}")).is_some())
        };
        let mut capabilities = json!({
            "tools": {"listChanged": true},
            "prompts": {"listChanged": true},
            "resources": {"listChanged": true, "subscribe": true},
        });
        if has("logging") {
            capabilities["logging"] = json!({});
        }
        if has("completions") {
            capabilities["completions"] = json!({});
        }
        let instructions: Vec<String> = inits
            .iter()
            .filter_map(|(member, init)| {
                let text = init.get("instructions")?.as_str()?;
                Some(format!("[{member}] {text}"))
            })
            .collect();
        let mut answer = json!({
            "protocolVersion": params.get("protocolVersion").cloned().unwrap_or(json!(crate::gateway::SUPPORTED_VERSIONS[0])),
            "capabilities": capabilities,
            "serverInfo": {"name": format!("mcpctl endpoint {}", endpoint.spec().name), "version": env!("CARGO_PKG_VERSION")},
        });
        if !instructions.is_empty() {
            answer["instructions"] = json!(instructions.join("\n\n"));
        }
        answer
    }

    /// The tools this session lists: all the table's (borrowed: no copy of a long
    /// list per `tools/list`), or with discovery on, the meta-tools, the `always` ones
    /// and its working set.
    fn tools_view<'t>(&self, table: &'t Table) -> Cow<'t, [Value]> {
        match &table.discovery {
            Some(discovery) if discovery.on => {
                Cow::Owned(discovery.list(&table.tools.listed, &self.working))
            }
            _ => Cow::Borrowed(&table.tools.listed),
        }
    }

    /// Whether a `tools/call` is for a meta-tool this endpoint answers now.
    fn meta_call(&self, params: &Value) -> bool {
        let name = params
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        discovery::is_meta(name)
            && self
                .shared
                .endpoint
                .table()
                .discovery
                .as_ref()
                .is_some_and(|d| d.on)
    }

    /// `find_tools` or `use_tools`, answered here.
    async fn meta(&mut self, id: &Value, params: &Value) {
        let table = self.shared.endpoint.table();
        let name = params
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        // The table may have changed since `meta_call` looked: off now, as unknown.
        let Some(found) = table.discovery.as_ref().filter(|d| d.on) else {
            let why = format!("unknown tool: {name}");
            self.send(error(id, INVALID_PARAMS, &why)).await;
            return;
        };
        let args = params.get("arguments").cloned().unwrap_or(json!({}));
        self.shared.endpoint.count_discovery(name);
        if name == discovery::FIND {
            let answer = match discovery::find_args(&args) {
                Ok(find) => {
                    let hits = found.index.search(&find.query, find.limit);
                    tool_text(
                        &discovery::render(&find.query, &hits, found.index.len()),
                        false,
                    )
                }
                Err(why) => tool_text(&why.to_string(), true),
            };
            self.send(result(id, answer)).await;
            return;
        }
        if self.sessionless {
            let why = format!(
                "this request has no session, so there is no tool list to add to: call the tools {} names by name",
                discovery::FIND
            );
            self.send(result(id, tool_text(&why, true))).await;
            return;
        }
        let wanted = match discovery::use_args(&args) {
            Ok(wanted) => wanted,
            Err(why) => {
                self.send(result(id, tool_text(&why.to_string(), true)))
                    .await;
                return;
            }
        };
        let before = self.tools_view(&table).into_owned();
        // A tool of a member that is down is one policy allows: it is listed once the
        // member is back.
        let applied = self.working.apply(&wanted, |n| {
            table.tools.routes.contains_key(n) || table.tools.down.contains_key(n)
        });
        let answer = match applied {
            Ok(added) => {
                let text = format!(
                    "{}; this session uses {} of at most {} (its tools/list has them, with their schemas).",
                    if added.is_empty() {
                        "nothing new added".to_string()
                    } else {
                        format!("added {}", added.join(", "))
                    },
                    self.working.len(),
                    discovery::MAX_WORKING
                );
                tool_text(&text, false)
            }
            Err(why) => tool_text(&why.to_string(), true),
        };
        self.send(result(id, answer)).await;
        // This session's list changed, and only this session's.
        if self.tools_view(&table)[..] != before[..] {
            self.send(json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}))
                .await;
        }
    }

    /// A page of one of the endpoint's lists (opaque cursors: an offset).
    async fn list(&self, id: &Value, params: &Value, key: &str, items: &[Value]) {
        let start = match params.get("cursor") {
            None | Some(Value::Null) => 0,
            Some(cursor) => match cursor.as_str().and_then(decode_cursor) {
                Some(start) if start <= items.len() => start,
                _ => {
                    self.send(error(id, INVALID_PARAMS, "invalid cursor")).await;
                    return;
                }
            },
        };
        let end = (start + PAGE).min(items.len());
        let mut answer = json!({key: items[start..end]});
        if end < items.len() {
            answer["nextCursor"] = json!(encode_cursor(end));
        }
        self.send(result(id, answer)).await;
    }

    /// A call routed to the member that has its name or URI.
    async fn route(&mut self, id: Value, method: String, mut params: Value) {
        let table = self.shared.endpoint.table();
        if self.shared.endpoint.spec().failure == Failure::Closed {
            let down = self.shared.endpoint.down();
            if let Some((member, why)) = down.first() {
                let why = format!("the endpoint is closed while member {member} is down: {why}");
                self.send(error(&id, INTERNAL_ERROR, &why)).await;
                return;
            }
        }
        let target = match method.as_str() {
            "tools/call" => by_name(&table.tools, &mut params, "name", "tool"),
            "prompts/get" => by_name(&table.prompts, &mut params, "name", "prompt"),
            "completion/complete" => match params.pointer("/ref/type").and_then(Value::as_str) {
                Some("ref/prompt") => {
                    let mut reference = params.get("ref").cloned().unwrap_or(json!({}));
                    let routed = by_name(&table.prompts, &mut reference, "name", "prompt");
                    params["ref"] = reference;
                    routed
                }
                _ => by_uri(&table, params.pointer("/ref/uri")),
            },
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                by_uri(&table, params.get("uri"))
            }
            _ => Err((METHOD_NOT_FOUND, format!("method not found: {method}"))),
        };
        let member = match target {
            Ok(member) => member,
            Err((code, why)) => {
                self.send(error(&id, code, &why)).await;
                return;
            }
        };
        let Ok(slot) = Arc::clone(&self.slots).acquire_owned().await else {
            return;
        };
        let shared = Arc::clone(&self.shared);
        let out = self.out.clone();
        let in_flight = Arc::clone(&self.in_flight);
        let key = id.to_string();
        if let Ok(mut f) = in_flight.lock() {
            f.insert(key.clone(), member.clone());
        }
        let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.calls.spawn(async move {
            let _slot = slot;
            let began = std::time::Instant::now();
            let answer = call(&shared, &member, &request).await;
            shared
                .endpoint
                .record(&member, began.elapsed(), answer.get("error").is_some());
            if let Ok(mut f) = in_flight.lock() {
                f.remove(&key);
            }
            let _ = out.send(answer).await;
        });
    }

    /// The lists changed: the client hears it once per kind; sessions with members the
    /// endpoint no longer has are closed.
    async fn table_changed(&mut self, table: Arc<Table>) {
        let members = self.shared.endpoint.spec().members.clone();
        let gone: Vec<Arc<OnceCell<Held>>> = self
            .shared
            .links
            .lock()
            .map(|mut links| {
                let names: Vec<String> = links
                    .keys()
                    .filter(|m| !members.contains(m))
                    .cloned()
                    .collect();
                names.iter().filter_map(|m| links.remove(m)).collect()
            })
            .unwrap_or_default();
        for cell in gone {
            if let Some(held) = cell.get() {
                held.link.close().await;
            }
        }
        let before = std::mem::replace(&mut self.table, Arc::clone(&table));
        let listed_before = self.tools_view(&before).into_owned();
        // A tool gone from every member leaves the working set (one whose member is
        // down stays: it comes back with it).
        self.working
            .retain(|n| table.tools.routes.contains_key(n) || table.tools.down.contains_key(n));
        let mut changed = Vec::new();
        if listed_before[..] != self.tools_view(&table)[..] {
            changed.push("notifications/tools/list_changed");
        }
        if before.prompts.listed != table.prompts.listed {
            changed.push("notifications/prompts/list_changed");
        }
        if before.resources != table.resources || before.templates != table.templates {
            changed.push("notifications/resources/list_changed");
        }
        for method in changed {
            self.send(json!({"jsonrpc": "2.0", "method": method})).await;
        }
    }
}

/// The member of a named tool or prompt, with the name rewritten to the member's own.
fn by_name(
    named: &super::table::Named,
    params: &mut Value,
    key: &str,
    kind: &str,
) -> Result<String, (i64, String)> {
    let name = params.get(key).and_then(Value::as_str).unwrap_or_default();
    if let Some(route) = named.routes.get(name) {
        let member = route.member.clone();
        params[key] = json!(route.original);
        return Ok(member);
    }
    if let Some(member) = named.down.get(name) {
        return Err((
            INTERNAL_ERROR,
            format!("{kind} {name}: member {member} is down"),
        ));
    }
    // Hidden, denied and unknown names get one answer: nothing tells them apart.
    Err((INVALID_PARAMS, format!("unknown {kind}: {name}")))
}

fn by_uri(table: &Table, uri: Option<&Value>) -> Result<String, (i64, String)> {
    let uri = uri.and_then(Value::as_str).unwrap_or_default();
    table
        .member_for_uri(uri)
        .map(str::to_string)
        .ok_or_else(|| (RESOURCE_NOT_FOUND, format!("no member serves {uri}")))
}

/// One call at a member: opened on first use, once more when its session had ended.
async fn call(shared: &Shared, member: &str, request: &Value) -> Value {
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    for attempt in 0..2 {
        let link = match shared.link(member).await {
            Ok(link) => link,
            Err(why) => {
                shared.endpoint.refresh.notify_one();
                return error(&id, INTERNAL_ERROR, &why.to_string());
            }
        };
        let (tx, mut rx) = mpsc::channel::<Value>(QUEUE);
        // In this task, in order: a call's progress is written before its answer.
        let forward = async {
            while let Some(msg) = rx.recv().await {
                shared.relay(member, msg).await;
            }
        };
        let (answer, ()) = tokio::join!(
            async {
                let answer = link.call(request, Some(&tx)).await;
                drop(tx);
                answer
            },
            forward
        );
        match answer {
            Ok(answer) => return answer,
            Err(LinkError::SessionGone) if attempt == 0 => shared.forget(member),
            // Busy is not down: the lists stand, this call is told to try later.
            Err(e @ LinkError::Busy(_)) => {
                return error(&id, INTERNAL_ERROR, &format!("member {member}: {e}"));
            }
            Err(e) => {
                shared.forget(member);
                shared.endpoint.refresh.notify_one();
                return error(&id, INTERNAL_ERROR, &format!("member {member}: {e}"));
            }
        }
    }
    error(
        &id,
        INTERNAL_ERROR,
        &format!("member {member}: its session ended twice"),
    )
}

fn encode_cursor(offset: usize) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("mcpctl:{offset}"))
}

fn decode_cursor(cursor: &str) -> Option<usize> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let offset: usize = text.strip_prefix("mcpctl:")?.parse().ok()?;
    // A cursor past anything a table can hold is not one of ours.
    (offset <= MAX_ITEMS * 1024).then_some(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        assert_eq!(decode_cursor(&encode_cursor(500)), Some(500));
        assert_eq!(decode_cursor("garbage!"), None);
        assert_eq!(decode_cursor(&encode_cursor(usize::MAX)), None);
    }
}
