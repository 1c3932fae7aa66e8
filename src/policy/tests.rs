use serde_json::json;

use super::*;

fn rules(allow: &[&str], deny: &[&str], read_only: bool) -> Rules {
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    Rules::new(&strings(allow), &strings(deny), read_only).unwrap()
}

#[test]
fn deny_wins_over_allow_and_an_empty_allow_allows_all() {
    let open = rules(&[], &["*delete*"], false);
    assert_eq!(decide(&open, "search", &json!({})), Ok(()));
    assert_eq!(
        decide(&open, "repo_delete", &json!({})),
        Err(Hidden::Denied {
            pattern: "*delete*".into()
        })
    );
    let allow = rules(
        &["github__*", "fs__read_?ile"],
        &["github__delete_*"],
        false,
    );
    assert_eq!(decide(&allow, "github__search", &json!({})), Ok(()));
    assert_eq!(decide(&allow, "fs__read_file", &json!({})), Ok(()));
    assert_eq!(
        decide(&allow, "fs__write_file", &json!({})),
        Err(Hidden::NotAllowed)
    );
    assert!(matches!(
        decide(&allow, "github__delete_repo", &json!({})),
        Err(Hidden::Denied { .. })
    ));
}

#[test]
fn read_only_keeps_only_tools_that_say_so() {
    let ro = rules(&[], &[], true);
    let reader = json!({"name": "r", "annotations": {"readOnlyHint": true}});
    let writer = json!({"name": "w", "annotations": {"readOnlyHint": false}});
    let silent = json!({"name": "s"});
    assert_eq!(decide(&ro, "r", &reader), Ok(()));
    assert_eq!(decide(&ro, "w", &writer), Err(Hidden::NotReadOnly));
    assert_eq!(decide(&ro, "s", &silent), Err(Hidden::NotReadOnly));
    // Without the definition only a deny is certain.
    assert_eq!(decide_by_name(&ro, "r"), None);
    let both = rules(&[], &["w*"], true);
    assert!(matches!(
        decide_by_name(&both, "write"),
        Some(Err(Hidden::Denied { .. }))
    ));
}

#[test]
fn lists_are_filtered_with_the_same_decision() {
    let r = rules(&[], &["drop_*"], false);
    let mut tools = vec![
        json!({"name": "keep"}),
        json!({"name": "drop_table"}),
        json!({"nameless": true}),
    ];
    filter_tools(&r, &mut tools);
    assert_eq!(tools, vec![json!({"name": "keep"})]);
    // Open rules leave the list as it is, even odd entries.
    let mut odd = vec![json!({"nameless": true})];
    filter_tools(&Rules::default(), &mut odd);
    assert_eq!(odd.len(), 1);
}

#[test]
fn a_bad_pattern_is_named() {
    let err = Rules::new(&["[unclosed".into()], &[], false).unwrap_err();
    assert!(err.contains("`[unclosed` is not a glob pattern"), "{err}");
    assert_eq!(
        rules(&["a*"], &["b"], true).describe(),
        "allow [\"a*\"], deny [\"b\"], read_only"
    );
}

/// Fuzzing (fuzz/corpus/jwt/crash-short-ed25519-x): an issuer's Ed25519 key whose
/// `x` is shorter than 32 bytes made jsonwebtoken's verifier panic on every token
/// naming it. Such a key verifies nothing now: refused, no panic.
#[test]
fn an_ed25519_key_of_the_wrong_size_verifies_nothing_and_does_not_panic() {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    let short: jsonwebtoken::jwk::JwkSet = serde_json::from_value(json!({"keys": [
        {"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": "8r1HM4J5crJKAA"}
    ]}))
    .unwrap();
    assert!(jwt::algorithms_of(&short.keys[0]).is_empty());
    let expect = jwt::Expect {
        issuer: "i".into(),
        audience: "a".into(),
        scopes: std::collections::BTreeMap::new(),
    };
    for header in [r#"{"alg":"EdDSA","kid":"k1"}"#, r#"{"alg":"EdDSA"}"#] {
        let token = format!(
            "{}.{}.{}",
            B64.encode(header),
            B64.encode(r#"{"iss":"i","aud":"a","sub":"s","exp":9}"#),
            B64.encode([0u8; 64])
        );
        assert!(jwt::verify(&token, &short, &expect, 1).is_err(), "{header}");
    }
}
