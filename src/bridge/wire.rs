//! PURE. What the stdio bridge reads of a message: its kind, its id as written, the
//! headers a 2026-07-28 request must carry, the errors it answers itself, and the
//! events of an SSE answer. The body itself is forwarded byte for byte.

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::wire::era;
pub use crate::wire::jsonrpc::{INVALID_REQUEST, PARSE_ERROR};
/// A server error of the bridge's own: the server cannot be reached.
pub const UNAVAILABLE: i64 = -32000;

/// One message a client wrote on stdin.
#[derive(Debug, PartialEq)]
pub struct Message {
    pub kind: Kind,
    /// The method of a request or notification.
    pub method: Option<String>,
    /// Headers for a 2026-07-28 request (`MCP-Protocol-Version`, `Mcp-Method`,
    /// `Mcp-Name`); empty for everything else.
    pub modern_headers: Vec<(&'static str, String)>,
}

#[derive(Debug, PartialEq)]
pub enum Kind {
    /// A request, with its id exactly as the client wrote it.
    Request {
        id: String,
    },
    Notification,
    Response,
}

impl Message {
    pub fn is_initialize(&self) -> bool {
        matches!(self.kind, Kind::Request { .. }) && self.method.as_deref() == Some("initialize")
    }

    pub fn id(&self) -> Option<&str> {
        match &self.kind {
            Kind::Request { id } => Some(id),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    /// `Some("null")` for an explicit `"id": null` (a plain `Option` would read that as
    /// no id at all, and such a request would go unanswered as a notification).
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(default)]
    method: Option<Value>,
    #[serde(default)]
    params: Option<Value>,
    #[serde(default)]
    result: Option<&'a RawValue>,
    #[serde(default)]
    error: Option<&'a RawValue>,
}

/// A member that is present, whatever its value (`null` included).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Why a line is not a message: the code and text of the error to answer with.
#[derive(Debug, PartialEq)]
pub struct Refused {
    pub code: i64,
    pub message: String,
    /// The id, when one could be read.
    pub id: Option<String>,
}

/// Reads one line of the client's.
pub fn parse(line: &[u8]) -> Result<Message, Refused> {
    let envelope: Envelope<'_> = serde_json::from_slice(line).map_err(|e| Refused {
        code: if e.is_data() {
            INVALID_REQUEST
        } else {
            PARSE_ERROR
        },
        message: format!("not a JSON-RPC message: {e}"),
        id: None,
    })?;
    let id = envelope.id.map(|raw| raw.get().to_string());
    // MCP: a request's id is a string or a number, never null; answered (with id
    // null) rather than sent on as a notification nobody answers.
    if id.as_deref() == Some("null") && envelope.method.is_some() {
        return Err(Refused {
            code: INVALID_REQUEST,
            message: "a request's id must be a string or a number, not null".into(),
            id,
        });
    }
    // A response with a null id (to a message the client could not read) is still a
    // response (never answered); it has no id to keep.
    let had_id = id.is_some();
    let id = id.filter(|id| id != "null");
    let method = match envelope.method {
        None => None,
        Some(Value::String(m)) => Some(m),
        Some(_) => {
            return Err(Refused {
                code: INVALID_REQUEST,
                message: "the method must be a string".into(),
                id,
            });
        }
    };
    let answers = envelope.result.is_some() || envelope.error.is_some();
    let kind = match (
        crate::wire::jsonrpc::kind_of(method.is_some(), id.is_some() || had_id, answers),
        &id,
    ) {
        (Some(crate::wire::jsonrpc::Kind::Request), Some(id)) => Kind::Request { id: id.clone() },
        (Some(crate::wire::jsonrpc::Kind::Notification), _) => Kind::Notification,
        (Some(crate::wire::jsonrpc::Kind::Response), _) => Kind::Response,
        _ => {
            return Err(Refused {
                code: INVALID_REQUEST,
                message: "neither a request, a notification nor a response".into(),
                id,
            });
        }
    };
    let modern_headers = match (&kind, &method, &envelope.params) {
        (Kind::Request { .. }, Some(method), Some(params)) => era::routing_headers(method, params),
        _ => Vec::new(),
    };
    Ok(Message {
        kind,
        method,
        modern_headers,
    })
}

/// A JSON-RPC error answer to `id` (written as the client wrote it; `null` if none).
pub fn error_reply(id: Option<&str>, code: i64, message: &str) -> String {
    format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":{},\"error\":{{\"code\":{code},\"message\":{}}}}}",
        id.unwrap_or("null"),
        Value::from(message)
    )
}

/// The error a gateway's refusal (`body`, a JSON-RPC error whose id is `null`: it
/// never read the request) carries, as the answer to the request `id`; `None` when
/// `body` is no such error (an answer to `id` itself is passed on as it is).
pub fn refusal_for(id: &str, body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let error = v.get("error")?;
    if !v.get("id").is_none_or(Value::is_null) {
        return None;
    }
    let code = error
        .get("code")
        .and_then(Value::as_i64)
        .unwrap_or(UNAVAILABLE);
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("refused by the gateway");
    Some(error_reply(Some(id), code, message))
}

/// The `id` of a request too large to read whole, as written, from its first bytes
/// (before `params`) or its last (after them); `None` when neither shows one.
pub fn cut_request_id(head: &[u8], tail: &[u8]) -> Option<String> {
    let find = |text: &[u8], needle: &[u8]| text.windows(needle.len()).position(|w| w == needle);
    let before_params = find(head, b"\"params\"").map_or(head, |at| &head[..at]);
    if let Some(at) = find(before_params, b"\"id\"") {
        return id_token(&before_params[at + 4..]);
    }
    let at = tail.windows(4).rposition(|w| w == b"\"id\"")?;
    id_token(&tail[at + 4..])
}

/// The JSON number or string after `"id"` in `rest` (`: 7,...`), as written.
fn id_token(rest: &[u8]) -> Option<String> {
    let rest = rest
        .trim_ascii_start()
        .strip_prefix(b":")?
        .trim_ascii_start();
    let end = if rest.first() == Some(&b'"') {
        let mut i = 1;
        loop {
            match rest.get(i)? {
                b'\\' => i += 2,
                b'"' => break i + 1,
                _ => i += 1,
            }
        }
    } else {
        rest.iter()
            .take_while(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
            .count()
    };
    let token = std::str::from_utf8(rest.get(..end)?).ok()?;
    // Only a whole JSON value is an id to answer with.
    serde_json::from_str::<Value>(token)
        .ok()
        .filter(|v| v.is_number() || v.is_string())
        .map(|_| token.to_string())
}

/// Whether `body` is a JSON-RPC message (what a gateway's error status may carry).
pub fn is_message(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body).is_ok_and(|v| v.get("jsonrpc").is_some())
}

/// `result.protocolVersion` of an `initialize` answer.
pub fn negotiated_version(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.pointer("/result/protocolVersion")?
        .as_str()
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_with_a_null_id_is_a_response_never_answered() {
        for line in [
            br#"{"jsonrpc":"2.0","id":null,"result":{}}"#.as_slice(),
            br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}"#,
        ] {
            let m = parse(line).expect("a response");
            assert_eq!(m.kind, Kind::Response);
        }
        // A request with a null id is still refused.
        assert!(parse(br#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#).is_err());
    }

    #[test]
    fn requests_keep_their_ids_as_written() {
        let m = parse(br#"{"jsonrpc":"2.0","id":18446744073709551616,"method":"ping"}"#).unwrap();
        assert_eq!(m.id(), Some("18446744073709551616"));
        let m =
            parse(br#"{"jsonrpc":"2.0","id":"a b","method":"initialize","params":{}}"#).unwrap();
        assert!(m.is_initialize());
        assert_eq!(
            error_reply(m.id(), UNAVAILABLE, "no \"daemon\""),
            r#"{"jsonrpc":"2.0","id":"a b","error":{"code":-32000,"message":"no \"daemon\""}}"#
        );
    }

    #[test]
    fn a_request_with_a_null_id_is_refused_with_id_null() {
        let refused = parse(br#"{"jsonrpc":"2.0","id":null,"method":"tools/list"}"#).unwrap_err();
        assert_eq!(refused.code, INVALID_REQUEST);
        assert_eq!(
            error_reply(refused.id.as_deref(), refused.code, "x"),
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"x"}}"#
        );
        // Without an id at all it is a notification, as before.
        let n = parse(br#"{"jsonrpc":"2.0","method":"tools/list"}"#).unwrap();
        assert_eq!(n.kind, Kind::Notification);
    }

    #[test]
    fn kinds_and_refusals() {
        let n = parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        assert_eq!(n.kind, Kind::Notification);
        let r = parse(br#"{"jsonrpc":"2.0","id":3,"result":{}}"#).unwrap();
        assert_eq!(r.kind, Kind::Response);
        assert_eq!(parse(b"{oops").unwrap_err().code, PARSE_ERROR);
        assert_eq!(parse(b"[1]").unwrap_err().code, INVALID_REQUEST);
        let bad = parse(br#"{"jsonrpc":"2.0","id":7,"method":42}"#).unwrap_err();
        assert_eq!((bad.code, bad.id.as_deref()), (INVALID_REQUEST, Some("7")));
        assert_eq!(
            parse(br#"{"jsonrpc":"2.0","id":7}"#).unwrap_err().code,
            INVALID_REQUEST
        );
    }

    #[test]
    fn modern_requests_get_their_routing_headers() {
        let m = parse(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\u00e9cho","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
        )
        .unwrap();
        assert_eq!(
            m.modern_headers,
            vec![
                ("mcp-protocol-version", "2026-07-28".to_string()),
                ("mcp-method", "tools/call".to_string()),
                ("mcp-name", "=?base64?w6ljaG8=?=".to_string()),
            ]
        );
        let legacy =
            parse(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#)
                .unwrap();
        assert!(legacy.modern_headers.is_empty());
    }

    #[test]
    fn a_gateway_refusal_answers_the_request_it_refused() {
        let refusal =
            br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"unauthorized"}}"#;
        assert_eq!(
            refusal_for("\"a\"", refusal).as_deref(),
            Some(r#"{"jsonrpc":"2.0","id":"a","error":{"code":-32001,"message":"unauthorized"}}"#)
        );
        assert_eq!(
            refusal_for("3", br#"{"jsonrpc":"2.0","id":3,"error":{}}"#),
            None
        );
        assert_eq!(refusal_for("3", b"Forbidden"), None);
    }

    #[test]
    fn the_id_of_a_cut_request_is_read_from_either_end() {
        let head = br#"{"jsonrpc":"2.0","id": "x\"y","method":"tools/call","params":{"a":"zzzz"#;
        assert_eq!(cut_request_id(head, b"").as_deref(), Some(r#""x\"y""#));
        let head = br#"{"jsonrpc":"2.0","method":"tools/call","params":{"id":1,"a":"zzz"#;
        assert_eq!(
            cut_request_id(head, br#"zzz"}},"id":42}"#).as_deref(),
            Some("42")
        );
        assert_eq!(cut_request_id(br#"{"params":{"a":"zz"#, b"zz"), None);
        assert_eq!(cut_request_id(br#"{"id":"unterminated"#, b""), None);
    }

    #[test]
    fn the_negotiated_version_is_read_from_the_answer() {
        assert_eq!(
            negotiated_version(
                br#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-11-25"}}"#
            ),
            Some("2025-11-25".into())
        );
        assert!(is_message(br#"{"jsonrpc":"2.0","id":1,"error":{}}"#));
        assert!(!is_message(b"Forbidden"));
    }
}
