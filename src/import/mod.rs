//! PURE. `mcpctl import`: the MCP servers of other clients' config files, read
//! ([`formats`]), sorted into what the file gets ([`plan`]): local servers for
//! commands, remote ones for URLs, credentials as secrets to encrypt, `${VAR}`
//! references as they are, duplicates merged and clashes renamed, each reported.
//! The caller reads the files and writes the edit.

pub mod credentials;
pub mod formats;
pub mod plan;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A client whose config mcpctl reads (and, later, links).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    ClaudeDesktop,
    ClaudeCode,
    Cursor,
    Vscode,
    Windsurf,
    Zed,
    Codex,
    /// A file named on the command line, in the common `mcpServers` shape (or VS Code's).
    File,
}

impl Client {
    pub const ALL: [Client; 7] = [
        Client::ClaudeDesktop,
        Client::ClaudeCode,
        Client::Cursor,
        Client::Vscode,
        Client::Windsurf,
        Client::Zed,
        Client::Codex,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Client::ClaudeDesktop => "claude-desktop",
            Client::ClaudeCode => "claude-code",
            Client::Cursor => "cursor",
            Client::Vscode => "vscode",
            Client::Windsurf => "windsurf",
            Client::Zed => "zed",
            Client::Codex => "codex",
            Client::File => "file",
        }
    }

    pub fn from_name(name: &str) -> Option<Client> {
        Client::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Where the client keeps its MCP servers, user scope first, then the project's
    /// (under `cwd`); the home folders are given so nothing here reads the environment.
    pub fn locations(self, homes: &Homes, cwd: &Path) -> Vec<PathBuf> {
        let (home, config_home) = (&homes.home, &homes.config);
        let mac_support = home.join("Library/Application Support");
        match self {
            Client::ClaudeDesktop => vec![
                config_home.join("Claude/claude_desktop_config.json"),
                mac_support.join("Claude/claude_desktop_config.json"),
            ],
            Client::ClaudeCode => vec![home.join(".claude.json"), cwd.join(".mcp.json")],
            Client::Cursor => vec![home.join(".cursor/mcp.json"), cwd.join(".cursor/mcp.json")],
            Client::Vscode => vec![
                config_home.join("Code/User/mcp.json"),
                mac_support.join("Code/User/mcp.json"),
                cwd.join(".vscode/mcp.json"),
            ],
            Client::Windsurf => vec![home.join(".codeium/windsurf/mcp_config.json")],
            Client::Zed => vec![config_home.join("zed/settings.json")],
            Client::Codex => vec![homes.codex.join("config.toml")],
            Client::File => Vec::new(),
        }
    }
}

/// The folders clients keep their files under.
#[derive(Debug, Clone)]
pub struct Homes {
    /// `$HOME`.
    pub home: PathBuf,
    /// `$XDG_CONFIG_HOME`, else `$HOME/.config`.
    pub config: PathBuf,
    /// Codex's `$CODEX_HOME`, else `$HOME/.codex`.
    pub codex: PathBuf,
}

/// One server as a client declares it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Entry {
    pub name: String,
    /// Claude Code's per-project scope: the project's path; empty otherwise.
    pub scope: String,
    pub command: Option<String>,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub url: Option<String>,
    /// The URL speaks legacy SSE (`"type": "sse"`, or a URL ending in `/sse`).
    pub sse: bool,
    pub headers: BTreeMap<String, String>,
    /// The folder it runs in.
    pub cwd: Option<String>,
    /// Turned off in the client (`"disabled": true`, Codex's `enabled = false`).
    pub disabled: bool,
    /// Codex's `bearer_token_env_var`: the variable whose value it sends as a bearer.
    pub bearer_env: Option<String>,
}

#[cfg(test)]
mod tests;
