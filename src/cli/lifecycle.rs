//! `apply`, `server start|stop|restart`, `daemon`: commands that converge.
//! Imperative commands only edit the file, then converge the one server they name.

use std::collections::BTreeMap;
use std::path::Path;

use toml_edit::Value;

use super::args::{ModeArg, ServerFlags};
use super::{Error, edit_file, load, load_unlocked, ok, print};
use crate::api::{AppliedFrom, ApplyOptions, Expected, Reply, Request};
use crate::client;
use crate::config::edit;
use crate::exit;
use crate::model::ServerSpec;
use crate::plan::saved::SavedPlan;
use crate::plan::{Observed, plan};
use crate::render::plan_text;

/// What runs, as the daemon sees it; nothing when no daemon runs (no child outlives it).
pub(super) fn observed(path: &Path) -> Result<Observed, Error> {
    match client::ask(path, &Request::Observe) {
        Ok(Reply::Observed { observed }) => Ok(observed),
        Ok(other) => Err(client::Error::BadReply(format!("{other:?}")).into()),
        Err(client::Error::NotRunning(_)) => Ok(Observed::nothing()),
        Err(e) => Err(e.into()),
    }
}

/// The servers the file declares now, secrets still encrypted: what an edit is
/// compared against (`None` when the file cannot be read or is invalid).
pub(super) fn declared(path: &Path) -> Option<BTreeMap<String, ServerSpec>> {
    crate::config::load(path).ok().map(|l| l.config.servers)
}

/// After an edit: converges the servers whose spec it changed, when a daemon runs, and
/// prints what changed; with `no_apply`, or without a daemon, says when it will. An
/// edit of one server's block that changed nothing (the value was already there, say
/// from an earlier `--no-apply`) still converges that server.
pub(super) fn after_edit(
    path: &Path,
    before: Option<BTreeMap<String, ServerSpec>>,
    server: Option<&str>,
    no_apply: bool,
) -> Result<u8, Error> {
    let (Some(before), Some(after)) = (before, declared(path)) else {
        return ok();
    };
    let mut affected: Vec<String> = after
        .keys()
        .chain(before.keys())
        .filter(|name| before.get(*name) != after.get(*name))
        .cloned()
        .collect();
    affected.sort();
    affected.dedup();
    if affected.is_empty() {
        match server {
            Some(name) if !no_apply && client::connect(path)?.is_some() => {
                affected.push(name.to_string());
            }
            _ => return ok(),
        }
    }
    let list = affected.join(", ");
    if no_apply {
        crate::note!(
            "not applied (--no-apply): `mcpctl apply` brings {list} in line with the file"
        );
        return ok();
    }
    if client::connect(path)?.is_none() {
        crate::note!("no daemon runs: {list} will take the change at the next `mcpctl apply`");
        return ok();
    }
    converge(
        path,
        ApplyOptions {
            only: affected,
            ..ApplyOptions::default()
        },
    )
}

pub(super) fn apply(
    path: &Path,
    saved: Option<&Path>,
    watch: bool,
    rev: Option<&str>,
) -> Result<u8, Error> {
    if let Some(saved) = saved {
        return apply_saved(path, saved);
    }
    if let Some(rev) = rev {
        return apply_rev(path, rev);
    }
    if !watch {
        return converge(path, ApplyOptions::default());
    }
    // Watch before the first apply, so a save during it is not missed.
    let watcher = crate::watch::watch_file(path)
        .map_err(|e| Error::Failed(format!("cannot watch {}: {e}", path.display())))?;
    if let Err(e) = converge(path, ApplyOptions::default()) {
        crate::note!("error: {e}\nwaiting for the next save");
    }
    crate::note!("watching {} for changes (Ctrl-C to stop)", path.display());
    while watcher.changes.recv().is_ok() {
        crate::note!("\n{} changed", path.display());
        // A broken save is reported; the running servers stay as they are.
        if let Err(e) = converge(path, ApplyOptions::default()) {
            crate::note!("error: {e}\nnothing was changed; waiting for the next save");
        }
    }
    Ok(exit::OK)
}

/// `apply --rev REV`: the file as git has it at REV, the working file untouched.
fn apply_rev(path: &Path, rev: &str) -> Result<u8, Error> {
    let (commit, text) = crate::git::show(path, rev)?;
    crate::note!(
        "applying {} as of {rev} ({})",
        path.display(),
        crate::git::short(&commit)
    );
    let origin = AppliedFrom {
        file_digest: crate::config::digest(&text),
        commit: Some(commit),
        modified: false,
        rev: Some(rev.to_string()),
        at: String::new(),
    };
    converge(
        path,
        ApplyOptions {
            source: Some(text),
            origin: Some(origin),
            ..ApplyOptions::default()
        },
    )
}

/// `apply PLAN`: exactly the saved plan, or a refusal that says what moved.
fn apply_saved(path: &Path, saved: &Path) -> Result<u8, Error> {
    let text = crate::config::store::read(saved)?;
    let saved_plan = SavedPlan::parse(&text)
        .map_err(|why| Error::Failed(format!("cannot apply {}: {why}", saved.display())))?;
    let loaded = load_unlocked(path)?;
    let observed = observed(path)?;
    let file_digest = crate::config::digest(&loaded.source);
    let now = plan(&loaded.config.servers, &observed);
    let moved = saved_plan.what_changed(
        &plan_config_name(path),
        &file_digest,
        &loaded.config.servers,
        &observed,
        &now,
    );
    if !moved.is_empty() {
        return Err(Error::Failed(format!(
            "the saved plan {} is stale, nothing was applied:\n  - {}\n  = help: make a new one with `mcpctl plan --out {}`",
            saved.display(),
            moved.join("\n  - "),
            saved.display()
        )));
    }
    converge(
        path,
        ApplyOptions {
            expect: Some(Expected {
                file_digest,
                observed_digest: crate::plan::saved::observed_digest(&observed),
            }),
            ..ApplyOptions::default()
        },
    )
}

/// The config file as a saved plan names it: its full path, however it was given.
pub(super) fn plan_config_name(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// Where the file stands in git, for apply to record (nothing outside a repository).
fn origin_of(path: &Path, source: &str) -> AppliedFrom {
    let (commit, modified) = match crate::git::head(path) {
        Some((commit, modified)) => (Some(commit), modified),
        None => (None, false),
    };
    AppliedFrom {
        file_digest: crate::config::digest(source),
        commit,
        modified,
        rev: None,
        at: String::new(),
    }
}

/// Plans (printed), then has the daemon execute; prints progress and endpoints.
fn converge(path: &Path, mut options: ApplyOptions) -> Result<u8, Error> {
    let loaded = match &options.source {
        Some(text) => {
            let label = format!(
                "{} (at {})",
                path.display(),
                options
                    .origin
                    .as_ref()
                    .and_then(|o| o.rev.as_deref())
                    .unwrap_or("another revision")
            );
            let mut loaded = crate::config::load_text(path, &label, text.clone())?;
            crate::secrets::unlock::unlock(&mut loaded)?;
            loaded
        }
        None => load_unlocked(path)?,
    };
    if options.origin.is_none() {
        options.origin = Some(origin_of(path, &loaded.source));
    }
    let stream = client::connect_or_start(path)?;
    let observed = observed(path)?;
    let shown = crate::plan::focus(
        plan(&loaded.config.servers, &observed),
        &options.only,
        options.restart.as_deref(),
    );
    print(&plan_text(&shown, super::plan::colour()))?;
    let reply = client::request(stream, &Request::Apply(Box::new(options)), |line| {
        let _ = print(&format!("{line}\n"));
    })?;
    let Reply::Applied { outcome } = reply else {
        return Err(client::Error::BadReply(format!("{reply:?}")).into());
    };
    if !outcome.endpoints.is_empty() {
        let mut text = String::from("\nEndpoints:\n");
        for (name, endpoints) in &outcome.endpoints {
            text.push_str(&format!("  {name:<16} {endpoints}\n"));
        }
        print(&text)?;
    }
    if outcome.failures.is_empty() {
        ok()
    } else {
        // A failure carries the server's own last log lines: shown, never run by the
        // terminal (escapes, bidi overrides), line by line.
        let shown: Vec<String> = outcome
            .failures
            .iter()
            .flat_map(|f| f.lines())
            .map(crate::import::plan::printable)
            .collect();
        Err(Error::Failed(shown.join("\n")))
    }
}

fn mode_value(mode: ModeArg) -> &'static str {
    match mode {
        ModeArg::Local => "local",
        ModeArg::Remote => "remote",
    }
}

/// Writes `state` and the flags where they take effect.
fn write_flags(path: &Path, name: &str, state: &str, flags: &ServerFlags) -> Result<(), Error> {
    edit_file(path, |doc, raw| {
        if let Some(profile) = &flags.profile {
            edit::set_value(
                edit::server_table(doc, name)?,
                "profile",
                Value::from(profile.as_str()),
            );
        }
        let profile = flags
            .profile
            .clone()
            .unwrap_or_else(|| edit::profile_of(raw, name));
        let mut fields: Vec<(&str, Value)> = vec![("state", Value::from(state))];
        if let Some(port) = flags.port {
            fields.push(("port", Value::from(i64::from(port))));
        }
        if let Some(mode) = flags.mode {
            fields.push(("mode", Value::from(mode_value(mode))));
        }
        for (field, value) in fields {
            edit::set_server_field(doc, raw, name, &profile, field, value)?;
        }
        Ok(())
    })?;
    Ok(())
}

pub(super) fn server_start(path: &Path, name: &str, flags: &ServerFlags) -> Result<u8, Error> {
    write_flags(path, name, "running", flags)?;
    converge(
        path,
        ApplyOptions {
            only: vec![name.to_string()],
            ..ApplyOptions::default()
        },
    )
}

/// `server scale NAME --instances N`: the count written where it takes effect, then
/// converged (the daemon drains what it removes).
pub(super) fn server_scale(
    path: &Path,
    name: &str,
    instances: u32,
    no_apply: bool,
) -> Result<u8, Error> {
    let count = Value::from(i64::from(instances));
    server_count(path, name, "instances", count, no_apply)
}

/// `scale` / `autoscale`: writes `field` (which replaces the other) and converges.
pub(super) fn server_count(
    path: &Path,
    name: &str,
    field: &str,
    value: Value,
    no_apply: bool,
) -> Result<u8, Error> {
    let before = declared(path);
    edit_file(path, |doc, raw| {
        crate::config::checked_edit::set_field(doc, raw, name, field, value)
    })?;
    after_edit(path, before, Some(name), no_apply)
}

pub(super) fn server_restart(path: &Path, name: &str, flags: &ServerFlags) -> Result<u8, Error> {
    write_flags(path, name, "running", flags)?;
    converge(
        path,
        ApplyOptions {
            restart: Some(name.to_string()),
            ..ApplyOptions::default()
        },
    )
}

pub(super) fn server_stop(
    path: &Path,
    name: &str,
    force: bool,
    timeout: Option<u64>,
) -> Result<u8, Error> {
    write_flags(path, name, "stopped", &ServerFlags::default())?;
    let options = ApplyOptions {
        only: vec![name.to_string()],
        force,
        stop_timeout_ms: timeout.map(|s| s.saturating_mul(1000)),
        ..ApplyOptions::default()
    };
    // Nothing runs without a daemon: then the edit is all there is to do.
    if client::connect(path)?.is_none() {
        crate::note!("{name} is stopped (no daemon was running)");
        return ok();
    }
    converge(path, options)
}

pub(super) fn daemon(path: &Path, watch: bool, initial_apply: bool) -> Result<u8, Error> {
    load(path)?;
    crate::daemon::run(
        path,
        &crate::daemon::Options {
            watch,
            initial_apply,
        },
    )
    .map_err(|e| Error::Failed(e.to_string()))?;
    ok()
}

pub(super) fn daemon_stop(path: &Path) -> Result<u8, Error> {
    match client::ask(path, &Request::Shutdown) {
        Ok(_) => {
            // The reply comes before the servers are stopped: wait for the socket to go.
            let socket = client::socket_path(path);
            for _ in 0..600 {
                if !socket.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            crate::note!("daemon stopped");
            ok()
        }
        Err(client::Error::NotRunning(_)) => {
            crate::note!("no daemon is running for {}", path.display());
            ok()
        }
        Err(e) => Err(e.into()),
    }
}
