//! Decrypting the secrets of a loaded config: fills each secret's digest (so plans
//! and spec hashes see plaintext changes, never re-encryptions) and returns the
//! plaintexts per server for the daemon to hand to its children.

use std::collections::BTreeMap;
use std::path::Path;

use age::secrecy::SecretString;

use super::{Error as SecretError, decrypt, digest, identity};
use crate::config::{self, Loaded, store};
use crate::diag::Diagnostic;
use crate::model::locate::Locator;

/// Plaintexts by server and key.
#[derive(Default)]
pub struct Unlocked {
    pub values: BTreeMap<String, BTreeMap<String, SecretString>>,
}

impl Unlocked {
    pub fn all(&self) -> impl Iterator<Item = &SecretString> {
        self.values.values().flat_map(BTreeMap::values)
    }
}

/// The key path of a secret's value from its place (`servers.a.K` ->
/// `servers.a.secrets.K`).
fn value_path(place: &str) -> Vec<String> {
    let mut parts: Vec<String> = place.split('.').map(str::to_string).collect();
    let key = parts.pop().unwrap_or_default();
    parts.push("secrets".into());
    parts.push(key);
    parts
}

fn hint_for(e: &SecretError) -> String {
    match e {
        SecretError::NotARecipient => {
            "ask someone who can read it to run `mcpctl config secret recipients add <your age1...>`".into()
        }
        SecretError::Moved { .. } => "set it again in its new place with `mcpctl config secret set`".into(),
        _ => "set it again with `mcpctl config secret set`".into(),
    }
}

/// Decrypts every secret of `loaded`; with none, needs no identity.
pub fn unlock(loaded: &mut Loaded) -> Result<Unlocked, config::Error> {
    let has_secrets = loaded
        .config
        .servers
        .values()
        .any(|s| !s.secrets.is_empty());
    if !has_secrets {
        return Ok(Unlocked::default());
    }
    let locator = Locator::new(&loaded.source);
    let first_place = loaded
        .config
        .servers
        .values()
        .flat_map(|s| {
            s.secrets
                .iter()
                .map(move |(k, r)| (s.name.clone(), k.clone(), r.place.clone()))
        })
        .next();
    let identities = identity::load().map_err(|e| {
        let (server, key, place) = first_place.clone().unwrap_or_default();
        let diag = Diagnostic::new(format!(
            "cannot decrypt secret `{key}` of server `{server}`: {e}"
        ))
        .at(locator.value(&value_path(&place)), "needs an identity");
        let diag = match e.hint() {
            Some(hint) => diag.hint(hint),
            None => diag,
        };
        config::Error::invalid(&loaded.path, &loaded.source, vec![diag])
    })?;
    let key = digest_key(&store::runtime_dir(&loaded.path))?;
    let mut unlocked = Unlocked::default();
    let mut diags = Vec::new();
    for (server, spec) in &mut loaded.config.servers {
        for (name, secret) in &mut spec.secrets {
            match decrypt(&secret.ciphertext, &secret.place, &identities) {
                Ok(value) => {
                    secret.digest = Some(digest(&key, &value));
                    unlocked
                        .values
                        .entry(server.clone())
                        .or_default()
                        .insert(name.clone(), value);
                }
                Err(e) => diags.push(
                    Diagnostic::new(format!(
                        "cannot decrypt secret `{name}` of server `{server}`: {e}"
                    ))
                    .at(locator.value(&value_path(&secret.place)), "")
                    .hint(hint_for(&e)),
                ),
            }
        }
    }
    // Secrets shared through [defaults] fail once per server: report each place once.
    diags.dedup_by(|a, b| a.span == b.span && a.span.is_some());
    if diags.is_empty() {
        Ok(unlocked)
    } else {
        Err(config::Error::invalid(&loaded.path, &loaded.source, diags))
    }
}

/// The local key for secret digests, `.mcpctl/digest.key` (mode 0600), made on first use.
fn digest_key(runtime: &Path) -> Result<[u8; 32], config::Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = runtime.join("digest.key");
    let parse = |text: &str| -> Option<[u8; 32]> {
        let bytes = blake3::Hash::from_hex(text.trim()).ok()?;
        Some(*bytes.as_bytes())
    };
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Some(key) = parse(&text)
    {
        return Ok(key);
    }
    std::fs::create_dir_all(runtime).map_err(|e| config::Error::io(runtime, e))?;
    let mut key = [0u8; 32];
    getrandom::fill(&mut key)
        .map_err(|e| config::Error::io(&path, std::io::Error::other(e.to_string())))?;
    let hex = blake3::Hash::from_bytes(key).to_hex().to_string();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path);
    match &mut file {
        Ok(f) => {
            use std::io::Write;
            f.write_all(hex.as_bytes())
                .map_err(|e| config::Error::io(&path, e))?;
            Ok(key)
        }
        // Another process made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| parse(&t))
            .ok_or_else(|| {
                config::Error::edit(format!("{} is damaged; delete it", path.display()), None)
            }),
        Err(e) => Err(config::Error::io(
            &path,
            std::io::Error::new(e.kind(), e.to_string()),
        )),
    }
}
