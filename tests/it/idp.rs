//! A local OpenID provider for the tests of `auth.oidc`: a key pair made here, its
//! discovery document and JWKS served on 127.0.0.1, tokens minted here. It can rotate
//! its key, serve a JWKS too large, or hold its answers (a slow issuer).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

/// An EC P-256 key: its private half (PKCS#8) and its public JWK.
pub struct Key {
    pub kid: String,
    pub pkcs8: Vec<u8>,
    pub jwk: Value,
}

impl Key {
    pub fn new(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let public = pair.public_key().as_ref();
        Self {
            kid: kid.into(),
            pkcs8: pkcs8.as_ref().to_vec(),
            jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
                "x": B64.encode(&public[1..33]), "y": B64.encode(&public[33..65])}),
        }
    }

    /// `claims` signed with this key (ES256), its id in the header.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(&self.pkcs8)).unwrap()
    }
}

#[derive(Default)]
struct State {
    keys: Vec<Value>,
    /// Pad the JWKS to this many bytes (a huge one).
    pad: usize,
}

pub struct Provider {
    pub base: String,
    port: u16,
    pub key: Mutex<Key>,
    state: Arc<Mutex<State>>,
    /// Requests for the JWKS so far.
    pub jwks_fetches: Arc<AtomicUsize>,
    /// Hold every answer (until stopped): an issuer that hangs.
    pub hang: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Provider {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let base = format!("http://127.0.0.1:{port}/realms/test");
        let key = Key::new("k1");
        let state = Arc::new(Mutex::new(State {
            keys: vec![key.jwk.clone()],
            pad: 0,
        }));
        let jwks_fetches = Arc::new(AtomicUsize::new(0));
        let hang = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, fetches, hang, stop, base) = (
                Arc::clone(&state),
                Arc::clone(&jwks_fetches),
                Arc::clone(&hang),
                Arc::clone(&stop),
                base.clone(),
            );
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (state, fetches, hang, stop, base) = (
                        Arc::clone(&state),
                        Arc::clone(&fetches),
                        Arc::clone(&hang),
                        Arc::clone(&stop),
                        base.clone(),
                    );
                    std::thread::spawn(move || {
                        answer(stream, &base, &state, &fetches, &hang, &stop)
                    });
                }
            })
        };
        Self {
            base,
            port,
            key: Mutex::new(key),
            state,
            jwks_fetches,
            hang,
            stop,
            thread: Some(thread),
        }
    }

    /// A token of this issuer for `audience`, with `scope`, valid for five minutes.
    pub fn mint(&self, audience: &str, subject: &str, scope: &str) -> String {
        self.mint_claims(&self.claims(audience, subject, scope))
    }

    pub fn claims(&self, audience: &str, subject: &str, scope: &str) -> Value {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        json!({"iss": self.base, "aud": audience, "sub": subject, "scope": scope,
            "iat": now, "exp": now + 300})
    }

    pub fn mint_claims(&self, claims: &Value) -> String {
        self.key.lock().unwrap().sign(claims)
    }

    /// A new key replaces the old one in the JWKS (tokens of the old one no longer verify).
    pub fn rotate(&self, kid: &str) {
        let key = Key::new(kid);
        self.state.lock().unwrap().keys = vec![key.jwk.clone()];
        *self.key.lock().unwrap() = key;
    }

    /// The JWKS grows past any sane size.
    pub fn pad_jwks(&self, bytes: usize) {
        self.state.lock().unwrap().pad = bytes;
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees `stop`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One request: the discovery document, the JWKS, or 404.
fn answer(
    mut stream: TcpStream,
    base: &str,
    state: &Mutex<State>,
    fetches: &AtomicUsize,
    hang: &AtomicBool,
    stop: &AtomicBool,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    if hang.load(Ordering::SeqCst) {
        // Held (bounded: 30 s, or until the provider stops).
        for _ in 0..300 {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        return;
    }
    let body = if path == "/realms/test/.well-known/openid-configuration" {
        json!({"issuer": base, "jwks_uri": format!("{base}/jwks"),
            "authorization_endpoint": format!("{base}/auth"), "token_endpoint": format!("{base}/token")})
        .to_string()
    } else if path == "/realms/test/jwks" {
        fetches.fetch_add(1, Ordering::SeqCst);
        let state = state.lock().unwrap();
        let mut doc = json!({"keys": state.keys});
        if state.pad > 0 {
            doc["padding"] = json!("x".repeat(state.pad));
        }
        doc.to_string()
    } else {
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    let _ = stream.write_all(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
}
