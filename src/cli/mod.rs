//! The command line: turns arguments into calls and rendered output, with no
//! business rules of its own. Every file edit goes through [`edit_file`], which
//! validates the result before `config::store` writes it.

mod add;
pub mod args;
mod audit;
mod backup;
mod docs;
mod env;
mod gateway;
mod gateway_endpoint;
mod import;
mod init;
mod install;
mod k8s;
mod lifecycle;
mod link;
mod monitor;
mod outdated;
mod plan;
mod profile;
mod registry;
mod secret;
mod status;
mod token;
mod tools;
mod ui;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml_edit::DocumentMut;

use crate::config::{self, Error as ConfigError, edit, find, store};
use crate::exit;
use crate::model::{self, raw::RawConfig};
use args::{Cli, Command, ConfigCommand, DaemonAction, SecretCommand, ServerCommand};

/// Errors that end a command. Each is printed once, by `main`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Writing to stdout failed (a closed pipe is not reported).
    #[error("cannot write output: {0}")]
    Output(#[from] io::Error),
    /// A check that found a problem it has already described (e.g. `fmt --check`).
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Daemon(#[from] crate::client::Error),
    #[error(transparent)]
    Git(#[from] crate::git::Error),
    #[error(transparent)]
    Registry(#[from] crate::registry::fetch::Error),
    /// An entry `add` refuses, or one that needs more from the user; the file was
    /// not touched.
    #[error("{0}; nothing was changed")]
    Entry(#[from] crate::registry::translate::Error),
    /// A backup that `server restore` refuses; the file was not touched.
    #[error("cannot restore from {file}: {refused}; nothing was changed")]
    Backup {
        file: String,
        refused: crate::backup::Refused,
    },
}

impl Error {
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Output(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }
}

/// Whether `cli` runs a daemon or a gateway (in the foreground), whose events are its log.
pub fn runs_daemon(cli: &Cli) -> bool {
    matches!(
        cli.command,
        Command::Daemon { action: None, .. } | Command::Gateway(_)
    )
}

/// Whether the log is asked for as JSON lines (`mcpctl gateway --json-log`).
pub fn json_log(cli: &Cli) -> bool {
    matches!(&cli.command, Command::Gateway(args) if args.json_log)
}

/// `-f PATH daemon [--watch] [--on-demand]` (the way commands start the daemon, and
/// how the README runs it) recognised without clap: a daemon then never runs, nor
/// keeps resident, the code that builds the whole command line. Any other spelling,
/// `--help` included, is left to clap (`None`).
pub fn daemon_command(args: &[String]) -> Option<Cli> {
    let [flag, file, daemon, rest @ ..] = args else {
        return None;
    };
    if !matches!(flag.as_str(), "-f" | "--file") || file.starts_with('-') || daemon != "daemon" {
        return None;
    }
    let (mut watch, mut on_demand) = (false, false);
    for arg in rest {
        match arg.as_str() {
            "--watch" if !watch => watch = true,
            "--on-demand" if !on_demand => on_demand = true,
            _ => return None,
        }
    }
    Some(Cli {
        file: Some(PathBuf::from(file)),
        identity: None,
        command: Command::Daemon {
            action: None,
            watch,
            on_demand,
        },
    })
}

/// Runs the parsed command; returns the exit code.
pub fn run(cli: Cli) -> Result<u8, Error> {
    let cwd = std::env::current_dir().map_err(|e| ConfigError::io(Path::new("."), e))?;
    let file = cli.file.as_deref();
    if let Some(identity) = &cli.identity {
        crate::secrets::identity::set_override(identity.clone());
    }
    match cli.command {
        Command::Init => init::run(file, &cwd),
        Command::Gateway(args) => gateway::run(*args, &cwd),
        Command::Client(cmd) => link::run(&locate(file, &cwd)?, cmd),
        Command::Import(args) => import::run(&locate(file, &cwd)?, &args),
        Command::Search(args) => registry::search(find::find(file, &cwd).ok().as_deref(), &args),
        Command::Add(args) => add::run(&locate(file, &cwd)?, &args),
        Command::Outdated(args) => outdated::outdated(&locate(file, &cwd)?, &args),
        Command::Upgrade(args) => outdated::upgrade(&locate(file, &cwd)?, &args),
        // Without a file it still answers: a stdio client shows the reason.
        Command::Connect { name } => Ok(crate::bridge::run(locate(file, &cwd), &name)),
        Command::Validate { all } => plan::validate(&locate(file, &cwd)?, all),
        Command::Fmt { check } => plan::fmt(&locate(file, &cwd)?, check),
        Command::Plan(plan_args) if plan_args.target.target == args::Target::K8s => {
            let path = locate(file, &cwd)?;
            k8s::converge(&path, &plan_args.target, false, plan_args.detailed_exitcode)
        }
        Command::Plan(args) => plan::plan(&locate(file, &cwd)?, &args),
        Command::Profile(cmd) => profile::run(&locate(file, &cwd)?, cmd),
        Command::Config(ConfigCommand::Env(cmd)) => env::run(&locate(file, &cwd)?, cmd),
        // Without --add, keygen needs no file; with one it says whether the file can use the key.
        Command::Config(ConfigCommand::Secret(SecretCommand::Keygen { add })) => {
            let path = if add {
                Some(locate(file, &cwd)?)
            } else {
                find::find(file, &cwd).ok()
            };
            secret::keygen(path.as_deref(), add)
        }
        Command::Config(ConfigCommand::Secret(cmd)) => secret::run(&locate(file, &cwd)?, cmd),
        Command::Apply {
            target,
            plan,
            watch,
            rev,
        } if target.target == args::Target::K8s => {
            if plan.is_some() || watch || rev.is_some() {
                return Err(Error::Failed(
                    "--target k8s applies the file as it is: without PLAN, --watch or --rev".into(),
                ));
            }
            k8s::converge(&locate(file, &cwd)?, &target, true, false)
        }
        Command::Apply {
            plan, watch, rev, ..
        } => lifecycle::apply(&locate(file, &cwd)?, plan.as_deref(), watch, rev.as_deref()),
        Command::Render {
            what:
                args::RenderWhat::K8s {
                    k8s: options,
                    output,
                },
        } => k8s::render(&locate(file, &cwd)?, &options, &output),
        Command::Backup { all: _, output } => backup::backup_all(&locate(file, &cwd)?, &output),
        Command::Completions { shell } => docs::completions(shell),
        Command::Names => docs::names(find::find(file, &cwd).ok().as_deref()),
        Command::Man => docs::man(),
        Command::Status { format } => status::status(&locate(file, &cwd)?, format),
        Command::Ui { no_open, bind } => ui::open(&locate(file, &cwd)?, bind, no_open),
        Command::Token(cmd) => token::run(&locate(file, &cwd)?, cmd),
        Command::Audit {
            caller,
            target,
            since,
            refused,
            limit,
            format,
        } => audit::run(
            &locate(file, &cwd)?,
            &audit::Filter {
                caller,
                target,
                since,
                refused,
                limit,
            },
            format,
        ),
        Command::Tools {
            name,
            all,
            pin,
            format,
        } => tools::tools(&locate(file, &cwd)?, &name, all, pin, format),
        Command::Server(ServerCommand::Start {
            name,
            flags,
            config,
        }) => {
            let path = locate(config.as_deref().or(file), &cwd)?;
            lifecycle::server_start(&path, &name, &flags)
        }
        Command::Server(cmd) => server(&locate(file, &cwd)?, cmd),
        Command::Daemon {
            action,
            watch,
            on_demand,
        } => {
            let path = locate(file, &cwd)?;
            match action {
                None => lifecycle::daemon(&path, watch, !on_demand),
                Some(DaemonAction::Stop) => lifecycle::daemon_stop(&path),
                Some(DaemonAction::Status) => status::daemon_info(&path),
                Some(DaemonAction::Install { user: _, print }) => install::install(&path, print),
                Some(DaemonAction::Uninstall { user: _ }) => install::uninstall(&path),
            }
        }
        Command::Shim {
            stop_timeout_ms,
            daemon_pid,
            netns,
            sockets,
            command,
        } => {
            let code = crate::shim::run(crate::shim::ShimArgs {
                stop_timeout: std::time::Duration::from_millis(stop_timeout_ms),
                daemon_pid,
                isolate_network: netns,
                serve_sockets: sockets,
                command,
            });
            Ok(u8::try_from(code).unwrap_or(exit::ERROR))
        }
    }
}

fn server(path: &Path, cmd: ServerCommand) -> Result<u8, Error> {
    match cmd {
        ServerCommand::Start { name, flags, .. } => lifecycle::server_start(path, &name, &flags),
        ServerCommand::Stop {
            name,
            force,
            timeout,
        } => lifecycle::server_stop(path, &name, force, timeout),
        ServerCommand::Restart { name, flags } => lifecycle::server_restart(path, &name, &flags),
        ServerCommand::Status {
            name,
            format,
            watch,
        } => status::server_status(path, &name, format, watch),
        ServerCommand::Scale {
            name,
            instances,
            apply,
        } => lifecycle::server_scale(path, &name, instances, apply.no_apply),
        ServerCommand::Autoscale {
            name,
            min,
            max,
            target_sessions,
            target_inflight,
            scale_down_after,
            idle_after,
            apply,
        } => {
            let mut bounds = toml_edit::InlineTable::new();
            bounds.insert("min", i64::from(min).into());
            bounds.insert("max", i64::from(max).into());
            for (key, value) in [
                ("target_sessions", target_sessions),
                ("target_inflight", target_inflight),
            ] {
                if let Some(v) = value {
                    bounds.insert(key, i64::from(v).into());
                }
            }
            for (key, value) in [
                ("scale_down_after", scale_down_after),
                ("idle_after", idle_after),
            ] {
                if let Some(v) = value {
                    bounds.insert(key, v.into());
                }
            }
            lifecycle::server_count(
                path,
                &name,
                "autoscale",
                toml_edit::Value::InlineTable(bounds),
                apply.no_apply,
            )
        }
        ServerCommand::Monitor {
            name,
            metrics,
            interval,
            format,
            count,
        } => {
            if !(interval.is_finite() && interval > 0.0) {
                return Err(Error::Failed(format!(
                    "--interval {interval}: give a number of seconds above 0"
                )));
            }
            let options = monitor::Options {
                name: name.as_deref(),
                metrics,
                interval: Duration::from_secs_f64(interval.min(3600.0)),
                format,
                count,
            };
            monitor::monitor(path, &options)
        }
        ServerCommand::Logs {
            name,
            follow,
            lines,
            level,
            instance,
        } => status::logs(path, &name, follow, lines, level, instance),
        ServerCommand::Backup { name, output } => backup::backup_server(path, &name, &output),
        ServerCommand::Restore {
            name,
            input,
            as_name,
            port,
            dry_run,
            apply,
        } => backup::restore(
            path,
            &backup::Restore {
                name: &name,
                input: &input,
                as_name: as_name.as_deref(),
                port,
                dry_run,
                no_apply: apply.no_apply,
            },
        ),
    }
}

fn locate(file: Option<&Path>, cwd: &Path) -> Result<PathBuf, Error> {
    Ok(find::find(file, cwd)?)
}

/// Prints to stdout.
fn print(text: &str) -> Result<(), Error> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Applies `change` to the file under the lock. The result must be valid, or nothing
/// is written; an edit may repair a file that was invalid (e.g. set the secret that
/// `auth` names), but on a file that stays broken the file's own problems are shown.
/// Returns whether the file changed.
fn edit_file<F>(path: &Path, change: F) -> Result<bool, Error>
where
    F: FnOnce(&mut DocumentMut, &RawConfig) -> Result<(), ConfigError>,
{
    let changed = store::update(path, |before| edited(path, before, change))?;
    Ok(changed)
}

/// [`edit_file`] for an edit that takes access away (`token revoke`): allowed on a
/// broken file too, as long as it leaves no problem the file did not have, so that a
/// broken entry elsewhere never keeps a token in force.
fn edit_file_removing<F>(path: &Path, change: F) -> Result<bool, Error>
where
    F: FnOnce(&mut DocumentMut, &RawConfig) -> Result<(), ConfigError>,
{
    let changed = store::update(path, |before| edited_as(path, before, change, true))?;
    Ok(changed)
}

/// The text `change` makes of `before`, checked as [`edit_file`] checks it; nothing
/// is written (`--dry-run` shows what it would cause).
fn edited<F>(path: &Path, before: &str, change: F) -> Result<String, ConfigError>
where
    F: FnOnce(&mut DocumentMut, &RawConfig) -> Result<(), ConfigError>,
{
    edited_as(path, before, change, false)
}

/// [`edited`]; `removing`: problems the file had already do not block the edit.
fn edited_as<F>(path: &Path, before: &str, change: F, removing: bool) -> Result<String, ConfigError>
where
    F: FnOnce(&mut DocumentMut, &RawConfig) -> Result<(), ConfigError>,
{
    crate::config::checked_edit::edited(path, before, change, removing)
}

/// `{ K = "v", ... }` of a map, formatted as the file's other inline tables.
fn inline_strings(map: &std::collections::BTreeMap<String, String>) -> toml_edit::InlineTable {
    let mut t: toml_edit::InlineTable = map.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    t.fmt();
    t
}

/// Reads the file without requiring it to be valid beyond its raw shape.
fn read_raw(path: &Path) -> Result<RawConfig, Error> {
    let source = store::read(path)?;
    Ok(model::parse_raw(&source).map_err(|d| ConfigError::invalid(path, &source, vec![d]))?)
}

/// `--server NAME`, or `[defaults]` without it.
fn scope_of(scope: args::ServerScope) -> edit::Scope {
    scope
        .server
        .map_or(edit::Scope::Defaults, edit::Scope::Server)
}

/// An unknown `--server` is an error listing the known servers.
fn check_server(raw: &RawConfig, scope: &edit::Scope) -> Result<(), Error> {
    match scope {
        edit::Scope::Server(name) if !raw.servers.contains_key(name) => {
            let known: Vec<String> = raw.servers.keys().cloned().collect();
            Err(edit::unknown_server(name, &known).into())
        }
        _ => Ok(()),
    }
}

fn ok() -> Result<u8, Error> {
    Ok(exit::OK)
}

/// Loads and validates.
fn load(path: &Path) -> Result<config::Loaded, Error> {
    Ok(config::load(path)?)
}

/// Loads, validates and decrypts (to fill the secret digests plans compare).
fn load_unlocked(path: &Path) -> Result<config::Loaded, Error> {
    let mut loaded = config::load(path)?;
    crate::secrets::unlock::unlock(&mut loaded)?;
    Ok(loaded)
}

/// What a careful operator should know before running these servers, on stderr: each
/// spec's own warnings, and the limits this machine's cgroups cannot enforce (`memory`
/// too: restarts still enforce it, so only `validate` mentions it).
fn warn_about(servers: &std::collections::BTreeMap<String, model::ServerSpec>, memory: bool) {
    let support = servers
        .values()
        .any(|s| s.limits.cpu_millis.is_some() || (memory && s.limits.memory_bytes.is_some()))
        .then(crate::cgroup::support);
    let isolation = servers
        .values()
        .any(model::ServerSpec::wants_isolation)
        .then(crate::shim::probe_isolation);
    for spec in servers.values() {
        let mut warnings = spec.warnings();
        if let Some(Err(why)) = &isolation {
            warnings.extend(spec.unisolated_warning(&why.to_string()));
        }
        if let Some(support) = &support {
            let memory_bytes = spec.limits.memory_bytes.filter(|_| memory);
            warnings.extend(crate::cgroup::unenforced(
                &spec.name,
                memory_bytes,
                spec.limits.cpu_millis,
                support,
            ));
        }
        for warning in warnings {
            crate::note!("warning: {warning}");
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn the_daemon_command_line_is_read_as_clap_reads_it() {
        for args in [
            &["-f", "a.toml", "daemon"][..],
            &["--file", "/x/mcpctl.toml", "daemon", "--on-demand"],
            &["-f", "a.toml", "daemon", "--watch", "--on-demand"],
            &["-f", "a.toml", "daemon", "--on-demand", "--watch"],
        ] {
            let ours = daemon_command(&strings(args)).expect("recognised");
            let clap = Cli::try_parse_from(std::iter::once("mcpctl").chain(args.iter().copied()));
            assert_eq!(
                format!("{ours:?}"),
                format!("{:?}", clap.expect("valid")),
                "{args:?}"
            );
        }
    }

    #[test]
    fn any_other_command_line_is_left_to_clap() {
        for args in [
            &["daemon"][..],
            &["-f", "a.toml", "daemon", "stop"],
            &["-f", "a.toml", "daemon", "--help"],
            &["-f", "a.toml", "daemon", "--watch", "--watch"],
            &["-f", "--watch", "daemon"],
            &["--identity", "k", "daemon"],
            &["-f", "a.toml", "apply"],
            &["--file=a.toml", "daemon"],
        ] {
            assert!(daemon_command(&strings(args)).is_none(), "{args:?}");
        }
    }
}
