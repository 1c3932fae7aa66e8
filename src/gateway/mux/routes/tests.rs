//! The table alone: operations and the child's messages in, lines for the child and
//! answers out. No pipes, no runtime, time passed in.

use super::*;
use crate::gateway::queue::{self, Inbox};

fn table() -> Routes {
    Routes::new(Arc::new(AtomicU64::new(1_000)), Arc::default())
}

/// The lines queued for the child since the last call, parsed.
fn written(routes: &mut Routes) -> Vec<Value> {
    let out = std::mem::take(&mut routes.out);
    out.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

struct Call {
    reply: oneshot::Receiver<Value>,
    events: Option<Inbox>,
}

fn call(routes: &mut Routes, params: Option<Value>, can_answer: bool, key: &str) -> Call {
    call_of(routes, "tools/call", params, can_answer, key)
}

fn call_of(
    routes: &mut Routes,
    method: &str,
    params: Option<Value>,
    can_answer: bool,
    key: &str,
) -> Call {
    let (reply_tx, reply) = oneshot::channel();
    let (events_tx, events) = queue::channel(8);
    let options = CallOptions {
        events: Some(events_tx),
        can_answer,
        cancel_key: Some(key.to_string()),
        log_level: None,
    };
    let op = Op::Call {
        method: method.into(),
        params,
        reply: reply_tx,
        options,
    };
    routes.handle_op(op, Instant::now());
    Call {
        reply,
        events: Some(events),
    }
}

fn child(routes: &mut Routes, msg: Value) {
    routes.on_child_message(
        msg,
        Instant::now(),
        &(Arc::new(|_: &Value| {}) as OnMessage),
    );
}

#[test]
fn each_call_gets_an_id_of_its_own_and_answers_find_their_call_out_of_order() {
    let mut routes = table();
    let mut first = call(&mut routes, None, false, "s 1");
    let mut second = call(&mut routes, None, false, "s 2");
    let ids: Vec<Value> = written(&mut routes)
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(ids, [json!(1), json!(2)]);
    child(
        &mut routes,
        json!({"jsonrpc": "2.0", "id": "2", "result": {"n": 2}}),
    );
    child(
        &mut routes,
        json!({"jsonrpc": "2.0", "id": 1.0, "result": {"n": 1}}),
    );
    assert_eq!(second.reply.try_recv().unwrap()["result"]["n"], 2);
    assert_eq!(first.reply.try_recv().unwrap()["result"]["n"], 1);
    // A late duplicate answer is nobody's.
    child(
        &mut routes,
        json!({"jsonrpc": "2.0", "id": 1, "result": {}}),
    );
    assert!(routes.pending.is_empty());
}

#[test]
fn answers_with_ids_of_other_json_types_are_dropped_and_the_call_waits_on() {
    let mut routes = table();
    let mut waiting = call(&mut routes, None, false, "s 1");
    for id in [
        json!(null),
        json!(true),
        json!([1]),
        json!({"id": 1}),
        json!(1.5),
        json!(-1),
        json!("x"),
    ] {
        child(
            &mut routes,
            json!({"jsonrpc": "2.0", "id": id, "result": {}}),
        );
    }
    assert!(waiting.reply.try_recv().is_err());
    assert_eq!(routes.pending.len(), 1);
}

#[test]
fn progress_goes_upstream_under_our_token_and_back_under_the_clients() {
    let mut routes = table();
    let params = json!({"_meta": {"progressToken": {"client": [1, 2]}}});
    let mut c = call(&mut routes, Some(params), false, "s 1");
    let sent = written(&mut routes);
    let ours = sent[0]["params"]["_meta"]["progressToken"].clone();
    assert_eq!(ours, json!("mcpctl-progress-1"));
    child(
        &mut routes,
        json!({"jsonrpc": "2.0", "method": "notifications/progress",
        "params": {"progressToken": ours, "progress": 1}}),
    );
    let event = c.events.as_mut().unwrap().try_recv().unwrap();
    assert_eq!(event["params"]["progressToken"], json!({"client": [1, 2]}));
}

#[test]
fn a_server_request_goes_to_the_one_call_that_can_answer_and_its_answer_back_to_the_child() {
    let mut routes = table();
    let mut asking = call(&mut routes, None, true, "s 1");
    let mut other = call(&mut routes, None, false, "t 1");
    written(&mut routes);
    child(
        &mut routes,
        json!({"jsonrpc": "2.0", "id": {"weird": 1}, "method": "sampling/createMessage"}),
    );
    let asked = asking.events.as_mut().unwrap().try_recv().unwrap();
    assert!(other.events.as_mut().unwrap().try_recv().is_none());
    let ours = asked["id"].as_str().unwrap().to_string();
    assert!(ours.starts_with(SERVER_REQUEST_PREFIX), "{ours}");
    // Another session's answer (a guess at the id) is dropped, the question kept.
    for from in ["t ", "x ", "s 1x"] {
        routes.handle_op(
            Op::Answer {
                id: ours.clone(),
                response: json!({"result": {"forged": true}}),
                from: from.into(),
            },
            Instant::now(),
        );
        assert!(
            written(&mut routes).is_empty(),
            "an answer from `{from}` went through"
        );
    }
    routes.handle_op(
        Op::Answer {
            id: ours,
            response: json!({"result": {"ok": true}}),
            from: "s ".into(),
        },
        Instant::now(),
    );
    let answered = written(&mut routes);
    assert_eq!(
        answered,
        [json!({"jsonrpc": "2.0", "id": {"weird": 1}, "result": {"ok": true}})]
    );
}

#[test]
fn a_question_its_call_never_answered_is_failed_towards_the_child_when_the_call_ends() {
    let mut routes = table();
    let mut asking = call(&mut routes, None, true, "s 1");
    written(&mut routes);
    child(
        &mut routes,
        json!({"jsonrpc": "2.0", "id": 41, "method": "elicitation/create"}),
    );
    assert!(asking.events.as_mut().unwrap().try_recv().is_some());
    child(
        &mut routes,
        json!({"jsonrpc": "2.0", "id": 1, "result": {}}),
    );
    assert!(asking.reply.try_recv().is_ok());
    let sent = written(&mut routes);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["id"], 41);
    assert_eq!(sent[0]["error"]["code"], INTERNAL_ERROR);
    assert!(routes.asked.is_empty(), "nothing is kept for it");
}

#[test]
fn a_server_request_with_no_single_call_to_answer_it_is_refused_and_roots_list_answered() {
    let mut routes = table();
    let _a = call(&mut routes, None, true, "s 1");
    let _b = call(&mut routes, None, true, "t 1");
    written(&mut routes);
    child(
        &mut routes,
        json!({"jsonrpc": "2.0", "id": 9, "method": "elicitation/create"}),
    );
    child(
        &mut routes,
        json!({"jsonrpc": "2.0", "id": 10, "method": "roots/list"}),
    );
    let sent = written(&mut routes);
    assert_eq!(sent[0]["id"], 9);
    assert_eq!(sent[0]["error"]["code"], METHOD_NOT_FOUND);
    assert_eq!(
        sent[1],
        json!({"jsonrpc": "2.0", "id": 10, "result": {"roots": []}})
    );
    assert!(
        routes.unprompted_roots.load(Ordering::Relaxed),
        "kept for status to warn about"
    );
}

#[test]
fn only_calls_that_can_cause_server_requests_are_candidates_for_them() {
    let mut routes = table();
    // Another client that could answer, with only a list in flight.
    let mut listing = call_of(&mut routes, "resources/list", None, true, "t 1");
    let mut prompting = call_of(&mut routes, "prompts/get", None, true, "u 1");
    written(&mut routes);
    child(
        &mut routes,
        json!({"jsonrpc": "2.0", "id": 9, "method": "sampling/createMessage"}),
    );
    assert!(written(&mut routes).is_empty(), "not refused");
    assert!(prompting.events.as_mut().unwrap().try_recv().is_some());
    assert!(listing.events.as_mut().unwrap().try_recv().is_none());
}

#[test]
fn the_end_of_a_session_cancels_its_calls_only_and_tells_the_child() {
    let mut routes = table();
    let mut mine = [
        call(&mut routes, None, false, "s1 1"),
        call(&mut routes, None, false, "s1 2"),
    ];
    let mut theirs = call(&mut routes, None, false, "s2 1");
    written(&mut routes);
    routes.handle_op(
        Op::CancelAll {
            prefix: "s1 ".into(),
            reason: "the session ended".into(),
        },
        Instant::now(),
    );
    let mut cancelled: Vec<Value> = written(&mut routes)
        .iter()
        .map(|m| {
            assert_eq!(m["method"], "notifications/cancelled");
            m["params"]["requestId"].clone()
        })
        .collect();
    cancelled.sort_by_key(|v| v.as_u64());
    assert_eq!(cancelled, [json!(1), json!(2)]);
    for c in &mut mine {
        assert_eq!(
            c.reply.try_recv().unwrap()["error"]["code"],
            REQUEST_CANCELLED
        );
    }
    child(
        &mut routes,
        json!({"jsonrpc": "2.0", "id": 3, "result": {}}),
    );
    assert!(theirs.reply.try_recv().is_ok());
}

#[test]
fn a_call_past_its_deadline_fails_with_request_timeout_and_the_child_is_told() {
    let mut routes = table();
    let start = Instant::now();
    let mut c = call(&mut routes, None, false, "s 1");
    written(&mut routes);
    let due = routes.next_deadline().unwrap();
    routes.expire(due - Duration::from_millis(1));
    assert!(c.reply.try_recv().is_err());
    routes.expire(start + Duration::from_secs(2));
    assert_eq!(
        c.reply.try_recv().unwrap()["error"]["code"],
        REQUEST_TIMEOUT
    );
    assert_eq!(written(&mut routes)[0]["method"], "notifications/cancelled");
    assert!(routes.next_deadline().is_none());
}

#[test]
fn ids_of_oversized_answers_are_read_from_either_end() {
    let head = br#"{"jsonrpc":"2.0","id":17,"result":{"text":"aaaa"#;
    assert_eq!(oversized_response_id(head, b""), Some(17));
    let head = br#"{"result":{"id":5,"text":"aaa"#;
    assert_eq!(
        oversized_response_id(head, br#"aaa"}},"jsonrpc":"2.0","id": 9}"#),
        Some(9)
    );
    let request = br#"{"jsonrpc":"2.0","id":3,"method":"sampling/createMessage","params":"#;
    assert_eq!(oversized_response_id(request, b"}"), None);
    assert_eq!(oversized_response_id(b"garbage", b"garbage"), None);
}

#[test]
fn our_ids_are_integers_however_they_come_back() {
    assert_eq!(our_id(&json!(3)), Some(3));
    assert_eq!(our_id(&json!(3.0)), Some(3));
    assert_eq!(our_id(&json!("3")), Some(3));
    assert_eq!(our_id(&json!(3.5)), None);
    assert_eq!(our_id(&json!(-1)), None);
    assert_eq!(our_id(&json!(null)), None);
    assert_eq!(our_id(&json!({"id": 3})), None);
}
