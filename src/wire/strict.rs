//! PURE. JSON read strictly, for bodies a policy decides on and then passes on as they
//! are (a server that speaks HTTP gets the client's bytes): a key given twice in one
//! object is refused, since the gateway and the server could each take another of the
//! two; so is anything serde cannot read (`1e400`, `NaN`, nesting past its limit), which
//! another parser might. Keys are also compared as a server that matches them without
//! case would (Go's `encoding/json`, Unicode's simple folding: `Params`, `PARAMS` and
//! `paramſ` are all `params` to it): two such keys in one object are refused, and so
//! is a JSON-RPC member spelled in another case (`Method`, `Name`), which the gateway
//! would not read and the server would.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// `bytes` as JSON, or why it is not JSON the gateway can decide on.
pub fn parse(bytes: &[u8]) -> Result<Value, String> {
    serde_json::from_slice::<Strict>(bytes)
        .map(|s| s.0)
        .map_err(|e| e.to_string())
}

struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut seen = HashSet::new();
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(fold(&key)) {
                return Err(de::Error::custom(format!(
                    "the key {key:?} is given twice (keys are compared without case)"
                )));
            }
            let Strict(value) = map.next_value()?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// `key` as a server matching keys without case compares it.
fn fold(key: &str) -> String {
    key.chars()
        .map(|c| match c {
            // The two characters outside ASCII that fold onto ASCII letters.
            '\u{017F}' => 's',
            '\u{212A}' => 'k',
            c => c,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

/// The JSON-RPC members, and the parameters a policy decides on.
const MEMBERS: [&str; 6] = ["jsonrpc", "id", "method", "params", "result", "error"];
const DECIDED: [&str; 3] = ["name", "arguments", "uri"];

/// A member of `message` (or of its `params`) spelled in another case than its own:
/// the gateway reads the exact key, a server matching without case the other.
pub fn odd_case_member(message: &Value) -> Option<String> {
    let odd = |object: &Map<String, Value>, names: &[&str]| {
        object
            .keys()
            .find(|k| names.iter().any(|n| fold(k) == *n && k.as_str() != *n))
            .cloned()
    };
    let object = message.as_object()?;
    odd(object, &MEMBERS).or_else(|| {
        object
            .get("params")
            .and_then(Value::as_object)
            .and_then(|p| odd(p, &DECIDED))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_two_parsers_could_read_apart_is_refused() {
        assert!(parse(br#"{"a":1,"b":[{"c":null}]}"#).is_ok());
        for bad in [
            &br#"{"name":"echo","name":"secret"}"#[..],
            br#"{"p":{"x":1,"x":2}}"#,
            br#"{"x":1e400}"#,
            br#"{"x":NaN}"#,
            b"not json",
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(parse(deep.as_bytes()).is_err());
    }

    #[test]
    fn keys_a_caseless_server_would_read_as_another_are_refused() {
        for bad in [
            r#"{"method":"tools/call","params":{"name":"echo"},"Params":{"name":"secret"}}"#,
            r#"{"method":"ping","Method":"tools/call"}"#,
            r#"{"params":{"name":"a","NAME":"b"}}"#,
            r#"{"params":1,"param\u017f":2}"#,
            r#"{"kind":1,"\u212aind":2}"#,
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad}");
        }
        let odd = |text: &str| odd_case_member(&parse(text.as_bytes()).unwrap());
        assert_eq!(odd(r#"{"Method":"tools/call"}"#), Some("Method".into()));
        assert_eq!(
            odd(r#"{"method":"tools/call","params":{"Name":"secret"}}"#),
            Some("Name".into())
        );
        assert_eq!(odd(r#"{"paramſ":{}}"#), Some("paramſ".into()));
        assert_eq!(
            odd(r#"{"method":"tools/call","params":{"name":"x","meta":1}}"#),
            None
        );
    }
}
