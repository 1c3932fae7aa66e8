//! PURE. Each client's documented config shape, read into [`Entry`]s.
//!
//! - Claude Desktop, Cursor, Claude Code's `.mcp.json`: `{"mcpServers": {NAME: {command,
//!   args, env} | {type, url, headers}}}`.
//! - Claude Code's `~/.claude.json`: the same `mcpServers` at the top (user scope) and
//!   under `projects.PATH.mcpServers` (local scope).
//! - Windsurf's `mcp_config.json`: `mcpServers`, URL entries as `serverUrl`.
//! - VS Code's `.vscode/mcp.json`: `{"servers": {NAME: {type, command, args, env, url,
//!   headers}}, "inputs": [...]}` (`${input:ID}` values stay references).
//! - Zed's `settings.json`: `context_servers.NAME` with `command` (a string with `args`,
//!   or the older `{path, args, env}`) or `url`; the file may hold `//` comments.
//! - Codex's `config.toml`: `[mcp_servers.NAME]` with `command`, `args`, `env`, `url`,
//!   `http_headers`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{Client, Entry};

/// The entries of one client's file. `origin` names the file in entries and errors.
pub fn parse(client: Client, text: &str) -> Result<Vec<Entry>, String> {
    if client == Client::Codex {
        return codex(text);
    }
    // Zed's and VS Code's files are JSONC; a Windows editor may have put a BOM first.
    let text = strip_json_comments(text.trim_start_matches('\u{feff}'));
    let doc: Value = serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
    let Some(root) = doc.as_object() else {
        return Err("not a JSON object".into());
    };
    let mut entries = Vec::new();
    match client {
        Client::Vscode => servers_of(root.get("servers"), "", &mut entries)?,
        Client::Zed => zed(root.get("context_servers"), &mut entries)?,
        Client::ClaudeCode => {
            servers_of(root.get("mcpServers"), "", &mut entries)?;
            if let Some(projects) = root.get("projects").and_then(Value::as_object) {
                for (path, project) in projects {
                    servers_of(project.get("mcpServers"), path, &mut entries)?;
                }
            }
        }
        // Any other file: the common `mcpServers`, else VS Code's `servers`.
        Client::File if root.get("mcpServers").is_none() => {
            servers_of(root.get("servers"), "", &mut entries)?;
        }
        _ => servers_of(root.get("mcpServers"), "", &mut entries)?,
    }
    Ok(entries)
}

fn servers_of(section: Option<&Value>, scope: &str, out: &mut Vec<Entry>) -> Result<(), String> {
    let Some(section) = section else {
        return Ok(());
    };
    let Some(servers) = section.as_object() else {
        return Err("the servers section is not an object".into());
    };
    for (name, server) in servers {
        let Some(server) = server.as_object() else {
            return Err(format!("server `{name}` is not an object"));
        };
        out.push(entry(name, scope, server)?);
    }
    Ok(())
}

fn entry(name: &str, scope: &str, server: &Map<String, Value>) -> Result<Entry, String> {
    let url = ["url", "serverUrl", "httpUrl"]
        .iter()
        .find_map(|k| server.get(*k).and_then(Value::as_str))
        .map(str::to_string);
    let kind = server.get("type").and_then(Value::as_str).unwrap_or("");
    Ok(Entry {
        name: name.to_string(),
        scope: scope.to_string(),
        command: server
            .get("command")
            .and_then(Value::as_str)
            .map(str::to_string),
        args: strings(server.get("args"), name, "args")?,
        env: string_map(server.get("env"), name, "env")?,
        sse: kind == "sse"
            || url
                .as_deref()
                .is_some_and(|u| u.trim_end_matches('/').ends_with("/sse")),
        url,
        headers: string_map(server.get("headers"), name, "headers")?,
        cwd: server
            .get("cwd")
            .and_then(Value::as_str)
            .map(str::to_string),
        disabled: server.get("enabled").and_then(Value::as_bool) == Some(false)
            || server.get("disabled").and_then(Value::as_bool) == Some(true),
        bearer_env: server
            .get("bearer_token_env_var")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// An entry of a client's file from its JSON text (as `client link` reads one), to
/// tell which server it runs; `None` when it is not an object.
pub fn entry_of(name: &str, json: &str) -> Option<Entry> {
    let value: Value = serde_json::from_str(json).ok()?;
    let server = value.as_object()?;
    match server.get("command") {
        // Zed's older shape: `"command": {"path", "args", "env"}`.
        Some(Value::Object(command)) => {
            let mut e = entry(name, "", command).ok()?;
            e.command = command
                .get("path")
                .and_then(Value::as_str)
                .map(str::to_string);
            Some(e)
        }
        _ => entry(name, "", server).ok(),
    }
}

fn zed(section: Option<&Value>, out: &mut Vec<Entry>) -> Result<(), String> {
    let Some(servers) = section.and_then(Value::as_object) else {
        return Ok(());
    };
    for (name, server) in servers {
        let Some(server) = server.as_object() else {
            return Err(format!("server `{name}` is not an object"));
        };
        match server.get("command") {
            // The older shape: `"command": {"path", "args", "env"}`.
            Some(Value::Object(command)) => {
                let mut e = entry(name, "", command)?;
                e.command = command
                    .get("path")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                out.push(e);
            }
            _ => out.push(entry(name, "", server)?),
        }
    }
    Ok(())
}

fn codex(text: &str) -> Result<Vec<Entry>, String> {
    let doc: toml::Table = toml::from_str(text).map_err(|e| format!("not TOML: {e}"))?;
    let Some(servers) = doc.get("mcp_servers") else {
        return Ok(Vec::new());
    };
    let Some(servers) = servers.as_table() else {
        return Err("`mcp_servers` is not a table".into());
    };
    let mut entries = Vec::new();
    for (name, server) in servers {
        // The same shape as JSON's, through serde.
        let as_json = serde_json::to_value(server).map_err(|e| e.to_string())?;
        let Some(server) = as_json.as_object() else {
            return Err(format!("server `{name}` is not a table"));
        };
        let mut e = entry(name, "", server)?;
        e.headers = string_map(server.get("http_headers"), name, "http_headers")?;
        entries.push(e);
    }
    Ok(entries)
}

fn strings(value: Option<&Value>, server: &str, key: &str) -> Result<Vec<String>, String> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                _ => Err(format!("`{key}` of `{server}` holds a non-string")),
            })
            .collect(),
        Some(_) => Err(format!("`{key}` of `{server}` is not a list")),
    }
}

fn string_map(
    value: Option<&Value>,
    server: &str,
    key: &str,
) -> Result<BTreeMap<String, String>, String> {
    match value {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                Value::Number(_) | Value::Bool(_) => Ok((k.clone(), v.to_string())),
                _ => Err(format!("`{key}.{k}` of `{server}` is not a string")),
            })
            .collect(),
        Some(_) => Err(format!("`{key}` of `{server}` is not an object")),
    }
}

/// JSON with `//` and `/* */` comments (Zed's settings) as plain JSON; strings kept.
/// Trailing commas before `}` or `]` are dropped too.
pub fn strip_json_comments(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            out.push(b);
            if b == b'\\' && i + 1 < bytes.len() {
                out.push(bytes[i + 1]);
                i += 1;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
            out.push(b);
        } else if b == b'/' && bytes.get(i + 1) == Some(&b'/') {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        } else if b == b'/' && bytes.get(i + 1) == Some(&b'*') {
            i += 2;
            while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                i += 1;
            }
            i += 2;
            continue;
        } else if b == b',' {
            let next = bytes[i + 1..].iter().find(|c| !c.is_ascii_whitespace());
            if !matches!(next, Some(b'}' | b']')) {
                out.push(b);
            }
        } else {
            out.push(b);
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
