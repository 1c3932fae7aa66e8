//! PURE. What tracing reads of a message and writes into it: a request's method, id,
//! target (tool or prompt name) and the trace context a client put in
//! `params._meta` (`traceparent`, `tracestate`, the W3C names the semantic
//! conventions for MCP use); the gateway's own context written there in their place,
//! every other `_meta` key and every other member kept as sent; and whether an answer
//! is an error.
//!
//! Read with borrowing structs that skip what they do not name, so a peek costs far
//! less than the full parse the gateway's routes make afterwards.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

/// The `_meta` key of the W3C trace context.
pub const TRACEPARENT: &str = "traceparent";
/// The `_meta` key of the W3C vendor trace state.
pub const TRACESTATE: &str = "tracestate";

/// A request as tracing sees it.
#[derive(Debug, Default, Deserialize)]
pub struct Peek<'a> {
    #[serde(borrow)]
    pub method: Option<Cow<'a, str>>,
    /// As sent: a number stays a number, a string keeps its quotes.
    #[serde(borrow)]
    pub id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub params: Option<Params<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Params<'a> {
    /// A tool's or prompt's name.
    #[serde(borrow)]
    pub name: Option<Cow<'a, str>>,
    /// A resource's URI.
    #[serde(borrow)]
    pub uri: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "_meta")]
    pub meta: Option<Meta<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Meta<'a> {
    #[serde(borrow)]
    pub traceparent: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub tracestate: Option<Cow<'a, str>>,
}

impl<'a> Peek<'a> {
    /// One JSON-RPC request (a method and an id); `None` for anything else (a
    /// notification, an answer, a batch, not JSON).
    pub fn request(body: &'a [u8]) -> Option<Self> {
        let peek: Self = serde_json::from_slice(body).ok()?;
        (peek.method.is_some() && peek.id.is_some()).then_some(peek)
    }

    pub fn method(&self) -> &str {
        self.method.as_deref().unwrap_or_default()
    }

    /// The id as text: a string's characters, a number's digits.
    pub fn id_text(&self) -> String {
        let Some(raw) = self.id else {
            return String::new();
        };
        let text = raw.get();
        if !text.starts_with('"') {
            return text.to_string();
        }
        match serde_json::from_str::<Cow<'_, str>>(text) {
            Ok(text) => text.into_owned(),
            Err(_) => text.to_string(),
        }
    }

    /// `params.name`, for the methods whose target it is.
    pub fn target(&self) -> Option<&str> {
        match self.method() {
            "tools/call" | "prompts/get" => self.params.as_ref()?.name.as_deref(),
            _ => None,
        }
    }

    pub fn uri(&self) -> Option<&str> {
        self.params.as_ref()?.uri.as_deref()
    }

    /// `params._meta.traceparent` and `tracestate`.
    pub fn meta_context(&self) -> (Option<&str>, Option<&str>) {
        let meta = self.params.as_ref().and_then(|p| p.meta.as_ref());
        (
            meta.and_then(|m| m.traceparent.as_deref()),
            meta.and_then(|m| m.tracestate.as_deref()),
        )
    }
}

/// `body` (one request) with `params._meta.traceparent` (and `tracestate`, or none)
/// set to the given context: the other `_meta` keys, the other members of `params`
/// and of the message are kept, their values byte for byte. `None` when the body is
/// not one JSON object, or its `params` or `_meta` is not an object.
pub fn with_context(body: &[u8], traceparent: &str, tracestate: Option<&str>) -> Option<Vec<u8>> {
    inserted(body, traceparent, tracestate).or_else(|| rebuilt(body, traceparent, tracestate))
}

/// The common case, cheaply: no context in `_meta` yet, so ours is inserted where
/// `_meta` (or `params`) opens and every other byte stays where it was. `None` leaves
/// it to [`rebuilt`] (a context to replace, a member named twice, not objects).
fn inserted(body: &[u8], traceparent: &str, tracestate: Option<&str>) -> Option<Vec<u8>> {
    // `null` is a value here, not an absence: a member `null` must be replaced (by
    // `rebuilt`), never followed by a second member of the same name.
    fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
        <&RawValue>::deserialize(d).map(Some)
    }
    #[derive(Deserialize)]
    struct Message<'a> {
        #[serde(borrow, default, deserialize_with = "present")]
        params: Option<&'a RawValue>,
    }
    #[derive(Deserialize)]
    struct Params<'a> {
        #[serde(borrow, default, rename = "_meta", deserialize_with = "present")]
        meta: Option<&'a RawValue>,
    }
    #[derive(Deserialize)]
    struct Context<'a> {
        #[serde(borrow)]
        traceparent: Option<&'a RawValue>,
        #[serde(borrow)]
        tracestate: Option<&'a RawValue>,
    }
    let mut entries = String::with_capacity(96);
    entries.push_str("\"traceparent\":");
    entries.push_str(string_value(traceparent)?.get());
    if let Some(state) = tracestate {
        entries.push_str(",\"tracestate\":");
        entries.push_str(string_value(state)?.get());
    }
    // Where a raw value starts in `body`, and that it is an object.
    let object_at = |raw: &RawValue| {
        let at = (raw.get().as_ptr() as usize).checked_sub(body.as_ptr() as usize)?;
        (body.get(at) == Some(&b'{')).then_some(at)
    };
    let message: Message<'_> = serde_json::from_slice(body).ok()?;
    let (at, insert) = match message.params {
        None => {
            // Before the message's closing brace (a request has members already).
            let end = body.iter().rposition(|b| *b == b'}')?;
            (end, format!(",\"params\":{{\"_meta\":{{{entries}}}}}"))
        }
        Some(params) => {
            let open = object_at(params)?;
            let inner: Params<'_> = serde_json::from_str(params.get()).ok()?;
            match inner.meta {
                None => (
                    open + 1,
                    format!("\"_meta\":{{{entries}}}{}", comma(params.get())),
                ),
                Some(meta) => {
                    let open = object_at(meta)?;
                    let context: Context<'_> = serde_json::from_str(meta.get()).ok()?;
                    if context.traceparent.is_some() || context.tracestate.is_some() {
                        return None;
                    }
                    (open + 1, format!("{entries}{}", comma(meta.get())))
                }
            }
        }
    };
    let mut out = Vec::with_capacity(body.len() + insert.len());
    out.extend_from_slice(&body[..at]);
    out.extend_from_slice(insert.as_bytes());
    out.extend_from_slice(&body[at..]);
    Some(out)
}

/// `,` when the object (its text) has members to follow what is inserted first.
fn comma(object: &str) -> &'static str {
    if object[1..].trim_start().starts_with('}') {
        ""
    } else {
        ","
    }
}

/// The general case: the message's members re-serialized (their values as sent), the
/// client's context replaced.
fn rebuilt(body: &[u8], traceparent: &str, tracestate: Option<&str>) -> Option<Vec<u8>> {
    type Members<'b> = BTreeMap<Cow<'b, str>, &'b RawValue>;
    let mut msg: Members<'_> = serde_json::from_slice(body).ok()?;
    let mut params: Members<'_> = match msg.get("params") {
        Some(raw) if raw.get() != "null" => serde_json::from_str(raw.get()).ok()?,
        _ => BTreeMap::new(),
    };
    let mut meta: BTreeMap<Cow<'_, str>, Box<RawValue>> = match params.get("_meta") {
        Some(raw) if raw.get() != "null" => serde_json::from_str(raw.get()).ok()?,
        _ => BTreeMap::new(),
    };
    meta.insert(TRACEPARENT.into(), string_value(traceparent)?);
    match tracestate {
        Some(state) => {
            meta.insert(TRACESTATE.into(), string_value(state)?);
        }
        None => {
            meta.remove(TRACESTATE);
        }
    }
    let meta = serde_json::value::to_raw_value(&meta).ok()?;
    params.insert("_meta".into(), &meta);
    let params = serde_json::value::to_raw_value(&params).ok()?;
    msg.insert("params".into(), &params);
    serde_json::to_vec(&msg).ok()
}

fn string_value(text: &str) -> Option<Box<RawValue>> {
    serde_json::value::to_raw_value(text).ok()
}

/// How an answer failed, for a span's `error.type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A JSON-RPC error, by its code.
    Code(i64),
    /// A `tools/call` result with `isError: true` (the tool failed, the call did not).
    Tool,
}

impl Failure {
    /// The `error.type` value: the code as text, or `tool_error`.
    pub fn error_type(&self) -> String {
        match self {
            Self::Code(code) => code.to_string(),
            Self::Tool => "tool_error".to_string(),
        }
    }
}

/// Whether one answer (a JSON-RPC response) failed; `None` for a success or for
/// anything that is not an answer.
pub fn failure_of(answer: &[u8]) -> Option<Failure> {
    #[derive(Deserialize)]
    struct Answer {
        error: Option<Code>,
        result: Option<ToolResult>,
    }
    #[derive(Deserialize)]
    struct Code {
        code: Option<i64>,
    }
    #[derive(Deserialize)]
    struct ToolResult {
        #[serde(rename = "isError")]
        is_error: Option<bool>,
    }
    let answer: Answer = serde_json::from_slice(answer).ok()?;
    if let Some(error) = answer.error {
        return Some(Failure::Code(error.code.unwrap_or_default()));
    }
    answer
        .result
        .and_then(|r| r.is_error)
        .filter(|e| *e)
        .map(|_| Failure::Tool)
}

#[cfg(test)]
mod tests {

    /// From the attack: a `params` or `_meta` that is `null` is replaced, never
    /// followed by a second member of the same name.
    #[test]
    fn a_null_params_or_meta_is_replaced_not_doubled() {
        for body in [
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":null}"#,
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","_meta":null}}"#,
        ] {
            let out = with_context(body.as_bytes(), "00-x", None).unwrap_or_default();
            let text = String::from_utf8_lossy(&out);
            assert_eq!(text.matches("\"params\"").count(), 1, "{text}");
            assert_eq!(text.matches("\"_meta\"").count(), 1, "{text}");
            let value: serde_json::Value = serde_json::from_slice(&out).unwrap_or_default();
            assert_eq!(value["params"]["_meta"]["traceparent"], "00-x", "{text}");
        }
    }

    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn a_request_is_peeked_without_its_arguments() {
        let body = br#"{"jsonrpc":"2.0","id":"a\"b","method":"tools/call","params":{"name":"get_weather","arguments":{"big":[1,2,3]},"_meta":{"traceparent":"00-x","progressToken":7}}}"#;
        let peek = Peek::request(body).unwrap();
        assert_eq!(peek.method(), "tools/call");
        assert_eq!(peek.id_text(), "a\"b");
        assert_eq!(peek.target(), Some("get_weather"));
        assert_eq!(peek.meta_context(), (Some("00-x"), None));
        assert_eq!(
            Peek::request(br#"{"id":12,"method":"ping"}"#)
                .unwrap()
                .id_text(),
            "12"
        );
        assert!(Peek::request(br#"{"method":"notifications/initialized"}"#).is_none());
        assert!(Peek::request(br#"[{"id":1,"method":"ping"}]"#).is_none());
        assert!(Peek::request(b"nonsense").is_none());
    }

    #[test]
    fn the_context_replaces_the_clients_and_keeps_every_other_key() {
        let body = br#"{"jsonrpc":"2.0","id":1e2,"method":"tools/call","params":{"name":"t","arguments":{"n":12345678901234567890123},"_meta":{"traceparent":"old","tracestate":"old=1","progressToken":"p"}}}"#;
        let out = with_context(body, "00-new", None).unwrap();
        let text = String::from_utf8(out).unwrap();
        // Values are kept as written, numbers too.
        assert!(text.contains(r#""id":1e2"#), "{text}");
        assert!(text.contains("12345678901234567890123"), "{text}");
        let msg: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            msg["params"]["_meta"],
            json!({"traceparent": "00-new", "progressToken": "p"})
        );
        assert_eq!(msg["params"]["name"], "t");
        let bare = with_context(br#"{"id":1,"method":"ping"}"#, "00-new", Some("k=v")).unwrap();
        let msg: Value = serde_json::from_slice(&bare).unwrap();
        assert_eq!(
            msg["params"]["_meta"],
            json!({"traceparent": "00-new", "tracestate": "k=v"})
        );
        assert!(with_context(br#"{"id":1,"method":"x","params":[1]}"#, "t", None).is_none());
    }

    #[test]
    fn without_a_context_ours_is_inserted_and_every_byte_kept() {
        let cases: [(&[u8], &str); 4] = [
            (
                br#"{"id":1,"method":"tools/call","params":{"name":"t","_meta":{"progressToken":1}}}"#,
                r#"{"id":1,"method":"tools/call","params":{"name":"t","_meta":{"traceparent":"00-new","progressToken":1}}}"#,
            ),
            (
                br#"{"id":1,"method":"m","params":{"_meta":{ }}}"#,
                r#"{"id":1,"method":"m","params":{"_meta":{"traceparent":"00-new" }}}"#,
            ),
            (
                br#"{"id":1,"method":"m","params":{"a":[1e400]}}"#,
                r#"{"id":1,"method":"m","params":{"_meta":{"traceparent":"00-new"},"a":[1e400]}}"#,
            ),
            (
                br#"{"id":1,"method":"ping"} "#,
                r#"{"id":1,"method":"ping","params":{"_meta":{"traceparent":"00-new"}}} "#,
            ),
        ];
        for (body, want) in cases {
            let out = inserted(body, "00-new", None).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
        let with_state =
            inserted(br#"{"id":1,"method":"m","params":{}}"#, "t", Some("k=v")).unwrap();
        assert_eq!(
            String::from_utf8(with_state).unwrap(),
            r#"{"id":1,"method":"m","params":{"_meta":{"traceparent":"t","tracestate":"k=v"}}}"#
        );
        // A member named twice, or a context to replace: the general case decides.
        assert!(
            inserted(
                br#"{"id":1,"method":"m","params":{},"params":{}}"#,
                "t",
                None
            )
            .is_none()
        );
        assert!(
            inserted(
                br#"{"id":1,"method":"m","params":{"_meta":{"traceparent":"x"}}}"#,
                "t",
                None
            )
            .is_none()
        );
    }

    #[test]
    fn failures_are_told_by_code_or_by_a_tools_is_error() {
        assert_eq!(
            failure_of(br#"{"id":1,"error":{"code":-32602,"message":"x"}}"#),
            Some(Failure::Code(-32602))
        );
        assert_eq!(
            failure_of(br#"{"id":1,"result":{"content":[],"isError":true}}"#),
            Some(Failure::Tool)
        );
        assert_eq!(failure_of(br#"{"id":1,"result":{"content":[]}}"#), None);
        assert_eq!(Failure::Tool.error_type(), "tool_error");
    }
}
