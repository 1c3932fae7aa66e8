//! Secrets: age-encrypted values in `mcpctl.toml`, safe to commit.
//!
//! A value is stored as `age:` + base64 of a binary age file encrypted to every
//! recipient in `[secrets] recipients`. The plaintext inside names the secret's
//! place (`servers.NAME.KEY`), and decryption checks it, so a ciphertext copied to
//! another key or server is refused. Plaintexts only ever live in `SecretString`s
//! (zeroized on drop); they never reach logs, errors, argv, plans or files.
//!
//! Trust model: age does not authenticate who wrote a ciphertext, and whoever can
//! write `mcpctl.toml` can change `command` anyway, so write access to the file is
//! trust. The place check stops accidents and copy-paste, not a malicious writer.

pub mod identity;
pub mod redact;
pub mod unlock;

use std::io::{Read, Write};
use std::str::FromStr;

use age::secrecy::{ExposeSecret, SecretString};
use age::x25519;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::model::resolve::SECRET_PREFIX;

pub use age::secrecy;

/// The first line of every plaintext payload.
const MAGIC: &str = "mcpctl-secret-v1";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the file has no recipients to encrypt to")]
    NoRecipients,
    #[error("`{0}` is not an age X25519 recipient (`age1...`)")]
    BadRecipient(String),
    #[error("cannot encrypt: {0}")]
    Encrypt(String),
    #[error("the value is not an mcpctl ciphertext (`age:...`)")]
    NotCiphertext,
    #[error("the ciphertext is corrupted: {0}")]
    Corrupt(String),
    #[error("this identity is not one of its recipients")]
    NotARecipient,
    #[error("it was encrypted for `{made_for}`, not `{place}`: it was moved or copied")]
    Moved { made_for: String, place: String },
}

pub fn parse_recipients(recipients: &[String]) -> Result<Vec<x25519::Recipient>, Error> {
    recipients
        .iter()
        .map(|r| x25519::Recipient::from_str(r).map_err(|_| Error::BadRecipient(r.clone())))
        .collect()
}

/// Encrypts `value` for `place` to every recipient.
pub fn encrypt(value: &SecretString, place: &str, recipients: &[String]) -> Result<String, Error> {
    let parsed = parse_recipients(recipients)?;
    if parsed.is_empty() {
        return Err(Error::NoRecipients);
    }
    let encryptor =
        age::Encryptor::with_recipients(parsed.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| Error::Encrypt(e.to_string()))?;
    let mut binary = Vec::new();
    let mut writer = encryptor
        .wrap_output(&mut binary)
        .map_err(|e| Error::Encrypt(e.to_string()))?;
    let payload = SecretString::from(format!("{MAGIC}\n{place}\n{}", value.expose_secret()));
    writer
        .write_all(payload.expose_secret().as_bytes())
        .and_then(|()| writer.finish().map(drop))
        .map_err(|e| Error::Encrypt(e.to_string()))?;
    Ok(format!("{SECRET_PREFIX}{}", BASE64.encode(binary)))
}

/// Decrypts a value written for `place`.
pub fn decrypt(
    ciphertext: &str,
    place: &str,
    identities: &[x25519::Identity],
) -> Result<SecretString, Error> {
    let binary = ciphertext
        .strip_prefix(SECRET_PREFIX)
        .ok_or(Error::NotCiphertext)?;
    let binary = BASE64
        .decode(binary.trim())
        .map_err(|e| Error::Corrupt(e.to_string()))?;
    let decryptor =
        age::Decryptor::new_buffered(&binary[..]).map_err(|e| Error::Corrupt(e.to_string()))?;
    let mut reader = decryptor
        .decrypt(identities.iter().map(|i| i as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => Error::NotARecipient,
            other => Error::Corrupt(other.to_string()),
        })?;
    let mut bytes = Vec::new();
    let read = reader.read_to_end(&mut bytes);
    let text = SecretString::from(String::from_utf8_lossy(&bytes).into_owned());
    zeroize_vec(&mut bytes);
    read.map_err(|e| Error::Corrupt(e.to_string()))?;
    let mut parts = text.expose_secret().splitn(3, '\n');
    if parts.next() != Some(MAGIC) {
        return Err(Error::Corrupt("not an mcpctl secret".into()));
    }
    let made_for = parts.next().unwrap_or_default();
    if made_for != place {
        return Err(Error::Moved {
            made_for: made_for.to_string(),
            place: place.to_string(),
        });
    }
    Ok(SecretString::from(
        parts.next().unwrap_or_default().to_string(),
    ))
}

fn zeroize_vec(bytes: &mut [u8]) {
    use age::secrecy::zeroize::Zeroize;
    bytes.zeroize();
}

/// How many X25519 recipients a ciphertext is encrypted to (from its header).
pub fn recipient_count(ciphertext: &str) -> Option<usize> {
    let binary = BASE64
        .decode(ciphertext.strip_prefix(SECRET_PREFIX)?.trim())
        .ok()?;
    let header_end = binary.windows(4).position(|w| w == b"\n---")?;
    let header = String::from_utf8_lossy(&binary[..header_end]);
    Some(
        header
            .lines()
            .filter(|l| l.starts_with("-> X25519 "))
            .count(),
    )
}

/// A keyed digest of a plaintext: what the spec hash sees. Keyed so that the digest,
/// which travels in plans and state, cannot be used to guess short tokens.
pub fn digest(key: &[u8; 32], value: &SecretString) -> String {
    blake3::keyed_hash(key, value.expose_secret().as_bytes()).to_hex()[..32].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (x25519::Identity, String) {
        let id = x25519::Identity::generate();
        let recipient = id.to_public().to_string();
        (id, recipient)
    }

    #[test]
    fn round_trip_for_every_recipient_and_not_for_others() {
        let (a, ra) = pair();
        let (b, rb) = pair();
        let (c, _) = pair();
        let secret = SecretString::from("xoxb-123".to_string());
        let ct = encrypt(&secret, "servers.slack.TOKEN", &[ra, rb]).unwrap();
        assert!(ct.starts_with("age:") && !ct.contains('\n') && !ct.contains("xoxb"));
        assert_eq!(recipient_count(&ct), Some(2));
        for id in [a, b] {
            let plain = decrypt(&ct, "servers.slack.TOKEN", &[id]).unwrap();
            assert_eq!(plain.expose_secret(), "xoxb-123");
        }
        assert!(matches!(
            decrypt(&ct, "servers.slack.TOKEN", &[c]),
            Err(Error::NotARecipient)
        ));
    }

    #[test]
    fn a_moved_or_damaged_ciphertext_is_refused() {
        let (a, ra) = pair();
        let ct = encrypt(&SecretString::from("v".to_string()), "servers.a.K", &[ra]).unwrap();
        let moved = decrypt(&ct, "servers.b.K", std::slice::from_ref(&a)).unwrap_err();
        assert_eq!(
            moved.to_string(),
            "it was encrypted for `servers.a.K`, not `servers.b.K`: it was moved or copied"
        );
        let mut damaged = ct.clone();
        damaged.truncate(ct.len() - 8);
        damaged.push_str("AAAAAAA=");
        assert!(matches!(
            decrypt(&damaged, "servers.a.K", std::slice::from_ref(&a)),
            Err(Error::Corrupt(_))
        ));
        assert!(matches!(
            decrypt("age:!!!", "servers.a.K", std::slice::from_ref(&a)),
            Err(Error::Corrupt(_))
        ));
        assert!(matches!(
            decrypt("plain", "servers.a.K", &[a]),
            Err(Error::NotCiphertext)
        ));
        assert!(matches!(
            encrypt(&SecretString::from("v".to_string()), "p", &[]),
            Err(Error::NoRecipients)
        ));
        assert!(matches!(
            encrypt(&SecretString::from("v".to_string()), "p", &["nope".into()]),
            Err(Error::BadRecipient(_))
        ));
    }

    #[test]
    fn digests_follow_the_plaintext_not_the_ciphertext() {
        let key = [7u8; 32];
        let v = SecretString::from("same".to_string());
        assert_eq!(
            digest(&key, &v),
            digest(&key, &SecretString::from("same".to_string()))
        );
        assert_ne!(
            digest(&key, &v),
            digest(&key, &SecretString::from("other".to_string()))
        );
        assert_ne!(digest(&key, &v), digest(&[8u8; 32], &v));
    }
}
