//! The `mcpctl` binary: parse arguments, run, print the one error, choose the exit code.

use std::process::ExitCode;

use clap::Parser;
use mcpctl::cli::{self, args::Cli};
use mcpctl::exit;

// The gateway allocates per request; mimalloc measured cheaper than glibc's malloc there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // The per-server shim: straight to work, without the CLI's set-up.
    let args: Vec<String> = std::env::args_os()
        .map(std::ffi::OsString::into_string)
        .collect::<Result<_, _>>()
        .unwrap_or_default();
    if args.get(1).map(String::as_str) == Some("__shim")
        && let Some(shim) = mcpctl::shim::parse_args(&args[2..])
    {
        let code = mcpctl::shim::run(shim);
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    // The bundled echo server (what `command = "mcp-echo"` runs when none is on PATH).
    if args.get(1).map(String::as_str) == Some("__mcp-echo") {
        let code = mcpctl::echo::main(args[2..].to_vec());
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    // Whether this kernel lets servers run in a network namespace of their own.
    if args.get(1).map(String::as_str) == Some("__netns-probe") {
        return ExitCode::from(mcpctl::shim::probe_main());
    }
    // A Kubernetes init container puts this binary into the server's runtime image.
    if args.get(1).map(String::as_str) == Some("__copy-self") {
        return match args
            .get(2)
            .map(|dest| copy_self(std::path::Path::new(dest)))
        {
            Some(Ok(())) => ExitCode::SUCCESS,
            Some(Err(e)) => {
                mcpctl::note!("mcpctl __copy-self: {e}");
                ExitCode::from(1)
            }
            None => {
                mcpctl::note!("usage: mcpctl __copy-self DEST");
                ExitCode::from(2)
            }
        };
    }
    let cli = match args.get(1..).and_then(cli::daemon_command) {
        Some(cli) => cli,
        None => match Cli::try_parse() {
            Ok(cli) => cli,
            Err(e) => return usage(&e),
        },
    };
    // The daemon's events are its log (its stderr is `daemon.log`); for other commands
    // tracing is developer output, off unless asked for.
    let json_log = cli::json_log(&cli);
    init_tracing(
        cli::runs_daemon(&cli).then_some(tracing::Level::INFO),
        json_log,
    );
    match cli::run(cli) {
        Ok(code) => exit::code(code),
        // A reader that went away (`mcpctl plan | head`) is not a failure.
        Err(e) if e.is_broken_pipe() => exit::code(exit::OK),
        Err(e) => {
            if json_log {
                // The log is JSON lines: so is its last word.
                tracing::error!("{e}");
            } else {
                mcpctl::note!("error: {e}");
            }
            exit::code(exit::ERROR)
        }
    }
}

/// `--help` and `--version` (on stdout) exit 0; a usage error (on stderr) exits 1,
/// not clap's 2, which `plan --detailed-exitcode` gives "changes present".
fn usage(e: &clap::Error) -> ExitCode {
    // Nothing is left to report a failed print to.
    let _ = e.print();
    exit::code(if e.use_stderr() {
        exit::ERROR
    } else {
        exit::OK
    })
}

/// Events go to stderr at `MCPCTL_LOG`'s level, else at `default` (none: off); as
/// JSON lines with `json` (timestamp, level, target, message and fields at the top).
fn init_tracing(default: Option<tracing::Level>, json: bool) {
    use tracing_subscriber::prelude::*;
    let Some(level) = std::env::var("MCPCTL_LOG")
        .ok()
        .and_then(|l| l.parse::<tracing::Level>().ok())
        .or(default)
    else {
        return;
    };
    let filter = tracing_subscriber::filter::LevelFilter::from_level(level);
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    if json {
        let layer = layer.json().flatten_event(true).with_filter(filter);
        tracing_subscriber::registry().with(layer).init();
    } else {
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let layer = layer.with_ansi(ansi).with_filter(filter);
        tracing_subscriber::registry().with(layer).init();
    }
}

/// Copies this executable to `dest` (mode 0755).
fn copy_self(dest: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::copy(std::env::current_exe()?, dest)?;
    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o755))
}
