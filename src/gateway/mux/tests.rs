//! The mux task over in-memory pipes: a scripted child, no process. The routing
//! table alone is tested in `routes.rs`.

use std::sync::Mutex;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};

use serde_json::json;

use super::*;

/// The child's side of the pipes: what the mux wrote, and where to answer.
struct Child {
    requests: tokio::io::Lines<BufReader<DuplexStream>>,
    out: DuplexStream,
}

impl Child {
    async fn next_request(&mut self) -> Value {
        let line = self.requests.next_line().await.unwrap().unwrap();
        serde_json::from_str(&line).unwrap()
    }

    async fn write(&mut self, bytes: &[u8]) {
        self.out.write_all(bytes).await.unwrap();
    }
}

fn mux_with(max: usize) -> (Upstream, Child, Arc<Mutex<Vec<String>>>) {
    let (stdin, child_in) = tokio::io::duplex(1 << 20);
    let (child_out, stdout) = tokio::io::duplex(1 << 20);
    let noise = Arc::new(Mutex::new(Vec::new()));
    let on_noise: OnNoise = {
        let noise = Arc::clone(&noise);
        Arc::new(move |line: &str| noise.lock().unwrap().push(line.to_string()))
    };
    let limits = Limits {
        max_message: max,
        call_timeout: Duration::from_secs(1),
    };
    let upstream = start(
        &crate::gateway::owned::Scope::new(),
        stdin,
        stdout,
        limits,
        Arc::new(|_: &Value| {}),
        on_noise,
    );
    let child = Child {
        requests: BufReader::new(child_in).lines(),
        out: child_out,
    };
    (upstream, child, noise)
}

#[tokio::test]
async fn a_line_of_invalid_utf8_is_logged_and_the_next_answer_still_arrives() {
    let (upstream, mut child, noise) = mux_with(MAX_MESSAGE);
    let call = upstream.start_request("tools/list", None, CallOptions::default());
    let answer = call.await.unwrap();
    let id = child.next_request().await["id"].clone();
    child.write(b"\xff\xfe not utf-8 \xc3\x28\n").await;
    child
        .write(
            format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{{\"ok\":true}}}}\n").as_bytes(),
        )
        .await;
    let response = answer.await.unwrap();
    assert_eq!(response["result"]["ok"], json!(true));
    assert_eq!(
        noise.lock().unwrap().len(),
        1,
        "the bad line is logged once"
    );
}

#[tokio::test]
async fn answers_with_ids_written_back_as_float_or_string_reach_their_call() {
    let (upstream, mut child, _) = mux_with(MAX_MESSAGE);
    let first = upstream
        .start_request("a", None, CallOptions::default())
        .await
        .unwrap();
    let second = upstream
        .start_request("b", None, CallOptions::default())
        .await
        .unwrap();
    let a = child.next_request().await["id"].as_u64().unwrap();
    let b = child.next_request().await["id"].as_u64().unwrap();
    // Out of order, one id as `N.0`, the other as a string.
    child
        .write(format!("{{\"jsonrpc\":\"2.0\",\"id\":\"{b}\",\"result\":\"B\"}}\n").as_bytes())
        .await;
    child
        .write(format!("{{\"jsonrpc\":\"2.0\",\"id\":{a}.0,\"result\":\"A\"}}\n").as_bytes())
        .await;
    assert_eq!(second.await.unwrap()["result"], json!("B"));
    assert_eq!(first.await.unwrap()["result"], json!("A"));
}

#[tokio::test]
async fn an_oversized_answer_fails_its_call_only() {
    let (upstream, mut child, noise) = mux_with(4096);
    let big = upstream
        .start_request("big", None, CallOptions::default())
        .await
        .unwrap();
    let small = upstream
        .start_request("small", None, CallOptions::default())
        .await
        .unwrap();
    let big_id = child.next_request().await["id"].clone();
    let small_id = child.next_request().await["id"].clone();
    // The id after the result, as JavaScript's JSON.stringify of {result, jsonrpc, id} writes it.
    let text = "x".repeat(100_000);
    child
        .write(
            format!("{{\"result\":{{\"text\":\"{text}\"}},\"jsonrpc\":\"2.0\",\"id\":{big_id}}}\n")
                .as_bytes(),
        )
        .await;
    child
        .write(
            format!("{{\"jsonrpc\":\"2.0\",\"id\":{small_id},\"result\":\"fine\"}}\n").as_bytes(),
        )
        .await;
    let failed = big.await.unwrap();
    assert_eq!(failed["error"]["code"], json!(INTERNAL_ERROR), "{failed}");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("larger than"),
        "{failed}"
    );
    assert_eq!(small.await.unwrap()["result"], json!("fine"));
    assert!(noise.lock().unwrap()[0].contains("dropped a message of"));
}

#[tokio::test]
async fn the_end_of_the_childs_stdout_fails_calls_and_closes_the_upstream() {
    let (upstream, mut child, _) = mux_with(MAX_MESSAGE);
    let call = upstream
        .start_request("x", None, CallOptions::default())
        .await
        .unwrap();
    child.next_request().await;
    drop(child);
    assert!(call.await.is_err(), "the call sees the child gone");
    upstream.closed().await;
    assert!(upstream.request("y", None).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn a_call_unanswered_past_call_timeout_fails_and_the_child_is_told() {
    let (upstream, mut child, _) = mux_with(MAX_MESSAGE);
    let answer = upstream
        .start_request("tools/call", None, CallOptions::default())
        .await
        .unwrap();
    let id = child.next_request().await["id"].clone();
    // Nothing answers: the paused clock runs on to the deadline.
    let failed = answer.await.unwrap();
    assert_eq!(failed["error"]["code"], json!(REQUEST_TIMEOUT), "{failed}");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1s (call_timeout)")
    );
    let cancelled = child.next_request().await;
    assert_eq!(cancelled["method"], "notifications/cancelled");
    assert_eq!(cancelled["params"]["requestId"], id);
    // A late answer is dropped; the next call works.
    child
        .write(format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":1}}\n").as_bytes())
        .await;
    let next = upstream
        .start_request("ping", None, CallOptions::default())
        .await
        .unwrap();
    let next_id = child.next_request().await["id"].clone();
    child
        .write(format!("{{\"jsonrpc\":\"2.0\",\"id\":{next_id},\"result\":2}}\n").as_bytes())
        .await;
    assert_eq!(next.await.unwrap()["result"], 2);
}

#[tokio::test(start_paused = true)]
async fn progress_starts_the_wait_over() {
    let (upstream, mut child, _) = mux_with(MAX_MESSAGE);
    let (events, mut seen) = crate::gateway::queue::channel(8);
    let options = CallOptions {
        events: Some(events),
        ..CallOptions::default()
    };
    let params = json!({"_meta": {"progressToken": "mine"}});
    let mut answer = upstream
        .start_request("tools/call", Some(params), options)
        .await
        .unwrap();
    let request = child.next_request().await;
    let (id, token) = (
        request["id"].clone(),
        request["params"]["_meta"]["progressToken"].clone(),
    );
    for _ in 0..3 {
        tokio::time::advance(Duration::from_millis(700)).await;
        let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress",
            "params": {"progressToken": token, "progress": 1}});
        child.write(format!("{progress}\n").as_bytes()).await;
        let event = seen.recv().await.unwrap();
        assert_eq!(event["params"]["progressToken"], "mine");
    }
    // 2.1 s after the call, more than its 1 s timeout, it still waits.
    assert!(matches!(
        answer.try_recv(),
        Err(tokio::sync::oneshot::error::TryRecvError::Empty)
    ));
    child
        .write(format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":\"done\"}}\n").as_bytes())
        .await;
    assert_eq!(answer.await.unwrap()["result"], "done");
}
