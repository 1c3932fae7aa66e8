//! `mcpctl-shim`: the process that stands between the daemon and each server (see
//! `mcpctl::shim`), as a small binary of its own: every server start execs it, and
//! the whole CLI would cost that start (and each server's memory) several times more.
//! The daemon falls back to `mcpctl __shim` when this binary is not beside it.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(std::ffi::OsString::into_string)
        .collect::<Result<_, _>>()
        .unwrap_or_default();
    let Some(shim) = mcpctl::shim::parse_args(&args) else {
        mcpctl::note!(
            "usage: mcpctl-shim --stop-timeout-ms N --daemon-pid PID [--netns] -- COMMAND [ARGS...] (started by the mcpctl daemon)"
        );
        return ExitCode::from(2);
    };
    let code = mcpctl::shim::run(shim);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
