//! `search`, `add`, `outdated` and `upgrade`: the MCP registry as the catalogue.

use clap::Args;

use super::{EditApply, Format};

/// Which registry, and how long to wait for it.
#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// The registry's base URL [default: $MCPCTL_REGISTRY, else `[registry] url` in
    /// the file, else https://registry.modelcontextprotocol.io]
    #[arg(long, value_name = "URL", env = "MCPCTL_REGISTRY")]
    pub registry: Option<String>,
    /// Give up on the registry after this long, in all (e.g. 10s, 1m)
    #[arg(long, value_name = "DURATION", default_value = "20s")]
    pub timeout: humantime::Duration,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Words of the name or description (empty: everything, a page at a time)
    #[arg(default_value = "")]
    pub term: String,
    /// Show at most this many
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub limit: usize,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// A registry entry (`io.github.owner/server`) or a server.json file
    #[arg(value_name = "NAME|FILE.json")]
    pub what: String,
    /// The server's name in the file [default: the entry's last segment]
    #[arg(long = "as", value_name = "LOCAL")]
    pub as_name: Option<String>,
    /// Serve it on this port [default: a free one from 8000 up]
    #[arg(long, value_name = "N")]
    pub port: Option<u16>,
    /// An environment variable (repeatable), over the entry's default
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// An argument's value (its name in the entry: `--arg city=Oslo`), a
    /// `{placeholder}`'s or a header's (repeatable)
    #[arg(long = "arg", value_name = "NAME=VALUE")]
    pub args: Vec<String>,
    /// A secret (repeatable): `KEY=VALUE`, `KEY=-` reads stdin, `KEY` alone asks on
    /// the terminal without echo; encrypted with age into the file
    #[arg(long = "secret", value_name = "KEY[=VALUE|-]")]
    pub secrets: Vec<String>,
    /// This version instead of the latest
    #[arg(long = "version", value_name = "V")]
    pub version: Option<String>,
    /// Print the change as a diff of the file; change nothing
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub apply: EditApply,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct OutdatedArgs {
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct UpgradeArgs {
    /// The server to upgrade
    #[arg(
        value_name = "NAME",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub name: Option<String>,
    /// Every server `outdated` lists
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub apply: EditApply,
    #[command(flatten)]
    pub registry: RegistryArgs,
}
