//! `validate`, `fmt` and `plan`: commands that read the file and report.

use std::io::IsTerminal;
use std::path::Path;

use similar::TextDiff;

use super::args::{Format, PlanArgs};
use super::{Error, load_unlocked, ok, print};
use crate::config::{Error as ConfigError, fmt as formatter, store};
use crate::exit;
use crate::plan::plan as make_plan;
use crate::plan::saved::SavedPlan;
use crate::render::{self, Colour};

/// `all`: every error, not only the first screenful.
pub(super) fn validate(path: &Path, all: bool) -> Result<u8, Error> {
    let shown = |e: ConfigError| if all { e.show_all() } else { e };
    let mut loaded = crate::config::load(path).map_err(shown)?;
    // Secrets are checked when this user can decrypt; a reviewer without the key
    // still gets every other check.
    let has_secrets = loaded
        .config
        .servers
        .values()
        .any(|s| !s.secrets.is_empty());
    let note = if !has_secrets {
        ""
    } else if crate::secrets::identity::path().is_ok_and(|p| p.exists()) {
        crate::secrets::unlock::unlock(&mut loaded).map_err(shown)?;
        ", secrets decrypt"
    } else {
        " (secrets not checked: no identity)"
    };
    super::warn_about(&loaded.config.servers, true);
    let servers = loaded.config.servers.len();
    let profiles = loaded.config.profiles.len();
    let endpoints = match loaded.config.endpoints.len() {
        0 => String::new(),
        1 => ", 1 endpoint".to_string(),
        n => format!(", {n} endpoints"),
    };
    print(&format!(
        "{} is valid: {servers} server{}, {profiles} profile{}{endpoints}{note}\n",
        path.display(),
        if servers == 1 { "" } else { "s" },
        if profiles == 1 { "" } else { "s" },
    ))?;
    ok()
}

pub(super) fn fmt(path: &Path, check: bool) -> Result<u8, Error> {
    let syntax_error = |source: &str, e: toml_edit::TomlError| {
        let diag =
            crate::diag::Diagnostic::new(format!("invalid TOML: {}", e.message().trim_end()))
                .at(e.span(), "");
        ConfigError::invalid(path, source, vec![diag])
    };
    if check {
        let source = store::read(path)?;
        let formatted = formatter::format(&source).map_err(|e| syntax_error(&source, e))?;
        if formatted == source {
            return ok();
        }
        let name = path.display().to_string();
        let diff = TextDiff::from_lines(&source, &formatted)
            .unified_diff()
            .header(&name, &format!("{name} (formatted)"))
            .to_string();
        print(&diff)?;
        return Err(Error::Failed(format!(
            "{name} is not formatted; run `mcpctl fmt`"
        )));
    }
    let changed = store::update(path, |source| {
        formatter::format(source).map_err(|e| syntax_error(source, e))
    })?;
    if changed {
        crate::note!("formatted {}", path.display());
    }
    ok()
}

pub(super) fn plan(path: &Path, args: &PlanArgs) -> Result<u8, Error> {
    let observed = super::lifecycle::observed(path)?;
    let no_identity = !crate::secrets::identity::named()
        && !crate::secrets::identity::path().is_ok_and(|p| p.exists());
    // With nothing running there is no secret value to compare: every server is a
    // start, so CI or a reviewer without the key still gets the plan. A saved plan
    // is always made with the secrets read, as apply will read them.
    let loaded = if no_identity && observed.servers.is_empty() && args.out.is_none() {
        let loaded = super::load(path)?;
        if loaded
            .config
            .servers
            .values()
            .any(|s| !s.secrets.is_empty())
        {
            crate::note!(
                "note: secrets not decrypted (no identity); nothing runs to compare them with"
            );
        }
        loaded
    } else {
        load_unlocked(path)?
    };
    let plan = make_plan(&loaded.config.servers, &observed)
        .with_endpoints(&loaded.config.endpoints, &observed);
    let text = match args.format {
        Format::Json => render::plan_json(&plan),
        Format::Text => render::plan_text(&plan, colour()),
    };
    print(&text)?;
    if let Some(out) = &args.out {
        let saved = SavedPlan::new(
            super::lifecycle::plan_config_name(path),
            crate::config::digest(&loaded.source),
            &loaded.config.servers,
            &observed,
            &plan,
        );
        let text = serde_json::to_string_pretty(&saved)
            .map_err(|e| Error::Failed(format!("cannot write the plan: {e}")))?;
        store::write_atomic(out, &(text + "\n"))?;
        crate::note!(
            "saved the plan to {}; `mcpctl apply {}` applies exactly it",
            out.display(),
            out.display()
        );
    }
    super::warn_about(&loaded.config.servers, false);
    Ok(if args.detailed_exitcode && plan.has_changes() {
        exit::CHANGES
    } else {
        exit::OK
    })
}

/// Colour only on a terminal, and never with `NO_COLOR` set (no-color.org).
pub(super) fn colour() -> Colour {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    Colour(!no_color && std::io::stdout().is_terminal())
}
