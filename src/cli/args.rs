//! The command line, as clap sees it: flags only, no behaviour.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod gateway;
mod registry;
pub use gateway::{FailureArg, GatewayArgs, PrefixArg, SharingArg};
pub use registry::{AddArgs, OutdatedArgs, RegistryArgs, SearchArgs, UpgradeArgs};

#[derive(Debug, Parser)]
#[command(
    name = "mcpctl",
    version,
    about = "Declarative manager for MCP servers: one file, plan, apply.",
    long_about = "mcpctl keeps MCP servers, profiles and environment in one versioned mcpctl.toml, \
                  shows what would change with `plan`, and converges the running servers to it.",
    after_help = "Every running stdio server is served at http://BIND:PORT/mcp (Streamable HTTP, \
                  2025 and 2026-07-28 clients) and http://BIND:PORT/sse (legacy SSE); a server that \
                  speaks HTTP itself is proxied at its own transport's path.\n\
                  Exit codes: 0 success, 1 error (usage errors too), 2 changes present (plan --detailed-exitcode)."
)]
pub struct Cli {
    /// Config file to use [default: mcpctl.toml in this folder or the nearest parent].
    /// Before the command, as docker compose takes it: after one, `-f` is its own
    /// (`server logs NAME -f` follows)
    #[arg(short = 'f', long = "file", value_name = "PATH", env = "MCPCTL_FILE")]
    pub file: Option<PathBuf>,

    /// age identity for secrets [default: $MCPCTL_IDENTITY, else $XDG_CONFIG_HOME/mcpctl/identity.txt]
    #[arg(long, global = true, value_name = "PATH")]
    pub identity: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented starter mcpctl.toml and ignore .mcpctl/ in .gitignore
    #[command(after_help = "Example:\n  mcpctl init")]
    Init,
    /// Check the file: syntax, fields, types, names, ports, profiles
    #[command(
        after_help = "Examples:\n  mcpctl validate\n  mcpctl -f team/mcpctl.toml validate --all"
    )]
    Validate {
        /// Show every error, not only the first 20
        #[arg(long)]
        all: bool,
    },
    /// Rewrite the file in the canonical layout (comments kept)
    #[command(
        after_help = "Examples:\n  mcpctl fmt\n  mcpctl fmt --check   # in CI or a pre-commit hook"
    )]
    Fmt {
        /// Change nothing; print the diff and exit 1 when the file is not formatted
        #[arg(long)]
        check: bool,
    },
    /// Show what apply would change
    #[command(
        after_help = "Examples:\n  mcpctl plan\n  mcpctl plan --detailed-exitcode   # CI: 0 no changes, 2 changes\n  mcpctl plan --out tonight.plan && mcpctl apply tonight.plan"
    )]
    Plan(PlanArgs),
    /// Manage profiles (environment overlays)
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  mcpctl profile list\n  mcpctl profile create production --config prod.json"
    )]
    Profile(ProfileCommand),
    /// Edit environment variables and other settings in the file
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  mcpctl config env set LOG_LEVEL debug --server github\n  mcpctl config secret set GITHUB_TOKEN --server github"
    )]
    Config(ConfigCommand),
    /// Converge the running servers to the file (starts the daemon when needed)
    ///
    /// With PLAN (a file from `plan --out`), applies exactly that plan, and refuses
    /// when the file or what runs changed since it was made. With --rev, applies the
    /// file as it is at a git revision (read with `git show`; the working file is not
    /// touched): a roll-back that `status` names.
    #[command(
        after_help = "Examples:\n  mcpctl apply\n  mcpctl plan --out tonight.plan && mcpctl apply tonight.plan\n  mcpctl apply --rev HEAD~1"
    )]
    Apply {
        /// A saved plan (`plan --out FILE`) to apply exactly
        #[arg(value_name = "PLAN", conflicts_with_all = ["watch", "rev"])]
        plan: Option<PathBuf>,
        /// Keep running: re-apply every time the file is saved
        #[arg(long, conflicts_with = "rev")]
        watch: bool,
        /// Apply the file as it is at this git revision (a commit, tag, `HEAD~1`...)
        #[arg(long, value_name = "REV")]
        rev: Option<String>,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Back up every server (see `server backup`)
    #[command(
        after_help = "Examples:\n  mcpctl backup --all --output backups/\n  mcpctl backup --all --output all.json"
    )]
    Backup {
        /// Every server of the file (required: one server is `server backup NAME`)
        #[arg(long, required = true)]
        all: bool,
        /// A folder (one that exists, or a path ending in `/`) for one NAME.json per
        /// server; any other path gets one bundle; `-` is stdout
        #[arg(long, short = 'o', value_name = "DIR|FILE")]
        output: PathBuf,
    },
    /// Render the file for another platform (Kubernetes)
    #[command(
        after_help = "Examples:\n  mcpctl render k8s --namespace mcp --output k8s/\n  mcpctl render k8s --profile production | kubectl apply -f -"
    )]
    Render {
        #[command(subcommand)]
        what: RenderWhat,
    },
    /// Print a shell completion script
    #[command(
        after_help = "Examples:\n  mcpctl completions bash > ~/.local/share/bash-completion/completions/mcpctl\n  mcpctl completions zsh > ~/.zfunc/_mcpctl\n  mcpctl completions fish > ~/.config/fish/completions/mcpctl.fish"
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff)
    #[command(after_help = "Example:\n  mcpctl man > ~/.local/share/man/man1/mcpctl.1")]
    Man,
    /// What was decided about requests on ports with `auth`: who called what, allowed
    /// or refused and why (never arguments or results)
    #[command(
        after_help = "Examples:\n  mcpctl audit --refused --since 1h\n  mcpctl audit --caller ci --target github --format json"
    )]
    Audit {
        /// Only this caller's (a token's name, or `owner`)
        #[arg(long, value_name = "NAME")]
        caller: Option<String>,
        /// Only requests to this server or endpoint
        #[arg(long, value_name = "NAME")]
        target: Option<String>,
        /// Only the last DURATION (e.g. 1h, 30m)
        #[arg(long, value_name = "DURATION")]
        since: Option<String>,
        /// Only refusals
        #[arg(long)]
        refused: bool,
        /// At most this many, the newest
        #[arg(long, value_name = "N", default_value_t = 100)]
        limit: usize,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Callers' tokens: who may call which tools where `auth = { tokens = true }`
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  mcpctl token create ci --allow 'github/search_*' --allow 'work/*' --expires 30d\n  mcpctl token list\n  mcpctl token revoke ci"
    )]
    Token(TokenCommand),
    /// What an agent sees of a server's or an endpoint's tools
    #[command(
        after_help = "Examples:\n  mcpctl tools work            # the endpoint `work`: name, member, original name\n  mcpctl tools github --all   # and the hidden ones, with why\n  mcpctl tools work --format json"
    )]
    Tools {
        /// A server or an endpoint of the file
        name: String,
        /// Also the tools hidden by a policy, a member down or a name clash, with why
        #[arg(long)]
        all: bool,
        /// Pin the server's tools as they are now: their definitions' digests go to
        /// mcpctl.lock; with `pin = true` a tool changed or added later is hidden
        #[arg(long, conflicts_with_all = ["all", "format"])]
        pin: bool,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Status of every server
    #[command(after_help = "Examples:\n  mcpctl status\n  mcpctl status --format json")]
    Status {
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Start, stop, restart, inspect one server
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  mcpctl server start github --port 8001\n  mcpctl server logs github --follow"
    )]
    Server(ServerCommand),
    /// Open the dashboard: the daemon serves it on loopback and this prints a one-time
    /// login link (opened in the browser when there is a display)
    ///
    /// The page shows every server and endpoint live, plots of the last hour, logs,
    /// applies and events, and lets the owner start, stop, restart and scale (each
    /// the same file edit and converge as the CLI's). The daemon is started if none
    /// runs. The port is `[daemon] ui`, else the one picked last time, else a free one.
    #[command(after_help = "Examples:\n  mcpctl ui\n  mcpctl ui --no-open --bind 127.0.0.1:9470")]
    Ui {
        /// Print the link only; do not start a browser
        #[arg(long)]
        no_open: bool,
        /// Where the dashboard listens (a loopback address and port)
        #[arg(long, value_name = "ADDR")]
        bind: Option<std::net::SocketAddr>,
    },
    /// Run the supervising daemon in the foreground (for systemd), or manage it
    ///
    /// Tuning, from the environment: MCPCTL_BUSY_POLL_US, how long the daemon polls
    /// before it sleeps (default 100, 0 = never); MCPCTL_SSE_ACK_HOLD_MS, how long a
    /// legacy POST /messages waits for its call's answer before its 202 (default 1).
    #[command(
        after_help = "Examples:\n  mcpctl daemon --watch   # in the foreground, as systemd runs it\n  mcpctl daemon status"
    )]
    Daemon {
        #[command(subcommand)]
        action: Option<DaemonAction>,
        /// Re-apply every time the file is saved
        #[arg(long)]
        watch: bool,
        /// Internal: started by a command that converges itself; skip the initial apply
        #[arg(long, hide = true)]
        on_demand: bool,
    },
    /// Serve one MCP server (or, with --upstream, an endpoint over several) at /mcp
    /// and /sse in the foreground: no daemon, no file
    ///
    /// The same supervision, protocol handling, checks and limits as a server of the
    /// daemon's; its log lines go to stderr. SIGTERM or SIGINT stop it (exit 0); a
    /// server that cannot start exits 1 with the tail of its log. A drop-in for
    /// supergateway and mcp-proxy, and what a container runs. With --upstream it
    /// aggregates servers that run elsewhere, as an `[endpoints.NAME]` does.
    #[command(
        after_help = "Examples:\n  mcpctl gateway --port 8000 -- npx -y @modelcontextprotocol/server-everything\n  mcpctl gateway --port 8443 --bind 0.0.0.0 --auth-bearer-env TOKEN --tls-cert c.pem --tls-key k.pem -- ./server\n  mcpctl gateway --port 8000 --url https://mcp.example.com/mcp --header 'Authorization=Bearer ${UPSTREAM}'\n  mcpctl gateway --port 8100 --upstream github=http://mcp-github:8000/mcp --upstream fs=http://mcp-fs:8001/mcp --tools-deny '*delete*'"
    )]
    Gateway(Box<GatewayArgs>),
    /// Find MCP servers in the registry: name, version, how it runs, description
    ///
    /// Asks the registry's API (v0.1) and follows its pages up to --limit entries.
    #[command(
        after_help = "Examples:\n  mcpctl search github\n  mcpctl search weather --format json\n  mcpctl search files --registry https://registry.example.com"
    )]
    Search(SearchArgs),
    /// Add a server from the registry (or a server.json file) to the file, its
    /// version pinned
    ///
    /// npm packages run as `npx -y pkg@VERSION`, PyPI ones as `uvx pkg==VERSION`, OCI
    /// images as `docker run -i --rm image:tag`, hosted servers as `mode = "remote"`
    /// with their url and headers. The entry's arguments and environment variables
    /// come with it; those it marks secret are encrypted with age. Nothing is
    /// downloaded or run now: the new block converges like any edit. An entry with
    /// anything that is not a plain name, pinned version or value is refused, and the
    /// file is not touched.
    #[command(
        after_help = "Examples:\n  mcpctl add io.github.example/brave-search --secret BRAVE_API_KEY\n  mcpctl add io.github.example/weather-mcp --arg city=Oslo --secret WEATHER_API_KEY=- < key.txt\n  mcpctl add ./server.json --as search --port 8100 --dry-run"
    )]
    Add(Box<AddArgs>),
    /// Servers with a newer version in the registry (exit 2 when there are some)
    ///
    /// Looks at the servers `add` wrote and at every `npx pkg@V`, `uvx pkg==V` or
    /// `docker run image:tag` server. Exit codes as `plan --detailed-exitcode`: 0 all
    /// current, 2 some outdated, 1 an error.
    #[command(after_help = "Examples:\n  mcpctl outdated\n  mcpctl outdated --format json")]
    Outdated(OutdatedArgs),
    /// Bump a server's pinned version to the registry's latest (the plan shows it)
    #[command(
        after_help = "Examples:\n  mcpctl upgrade brave-search\n  mcpctl upgrade --all --no-apply && mcpctl plan"
    )]
    Upgrade(UpgradeArgs),
    /// Add the MCP servers of another client's config to the file
    ///
    /// Reads CLIENT's documented files (claude-desktop, claude-code, cursor, vscode,
    /// windsurf, zed, codex), or FILE (the common `mcpServers` JSON shape, or a Codex
    /// TOML). Commands become local servers on a free port, URLs remote ones with their
    /// headers. Env values and headers that are credentials (a name with TOKEN, KEY,
    /// SECRET, PASSWORD or AUTH, or a value that looks like a token) are encrypted as
    /// secrets; `${VAR}` references stay as written. A server the file already has is
    /// skipped, the same command in two clients becomes one server, and a name taken
    /// by a different server gets a suffix: each is reported. Then, when a daemon runs,
    /// the new servers start.
    #[command(
        after_help = "Examples:\n  mcpctl import --from claude-desktop --dry-run\n  mcpctl import --from cursor --only github,slack\n  mcpctl import --from ./old/mcp.json"
    )]
    Import(ImportArgs),
    /// Link a client (Claude Desktop, Cursor, ...) to mcpctl's servers in its own file
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  mcpctl client link claude-code --dry-run\n  mcpctl client status"
    )]
    Client(ClientCommand),
    /// A stdio MCP server that bridges to NAME's endpoint on the local daemon
    ///
    /// For clients that only launch commands: their entry becomes
    /// `{"command": "mcpctl", "args": ["-f", "/path/mcpctl.toml", "connect", "NAME"]}`
    /// and every client shares the one supervised server. Each message goes to NAME's
    /// Streamable HTTP endpoint (`/mcp`, both protocol eras) with the bearer from your
    /// identity when the server has `auth`. Starts the daemon, and NAME, when they are
    /// not running (never one the file says is stopped). When there is nothing to
    /// reach (no file, an unknown or stopped server) the reason goes to stderr and
    /// every request is answered with a JSON-RPC error. Exits when stdin or stdout
    /// closes (0), or when NAME goes away for good (1).
    #[command(
        after_help = "Examples:\n  mcpctl connect github\n  mcpctl -f ~/team/mcpctl.toml connect github   # a client's command line"
    )]
    Connect {
        /// The server, as the file names it
        name: String,
    },
    /// Internal: the file's server names, one a line (what completions offer)
    #[command(name = "__names", hide = true)]
    Names,
    /// Internal: the per-instance process-group leader the daemon runs servers under
    #[command(name = "__shim", hide = true)]
    Shim {
        #[arg(long)]
        stop_timeout_ms: u64,
        #[arg(long)]
        daemon_pid: u32,
        #[arg(long)]
        netns: bool,
        #[arg(long, requires = "netns")]
        sockets: bool,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LinkScope {
    User,
    Project,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Write an entry per running server into the client's file
    ///
    /// A URL entry (with the bearer header in the client's own variable syntax when
    /// auth is on: the value never goes into the file) for clients that take URLs
    /// (claude-code, cursor, vscode, windsurf), the `mcpctl connect NAME` bridge for
    /// the others (claude-desktop, zed, codex). Only mcpctl's own entries are edited, in
    /// place: key order, formatting and everything else in the file stay. The file as
    /// it was first is kept in .mcpctl/client-backups/. An entry of the same name that
    /// is not mcpctl's, or that was edited by hand, is refused unless --force.
    #[command(
        after_help = "Examples:\n  mcpctl client link claude-desktop\n  mcpctl client link cursor --scope project --only github --dry-run\n  mcpctl client link claude-code --endpoint work   # one entry for the endpoint work"
    )]
    Link {
        /// claude-desktop | claude-code | cursor | vscode | windsurf | zed | codex
        client: String,
        /// The client's user-wide file or this project's [default: user; vscode: project]
        #[arg(long, value_enum)]
        scope: Option<LinkScope>,
        /// The client's file, when it is not where the client documents it (remembered)
        #[arg(long, value_name = "FILE")]
        config_path: Option<PathBuf>,
        /// Print the change as a diff; write nothing
        #[arg(long)]
        dry_run: bool,
        /// Only these servers
        #[arg(long, value_name = "NAME,...", value_delimiter = ',')]
        only: Option<Vec<String>>,
        /// Link this endpoint (one entry for its whole set of servers), beside the others
        #[arg(long, value_name = "NAME")]
        endpoint: Option<String>,
        /// Call as this caller's token (`[tokens.NAME]`) where callers' tokens are taken:
        /// the entry sends the variable MCPCTL_TOKEN_NAME, which the client's user sets
        /// (never the token itself)
        #[arg(long, value_name = "NAME")]
        token: Option<String>,
        /// Replace entries of the same name that are not mcpctl's or were edited
        #[arg(long)]
        force: bool,
    },
    /// Remove mcpctl's entries from the client's file (nothing else)
    #[command(after_help = "Example:\n  mcpctl client unlink claude-desktop")]
    Unlink {
        client: String,
        #[arg(long, value_enum)]
        scope: Option<LinkScope>,
        /// Also remove entries edited by hand since mcpctl wrote them
        #[arg(long)]
        force: bool,
    },
    /// Print the entries link would write
    #[command(after_help = "Example:\n  mcpctl client show cursor")]
    Show {
        client: String,
        #[arg(long, value_name = "NAME,...", value_delimiter = ',')]
        only: Option<Vec<String>>,
    },
    /// Per linked client file, each of mcpctl's entries: in-sync, drifted or missing
    #[command(after_help = "Examples:\n  mcpctl client status\n  mcpctl client status cursor")]
    Status { client: Option<String> },
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// claude-desktop | claude-code | cursor | vscode | windsurf | zed | codex, or a file
    #[arg(long, value_name = "CLIENT|FILE")]
    pub from: String,
    /// Read the client's config from this file instead of its usual places
    #[arg(long, value_name = "FILE")]
    pub config_path: Option<PathBuf>,
    /// Print what would be added, as a diff of the file; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Import only these servers (their names in the client's file)
    #[arg(long, value_name = "NAME,...", value_delimiter = ',')]
    pub only: Option<Vec<String>>,
    /// New servers get free ports from this one upward (skipping the file's and those in use)
    #[arg(long, value_name = "N", default_value_t = crate::import::plan::FIRST_PORT)]
    pub first_port: u16,
    #[command(flatten)]
    pub apply: EditApply,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a caller's token: printed once, alone on stdout; the file keeps its hash
    #[command(
        after_help = "Example:\n  mcpctl token create ci --allow 'github/search_*' --deny '*/delete_*' --expires 30d > ci.token"
    )]
    Create {
        /// The caller's name (lowercase letters, digits, `-`, `_`)
        name: String,
        /// TARGET/TOOL glob the caller may see and call, TARGET a server or endpoint
        /// (repeatable, at least one)
        #[arg(long = "allow", value_name = "TARGET/TOOL", required = true)]
        allow: Vec<String>,
        /// TARGET/TOOL glob it may not, whatever --allow says (repeatable)
        #[arg(long = "deny", value_name = "TARGET/TOOL")]
        deny: Vec<String>,
        /// It stops working after this long (e.g. 30d, 12h)
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
        /// At most this many requests: N/sec, N/min or N/hour (more get 429)
        #[arg(long, value_name = "N/PERIOD")]
        rate: Option<String>,
    },
    /// The tokens of the file: name, patterns, expiry (never the token)
    #[command(after_help = "Example:\n  mcpctl token list --format json")]
    List {
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Remove a token: its caller is refused from the next request on
    #[command(after_help = "Example:\n  mcpctl token revoke ci")]
    Revoke { name: String },
    /// A new token for the same caller and patterns: the old one stops working
    #[command(after_help = "Example:\n  mcpctl token rotate ci > ci.token")]
    Rotate { name: String },
}

#[derive(Debug, Subcommand)]
pub enum DaemonAction {
    /// Stop every server and the daemon
    #[command(after_help = "Example:\n  mcpctl daemon stop")]
    Stop,
    /// Whether a daemon runs for this file, its pid and servers
    #[command(after_help = "Example:\n  mcpctl daemon status")]
    Status,
    /// Write a systemd user unit that runs this config's daemon at login (and boot,
    /// with lingering on), and print it
    #[command(
        after_help = "Examples:\n  mcpctl daemon install --user --print\n  mcpctl daemon install --user && systemctl --user enable --now mcpctl-NAME.service"
    )]
    Install {
        /// A user unit, in $XDG_CONFIG_HOME/systemd/user (the only kind so far)
        #[arg(long, required = true)]
        user: bool,
        /// Only print the unit; write nothing
        #[arg(long)]
        print: bool,
    },
    /// Remove the unit `daemon install --user` wrote for this config (nothing else)
    #[command(after_help = "Example:\n  mcpctl daemon uninstall --user")]
    Uninstall {
        #[arg(long, required = true)]
        user: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    Local,
    Remote,
}

/// Flags that write a field into the file before converging.
#[derive(Debug, Args, Default)]
pub struct ServerFlags {
    /// Use this profile (written to the server's block)
    #[arg(long, value_name = "P")]
    pub profile: Option<String>,
    /// Serve on this port
    #[arg(long, value_name = "N")]
    pub port: Option<u16>,
    /// Run it here (local) or proxy to its url (remote)
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
}

#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// Write state = "running" (and the flags) into the file, then converge this server
    #[command(
        after_help = "Examples:\n  mcpctl server start github\n  mcpctl server start github --profile production --port 9001"
    )]
    Start {
        name: String,
        #[command(flatten)]
        flags: ServerFlags,
        /// The config file (the same as the global --file)
        #[arg(long = "config", value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// Write state = "stopped" into the file, then stop this server
    #[command(
        after_help = "Examples:\n  mcpctl server stop github\n  mcpctl server stop github --timeout 30"
    )]
    Stop {
        name: String,
        /// Kill at once instead of waiting for a graceful exit
        #[arg(long)]
        force: bool,
        /// Seconds to wait for a graceful exit before killing (default: stop_timeout)
        #[arg(long, value_name = "SECS")]
        timeout: Option<u64>,
    },
    /// Replace this server's instances, even when nothing changed
    #[command(after_help = "Example:\n  mcpctl server restart github")]
    Restart {
        name: String,
        #[command(flatten)]
        flags: ServerFlags,
    },
    /// Status of one server
    #[command(
        after_help = "Examples:\n  mcpctl server status github\n  mcpctl server status github --format json"
    )]
    Status {
        name: String,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Refresh every second until interrupted
        #[arg(long)]
        watch: bool,
    },
    /// Write `instances = N` (where the server's profile sets it, there) and converge:
    /// scaling down drains the instances it removes first
    #[command(
        after_help = "Examples:\n  mcpctl server scale github --instances 3\n  mcpctl server scale github --instances 1 --no-apply   # edit only"
    )]
    Scale {
        name: String,
        /// How many instances
        #[arg(long, value_name = "N")]
        instances: u32,
        #[command(flatten)]
        apply: EditApply,
    },
    /// Write `autoscale = { min, max, ... }` instead of `instances` and converge: the
    /// daemon keeps the count between min and max from the live load
    #[command(
        after_help = "Examples:\n  mcpctl server autoscale github --min 1 --max 4 --target-sessions 20\n  mcpctl server autoscale github --min 0 --max 2 --idle-after 15m   # scale to zero when idle\n\nScaling up is at once; down is one instance at a time after --scale-down-after of\nlower load, draining first. With --min 0 every instance stops after --idle-after\nwithout a session or a call, and the next request starts one. `server scale` goes\nback to a fixed count."
    )]
    Autoscale {
        name: String,
        /// Fewest instances (0: scale to zero when idle)
        #[arg(long, value_name = "N", default_value_t = 1)]
        min: u32,
        /// Most instances
        #[arg(long, value_name = "N")]
        max: u32,
        /// Client sessions one instance should carry
        #[arg(long, value_name = "S")]
        target_sessions: Option<u32>,
        /// Calls in flight one instance should carry
        #[arg(long, value_name = "R")]
        target_inflight: Option<u32>,
        /// How long the load must stay lower before one instance goes (default 5m)
        #[arg(long, value_name = "DURATION")]
        scale_down_after: Option<String>,
        /// With --min 0: how long without a session or a call before all stop (default 10m)
        #[arg(long, value_name = "DURATION")]
        idle_after: Option<String>,
        #[command(flatten)]
        apply: EditApply,
    },
    /// Live CPU, memory, traffic and response times of one server (or all)
    #[command(
        after_help = "Examples:\n  mcpctl server monitor              # every server, redrawn (like top)\n  mcpctl server monitor github --metrics cpu,memory --interval 5\n  mcpctl server monitor github --format json | jq .   # one object per sample"
    )]
    Monitor {
        /// The server (default: every server)
        name: Option<String>,
        /// Which figures to show (default: all)
        #[arg(long, value_enum, value_delimiter = ',')]
        metrics: Vec<Metric>,
        /// Seconds between samples
        #[arg(long, default_value_t = 2.0, value_name = "SECS")]
        interval: f64,
        /// `text` redraws a table on a terminal; `json` (the default when piped) prints
        /// one object per sample
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// Stop after this many samples
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
    /// Captured stderr (and MCP log messages) of a server's instances
    #[command(
        after_help = "Examples:\n  mcpctl server logs github -n 100 --level warn\n  mcpctl server logs github -f"
    )]
    Logs {
        name: String,
        /// Keep printing new lines until interrupted (`-f`, as tail, docker and kubectl)
        #[arg(long, short = 'f', visible_short_alias = 'F')]
        follow: bool,
        /// How many lines to show
        #[arg(long, short = 'n', default_value_t = 50)]
        lines: usize,
        /// Only lines at this level or above
        #[arg(long, value_enum)]
        level: Option<crate::logs::Level>,
        /// Which instance (an id from `server status NAME --format json`; default: the
        /// first one running, else the newest log)
        #[arg(long)]
        instance: Option<u32>,
    },
    /// Write one server's block (comments kept, secrets still encrypted), the profile
    /// and defaults it uses, the recipients and what ran, as one checked JSON document
    #[command(
        after_help = "Examples:\n  mcpctl server backup github --output github.json\n  mcpctl server backup github --output - | gzip > github.json.gz"
    )]
    Backup {
        name: String,
        /// The document's path, or `-` for stdout
        #[arg(long, short = 'o', value_name = "FILE.json")]
        output: PathBuf,
    },
    /// Put a server back into the file from its backup, then converge it
    ///
    /// The document is checked first (format, version, checksum, shape, that it is
    /// NAME's), and so is the file (no server of that name yet, no other server on its
    /// port, the profile it needs); any refusal leaves the file as it was.
    #[command(
        after_help = "Examples:\n  mcpctl server restore github --input github.json\n  mcpctl server restore github --input github.json --as github-old --port 9100 --dry-run"
    )]
    Restore {
        /// The server's name in the backup
        name: String,
        /// A document of `server backup` (or a bundle of `backup --all`)
        #[arg(long, short = 'i', value_name = "FILE.json")]
        input: PathBuf,
        /// Restore it under this name instead (its secrets are encrypted again for it)
        #[arg(long = "as", value_name = "NEW_NAME")]
        as_name: Option<String>,
        /// Serve it on this port instead
        #[arg(long, value_name = "N")]
        port: Option<u16>,
        /// Show the plan the restore would cause; change nothing
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        apply: EditApply,
    },
}

#[derive(Debug, Subcommand)]
pub enum RenderWhat {
    /// Kubernetes manifests: per server a Deployment running it under `mcpctl gateway`,
    /// a Service, a ConfigMap of its env, a HorizontalPodAutoscaler from `autoscale`,
    /// and its secrets as a reference to a Secret you create (values only with
    /// --include-secrets)
    #[command(
        after_help = "Examples:\n  mcpctl render k8s --namespace mcp --output k8s/   # one NAME.yaml per server\n  mcpctl render k8s --profile production --output - | kubectl diff -f -\n  mcpctl render k8s --session-routing affinity      # no pod-to-pod traffic"
    )]
    K8s {
        #[command(flatten)]
        k8s: K8sArgs,
        /// A folder for one NAME.yaml per server, or `-` for stdout
        #[arg(long, short = 'o', value_name = "DIR|-", default_value = "-")]
        output: PathBuf,
    },
}

/// How a file becomes Kubernetes manifests.
#[derive(Debug, Clone, Args)]
pub struct K8sArgs {
    /// Render every server with this profile (default: each server's own)
    #[arg(long, value_name = "P")]
    pub profile: Option<String>,
    /// The namespace of every object
    #[arg(long, value_name = "NS", default_value = "default")]
    pub namespace: String,
    /// Write secret values into Secret objects (decrypts them: needs your identity)
    #[arg(long)]
    pub include_secrets: bool,
    /// `sealed`: session ids name their pod, and pods forward each other's sessions;
    /// `affinity`: the Service pins each client IP to a pod
    #[arg(long, value_enum, default_value_t = SessionRoutingArg::Sealed)]
    pub session_routing: SessionRoutingArg,
    /// The image mcpctl itself comes from (copied into each server's runtime image)
    #[arg(long, value_name = "IMAGE")]
    pub mcpctl_image: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SessionRoutingArg {
    Sealed,
    Affinity,
}

/// Where `plan` and `apply` converge to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// This machine's daemon
    Local,
    /// A Kubernetes cluster, through kubectl
    K8s,
}

/// `--target k8s`: kubectl's context and how the file is rendered.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// Where to converge: this machine's daemon, or a Kubernetes cluster (kubectl)
    #[arg(long, value_enum, default_value_t = Target::Local)]
    pub target: Target,
    /// kubectl's context (with --target k8s)
    #[arg(long, value_name = "CONTEXT")]
    pub context: Option<String>,
    #[command(flatten)]
    pub k8s: K8sArgs,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Exit 0 when there are no changes, 2 when there are, 1 on error
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Also save the plan, with digests of the file and of what runs, for `apply FILE`
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub target: TargetArgs,
}

/// What `server monitor` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Metric {
    Cpu,
    Memory,
    Network,
    Connections,
    ResponseTime,
}

impl Metric {
    pub const ALL: &'static [Metric] = &[
        Metric::Cpu,
        Metric::Memory,
        Metric::Network,
        Metric::Connections,
        Metric::ResponseTime,
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Create a profile, optionally from a JSON file of server fields
    #[command(
        after_help = "Examples:\n  mcpctl profile create staging\n  mcpctl profile create production --config prod.json"
    )]
    Create {
        name: String,
        /// JSON object of server fields, and `servers` for per-server overrides
        #[arg(long, value_name = "FILE.json")]
        config: Option<PathBuf>,
    },
    /// Merge fields from a JSON file into an existing profile
    #[command(after_help = "Example:\n  mcpctl profile update production --config prod.json")]
    Update {
        name: String,
        /// JSON object of server fields, and `servers` for per-server overrides
        #[arg(long, value_name = "FILE.json")]
        config: PathBuf,
        #[command(flatten)]
        apply: EditApply,
    },
    /// List profiles and the servers that use them
    #[command(after_help = "Example:\n  mcpctl profile list")]
    List,
    /// Show a profile's fields and the servers that use it
    #[command(after_help = "Example:\n  mcpctl profile show production")]
    Show { name: String },
    /// Delete a profile (refused while a server uses it)
    #[command(after_help = "Example:\n  mcpctl profile delete staging")]
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Environment variables of one server (--server) or of all servers ([defaults])
    #[command(subcommand)]
    #[command(after_help = "Example:\n  mcpctl config env list --server github")]
    Env(EnvCommand),
    /// Secret environment variables, age-encrypted in the file
    #[command(subcommand)]
    #[command(after_help = "Example:\n  mcpctl config secret list --server github")]
    Secret(SecretCommand),
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Encrypt VALUE (read from stdin when omitted or `-`) to every recipient
    #[command(
        after_help = "Examples:\n  mcpctl config secret set GITHUB_TOKEN --server github   # value from stdin\n  printf %s \"$TOKEN\" | mcpctl config secret set GITHUB_TOKEN - --server github"
    )]
    Set {
        key: String,
        /// The value; omit it (or give `-`) to read it from stdin, out of shell history
        value: Option<String>,
        #[command(flatten)]
        scope: ServerScope,
        /// Accepted for clarity: encrypting is the only mode
        #[arg(long)]
        encrypt: bool,
        #[command(flatten)]
        apply: EditApply,
    },
    /// Decrypt and print a secret
    #[command(after_help = "Example:\n  mcpctl config secret get GITHUB_TOKEN --server github")]
    Get {
        key: String,
        #[command(flatten)]
        scope: ServerScope,
    },
    /// Secret names and how many recipients each is encrypted to (never values)
    #[command(after_help = "Example:\n  mcpctl config secret list --server github")]
    List {
        #[command(flatten)]
        scope: ServerScope,
    },
    /// Remove a secret
    #[command(after_help = "Example:\n  mcpctl config secret unset GITHUB_TOKEN --server github")]
    Unset {
        key: String,
        #[command(flatten)]
        scope: ServerScope,
        #[command(flatten)]
        apply: EditApply,
    },
    /// Create your age identity and print its public recipient
    #[command(after_help = "Example:\n  mcpctl config secret keygen --add")]
    Keygen {
        /// Also add the new recipient to the file's [secrets] recipients
        #[arg(long)]
        add: bool,
    },
    /// Who can decrypt: list, add or remove recipients (every value is re-encrypted)
    #[command(subcommand)]
    #[command(after_help = "Example:\n  mcpctl config secret recipients list")]
    Recipients(RecipientsCommand),
    /// Re-encrypt every value to the current recipients
    #[command(after_help = "Example:\n  mcpctl config secret rekey")]
    Rekey {
        #[command(flatten)]
        apply: EditApply,
    },
}

#[derive(Debug, Subcommand)]
pub enum RecipientsCommand {
    /// Print the recipients
    #[command(after_help = "Example:\n  mcpctl config secret recipients list")]
    List,
    /// Add a recipient and re-encrypt every value to it too
    #[command(after_help = "Example:\n  mcpctl config secret recipients add age1...")]
    Add { recipient: String },
    /// Remove a recipient and re-encrypt every value without it
    #[command(after_help = "Example:\n  mcpctl config secret recipients remove age1...")]
    Remove { recipient: String },
}

/// Whether an edit also converges the servers it changes.
#[derive(Debug, Args)]
pub struct EditApply {
    /// Only edit the file; the running servers keep what they have until `mcpctl apply`
    #[arg(long)]
    pub no_apply: bool,
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
    #[command(
        after_help = "Examples:\n  mcpctl config env set LOG_LEVEL debug --server github\n  mcpctl config env set TZ UTC   # [defaults]: every server"
    )]
    Set {
        key: String,
        value: String,
        #[command(flatten)]
        scope: ServerScope,
        #[command(flatten)]
        apply: EditApply,
    },
    /// Print the value of KEY
    #[command(after_help = "Example:\n  mcpctl config env get LOG_LEVEL --server github")]
    Get {
        key: String,
        #[command(flatten)]
        scope: ServerScope,
    },
    /// List KEY=VALUE pairs
    #[command(after_help = "Example:\n  mcpctl config env list --server github")]
    List {
        #[command(flatten)]
        scope: ServerScope,
    },
    /// Remove KEY
    #[command(after_help = "Example:\n  mcpctl config env unset LOG_LEVEL --server github")]
    Unset {
        key: String,
        #[command(flatten)]
        scope: ServerScope,
        #[command(flatten)]
        apply: EditApply,
    },
}
