//! The user's age identity: `$XDG_CONFIG_HOME/mcpctl/identity.txt` by default
//! (`~/.config/...` without XDG), `MCPCTL_IDENTITY` or `--identity` to override.
//! Written with mode 0600; like ssh with its keys, a file that group or others can
//! read is refused.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::OnceLock;

use age::secrecy::ExposeSecret;
use age::x25519;

static OVERRIDE: OnceLock<PathBuf> = OnceLock::new();

/// `--identity PATH`, set once at start-up.
pub fn set_override(path: PathBuf) {
    let _ = OVERRIDE.set(path);
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no age identity at {0}")]
    Missing(PathBuf),
    #[error("{path} can be read by others (mode {mode:o}); refusing to use it")]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("{0} holds no AGE-SECRET-KEY line")]
    Empty(PathBuf),
    #[error("{path}:{line}: not an age X25519 identity")]
    Bad { path: PathBuf, line: usize },
    #[error("{0} already exists (its recipient: {1}); a key is never overwritten")]
    Exists(PathBuf, String),
    #[error("cannot find a home: set XDG_CONFIG_HOME, HOME or MCPCTL_IDENTITY")]
    NoHome,
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// What to do about it. One list, so every command that needs the identity
    /// (validate, apply, secret get, restore) gives the same advice.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Missing(_) => Some(
                "create one with `mcpctl config secret keygen`, or point MCPCTL_IDENTITY / --identity at yours".into(),
            ),
            Self::TooOpen { path, .. } => Some(format!("run `chmod 600 {}`", path.display())),
            Self::Exists(..) => Some(
                "`mcpctl config secret keygen --add` adds the existing key to the file's recipients".into(),
            ),
            _ => None,
        }
    }
}

/// Whether the identity was named (`--identity`, `MCPCTL_IDENTITY`): then a missing
/// one is an error even where the default one may be absent.
pub fn named() -> bool {
    OVERRIDE.get().is_some() || std::env::var_os("MCPCTL_IDENTITY").is_some_and(|v| !v.is_empty())
}

/// Where the identity is looked for.
pub fn path() -> Result<PathBuf, Error> {
    if let Some(p) = OVERRIDE.get() {
        return Ok(p.clone());
    }
    let var = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(p) = var("MCPCTL_IDENTITY") {
        return Ok(p);
    }
    let config = var("XDG_CONFIG_HOME")
        .or_else(|| var("HOME").map(|h| h.join(".config")))
        .ok_or(Error::NoHome)?;
    Ok(config.join("mcpctl").join("identity.txt"))
}

/// The identities in the file at [`path`].
pub fn load() -> Result<Vec<x25519::Identity>, Error> {
    let path = path()?;
    let meta = fs::metadata(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::Missing(path.clone()),
        _ => Error::Io {
            path: path.clone(),
            source: e,
        },
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::TooOpen { path, mode });
    }
    let text =
        age::secrecy::SecretString::from(fs::read_to_string(&path).map_err(|e| Error::Io {
            path: path.clone(),
            source: e,
        })?);
    let mut identities = Vec::new();
    for (n, line) in text.expose_secret().lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let id = x25519::Identity::from_str(line).map_err(|_| Error::Bad {
            path: path.clone(),
            line: n + 1,
        })?;
        identities.push(id);
    }
    if identities.is_empty() {
        return Err(Error::Empty(path));
    }
    Ok(identities)
}

/// The public recipient of the first identity.
pub fn recipient(identities: &[x25519::Identity]) -> Option<String> {
    identities.first().map(|i| i.to_public().to_string())
}

/// Writes a new identity (mode 0600, folder 0700) and returns its recipient.
pub fn generate() -> Result<String, Error> {
    let path = path()?;
    if path.exists() {
        let existing = load()
            .ok()
            .and_then(|ids| recipient(&ids))
            .unwrap_or_else(|| "unreadable".into());
        return Err(Error::Exists(path, existing));
    }
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| Error::Io { path: p, source }
    };
    if let Some(dir) = path.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
    }
    let identity = x25519::Identity::generate();
    let public = identity.to_public().to_string();
    let created = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io(&path))?;
    let text = age::secrecy::SecretString::from(format!(
        "# created: {created}\n# public key: {public}\n{}\n",
        identity.to_string().expose_secret()
    ));
    file.write_all(text.expose_secret().as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io(&path))?;
    Ok(public)
}
