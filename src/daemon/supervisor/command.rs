//! The command line a server runs under: the shim, its arguments, the server's
//! program (the bundled `mcp-echo` when none is on PATH), environment and folder.

use std::process::{Command, Stdio};

use age::secrecy::ExposeSecret;

use super::super::inner_port;
use super::*;
use crate::model::spec::Transport;
use crate::sys;

/// `mcpctl-shim --stop-timeout-ms N --daemon-pid P [--netns [--sockets]] -- COMMAND
/// ARGS...` (or `mcpctl __shim ...`), in a new process group, with the server's
/// environment and working folder; for an isolated server that speaks HTTP, the
/// daemon's end of the socket its shim hands connections over (the shim's stdin).
pub(super) fn shim_command(
    ctx: &InstanceCtx,
) -> std::io::Result<(Command, Option<std::os::unix::net::UnixStream>)> {
    let spec = &ctx.spec;
    let program = spec.command.clone().unwrap_or_default();
    // A relative path is relative to the config file, as `cwd` is; a bare name is
    // looked up on PATH.
    let program = if program.contains('/') && !program.starts_with('/') {
        ctx.config_dir.join(&program).to_string_lossy().into_owned()
    } else {
        program
    };
    let (program, bundled) = match bundled_echo(&program) {
        Some(mcpctl) => (mcpctl, Some("__mcp-echo")),
        None => (program, None),
    };
    let port = ctx.inner_port.unwrap_or(spec.port);
    let mut cmd = Command::new(&ctx.shim.exe);
    // mcpctl's own settings (the identity's path among them) are not the server's.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("MCPCTL_") {
            cmd.env_remove(key);
        }
    }
    for key in &ctx.hidden_env {
        cmd.env_remove(key);
    }
    if ctx.shim.subcommand {
        cmd.arg("__shim");
    }
    cmd.arg("--stop-timeout-ms")
        .arg(spec.stop_timeout.as_millis().to_string())
        .arg("--daemon-pid")
        .arg(ctx.daemon_pid.to_string());
    let serve_sockets = ctx.isolated && spec.transport != Transport::Stdio;
    if ctx.isolated {
        cmd.arg("--netns");
    }
    if serve_sockets {
        cmd.arg("--sockets");
    }
    cmd.arg("--")
        .arg(program)
        .args(bundled)
        .args(spec.args.iter().map(|a| inner_port::fill(a, port)))
        .envs(&spec.env)
        .envs(ctx.secrets.iter().map(|(k, v)| (k, v.expose_secret())))
        .current_dir(
            spec.cwd
                .as_ref()
                .map_or_else(|| ctx.config_dir.clone(), |c| ctx.config_dir.join(c)),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let daemons_end = if serve_sockets {
        let (ours, shims) = std::os::unix::net::UnixStream::pair()?;
        cmd.stdin(Stdio::from(std::os::fd::OwnedFd::from(shims)));
        Some(ours)
    } else {
        cmd.stdin(if spec.transport == Transport::Stdio {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        None
    };
    if spec.transport != Transport::Stdio {
        cmd.env("PORT", port.to_string())
            .env("HOST", inner_port::HOST);
    }
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    sys::stdio_only_on_exec(&mut cmd);
    if let Some(limit) = spec.limits.nofile {
        sys::limit_open_files_on_exec(&mut cmd, limit);
    }
    if let Some(group) = &ctx.cgroup {
        match group.procs() {
            Ok(procs) => sys::join_cgroup_on_exec(&mut cmd, procs),
            Err(e) => tracing::warn!(
                "{} instance {}: cannot join {}: {e}; its limits are not enforced by the kernel",
                spec.name,
                ctx.index,
                group.dir().display()
            ),
        }
    }
    Ok((cmd, daemons_end))
}

/// `mcp-echo` ships inside mcpctl: when no `mcp-echo` is on PATH, it is this mcpctl
/// (`mcpctl __mcp-echo`), so the quickstart runs without building anything else.
pub(super) fn bundled_echo(program: &str) -> Option<String> {
    if program != "mcp-echo" {
        return None;
    }
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()));
    if on_path {
        return None;
    }
    let me = std::env::current_exe().ok()?;
    Some(me.to_string_lossy().into_owned())
}
