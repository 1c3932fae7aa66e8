//! `jwt`: [`crate::policy::jwt::verify`] on tokens a fuzzer writes. A signature
//! cannot be guessed, so the first byte picks what is fuzzed: the token itself, its
//! claims (signed here with a fixed Ed25519 key, so the claim checks are reached), or
//! the issuer's key set (JWKS) a fixed token is checked against.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, EncodingKey};

use crate::policy::Glob;
use crate::policy::jwt::{Expect, verify};

/// A fixed Ed25519 key made for these tests (PKCS#8 DER), and its public half.
const PKCS8: &str = "302e020100300506032b657004220420852edaf8950186d94d8891ab03bce39b03678e2002fb6056b0fe7e49c12c2fad";
const PUBLIC_X: &str = "8r1HM4J5crJKOVJVcpxU7ng4ADst09RvYb7kDyCrUIo";
const ISS: &str = "http://127.0.0.1:9/issuer";
const AUD: &str = "http://127.0.0.1:8000/mcp";
const NOW: u64 = 1_800_000_000;

fn hex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .filter_map(|i| u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

fn keys() -> Option<JwkSet> {
    serde_json::from_value(serde_json::json!({"keys": [
        {"kty": "OKP", "crv": "Ed25519", "kid": "k1", "use": "sig", "alg": "EdDSA", "x": PUBLIC_X}
    ]}))
    .ok()
}

fn expect() -> Expect {
    let globs = |g: &[&str]| g.iter().filter_map(|g| Glob::new(g).ok()).collect();
    Expect {
        issuer: ISS.into(),
        audience: AUD.into(),
        scopes: BTreeMap::from([
            ("mcp:read".to_string(), globs(&["read_*", "list_*"])),
            ("mcp:all".to_string(), globs(&["*"])),
        ]),
    }
}

/// `header.payload.signature` with `header` and `payload` as given, signed by the key.
fn signed(header: &[u8], payload: &[u8]) -> Option<String> {
    let key = EncodingKey::from_ed_der(&hex(PKCS8));
    let message = format!("{}.{}", B64.encode(header), B64.encode(payload));
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::EdDSA).ok()?;
    Some(format!("{message}.{signature}"))
}

/// A valid token of the issuer for this resource, with the scopes given.
fn good_token() -> Option<String> {
    let claims = serde_json::json!({"iss": ISS, "aud": AUD, "sub": "alice",
        "exp": NOW + 300, "scope": "mcp:read"});
    signed(
        br#"{"alg":"EdDSA","kid":"k1","typ":"JWT"}"#,
        claims.to_string().as_bytes(),
    )
}

/// The target body.
pub fn jwt(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (Some(keys), expect) = (keys(), expect()) else {
        return;
    };
    match mode % 4 {
        // The token as a client presents it.
        0 => {
            let Ok(token) = std::str::from_utf8(rest) else {
                return;
            };
            if let Ok(v) = verify(token, &keys, &expect, NOW) {
                // Only the key's signature gets a token in.
                panic!("a token no key signed passed: {v:?}");
            }
        }
        // Claims, signed with the issuer's key and its header.
        1 => {
            let Some(token) = signed(br#"{"alg":"EdDSA","kid":"k1"}"#, rest) else {
                return;
            };
            if let Ok(v) = verify(&token, &keys, &expect, NOW) {
                let _ = expect.view(&v.scopes);
                assert!(!v.subject.is_empty(), "a token without a subject passed");
                assert!(
                    NOW < v.expires.saturating_add(60),
                    "an expired token passed"
                );
            }
        }
        // A header of the fuzzer's, the claims good.
        2 => {
            let claims = serde_json::json!({"iss": ISS, "aud": AUD, "sub": "a", "exp": NOW + 9});
            if let Some(token) = signed(rest, claims.to_string().as_bytes()) {
                let _ = verify(&token, &keys, &expect, NOW);
            }
        }
        // The issuer's key set (its JWKS document), a good token checked against it.
        _ => {
            let Ok(set) = serde_json::from_slice::<JwkSet>(rest) else {
                return;
            };
            for jwk in &set.keys {
                let _ = crate::policy::jwt::algorithms_of(jwk);
            }
            if let Some(token) = good_token() {
                let _ = verify(&token, &set, &expect, NOW);
            }
        }
    }
}
