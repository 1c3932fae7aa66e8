//! The backup document of one server: what `server backup` writes and the checks
//! `server restore` makes before anything is touched. Pure: bytes in, a checked
//! [`Content`] or the one reason it is refused out.
//!
//! A document is an envelope around its content:
//!
//! ```json
//! {"format": "mcpctl-server-backup", "format_version": 1,
//!  "checksum": "blake3:<hex of the content's exact text>", "content": {...}}
//! ```
//!
//! The checksum covers the content's bytes as written, so any change to them (a
//! flipped byte, an edit by hand) is caught; the envelope's own fields are checked
//! one by one. `backup --all` writes a bundle, `{"format": "mcpctl-backup",
//! "format_version": 1, "backups": [document, ...]}`, and restore takes one server's
//! document out of it. Secrets stay the age ciphertexts of the file: nothing here
//! is ever plaintext.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The `format` of one server's document.
pub const FORMAT: &str = "mcpctl-server-backup";
/// The `format` of a bundle of them (`backup --all --output FILE`).
pub const BUNDLE_FORMAT: &str = "mcpctl-backup";
/// The only format version this build writes and reads.
pub const FORMAT_VERSION: u64 = 1;

/// The most a server block or a profile section of a backup may hold: a real one is
/// a few KiB; a bigger one (a 60 MB comment) would grow the file by as much.
pub const MAX_SECTION: usize = 1024 * 1024;

fn too_big(what: &str, len: usize) -> Refused {
    Refused::Schema(format!(
        "its {what} is {len} bytes, over the {} KiB a backup's section may hold",
        MAX_SECTION / 1024
    ))
}

/// What a backup holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Content {
    /// The server's name in the file it came from.
    pub server: String,
    /// `[servers.NAME]` (and its sub-tables) as it stood in the file: the comments
    /// above and inside it, secrets as their ciphertexts.
    pub block: String,
    /// The profile it uses, `[profiles.P]` with only this server's override, when the
    /// file defines it (`default` usually is not).
    pub profile: Option<Section>,
    /// `[defaults]` as it stood, for the record (restore never rewrites it).
    pub defaults: Option<String>,
    /// The file's `[secrets] recipients`: who can decrypt the block's secrets.
    pub recipients: Vec<String>,
    /// What ran when the backup was taken, when a daemon ran it.
    pub runtime: Option<Runtime>,
    pub mcpctl_version: String,
    /// RFC 3339.
    pub backed_up_at: String,
}

/// A named section of the file, as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    pub name: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Runtime {
    pub status: String,
    pub created_at: String,
    pub restarts: u32,
    /// The git commit the running config was applied from, when known.
    pub applied_commit: Option<String>,
}

/// Why a document is refused. Each says which of the ways a backup goes wrong it is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refused {
    #[error("it is not JSON ({0}): not a backup")]
    NotJson(String),
    #[error("it ends early ({0}): the backup is truncated")]
    Truncated(String),
    #[error("it is not an mcpctl server backup (its `format` is {0}, not \"{FORMAT}\")")]
    Foreign(String),
    #[error(
        "it is backup format {0}, newer than this mcpctl reads ({FORMAT_VERSION}): upgrade mcpctl to restore it"
    )]
    Newer(u64),
    #[error(
        "its checksum does not match its content: it was changed or corrupted after it was written"
    )]
    Checksum,
    #[error("it is not a valid backup: {0}")]
    Schema(String),
    #[error("it is a backup of server `{found}`, not `{wanted}`")]
    OtherServer { found: String, wanted: String },
    #[error("the bundle holds no backup of server `{wanted}` (it has: {})", .found.join(", "))]
    NotInBundle { wanted: String, found: Vec<String> },
}

#[derive(Serialize)]
struct Envelope<'a> {
    format: &'a str,
    format_version: u64,
    checksum: String,
    content: &'a RawValue,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadEnvelope<'a> {
    #[allow(dead_code)]
    format: String,
    #[allow(dead_code)]
    format_version: u64,
    checksum: String,
    #[serde(borrow)]
    content: &'a RawValue,
}

#[derive(Serialize)]
struct Bundle<'a> {
    format: &'a str,
    format_version: u64,
    backups: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadBundle<'a> {
    #[allow(dead_code)]
    format: String,
    #[allow(dead_code)]
    format_version: u64,
    #[serde(borrow)]
    backups: Vec<&'a RawValue>,
}

fn checksum(content: &str) -> String {
    format!("blake3:{}", blake3::hash(content.as_bytes()).to_hex())
}

/// The document of `content`, ending with a newline.
pub fn write(content: &Content) -> Result<String, serde_json::Error> {
    // Indented as it sits in the envelope; JSON strings hold no raw newline, so this
    // changes only the layout. The checksum covers exactly these bytes.
    let text = serde_json::to_string_pretty(content)?.replace('\n', "\n  ");
    let raw = RawValue::from_string(text)?;
    let envelope = Envelope {
        format: FORMAT,
        format_version: FORMAT_VERSION,
        checksum: checksum(raw.get()),
        content: &raw,
    };
    Ok(serde_json::to_string_pretty(&envelope)? + "\n")
}

/// A bundle of documents made by [`write`].
pub fn write_bundle(documents: &[String]) -> Result<String, serde_json::Error> {
    let raws = documents
        .iter()
        .map(|d| RawValue::from_string(d.trim_end().to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let bundle = Bundle {
        format: BUNDLE_FORMAT,
        format_version: FORMAT_VERSION,
        backups: raws.iter().map(AsRef::as_ref).collect(),
    };
    Ok(serde_json::to_string_pretty(&bundle)? + "\n")
}

/// Checks `bytes` (a document, or a bundle holding one for `server`) and returns the
/// content of `server`'s backup.
pub fn read(bytes: &[u8], server: &str) -> Result<Content, Refused> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        if e.is_eof() {
            Refused::Truncated(e.to_string())
        } else {
            Refused::NotJson(e.to_string())
        }
    })?;
    let format = value.get("format");
    match format.and_then(serde_json::Value::as_str) {
        Some(FORMAT) => {}
        Some(BUNDLE_FORMAT) => {
            check_version(&value)?;
            let text = std::str::from_utf8(bytes).map_err(|e| Refused::NotJson(e.to_string()))?;
            let bundle: ReadBundle<'_> =
                serde_json::from_str(text).map_err(|e| Refused::Schema(e.to_string()))?;
            let mut found = Vec::new();
            for (at, doc) in bundle.backups.iter().enumerate() {
                match read(doc.get().as_bytes(), server) {
                    Err(Refused::OtherServer { found: other, .. }) => found.push(other),
                    // A bad document of another server does not block this one's: it is
                    // refused when it is the one asked for.
                    Err(why) => match claimed_server(doc.get()) {
                        Some(name) if name == server => return Err(why),
                        name => found.push(format!(
                            "{} (document {}, refused: {why})",
                            name.unwrap_or_else(|| "?".into()),
                            at + 1
                        )),
                    },
                    result => return result,
                }
            }
            return Err(Refused::NotInBundle {
                wanted: server.to_string(),
                found,
            });
        }
        _ => {
            return Err(Refused::Foreign(
                format.map_or_else(|| "missing".to_string(), ToString::to_string),
            ));
        }
    }
    check_version(&value)?;
    // Valid JSON, so valid UTF-8.
    let text = std::str::from_utf8(bytes).map_err(|e| Refused::NotJson(e.to_string()))?;
    let envelope: ReadEnvelope<'_> =
        serde_json::from_str(text).map_err(|e| Refused::Schema(e.to_string()))?;
    if envelope.checksum != checksum(envelope.content.get()) {
        return Err(Refused::Checksum);
    }
    let content: Content =
        serde_json::from_str(envelope.content.get()).map_err(|e| Refused::Schema(e.to_string()))?;
    if content.server != server {
        return Err(Refused::OtherServer {
            found: content.server,
            wanted: server.to_string(),
        });
    }
    check_block(&content)?;
    Ok(content)
}

/// The server a document says it holds, read without trusting it (to tell whose
/// document a refused one was).
fn claimed_server(text: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    value
        .get("content")?
        .get("server")?
        .as_str()
        .map(str::to_string)
}

fn check_version(value: &serde_json::Value) -> Result<(), Refused> {
    match value
        .get("format_version")
        .and_then(serde_json::Value::as_u64)
    {
        Some(FORMAT_VERSION) => Ok(()),
        Some(v) if v > FORMAT_VERSION => Err(Refused::Newer(v)),
        _ => Err(Refused::Schema(format!(
            "`format_version` must be {FORMAT_VERSION}"
        ))),
    }
}

/// The block must be TOML holding `[servers.NAME]` and nothing else; its fields are
/// checked with the whole file it is restored into.
fn check_block(content: &Content) -> Result<(), Refused> {
    if content.block.len() > MAX_SECTION {
        return Err(too_big("server block", content.block.len()));
    }
    let raw = crate::model::parse_raw(&content.block)
        .map_err(|d| Refused::Schema(format!("its server block: {}", d.message)))?;
    let only_the_server = raw.servers.len() == 1
        && raw.servers.contains_key(&content.server)
        && raw.profiles.is_empty()
        && raw.defaults.is_none()
        && raw.secrets.is_none()
        && raw.version.is_none();
    if !only_the_server {
        return Err(Refused::Schema(format!(
            "its server block must hold `[servers.{}]` and nothing else",
            content.server
        )));
    }
    if let Some(profile) = &content.profile {
        if profile.text.len() > MAX_SECTION {
            return Err(too_big("profile section", profile.text.len()));
        }
        let raw = crate::model::parse_raw(&profile.text)
            .map_err(|d| Refused::Schema(format!("its profile section: {}", d.message)))?;
        if raw.profiles.len() != 1 || !raw.profiles.contains_key(&profile.name) {
            return Err(Refused::Schema(format!(
                "its profile section must hold `[profiles.{}]` and nothing else",
                profile.name
            )));
        }
        // A backup of one server brings that server's override only: another's (a
        // `command` for a server it does not hold) is refused like a foreign block.
        let others: Vec<&String> = raw
            .profiles
            .values()
            .flat_map(|p| p.servers.iter().flat_map(|s| s.keys()))
            .filter(|name| **name != content.server)
            .collect();
        if !others.is_empty() {
            return Err(Refused::Schema(format!(
                "its profile section carries overrides of other servers ({}); a backup of `{}` may hold its own only",
                others
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                content.server
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
