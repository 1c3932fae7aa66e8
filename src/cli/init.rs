//! `mcpctl init`: a commented starter file, its schema beside it, and `.mcpctl/` in
//! `.gitignore`.

use std::io::ErrorKind;
use std::path::Path;

use super::{Error, ok};
use crate::config::{Error as ConfigError, find::FILE_NAME, store};
use crate::schema;

/// The starter file. It must validate (a test checks it) and plan to no changes.
pub(super) const STARTER: &str = r#"#:schema ./mcpctl.schema.json
# mcpctl.toml: the MCP servers of this project, their profiles and environment.
# `mcpctl plan` shows what would change; `mcpctl validate` checks this file.
version = 1

# Who can decrypt the secrets (`mcpctl config secret set KEY --server NAME`).
# Add teammates with `mcpctl config secret recipients add age1...`.
[secrets]
recipients = []

# Inherited by every server.
[defaults]
bind = "127.0.0.1"
restart = "on-failure" # always | on-failure | never
stop_timeout = "10s"

# A profile is an overlay of any server field; a server picks one with
# `profile = "NAME"`. Per-server overrides go in [profiles.NAME.servers.SERVER].
# [profiles.production]
# instances = 2
# env = { LOG_LEVEL = "warn" }

# One block per server; mcpctl serves each at http://BIND:PORT (/mcp and /sse).
# [servers.everything]
# command = "npx"
# args = ["-y", "@modelcontextprotocol/server-everything"]
# transport = "stdio" # stdio | sse | streamable-http
# port = 8000
# env = { API_BASE = "https://example.invalid" }
# tls = { cert = "cert.pem", key = "key.pem" } # serve this port over HTTPS
# tools = { deny = ["*delete*"] } # which tools agents see and may call (globs)

# Several servers behind one port, with a tool policy (`mcpctl tools NAME` shows it).
# [endpoints.work]
# port = 8100
# servers = ["everything"]
# prefix = "always" # always (tools named server__tool) | on-collision | never
# tools = { allow = ["everything__*"], read_only = false }
"#;

pub(super) fn run(file: Option<&Path>, cwd: &Path) -> Result<u8, Error> {
    let path = file.map_or_else(|| cwd.join(FILE_NAME), Path::to_path_buf);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| ConfigError::io(dir, e))?;
    }
    let starter = match my_recipient() {
        Some(r) => STARTER.replace("recipients = []", &format!("recipients = [\"{r}\"]")),
        None => STARTER.to_string(),
    };
    match store::create_new(&path, &starter) {
        Err(ConfigError::Io { source, .. }) if source.kind() == ErrorKind::AlreadyExists => {
            return Err(ConfigError::edit(
                format!("{} already exists", path.display()),
                Some("edit it, or check it with `mcpctl validate`".to_string()),
            )
            .into());
        }
        other => other?,
    }
    // Where the starter's `#:schema` line points, whatever the file is called: beside
    // it and committed with it, so a clone's link does not dangle (`.mcpctl/` is
    // git-ignored).
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(cwd);
    let _lock = store::lock(&path)?;
    store::write_atomic(&dir.join(schema::BESIDE), &schema::json_schema())?;
    ignore_runtime_dir(path.parent().unwrap_or(cwd))?;
    crate::note!(
        "wrote {}; next: add a server, then `mcpctl plan`",
        path.display()
    );
    ok()
}

/// This user's recipient, creating the identity when there is none yet.
fn my_recipient() -> Option<String> {
    use crate::secrets::identity;
    if let Ok(ids) = identity::load() {
        return identity::recipient(&ids);
    }
    match identity::generate() {
        Ok(recipient) => {
            if let Ok(p) = identity::path() {
                crate::note!(
                    "created your age identity at {} (mode 0600): keep it private",
                    p.display()
                );
            }
            Some(recipient)
        }
        Err(e) => {
            crate::note!("warning: no recipient added to [secrets]: {e}");
            None
        }
    }
}

/// Appends `.mcpctl/` to the folder's `.gitignore` unless it is already ignored.
fn ignore_runtime_dir(dir: &Path) -> Result<(), Error> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let path = dir.join(".gitignore");
    let existing = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => String::new(),
        Err(e) => return Err(ConfigError::io(&path, e).into()),
    };
    let entry = format!("{}/", store::RUNTIME_DIR);
    if existing
        .lines()
        .any(|l| l.trim() == entry || l.trim() == store::RUNTIME_DIR)
    {
        return Ok(());
    }
    let mut text = existing;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&entry);
    text.push('\n');
    store::write_atomic(&path, &text)?;
    Ok(())
}
