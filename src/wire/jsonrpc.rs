//! JSON-RPC 2.0 as clients send it: the one message of a body, what kind it is
//! (request, notification, response, or none: -32600), and its id kept exactly as
//! the client wrote it.
//!
//! Ids go through the gateway as [`Value`]s, and a JSON number that is not an `i64`
//! or `u64` (`1.5`, `1e2`, `18446744073709551616`) would come back from an `f64`
//! changed. Such an id is carried as a marked string holding the client's own text
//! ([`parse`]), and written back as that text when the message leaves for the client
//! ([`to_text`]). serde_json's `arbitrary_precision` would keep numbers exact too, but
//! for every number of every message (the child's as well), and it breaks
//! deserializing numbers through untagged or flattened types in any crate of the build.

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// The body is not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// JSON, but not a JSON-RPC message (or a request this gateway will not take).
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
/// The gateway could not get an answer: no instance runs, it ended, a client left.
pub const INTERNAL_ERROR: i64 = -32603;
/// A call its client cancelled (LSP's code, which the MCP SDKs use too).
pub const REQUEST_CANCELLED: i64 = -32800;
/// A call outlived its `call_timeout` (MCP's own code for a request that timed out).
pub const REQUEST_TIMEOUT: i64 = -32001;

/// Starts the string that stands for a numeric id the client wrote as `rest`.
/// The requests during which a server may ask its client something (sampling,
/// elicitation, roots): only a call of one of these can be the origin of a server
/// request, whatever its client can answer.
pub const CAN_CAUSE_SERVER_REQUESTS: [&str; 3] = ["tools/call", "prompts/get", "resources/read"];

/// Whether a call of `method` can be the origin of a server request.
pub fn can_cause_server_requests(method: &str) -> bool {
    CAN_CAUSE_SERVER_REQUESTS.contains(&method)
}

const RAW_ID: &str = "\u{1}mcpctl-raw-id:";

/// What a client's message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
    Notification,
    Response,
}

/// Why a body was refused: the JSON-RPC error code and message, and the id to
/// answer with (the message's own when it has a usable one).
#[derive(Debug, PartialEq)]
pub struct Refusal {
    pub code: i64,
    pub message: &'static str,
    pub id: Value,
}

/// The body as one message: ids kept as sent, its kind checked.
pub fn parse(body: &[u8]) -> Result<(Value, Kind), Refusal> {
    let refuse = |code, message| Refusal {
        code,
        message,
        id: Value::Null,
    };
    let mut msg = match serde_json::from_slice::<Value>(body) {
        Ok(msg) if msg.is_object() => msg,
        Ok(_) => {
            return Err(refuse(
                INVALID_REQUEST,
                "expected one JSON-RPC message (batches are not supported)",
            ));
        }
        Err(_) => return Err(refuse(PARSE_ERROR, "parse error: the body is not JSON")),
    };
    let marked = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .is_some_and(|s| s.starts_with(RAW_ID))
    };
    if marked(msg.get("id")) || marked(msg.pointer("/params/requestId")) {
        // The gateway's own mark: a client's string must never turn into a number.
        return Err(refuse(INVALID_REQUEST, "invalid id"));
    }
    keep_exact_ids(body, &mut msg);
    let kind = classify(&msg).map_err(|message| Refusal {
        code: INVALID_REQUEST,
        message,
        id: msg
            .get("id")
            .filter(|id| is_id(id))
            .cloned()
            .unwrap_or(Value::Null),
    })?;
    Ok((msg, kind))
}

fn is_id(id: &Value) -> bool {
    id.is_string() || id.is_number()
}

/// The one rule of what a message is, from its shape: a method with an id is a
/// request, a method without one a notification, an id with a result or an error (no
/// method) a response. (Whether the fields have the right types is the caller's.)
pub fn kind_of(has_method: bool, has_id: bool, answers: bool) -> Option<Kind> {
    match (has_method, has_id) {
        (true, true) => Some(Kind::Request),
        (true, false) => Some(Kind::Notification),
        (false, true) if answers => Some(Kind::Response),
        (false, _) => None,
    }
}

/// What kind of message `msg` is, or why it is none.
pub fn classify(msg: &Value) -> Result<Kind, &'static str> {
    if msg.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err("not JSON-RPC 2.0: \"jsonrpc\": \"2.0\" is missing");
    }
    let (method, id) = (msg.get("method"), msg.get("id"));
    if method.is_some_and(|m| !m.is_string()) {
        return Err("method must be a string");
    }
    let (result, error) = (msg.get("result"), msg.get("error"));
    match kind_of(
        method.is_some(),
        id.is_some(),
        result.is_some() || error.is_some(),
    ) {
        Some(Kind::Request) if !id.is_some_and(is_id) => {
            Err("a request's id must be a string or a number")
        }
        Some(Kind::Response) if !id.is_some_and(|id| is_id(id) || id.is_null()) => {
            Err("neither a request, a notification nor a response")
        }
        Some(Kind::Response) if result.is_some() && error.is_some() => {
            Err("a response has exactly one of result and error")
        }
        Some(kind) => Ok(kind),
        None if id.is_some() => Err("a response has exactly one of result and error"),
        None => Err("neither a request, a notification nor a response"),
    }
}

/// Replaces the numeric ids an `f64` would change (the message's own, and the one a
/// `notifications/cancelled` names) by marked strings holding the text as sent.
fn keep_exact_ids(body: &[u8], msg: &mut Value) {
    #[derive(Deserialize)]
    struct Ids<'a> {
        #[serde(borrow, default)]
        id: Option<&'a RawValue>,
        #[serde(borrow, default)]
        params: Option<Params<'a>>,
    }
    #[derive(Deserialize)]
    struct Params<'a> {
        #[serde(borrow, default, rename = "requestId")]
        request_id: Option<&'a RawValue>,
    }
    let inexact = |v: Option<&Value>| v.is_some_and(Value::is_f64);
    let id_inexact = inexact(msg.get("id"));
    let request_inexact = inexact(msg.pointer("/params/requestId"));
    if !id_inexact && !request_inexact {
        return;
    }
    let Ok(ids) = serde_json::from_slice::<Ids<'_>>(body) else {
        return;
    };
    if id_inexact && let Some(raw) = ids.id {
        msg["id"] = Value::String(format!("{RAW_ID}{}", raw.get()));
    }
    if request_inexact
        && let Some(raw) = ids.params.and_then(|p| p.request_id)
        && let Some(params) = msg.get_mut("params")
    {
        params["requestId"] = Value::String(format!("{RAW_ID}{}", raw.get()));
    }
}

/// The client's own text of an id that [`parse`] kept, when `id` is one.
fn raw_number(id: &Value) -> Option<&str> {
    let raw = id.as_str()?.strip_prefix(RAW_ID)?;
    // Only a JSON number is ever spliced into a message.
    serde_json::from_str::<serde_json::Number>(raw)
        .is_ok()
        .then_some(raw)
}

/// `msg` as the client gets it: its id written exactly as the client sent it.
pub fn to_text(msg: &Value) -> String {
    let Some((raw, rest)) = msg.as_object().and_then(|m| {
        let raw = raw_number(m.get("id")?)?;
        let mut rest = m.clone();
        rest.remove("id");
        Some((raw, rest))
    }) else {
        return msg.to_string();
    };
    let rest = Value::Object(rest).to_string();
    match rest.strip_prefix('{') {
        Some("}") | None => format!("{{\"id\":{raw}}}"),
        Some(fields) => format!("{{\"id\":{raw},{fields}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kind(text: &str) -> Result<Kind, Refusal> {
        parse(text.as_bytes()).map(|(_, k)| k)
    }

    #[test]
    fn messages_are_requests_notifications_or_responses() {
        assert_eq!(
            kind(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#),
            Ok(Kind::Request)
        );
        assert_eq!(
            kind(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            Ok(Kind::Notification)
        );
        assert_eq!(
            kind(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#),
            Ok(Kind::Response)
        );
        assert_eq!(
            kind(r#"{"jsonrpc":"2.0","id":null,"error":{"code":1,"message":"x"}}"#),
            Ok(Kind::Response)
        );
    }

    #[test]
    fn anything_else_is_an_invalid_request() {
        for text in [
            r#"{"jsonrpc":"2.0"}"#,
            r#"{"method":42}"#,
            r#"{"jsonrpc":"2.0","method":42}"#,
            r#"{"jsonrpc":"2.0","id":1}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{}}"#,
            r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":true,"method":"ping"}"#,
            r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
            r#"{"id":1,"method":"ping"}"#,
            "[]",
            "3",
        ] {
            let refusal = kind(text).expect_err(text);
            assert_eq!(refusal.code, INVALID_REQUEST, "{text}");
        }
        assert_eq!(kind("{nope").expect_err("not JSON").code, PARSE_ERROR);
        // The refusal answers with the message's id when it has a usable one.
        assert_eq!(
            kind(r#"{"jsonrpc":"2.0","id":7,"method":3}"#)
                .expect_err("bad method")
                .id,
            json!(7)
        );
    }

    #[test]
    fn ids_come_back_exactly_as_sent() {
        for id in [
            r#""s""#,
            "7",
            "-3",
            "18446744073709551616",
            "-18446744073709551617",
            "1.5",
            "1e2",
            "1.0",
            "0.1000000000000000055511151231257827",
        ] {
            let text = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
            let (msg, _) = parse(text.as_bytes()).expect(id);
            let reply = json!({"jsonrpc": "2.0", "id": msg["id"], "result": {}});
            assert_eq!(
                to_text(&reply),
                format!(r#"{{"id":{id},"jsonrpc":"2.0","result":{{}}}}"#),
                "{id}"
            );
        }
    }

    #[test]
    fn a_cancellation_names_the_id_as_sent() {
        let text =
            r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1e2}}"#;
        let (cancel, _) = parse(text.as_bytes()).expect("a notification");
        let call = r#"{"jsonrpc":"2.0","id":1e2,"method":"tools/call"}"#;
        let (call, _) = parse(call.as_bytes()).expect("a request");
        assert_eq!(cancel["params"]["requestId"], call["id"]);
    }

    #[test]
    fn a_marked_string_from_a_client_is_never_spliced() {
        let forged = format!(
            r#"{{"jsonrpc":"2.0","id":"{}1,\"x\":2","method":"ping"}}"#,
            "\\u0001mcpctl-raw-id:"
        );
        assert_eq!(kind(&forged).expect_err("forged").code, INVALID_REQUEST);
        let reply = json!({"id": format!("{RAW_ID}1,\"x\":2"), "result": {}});
        assert!(
            to_text(&reply).starts_with("{\"id\":\"\\u0001"),
            "{}",
            to_text(&reply)
        );
    }
}
