//! The bodies of the fuzz targets (`fuzz/fuzz_targets/NAME.rs`), one `pub fn NAME(data)`
//! each: bytes in, a panic out when a property breaks. `cargo +nightly fuzz run NAME`
//! drives them under libFuzzer; `tests/it/fuzz_corpus.rs` replays every file of
//! `fuzz/corpus/NAME/` through the same function on stable, so a crasher once fixed
//! stays fixed without nightly. Not an API: nothing else calls them.
//!
//! Each body asserts what must hold for any input, besides "does not panic": an
//! editor's output still parses and keeps every comment, a backup that reads back
//! writes and reads back equal, SSE events do not depend on how the stream was cut.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use serde_json::Value;

use crate::clients;
use crate::gateway::callers::Callers;
use crate::import::Client;
use crate::model::token::TokenSpec;
use crate::wire::era::{self, RoutingHeaders};
use crate::wire::{jsonrpc, sse, strict};

mod edit;
mod jwt_keys;

pub use edit::edit;
pub use jwt_keys::jwt;

/// The input as text; `None` (skip it) when it is not UTF-8: every file is read as text.
fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// `config`: the loader and validator, `mcpctl.toml` text to a checked [`crate::model::Config`].
pub fn config(data: &[u8]) {
    let Some(source) = text(data) else {
        return;
    };
    let parsed = crate::model::parse(source);
    if let Err(diagnostics) = parsed {
        assert!(!diagnostics.is_empty(), "refused without a diagnostic");
        for d in &diagnostics {
            // Every diagnostic renders against the source it came from.
            let _ = d.render("mcpctl.toml", source);
        }
    }
}

/// `backup`: the backup reader. What it accepts, written again, reads back equal.
pub fn backup(data: &[u8]) {
    let Ok(content) = crate::backup::read(data, "demo") else {
        return;
    };
    let Ok(written) = crate::backup::write(&content) else {
        return;
    };
    let again = crate::backup::read(written.as_bytes(), "demo");
    assert_eq!(
        again.as_ref().ok(),
        Some(&content),
        "a backup read back differs"
    );
}

/// The client a byte selects: the seven and a file named on the command line.
fn client_of(byte: u8) -> Client {
    let n = usize::from(byte) % (Client::ALL.len() + 1);
    Client::ALL.get(n).copied().unwrap_or(Client::File)
}

/// `client_import`: each client's file parser (seven formats, JSONC), first byte the
/// client, the rest its file.
pub fn client_import(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let Some(source) = text(rest) else {
        return;
    };
    let _ = crate::import::formats::parse(client_of(first), source);
    // Taking the comments out of JSONC leaves JSON whenever it was JSON already.
    let stripped = crate::import::formats::strip_json_comments(source);
    if serde_json::from_str::<Value>(source).is_ok() {
        assert!(
            serde_json::from_str::<Value>(&stripped).is_ok(),
            "strip_json_comments broke JSON"
        );
    }
}

/// `client_link`: `client link`'s in-place edit of a client's file (JSON, JSONC, or
/// Codex's TOML). An entry upserted reads back, and removing it leaves a file that
/// still parses.
pub fn client_link(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let Some(source) = text(rest) else {
        return;
    };
    let client = client_of(first);
    let section = clients::section(client).unwrap_or("mcpServers");
    let name = if first & 0x80 == 0 { "demo" } else { "a\"b.c" };
    let _ = clients::has_section(client, source, section);
    let _ = clients::get_raw(client, source, section, name);
    let _ = clients::is_empty_file(client, source);
    let value = serde_json::json!({"command": "mcpctl", "args": ["connect", name]});
    let Ok(linked) = clients::upsert(client, source, section, name, &value) else {
        return;
    };
    let got = clients::get(client, &linked, section, name);
    assert!(
        matches!(got, Ok(Some(_))),
        "an upserted entry does not read back: {got:?}"
    );
    if let Ok(Some(raw)) = clients::get_raw(client, &linked, section, name) {
        let _ = clients::put_raw(client, &linked, section, name, &raw);
    }
    if let Ok(unlinked) = clients::remove(client, &linked, section, name) {
        let gone = clients::get(client, &unlinked, section, name);
        assert!(
            matches!(gone, Ok(None)),
            "a removed entry is still there: {gone:?}"
        );
        let _ = clients::remove_section_if_empty(client, &unlinked, section);
    }
}

/// `wire`: JSON-RPC as clients send it, both eras (the gateway's parser, the strict
/// reader, the bridge's line reader, the era checks and translations).
pub fn wire(data: &[u8]) {
    let _ = strict::parse(data);
    let _ = crate::bridge::wire::parse(data);
    let _ = crate::bridge::wire::cut_request_id(data, data);
    let _ = crate::bridge::wire::refusal_for("7", data);
    let _ = crate::bridge::wire::negotiated_version(data);
    let Ok((msg, _kind)) = jsonrpc::parse(data) else {
        return;
    };
    let written = jsonrpc::to_text(&msg);
    assert!(
        serde_json::from_str::<Value>(&written).is_ok(),
        "a message went out as invalid JSON: {written}"
    );
    let _ = jsonrpc::classify(&msg);
    let method = msg.get("method").and_then(Value::as_str).unwrap_or("");
    let params = msg.get("params").cloned().unwrap_or(Value::Null);
    let headers = era::routing_headers(method, &params);
    let find = |key: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    };
    let routing = RoutingHeaders {
        version: find("MCP-Protocol-Version"),
        method: find("Mcp-Method"),
        name: find("Mcp-Name"),
    };
    let _ = era::classify(routing.version, &msg);
    let _ = era::classify(Some("2025-06-18"), &msg);
    let _ = era::validate_modern(routing, &msg);
    let _ = era::request_name(&msg);
    let _ = era::client_capabilities(&msg);
    let _ = era::is_modern_discover(&msg);
    let _ = era::discover_from_initialize(&msg);
    let _ = era::initialize_from_discover(&msg);
    let mut response = msg.clone();
    era::modernize_response(method, &mut response, &Value::Null);
    era::legacy_result(&mut response);
    let mut stripped = params;
    era::strip_envelope(&mut stripped);
}

/// `sse`: the bridge's SSE reader. The first byte cuts the rest into chunks; the
/// events must be the same however the stream is cut, and none larger than the bound.
pub fn sse(data: &[u8]) {
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let max = 16 + usize::from(first & 0x3f) * 4;
    let step = usize::from(first >> 6) * 3 + 1;
    let mut whole = sse::SseEvents::new(max);
    let all = whole.feed(stream);
    let mut cut = sse::SseEvents::new(max);
    let mut pieces = Vec::new();
    for chunk in stream.chunks(step) {
        pieces.extend(cut.feed(chunk));
    }
    assert_eq!(all, pieces, "events depend on where the stream was cut");
    assert_eq!(whole.dropped, cut.dropped);
    assert!(
        all.iter().all(|e| e.len() <= max),
        "an event over the bound"
    );
}

/// The tokens the `token` target's table knows, each by a plain text.
fn callers() -> &'static Arc<Callers> {
    static CALLERS: OnceLock<Arc<Callers>> = OnceLock::new();
    CALLERS.get_or_init(|| {
        let callers = Callers::new();
        let spec = |name: &str, token: &str, allow: &str, expires| TokenSpec {
            name: name.to_string(),
            allow: vec![allow.to_string()],
            deny: vec!["*/danger*".to_string()],
            expires,
            rate: None,
            hash: *blake3::hash(token.as_bytes()).as_bytes(),
        };
        let tokens: BTreeMap<String, TokenSpec> = [
            spec("ci", "mcp_ci_token", "demo/*", None),
            spec("old", "mcp_old_token", "*", Some(1)),
            spec("other", "mcp_other_token", "other/read_*", None),
        ]
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect();
        callers.set(&tokens);
        callers
    })
}

/// `token`: a presented bearer token looked up by its hash, and the file's
/// `blake3:HEX` hashes read.
pub fn token(data: &[u8]) {
    let Some(presented) = text(data) else {
        return;
    };
    if let Some(hash) = crate::model::token::parse_hash(presented) {
        let again = crate::model::token::parse_hash(&format!(
            "blake3:{}",
            blake3::Hash::from_bytes(hash).to_hex()
        ));
        assert_eq!(again, Some(hash), "a hash does not read back");
    }
    let (token, target) = presented.split_once('@').unwrap_or((presented, "demo"));
    let admitted = callers().admit(token, target);
    if token == "mcp_ci_token" && target == "demo" {
        assert!(admitted.is_ok(), "a known token was refused: {admitted:?}");
    }
    if let Ok(caller) = admitted {
        assert!(["ci", "other"].contains(&caller.name.as_str()));
    }
    let hashed = crate::model::token::hash_text(token);
    assert!(crate::model::token::parse_hash(&hashed).is_some());
}
