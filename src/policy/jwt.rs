//! PURE. An OIDC issuer's JWT, checked as the MCP authorization spec asks of a
//! resource server: signed by a key of the issuer's JWKS with the algorithm that key
//! is for (never `none`, never an HMAC: a public key is no shared secret), issued by
//! the issuer, for this resource (`aud`, RFC 8707), within `exp`/`nbf` give or take
//! [`SKEW_SECS`]. Its scopes then map to the tool patterns they grant here.

use std::collections::BTreeMap;

use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::Glob;
use super::caller::ToolView;

/// Clocks of the issuer and of this machine may differ by this much.
pub const SKEW_SECS: u64 = 60;

/// What the file says of an issuer's tokens on one target.
#[derive(Debug, Clone, PartialEq)]
pub struct Expect {
    pub issuer: String,
    pub audience: String,
    /// Scope -> the tool globs it grants here; none: a valid token may call every tool.
    pub scopes: BTreeMap<String, Vec<Glob>>,
}

/// A token that passed: who, and which scopes it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub subject: String,
    pub scopes: Vec<String>,
    /// Its `exp`: refused from `expires + SKEW_SECS` on.
    pub expires: u64,
}

/// Why a JWT is refused. None of them quotes the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtRefused {
    #[error("not a JWT")]
    Malformed,
    /// No key of the JWKS has this id (the keys may have rotated: fetch them again).
    #[error("no key of the issuer has id `{0}`")]
    UnknownKey(String),
    #[error("the token's algorithm `{alg}` is not the one its key is for")]
    WrongAlgorithm { alg: String },
    #[error("bad signature")]
    Signature,
    #[error("issued by another issuer")]
    Issuer,
    #[error("issued for another resource (aud)")]
    Audience,
    #[error("expired")]
    Expired,
    #[error("not valid yet (nbf)")]
    NotYet,
    #[error("lacks the claim `{0}`")]
    Missing(&'static str),
}

impl JwtRefused {
    /// Worth fetching the issuer's keys again (rotated since they were read).
    pub fn keys_may_have_rotated(&self) -> bool {
        matches!(self, Self::UnknownKey(_))
    }
}

/// The claims read beyond those the signature check validates.
#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    exp: Option<u64>,
    nbf: Option<u64>,
    scope: Option<ScopeClaim>,
    /// Some issuers (Azure, Okta) say `scp`, a list or a string.
    scp: Option<ScopeClaim>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ScopeClaim {
    Text(String),
    List(Vec<String>),
}

impl ScopeClaim {
    fn into_list(self) -> Vec<String> {
        match self {
            Self::Text(text) => text.split_whitespace().map(str::to_string).collect(),
            Self::List(list) => list,
        }
    }
}

/// The algorithms a key may verify: the one its `alg` names, else those of its type
/// and curve. Symmetric keys and keys for encryption verify nothing.
pub fn algorithms_of(jwk: &Jwk) -> Vec<Algorithm> {
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
    {
        return Vec::new();
    }
    let of_type = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => Vec::new(),
        },
        // A public key of another size than Ed25519's 32 bytes is no key (and
        // jsonwebtoken's verifier panics on a shorter one: found by fuzzing).
        AlgorithmParameters::OctetKeyPair(p)
            if p.curve == EllipticCurve::Ed25519 && ed25519_key_len(&p.x) == Some(32) =>
        {
            vec![Algorithm::EdDSA]
        }
        _ => Vec::new(),
    };
    match jwk.common.key_algorithm.and_then(asymmetric) {
        Some(named) => of_type.into_iter().filter(|a| *a == named).collect(),
        None if jwk.common.key_algorithm.is_some() => Vec::new(),
        None => of_type,
    }
}

/// The length of a JWK's base64url `x`, decoded; `None` when it is not base64url.
fn ed25519_key_len(x: &str) -> Option<usize> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(x)
        .ok()
        .map(|bytes| bytes.len())
}

/// A JWK's `alg` as a signature algorithm; `None` for HMAC and encryption ones.
fn asymmetric(alg: KeyAlgorithm) -> Option<Algorithm> {
    Some(match alg {
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

/// Checks `token` against `keys` at `now` (seconds since the Unix epoch).
pub fn verify(
    token: &str,
    keys: &JwkSet,
    expect: &Expect,
    now: u64,
) -> Result<Verified, JwtRefused> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| JwtRefused::Malformed)?;
    let alg = header.alg;
    let usable = |jwk: &&Jwk| algorithms_of(jwk).contains(&alg);
    let candidates: Vec<&Jwk> = match &header.kid {
        Some(kid) => {
            let named: Vec<&Jwk> = keys
                .keys
                .iter()
                .filter(|k| k.common.key_id.as_deref() == Some(kid.as_str()))
                .collect();
            if named.is_empty() {
                return Err(JwtRefused::UnknownKey(kid.clone()));
            }
            // An issuer may publish two keys under one id (mid-rotation): each is tried.
            let fit: Vec<&Jwk> = named.into_iter().filter(usable).collect();
            if fit.is_empty() {
                return Err(JwtRefused::WrongAlgorithm {
                    alg: format!("{alg:?}"),
                });
            }
            fit
        }
        // Without an id, only an issuer of one key for this algorithm is unambiguous.
        None => {
            let mut fit = keys.keys.iter().filter(usable);
            match (fit.next(), fit.next()) {
                (Some(only), None) => vec![only],
                _ => return Err(JwtRefused::UnknownKey("(none given)".into())),
            }
        }
    };
    let mut validation = Validation::new(alg);
    validation.algorithms = vec![alg];
    // Time is checked below against the `now` given (this function stays pure).
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.set_required_spec_claims(&["iss", "aud"]);
    validation.set_issuer(&[&expect.issuer]);
    validation.set_audience(&[&expect.audience]);
    let decode = |jwk: &Jwk| {
        let key = DecodingKey::from_jwk(jwk).map_err(|_| JwtRefused::Signature)?;
        jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::InvalidIssuer => JwtRefused::Issuer,
                ErrorKind::InvalidAudience => JwtRefused::Audience,
                ErrorKind::MissingRequiredClaim(c) if c == "iss" => JwtRefused::Missing("iss"),
                ErrorKind::MissingRequiredClaim(_) => JwtRefused::Missing("aud"),
                ErrorKind::InvalidAlgorithm => JwtRefused::WrongAlgorithm {
                    alg: format!("{alg:?}"),
                },
                ErrorKind::InvalidSignature => JwtRefused::Signature,
                _ => JwtRefused::Malformed,
            }
        })
    };
    let mut last = JwtRefused::Signature;
    let mut data = None;
    for jwk in candidates {
        match decode(jwk) {
            Ok(d) => {
                data = Some(d);
                break;
            }
            Err(e) => last = e,
        }
    }
    let data = data.ok_or(last)?;
    let claims = data.claims;
    let exp = claims.exp.ok_or(JwtRefused::Missing("exp"))?;
    if now >= exp.saturating_add(SKEW_SECS) {
        return Err(JwtRefused::Expired);
    }
    if claims
        .nbf
        .is_some_and(|nbf| now.saturating_add(SKEW_SECS) < nbf)
    {
        return Err(JwtRefused::NotYet);
    }
    let subject = claims
        .sub
        .filter(|s| !s.is_empty())
        .ok_or(JwtRefused::Missing("sub"))?;
    let scopes = claims
        .scope
        .or(claims.scp)
        .map(ScopeClaim::into_list)
        .unwrap_or_default();
    Ok(Verified {
        subject,
        scopes,
        expires: exp,
    })
}

impl Expect {
    /// What a caller with `scopes` may see and call here.
    pub fn view(&self, scopes: &[String]) -> ToolView {
        if self.scopes.is_empty() {
            return ToolView::of(vec![everything()], Vec::new());
        }
        let allow = self
            .scopes
            .iter()
            .filter(|(scope, _)| scopes.contains(scope))
            .flat_map(|(_, globs)| globs.iter().cloned())
            .collect();
        ToolView::of(allow, Vec::new())
    }

    /// The scopes that would grant `tool` (for `insufficient_scope`'s `scope=`).
    pub fn scopes_for(&self, tool: &str) -> Vec<&str> {
        self.scopes
            .iter()
            .filter(|(_, globs)| globs.iter().any(|g| g.matches(tool)))
            .map(|(scope, _)| scope.as_str())
            .collect()
    }
}

fn everything() -> Glob {
    // `*` always compiles.
    Glob::new("*").unwrap_or_else(|_| unreachable!("`*` is a glob"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use jsonwebtoken::{EncodingKey, Header};
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
    use serde_json::json;

    const ISS: &str = "http://127.0.0.1:9/issuer";
    const AUD: &str = "http://127.0.0.1:8000/mcp";
    const NOW: u64 = 1_800_000_000;

    /// An EC P-256 key made here: its private key (PKCS#8) and its JWK.
    fn ec_key(kid: &str) -> (EncodingKey, Jwk) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let public = pair.public_key().as_ref();
        let jwk = json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
            "x": B64.encode(&public[1..33]), "y": B64.encode(&public[33..65])});
        (
            EncodingKey::from_ec_der(pkcs8.as_ref()),
            serde_json::from_value(jwk).unwrap(),
        )
    }

    fn expect(scopes: &[(&str, &[&str])]) -> Expect {
        Expect {
            issuer: ISS.into(),
            audience: AUD.into(),
            scopes: scopes
                .iter()
                .map(|(s, g)| {
                    (
                        s.to_string(),
                        g.iter().map(|g| Glob::new(g).unwrap()).collect(),
                    )
                })
                .collect(),
        }
    }

    fn mint(
        key: &EncodingKey,
        alg: Algorithm,
        kid: Option<&str>,
        claims: serde_json::Value,
    ) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_string);
        jsonwebtoken::encode(&header, &claims, key).unwrap()
    }

    fn claims() -> serde_json::Value {
        json!({"iss": ISS, "aud": AUD, "sub": "alice", "exp": NOW + 300, "scope": "mcp:read other"})
    }

    #[test]
    fn a_token_of_the_issuer_for_this_resource_passes_with_its_scopes() {
        let (key, jwk) = ec_key("k1");
        let keys = JwkSet { keys: vec![jwk] };
        let token = mint(&key, Algorithm::ES256, Some("k1"), claims());
        assert_eq!(
            verify(&token, &keys, &expect(&[]), NOW),
            Ok(Verified {
                subject: "alice".into(),
                scopes: vec!["mcp:read".into(), "other".into()],
                expires: NOW + 300,
            })
        );
        // `scp` as a list; `aud` as a list naming this resource among others; no kid with one key.
        let mut c = claims();
        c["scope"] = serde_json::Value::Null;
        c["scp"] = json!(["a", "b"]);
        c["aud"] = json!(["other", AUD]);
        let token = mint(&key, Algorithm::ES256, None, c);
        assert_eq!(
            verify(&token, &keys, &expect(&[]), NOW).unwrap().scopes,
            ["a", "b"]
        );
    }

    #[test]
    fn each_claim_is_checked() {
        let (key, jwk) = ec_key("k1");
        let keys = JwkSet { keys: vec![jwk] };
        let with = |field: &str, value: serde_json::Value| {
            let mut c = claims();
            c[field] = value;
            verify(
                &mint(&key, Algorithm::ES256, Some("k1"), c),
                &keys,
                &expect(&[]),
                NOW,
            )
        };
        assert_eq!(with("iss", json!("http://evil")), Err(JwtRefused::Issuer));
        assert_eq!(
            with("aud", json!("http://127.0.0.1:8001/mcp")),
            Err(JwtRefused::Audience)
        );
        assert_eq!(
            with("exp", json!(NOW - SKEW_SECS)),
            Err(JwtRefused::Expired)
        );
        assert!(
            with("exp", json!(NOW - SKEW_SECS + 1)).is_ok(),
            "within the skew"
        );
        assert_eq!(
            with("nbf", json!(NOW + SKEW_SECS + 1)),
            Err(JwtRefused::NotYet)
        );
        assert!(with("nbf", json!(NOW + SKEW_SECS)).is_ok());
        let mut c = claims();
        c.as_object_mut().unwrap().remove("sub");
        let token = mint(&key, Algorithm::ES256, Some("k1"), c);
        assert_eq!(
            verify(&token, &keys, &expect(&[]), NOW),
            Err(JwtRefused::Missing("sub"))
        );
        let mut c = claims();
        c.as_object_mut().unwrap().remove("exp");
        let token = mint(&key, Algorithm::ES256, Some("k1"), c);
        assert_eq!(
            verify(&token, &keys, &expect(&[]), NOW),
            Err(JwtRefused::Missing("exp"))
        );
    }

    #[test]
    fn forged_tokens_are_refused() {
        let (key, jwk) = ec_key("k1");
        let (other, _) = ec_key("k1");
        let keys = JwkSet {
            keys: vec![jwk.clone()],
        };
        let e = expect(&[]);
        // Signed by another key under the same id.
        let token = mint(&other, Algorithm::ES256, Some("k1"), claims());
        assert_eq!(verify(&token, &keys, &e, NOW), Err(JwtRefused::Signature));
        // A key id the issuer does not have: its keys may have rotated.
        let token = mint(&key, Algorithm::ES256, Some("k9"), claims());
        let refused = verify(&token, &keys, &e, NOW).unwrap_err();
        assert!(refused.keys_may_have_rotated(), "{refused}");
        // HS256 with the public key as the shared secret (the HS/RS confusion).
        let public = serde_json::to_vec(&jwk).unwrap();
        let token = mint(
            &EncodingKey::from_secret(&public).unwrap(),
            Algorithm::HS256,
            Some("k1"),
            claims(),
        );
        assert!(matches!(
            verify(&token, &keys, &e, NOW),
            Err(JwtRefused::WrongAlgorithm { .. })
        ));
        // `alg: none`, unsigned.
        let body = B64.encode(serde_json::to_vec(&claims()).unwrap());
        for header in [
            r#"{"alg":"none","kid":"k1"}"#,
            r#"{"alg":"None"}"#,
            r#"{"typ":"JWT"}"#,
        ] {
            let token = format!("{}.{body}.", B64.encode(header));
            assert_eq!(
                verify(&token, &keys, &e, NOW),
                Err(JwtRefused::Malformed),
                "{header}"
            );
        }
        for garbage in ["", "a.b", "a.b.c", "....", "é.é.é"] {
            assert!(verify(garbage, &keys, &e, NOW).is_err(), "{garbage}");
        }
        // Two keys under one id (mid-rotation): the one that signed it is found.
        let (second, mut second_jwk) = ec_key("k1");
        second_jwk.common.key_id = Some("k1".into());
        let both = JwkSet {
            keys: vec![second_jwk, jwk.clone()],
        };
        let token = mint(&key, Algorithm::ES256, Some("k1"), claims());
        assert!(verify(&token, &both, &e, NOW).is_ok());
        let token = mint(&second, Algorithm::ES256, Some("k1"), claims());
        assert!(verify(&token, &both, &e, NOW).is_ok());
        // A payload nested deeper than serde's limit is refused, not a stack overflow.
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let header = B64.encode(r#"{"alg":"ES256","kid":"k1"}"#);
        let token = format!("{header}.{}.sig", B64.encode(format!(r#"{{"x":{deep}}}"#)));
        assert!(verify(&token, &keys, &e, NOW).is_err());
    }

    #[test]
    fn a_key_verifies_only_its_own_algorithm() {
        let (_, mut jwk) = ec_key("k1");
        assert_eq!(algorithms_of(&jwk), [Algorithm::ES256]);
        jwk.common.key_algorithm = Some(KeyAlgorithm::HS256);
        assert!(algorithms_of(&jwk).is_empty(), "an EC key named HS256");
        jwk.common.key_algorithm = Some(KeyAlgorithm::ES384);
        assert!(algorithms_of(&jwk).is_empty(), "a P-256 key named ES384");
        jwk.common.key_algorithm = None;
        jwk.common.public_key_use = Some(PublicKeyUse::Encryption);
        assert!(algorithms_of(&jwk).is_empty(), "a key for encryption");
        let oct: Jwk = serde_json::from_value(json!({"kty": "oct", "k": "c2VjcmV0"})).unwrap();
        assert!(algorithms_of(&oct).is_empty(), "a shared secret");
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let ed: Jwk = serde_json::from_value(json!({"kty": "OKP", "crv": "Ed25519", "kid": "ed",
            "x": B64.encode(pair.public_key().as_ref())}))
        .unwrap();
        assert_eq!(algorithms_of(&ed), [Algorithm::EdDSA]);
        let token = mint(
            &EncodingKey::from_ed_der(pkcs8.as_ref()),
            Algorithm::EdDSA,
            Some("ed"),
            claims(),
        );
        let keys = JwkSet { keys: vec![ed] };
        assert!(verify(&token, &keys, &expect(&[]), NOW).is_ok());
    }

    #[test]
    fn scopes_grant_their_patterns_and_nothing_else() {
        let e = expect(&[("mcp:read", &["ro_*", "search"]), ("mcp:write", &["*"])]);
        let read = e.view(&["mcp:read".into(), "unknown".into()]);
        assert!(read.permits("ro_list") && read.permits("search"));
        assert!(!read.permits("write"));
        assert!(e.view(&["nope".into()]).is_empty());
        assert!(e.view(&["mcp:write".into()]).permits("write"));
        assert_eq!(e.scopes_for("write"), ["mcp:write"]);
        assert_eq!(e.scopes_for("ro_x"), ["mcp:read", "mcp:write"]);
        // No scopes in the file: every tool.
        assert!(expect(&[]).view(&[]).permits("anything"));
    }

    /// What a JWT check costs (run by bench/tokens-bench.sh, release build): p50 of
    /// `verify` for an ES256 and an EdDSA token, keys held.
    #[test]
    // Ignored: a benchmark, not a check (timing is never asserted); its script runs it
    // in the release build and reports the figures.
    #[ignore = "a benchmark: bench/tokens-bench.sh"]
    #[allow(clippy::print_stdout)] // its lines are the benchmark's figures
    fn bench_verify() {
        let (ec, ec_jwk) = ec_key("ec");
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let ed_jwk: Jwk =
            serde_json::from_value(json!({"kty": "OKP", "crv": "Ed25519", "kid": "ed",
            "x": B64.encode(pair.public_key().as_ref())}))
            .unwrap();
        let keys = JwkSet {
            keys: vec![ec_jwk, ed_jwk],
        };
        let e = expect(&[("mcp:read", &["ro_*"])]);
        let tokens = [
            ("ES256", mint(&ec, Algorithm::ES256, Some("ec"), claims())),
            (
                "EdDSA",
                mint(
                    &EncodingKey::from_ed_der(pkcs8.as_ref()),
                    Algorithm::EdDSA,
                    Some("ed"),
                    claims(),
                ),
            ),
        ];
        for (alg, token) in tokens {
            let mut times: Vec<u128> = (0..5_000)
                .map(|_| {
                    let start = std::time::Instant::now();
                    let verified = verify(&token, &keys, &e, NOW);
                    let took = start.elapsed().as_nanos();
                    assert!(verified.is_ok());
                    took
                })
                .collect();
            times.sort_unstable();
            let p = |q: f64| times[((times.len() as f64) * q) as usize];
            println!(
                "verify: {alg}: p50 {} us, p90 {} us, p99 {} us",
                p(0.5) / 1000,
                p(0.9) / 1000,
                p(0.99) / 1000
            );
        }
    }
}
