//! The command line, as clap sees it: flags only, no behaviour.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "mcpctl",
    version,
    about = "Declarative manager for MCP servers: one file, plan, apply.",
    long_about = "mcpctl keeps MCP servers, profiles and environment in one versioned mcpctl.toml, \
                  shows what would change with `plan`, and converges the running servers to it.",
    after_help = "Exit codes: 0 success, 1 error, 2 changes present (plan --detailed-exitcode)."
)]
pub struct Cli {
    /// Config file to use [default: mcpctl.toml in this folder or the nearest parent]
    #[arg(
        short = 'f',
        long = "file",
        global = true,
        value_name = "PATH",
        env = "MCPCTL_FILE"
    )]
    pub file: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented starter mcpctl.toml and ignore .mcpctl/ in .gitignore
    Init,
    /// Check the file: syntax, fields, types, names, ports, profiles
    Validate,
    /// Rewrite the file in the canonical layout (comments kept)
    Fmt {
        /// Change nothing; print the diff and exit 1 when the file is not formatted
        #[arg(long)]
        check: bool,
    },
    /// Show what apply would change
    Plan(PlanArgs),
    /// Manage profiles (environment overlays)
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Edit environment variables and other settings in the file
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Exit 0 when there are no changes, 2 when there are, 1 on error
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Create a profile, optionally from a JSON file of server fields
    Create {
        name: String,
        /// JSON object of server fields, and `servers` for per-server overrides
        #[arg(long, value_name = "FILE.json")]
        config: Option<PathBuf>,
    },
    /// Merge fields from a JSON file into an existing profile
    Update {
        name: String,
        /// JSON object of server fields, and `servers` for per-server overrides
        #[arg(long, value_name = "FILE.json")]
        config: PathBuf,
    },
    /// List profiles and the servers that use them
    List,
    /// Show a profile's fields and the servers that use it
    Show { name: String },
    /// Delete a profile (refused while a server uses it)
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Environment variables of one server (--server) or of all servers ([defaults])
    #[command(subcommand)]
    Env(EnvCommand),
}

#[derive(Debug, Args)]
pub struct ServerScope {
    /// Act on this server's block instead of [defaults]
    #[arg(long, value_name = "NAME")]
    pub server: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// Set KEY to VALUE
    Set {
        key: String,
        value: String,
        #[command(flatten)]
        scope: ServerScope,
    },
    /// Print the value of KEY
    Get {
        key: String,
        #[command(flatten)]
        scope: ServerScope,
    },
    /// List KEY=VALUE pairs
    List {
        #[command(flatten)]
        scope: ServerScope,
    },
    /// Remove KEY
    Unset {
        key: String,
        #[command(flatten)]
        scope: ServerScope,
    },
}
