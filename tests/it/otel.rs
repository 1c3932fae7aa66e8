//! Issue 26, part 3: OpenTelemetry traces. A real OTLP/HTTP receiver on 127.0.0.1 in
//! the test decodes what the gateway exports with the OpenTelemetry proto definitions
//! (`opentelemetry-proto`); the echo fixture records the `_meta` it receives.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use serde_json::{Value, json};

use crate::common::otlp::{Answer, Collector, attrs, hex, hex_to_bytes, names};
use crate::common::{TestEnv, echo_bin, free_port, http, wait_for};

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

fn client_traceparent() -> String {
    format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01")
}

/// One echo server on `port` recording the `_meta` it receives in `meta.jsonl`.
fn recording_server(env: &TestEnv, name: &str, port: u16) -> String {
    let record = env.path().join(format!("{name}-meta.jsonl"));
    format!(
        "[servers.{name}]\ncommand = \"{}\"\nargs = [\"--record-meta\", \"{}\"]\nport = {port}\n",
        echo_bin(),
        record.display()
    )
}

/// What server `name` recorded for its requests of `method`.
fn recorded(env: &TestEnv, name: &str, method: &str) -> Vec<Value> {
    std::fs::read_to_string(env.path().join(format!("{name}-meta.jsonl")))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["method"] == method)
        .map(|l| l["_meta"].clone())
        .collect()
}

/// `mcpctl apply` with a short batch delay, and no endpoint from this environment.
fn apply(env: &TestEnv) -> crate::common::Run {
    let output = env
        .command(&["apply"])
        .env("OTEL_BSP_SCHEDULE_DELAY", "50")
        .env("OTEL_EXPORTER_OTLP_TIMEOUT", "500")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .output()
        .unwrap();
    let run = crate::common::to_run(&["apply"], &output);
    run.success();
    run
}

fn session(port: u16) -> String {
    crate::endpoint::open(port)
}

fn call(port: u16, session: &str, headers: &[(&str, &str)], body: &Value) -> Value {
    let mut all = vec![
        ("MCP-Protocol-Version", "2025-06-18"),
        ("Mcp-Session-Id", session),
    ];
    all.extend_from_slice(headers);
    let reply = http(port, "POST", "/mcp", &all, body.to_string().as_bytes());
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

fn echo_call(id: i64, text: &str, meta: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": text}, "_meta": meta}})
}

#[test]
fn a_clients_traceparent_is_continued_through_the_hop_into_the_servers_meta() {
    let collector = Collector::start(Answer::Ok);
    let port = free_port();
    let env = TestEnv::new();
    env.write(
        "mcpctl.toml",
        &format!(
            "version = 1\n[telemetry]\notlp_endpoint = \"{}\"\n{}",
            collector.url,
            recording_server(&env, "echo", port)
        ),
    );
    apply(&env).stdout_has("tracing: spans to");
    let session = session(port);
    let traceparent = client_traceparent();
    let answer = call(
        port,
        &session,
        &[("traceparent", &traceparent), ("tracestate", "vendor=1")],
        &echo_call(7, "traced", json!({"progressToken": "mine"})),
    );
    assert_eq!(answer["result"]["content"][0]["text"], "traced");

    let trace = hex_to_bytes(CLIENT_TRACE);
    let server = collector.span("tools/call echo", SpanKind::Server, Some(&trace));
    assert_eq!(
        hex(&server.parent_span_id),
        CLIENT_SPAN,
        "the client's span is its parent"
    );
    let a = attrs(&server);
    assert_eq!(a["mcp.method.name"], "tools/call");
    assert_eq!(a["gen_ai.tool.name"], "echo");
    assert_eq!(a["jsonrpc.request.id"], "7");
    assert_eq!(a["mcpctl.server"], "echo");
    assert_eq!(a["network.transport"], "tcp");
    assert!(!a.contains_key("error.type"), "{a:?}");
    // The session is grouped by a digest, never its id (a credential).
    assert_eq!(a["mcp.session.id"].len(), 16);
    assert_ne!(a["mcp.session.id"], session);
    assert_eq!(server.trace_state, "vendor=1");
    assert!(server.end_time_unix_nano >= server.start_time_unix_nano);

    let hop = collector.hop_of(&server);
    assert_eq!(hop.trace_id, trace);
    assert_eq!(hop.name, "tools/call echo");
    assert_eq!(attrs(&hop)["network.transport"], "pipe");
    assert!(hop.start_time_unix_nano >= server.start_time_unix_nano);
    assert!(hop.end_time_unix_nano <= server.end_time_unix_nano);

    // The server got the hop's context, and its own `_meta` keys as sent.
    let got = recorded(&env, "echo", "tools/call");
    let meta = got.last().expect("the call reached the server");
    assert_eq!(
        meta["traceparent"],
        format!("00-{CLIENT_TRACE}-{}-01", hex(&hop.span_id))
    );
    assert_eq!(meta["tracestate"], "vendor=1");
    // Kept beside it (the mux gives the call a progress token of its own).
    assert!(meta["progressToken"].is_string(), "{meta}");

    // `initialize` is answered by the gateway (the child's probe): no hop.
    let init = collector.span("initialize", SpanKind::Server, None);
    assert!(
        collector
            .spans()
            .iter()
            .all(|s| s.parent_span_id != init.span_id),
        "no hop under initialize"
    );
    // Resource: who exported.
    assert!(
        collector
            .services
            .lock()
            .unwrap()
            .iter()
            .any(|s| s == "mcpctl")
    );
    env.run_within(30, &["daemon", "stop"]).success();
}

#[test]
fn without_a_header_the_meta_traceparent_is_continued_and_errors_are_typed() {
    let collector = Collector::start(Answer::Ok);
    let port = free_port();
    let env = TestEnv::new();
    env.write(
        "mcpctl.toml",
        &format!(
            "version = 1\n[telemetry]\notlp_endpoint = \"{}\"\n{}",
            collector.url,
            recording_server(&env, "echo", port)
        ),
    );
    apply(&env);
    let session = session(port);
    let call_meta = json!({"traceparent": client_traceparent(), "other": {"kept": true}});
    call(port, &session, &[], &echo_call(1, "via meta", call_meta));
    let trace = hex_to_bytes(CLIENT_TRACE);
    let server = collector.span("tools/call echo", SpanKind::Server, Some(&trace));
    assert_eq!(hex(&server.parent_span_id), CLIENT_SPAN);
    let hop = collector.hop_of(&server);
    let meta = recorded(&env, "echo", "tools/call").pop().unwrap();
    assert_eq!(
        meta["traceparent"],
        format!("00-{CLIENT_TRACE}-{}-01", hex(&hop.span_id))
    );
    assert_eq!(meta["other"], json!({"kept": true}));

    // A JSON-RPC error is the span's error.type (its code), on a new trace.
    let unknown = json!({"jsonrpc": "2.0", "id": "x", "method": "nope/nothing"});
    let answer = call(port, &session, &[], &unknown);
    assert!(answer["error"].is_object(), "{answer}");
    let failed = collector.span("nope/nothing", SpanKind::Server, None);
    assert_ne!(
        failed.trace_id, trace,
        "no client context: a trace of its own"
    );
    assert!(failed.parent_span_id.is_empty());
    assert_eq!(attrs(&failed)["error.type"], "-32601");
    assert_eq!(attrs(&failed)["jsonrpc.request.id"], "x");
    let status = failed.status.clone().expect("a status");
    assert_eq!(status.code, 2, "STATUS_CODE_ERROR");
    env.run_within(30, &["daemon", "stop"]).success();
}

#[test]
fn a_zero_sample_ratio_exports_no_new_trace_but_follows_a_sampled_client() {
    let collector = Collector::start(Answer::Ok);
    let port = free_port();
    let env = TestEnv::new();
    env.write(
        "mcpctl.toml",
        &format!(
            "version = 1\n[telemetry]\notlp_endpoint = \"{}\"\nsample_ratio = 0.0\n{}",
            collector.url,
            recording_server(&env, "echo", port)
        ),
    );
    apply(&env);
    let session = session(port);
    call(port, &session, &[], &echo_call(1, "unsampled", json!({})));
    // Not sampled: the server gets no context of ours.
    let meta = recorded(&env, "echo", "tools/call").pop().unwrap();
    assert!(meta.get("traceparent").is_none(), "{meta}");
    // A client's sampled context is followed: its spans come, and only they (the
    // queue is in order, so the unsampled call's would have come first).
    let sampled = client_traceparent();
    call(
        port,
        &session,
        &[("traceparent", &sampled)],
        &echo_call(2, "sampled", json!({})),
    );
    collector.span(
        "tools/call echo",
        SpanKind::Server,
        Some(&hex_to_bytes(CLIENT_TRACE)),
    );
    let spans = collector.spans();
    assert!(
        spans.iter().all(|s| hex(&s.trace_id) == CLIENT_TRACE),
        "only the client's trace: {:?}",
        spans
            .iter()
            .map(|s| (s.name.clone(), hex(&s.trace_id)))
            .collect::<Vec<_>>()
    );
    assert_eq!(spans.len(), 2, "{:?}", names(&spans));
    // An unsampled client context is passed on as it came, and nothing is exported.
    let unsampled = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-00");
    call(
        port,
        &session,
        &[("traceparent", &unsampled)],
        &echo_call(3, "no", json!({})),
    );
    env.run_within(30, &["daemon", "stop"]).success();
    assert_eq!(
        collector.spans().len(),
        2,
        "nothing more, even after the last flush"
    );
}

/// `/metrics` counter `name`.
fn metric(port: u16, name: &str) -> u64 {
    let reply = http(port, "GET", "/metrics", &[], b"");
    reply
        .body
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_hanging_or_absent_collector_costs_the_calls_nothing_and_drops_are_counted() {
    for hanging in [true, false] {
        let collector = Collector::start(Answer::Hang);
        let url = if hanging {
            collector.url.clone()
        } else {
            // Nobody listens there.
            format!("http://127.0.0.1:{}", free_port())
        };
        let (port, metrics) = (free_port(), free_port());
        let env = TestEnv::new();
        env.write(
            "mcpctl.toml",
            &format!(
                "version = 1\n[daemon]\nmetrics = \"127.0.0.1:{metrics}\"\n[telemetry]\notlp_endpoint = \"{url}\"\n{}",
                recording_server(&env, "echo", port)
            ),
        );
        apply(&env);
        let session = session(port);
        for i in 0..20 {
            let began = Instant::now();
            let answer = call(port, &session, &[], &echo_call(i, "still here", json!({})));
            assert_eq!(answer["result"]["content"][0]["text"], "still here");
            assert!(
                began.elapsed() < Duration::from_secs(2),
                "call {i} waited {:?} (hanging: {hanging})",
                began.elapsed()
            );
        }
        // Each batch times out (500 ms) or is refused: its spans are counted lost.
        wait_for("dropped spans on /metrics", 20, || {
            let dropped = metric(metrics, "mcpctl_otel_spans_dropped_total");
            (dropped >= 2).then_some(()).ok_or(dropped.to_string())
        });
        assert!(metric(metrics, "mcpctl_otel_export_failures_total") >= 1);
        assert_eq!(metric(metrics, "mcpctl_otel_spans_exported_total"), 0);
        // The daemon still stops promptly (the flush is bounded).
        let began = Instant::now();
        env.run_within(30, &["daemon", "stop"]).success();
        assert!(
            began.elapsed() < Duration::from_secs(15),
            "{:?}",
            began.elapsed()
        );
    }
}

#[test]
fn tracing_is_off_by_default_and_turned_on_and_off_live_without_a_restart() {
    let collector = Collector::start(Answer::Ok);
    let port = free_port();
    let env = TestEnv::new();
    let server = recording_server(&env, "echo", port);
    env.write("mcpctl.toml", &format!("version = 1\n{server}"));
    let first = apply(&env);
    assert!(!first.stdout.contains("tracing"), "{}", first.stdout);
    let session = session(port);
    let traceparent = client_traceparent();
    call(
        port,
        &session,
        &[("traceparent", &traceparent)],
        &echo_call(1, "off", json!({})),
    );
    // Off: the request is passed on untouched (the client's context, if any, as sent).
    let meta = recorded(&env, "echo", "tools/call").pop().unwrap();
    assert_eq!(meta, json!({}), "nothing added to _meta");
    // The collector that will be configured is up, and nothing has reached it.
    assert_eq!(collector.connections.load(Ordering::SeqCst), 0);
    let pid = env.server_status("echo")["instances"][0]["pid"].clone();

    // On, live: the same process serves, now traced.
    env.write(
        "mcpctl.toml",
        &format!(
            "version = 1\n[telemetry]\notlp_endpoint = \"{}\"\n{server}",
            collector.url
        ),
    );
    let on = apply(&env);
    assert!(on.stdout.contains("tracing: spans to"), "{}", on.stdout);
    assert!(!on.stdout.contains("restart"), "{}", on.stdout);
    call(
        port,
        &session,
        &[("traceparent", &traceparent)],
        &echo_call(2, "on", json!({})),
    );
    collector.span(
        "tools/call echo",
        SpanKind::Server,
        Some(&hex_to_bytes(CLIENT_TRACE)),
    );
    assert_eq!(
        env.server_status("echo")["instances"][0]["pid"],
        pid,
        "not restarted"
    );
    let exported = collector.spans().len();

    // Off again: no more spans, even at the daemon's last flush.
    env.write("mcpctl.toml", &format!("version = 1\n{server}"));
    apply(&env).stdout_has("tracing: off");
    call(
        port,
        &session,
        &[("traceparent", &traceparent)],
        &echo_call(3, "off", json!({})),
    );
    env.run_within(30, &["daemon", "stop"]).success();
    assert_eq!(collector.spans().len(), exported);
}

#[test]
fn mcpctl_gateway_otlp_traces_its_one_server() {
    let collector = Collector::start(Answer::Ok);
    let port = free_port();
    let port_arg = port.to_string();
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("meta.jsonl");
    let record_arg = record.display().to_string();
    let (mut child, _cwd) = crate::gateway_cmd::gateway(
        &[
            "--port",
            &port_arg,
            "--otlp",
            &collector.url,
            "--otlp-sample-ratio",
            "1",
            "--",
            echo_bin(),
            "--record-meta",
            &record_arg,
        ],
        &[
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("OTEL_SERVICE_NAME", "edge"),
        ],
    );
    crate::gateway_cmd::wait_serving(port, &mut child);
    let session = session(port);
    let traceparent = client_traceparent();
    call(
        port,
        &session,
        &[("traceparent", &traceparent)],
        &echo_call(5, "cli", json!({})),
    );
    let trace = hex_to_bytes(CLIENT_TRACE);
    let server = collector.span("tools/call echo", SpanKind::Server, Some(&trace));
    assert_eq!(attrs(&server)["mcpctl.server"], "server");
    let hop = collector.hop_of(&server);
    let lines = std::fs::read_to_string(&record).unwrap();
    let want = format!("00-{CLIENT_TRACE}-{}-01", hex(&hop.span_id));
    assert!(lines.contains(&want), "{lines}");
    assert!(
        collector
            .services
            .lock()
            .unwrap()
            .iter()
            .any(|s| s == "edge")
    );
    let (code, stderr) = crate::gateway_cmd::terminate(child);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn an_endpoints_member_hop_continues_into_the_members_own_port() {
    // The file says nothing: OTEL_EXPORTER_OTLP_ENDPOINT of the daemon's environment.
    let collector = Collector::start(Answer::Ok);
    let (a, b, ep) = (free_port(), free_port(), free_port());
    let env = TestEnv::new();
    env.write(
        "mcpctl.toml",
        &format!(
            "version = 1\n{}{}[endpoints.work]\nport = {ep}\nservers = [\"a\", \"b\"]\n",
            recording_server(&env, "a", a),
            recording_server(&env, "b", b),
        ),
    );
    let output = env
        .command(&["apply"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.url)
        .env("OTEL_BSP_SCHEDULE_DELAY", "50")
        .output()
        .unwrap();
    crate::common::to_run(&["apply"], &output).success();
    let session = crate::endpoint::open(ep);
    let traceparent = client_traceparent();
    let body = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": {"name": "b__echo", "arguments": {"text": "to b"}}});
    let answer = call(ep, &session, &[("traceparent", &traceparent)], &body);
    assert_eq!(answer["result"]["content"][0]["text"], "to b", "{answer}");

    let trace = hex_to_bytes(CLIENT_TRACE);
    // The endpoint's own span: its name, the member the call went to.
    let front = collector.span("tools/call b__echo", SpanKind::Server, Some(&trace));
    assert_eq!(hex(&front.parent_span_id), CLIENT_SPAN);
    let a_front = attrs(&front);
    assert_eq!(a_front["mcpctl.endpoint"], "work");
    assert_eq!(a_front["mcpctl.endpoint.member"], "b");
    let front_hop = collector.hop_of(&front);
    assert_eq!(attrs(&front_hop)["mcpctl.endpoint.member"], "b");
    // The member's port continues the endpoint's hop, with the member's own name.
    let member = collector.span("tools/call echo", SpanKind::Server, Some(&trace));
    assert_eq!(member.parent_span_id, front_hop.span_id);
    assert_eq!(attrs(&member)["mcpctl.server"], "b");
    let member_hop = collector.hop_of(&member);
    let meta = recorded(&env, "b", "tools/call").pop().unwrap();
    assert_eq!(
        meta["traceparent"],
        format!("00-{CLIENT_TRACE}-{}-01", hex(&member_hop.span_id))
    );
    assert!(recorded(&env, "a", "tools/call").is_empty());
    env.run_within(30, &["daemon", "stop"]).success();
}

#[test]
fn modern_clients_event_streams_and_legacy_sse_posts_are_traced_alike() {
    let collector = Collector::start(Answer::Ok);
    let port = free_port();
    let env = TestEnv::new();
    env.write(
        "mcpctl.toml",
        &format!(
            "version = 1\n[telemetry]\notlp_endpoint = \"{}\"\n{}",
            collector.url,
            recording_server(&env, "echo", port)
        ),
    );
    apply(&env);
    let traceparent = client_traceparent();
    let trace = hex_to_bytes(CLIENT_TRACE);

    // A 2026-07-28 client: no session, the envelope in _meta, kept beside ours.
    let envelope = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"}});
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "whoami", "arguments": {}, "_meta": envelope}});
    let reply = http(
        port,
        "POST",
        "/mcp",
        &[
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "whoami"),
            ("traceparent", &traceparent),
        ],
        body.to_string().as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let modern = collector.span("tools/call whoami", SpanKind::Server, Some(&trace));
    assert_eq!(attrs(&modern)["mcp.protocol.version"], "2026-07-28");
    let hop = collector.hop_of(&modern);
    let meta = recorded(&env, "echo", "tools/call").pop().unwrap();
    assert_eq!(
        meta["traceparent"],
        format!("00-{CLIENT_TRACE}-{}-01", hex(&hop.span_id))
    );

    // A 2025 call answered as an event stream (progress first): the spans end with it.
    let session = session(port);
    let progress = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "progress", "arguments": {"steps": 2}, "_meta": {"progressToken": "p", "traceparent": traceparent}}});
    let mut stream = crate::gateway::SseClient::post(port, &session, &progress);
    let mut last = String::new();
    while !last.contains("\"result\"") {
        last = stream.next().1;
    }
    drop(stream);
    let streamed = collector.span("tools/call progress", SpanKind::Server, Some(&trace));
    assert!(!attrs(&streamed).contains_key("error.type"));

    // The legacy SSE transport: the message post is traced (its spans end at the 202).
    let mut sse = crate::gateway::SseClient::connect(port);
    let (_, endpoint) = sse.next();
    let post = |body: Value| {
        http(
            port,
            "POST",
            &endpoint,
            &[("traceparent", &traceparent)],
            body.to_string().as_bytes(),
        )
        .status
    };
    let init = json!({"jsonrpc": "2.0", "id": "i", "method": "initialize",
        "params": {"protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "sse", "version": "1"}}});
    assert_eq!(post(init), 202);
    sse.next();
    assert_eq!(
        post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})),
        202
    );
    assert_eq!(
        post(
            json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "over sse"}}})
        ),
        202
    );
    let reply: Value = serde_json::from_str(&sse.next().1).unwrap();
    assert_eq!(reply["result"]["content"][0]["text"], "over sse");
    let legacy = collector.span("tools/call echo", SpanKind::Server, Some(&trace));
    let hop = collector.hop_of(&legacy);
    let meta = recorded(&env, "echo", "tools/call").pop().unwrap();
    assert_eq!(
        meta["traceparent"],
        format!("00-{CLIENT_TRACE}-{}-01", hex(&hop.span_id))
    );
    // Notifications make no span.
    assert!(
        collector
            .spans()
            .iter()
            .all(|s| !s.name.starts_with("notifications/"))
    );
    env.run_within(30, &["daemon", "stop"]).success();
}
