//! The `mcpctl` binary: parse arguments, run, print the one error, choose the exit code.

use std::process::ExitCode;

use clap::Parser;
use mcpctl::cli::{self, args::Cli};
use mcpctl::exit;

// The gateway allocates per request; mimalloc measured cheaper than glibc's malloc there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    init_tracing();
    let cli = Cli::parse();
    match cli::run(cli) {
        Ok(code) => exit::code(code),
        // A reader that went away (`mcpctl plan | head`) is not a failure.
        Err(e) if e.is_broken_pipe() => exit::code(exit::OK),
        Err(e) => {
            eprintln!("error: {e}");
            exit::code(exit::ERROR)
        }
    }
}

/// Diagnostics for developers go to stderr, off unless `MCPCTL_LOG` names a level.
fn init_tracing() {
    use tracing_subscriber::prelude::*;
    let Some(level) = std::env::var("MCPCTL_LOG")
        .ok()
        .and_then(|l| l.parse::<tracing::Level>().ok())
    else {
        return;
    };
    let filter = tracing_subscriber::filter::LevelFilter::from_level(level);
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(filter),
        )
        .init();
}
