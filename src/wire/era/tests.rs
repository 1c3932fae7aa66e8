use super::*;

fn modern_request(method: &str, params: Value) -> Value {
    let mut params = params;
    params["_meta"] = json!({META_VERSION: "2026-07-28", META_CAPABILITIES: {}});
    json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
}

fn headers<'h>(method: &'h str, name: Option<&'h str>) -> RoutingHeaders<'h> {
    RoutingHeaders {
        version: Some("2026-07-28"),
        method: Some(method),
        name,
    }
}

#[test]
fn the_envelope_or_a_modern_header_make_a_request_modern() {
    let enveloped = modern_request("tools/list", json!({}));
    assert_eq!(classify(None, &enveloped), Ok(Era::Modern));
    let bare = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    assert_eq!(classify(Some("2026-07-28"), &bare), Ok(Era::Modern));
    assert_eq!(classify(Some("2025-06-18"), &bare), Ok(Era::Legacy));
    assert_eq!(classify(None, &bare), Ok(Era::Legacy));
}

#[test]
fn an_unknown_version_is_refused_naming_both_eras() {
    let bare = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let refused = classify(Some("1999-01-01"), &bare).unwrap_err();
    assert_eq!((refused.status, refused.code), (400, UNSUPPORTED_VERSION));
    let data = refused.data.unwrap();
    let supported = data["supported"].as_array().unwrap();
    assert!(supported.contains(&json!("2026-07-28")));
    assert!(supported.contains(&json!("2025-06-18")));
    assert_eq!(data["requested"], "1999-01-01");
}

#[test]
fn the_ladder_checks_envelope_headers_version_and_method_in_order() {
    let call = modern_request("tools/call", json!({"name": "echo"}));
    assert_eq!(
        validate_modern(headers("tools/call", Some("echo")), &call),
        Ok(())
    );

    let no_envelope = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}});
    let refused = validate_modern(headers("tools/list", None), &no_envelope).unwrap_err();
    assert_eq!(refused.code, INVALID_PARAMS);

    let wrong_method = validate_modern(headers("tools/list", Some("echo")), &call).unwrap_err();
    assert_eq!(
        (wrong_method.status, wrong_method.code),
        (400, HEADER_MISMATCH)
    );
    let missing_method = RoutingHeaders {
        method: None,
        ..headers("tools/call", Some("echo"))
    };
    assert_eq!(
        validate_modern(missing_method, &call).unwrap_err().code,
        HEADER_MISMATCH
    );
    let wrong_name = validate_modern(headers("tools/call", Some("other")), &call).unwrap_err();
    assert_eq!(wrong_name.code, HEADER_MISMATCH);
    let wrong_version = RoutingHeaders {
        version: Some("2025-11-25"),
        ..headers("tools/call", Some("echo"))
    };
    assert_eq!(
        validate_modern(wrong_version, &call).unwrap_err().code,
        HEADER_MISMATCH
    );

    let mut future = call.clone();
    future["params"]["_meta"][META_VERSION] = json!("2099-01-01");
    let future_headers = RoutingHeaders {
        version: Some("2099-01-01"),
        ..headers("tools/call", Some("echo"))
    };
    let refused = validate_modern(future_headers, &future).unwrap_err();
    assert_eq!(refused.code, UNSUPPORTED_VERSION);

    let unknown = modern_request("initialize", json!({}));
    let refused = validate_modern(headers("initialize", None), &unknown).unwrap_err();
    assert_eq!((refused.status, refused.code), (404, METHOD_NOT_FOUND));
}

#[test]
fn mcp_name_may_come_base64_wrapped() {
    let call = modern_request("tools/call", json!({"name": "é x "}));
    let wrapped = format!(
        "=?base64?{}?=",
        base64::engine::general_purpose::STANDARD.encode("é x ")
    );
    assert_eq!(
        validate_modern(headers("tools/call", Some(&wrapped)), &call),
        Ok(())
    );
    let broken = validate_modern(headers("tools/call", Some("=?base64?%%?=")), &call);
    assert_eq!(broken.unwrap_err().code, HEADER_MISMATCH);
}

#[test]
fn legacy_children_lose_only_the_protocols_meta_keys() {
    let mut params = modern_request("tools/call", json!({"name": "echo"}))["params"].clone();
    params["_meta"]["progressToken"] = json!(7);
    strip_envelope(&mut params);
    assert_eq!(
        params,
        json!({"name": "echo", "_meta": {"progressToken": 7}})
    );
    let mut bare = modern_request("tools/list", json!({}))["params"].clone();
    strip_envelope(&mut bare);
    assert_eq!(bare, json!({}));
}

#[test]
fn modern_children_get_the_sessions_envelope() {
    let envelope = Envelope {
        capabilities: json!({"elicitation": {}}),
        client_info: Some(json!({"name": "c", "version": "1"})),
        log_level: Some("debug".into()),
    };
    let params = add_envelope(
        Some(json!({"name": "echo", "_meta": {"progressToken": 1}})),
        &envelope,
    );
    assert_eq!(params["name"], "echo");
    assert_eq!(params["_meta"]["progressToken"], 1);
    assert_eq!(params["_meta"][META_VERSION], "2026-07-28");
    assert_eq!(
        params["_meta"][META_CAPABILITIES],
        json!({"elicitation": {}})
    );
    assert_eq!(params["_meta"][META_LOG_LEVEL], "debug");
    assert_eq!(
        add_envelope(None, &Envelope::default())["_meta"][META_VERSION],
        "2026-07-28"
    );
}

#[test]
fn legacy_results_are_completed_for_modern_clients_and_back() {
    let info = json!({"name": "s", "version": "1"});
    let mut listed = json!({"id": 1, "result": {"tools": []}});
    modernize_response("tools/list", &mut listed, &info);
    assert_eq!(listed["result"]["resultType"], "complete");
    assert_eq!(listed["result"]["ttlMs"], 0);
    assert_eq!(listed["result"]["cacheScope"], "private");
    assert_eq!(listed["result"]["_meta"][META_SERVER_INFO], info);

    let mut called = json!({"id": 1, "result": {"content": []}});
    modernize_response("tools/call", &mut called, &info);
    assert!(called["result"].get("ttlMs").is_none());

    let mut retired = json!({"id": 1, "error": {"code": -32002, "message": "no such resource"}});
    modernize_response("resources/read", &mut retired, &info);
    assert_eq!(retired["error"]["code"], INVALID_PARAMS);

    legacy_result(&mut listed);
    assert_eq!(listed, json!({"id": 1, "result": {"tools": []}}));
}

#[test]
fn discover_and_initialize_translate_into_each_other() {
    let init = json!({"protocolVersion": "2025-11-25", "capabilities": {"tools": {}, "tasks": {}},
                      "serverInfo": {"name": "s", "version": "1"}, "instructions": "hi"});
    let discover = discover_from_initialize(&init);
    assert_eq!(discover["capabilities"], json!({"tools": {}}));
    assert_eq!(discover["supportedVersions"], json!(["2026-07-28"]));
    assert_eq!(discover["_meta"][META_SERVER_INFO]["name"], "s");
    let back = initialize_from_discover(&discover);
    assert_eq!(back["serverInfo"]["name"], "s");
    assert_eq!(back["instructions"], "hi");
    assert!(is_modern_discover(&json!({"result": discover})));
    assert!(!is_modern_discover(&json!({"error": {"code": -32601}})));
}

fn ticket(expires_ms: u64) -> Ticket {
    Ticket {
        handle: 3,
        method: "tools/call".into(),
        name: Some("deploy".into()),
        principal: String::new(),
        expires_ms,
    }
}

#[test]
fn a_sealed_state_opens_only_untouched_unexpired_and_here() {
    let sealer = Sealer::new([7; 32]);
    let state = sealer.seal(&ticket(2_000));
    assert_eq!(sealer.open(&state, 1_000), Ok(ticket(2_000)));
    assert_eq!(sealer.open(&state, 2_000), Err(StateError::Expired));
    assert_eq!(
        Sealer::new([8; 32]).open(&state, 1_000),
        Err(StateError::Forged)
    );

    // The same payload with a later expiry, under the old MAC.
    let (_, mac) = state.split_once('.').unwrap();
    let longer = B64URL.encode(serde_json::to_vec(&ticket(9_000)).unwrap());
    assert_eq!(
        sealer.open(&format!("{longer}.{mac}"), 1_000),
        Err(StateError::Forged)
    );
    for garbage in ["", ".", "abc", "abc.def", "%%%.0000"] {
        assert_eq!(
            sealer.open(garbage, 1_000),
            Err(StateError::Forged),
            "{garbage:?}"
        );
    }
}

#[test]
fn routing_header_values_round_trip_through_their_encoding() {
    for text in ["echo", "weird name", " padded", "ünïcode", "tab\there", ""] {
        let encoded = encode_header_value(text);
        assert!(
            encoded.bytes().all(|b| (0x20..0x7f).contains(&b)),
            "{encoded}"
        );
        assert_eq!(decode_header_value(&encoded).as_deref(), Some(text));
    }
    let params = serde_json::json!({"name": "été", "_meta": {META_VERSION: "2026-07-28"}});
    let headers = routing_headers("tools/call", &params);
    assert_eq!(
        headers[0],
        ("mcp-protocol-version", "2026-07-28".to_string())
    );
    assert_eq!(headers[2].0, "mcp-name");
    assert_eq!(decode_header_value(&headers[2].1).as_deref(), Some("été"));
    assert!(routing_headers("tools/call", &serde_json::json!({"name": "x"})).is_empty());
}
