//! `daemon install --user [--print]` and `daemon uninstall --user`: a systemd user
//! unit that runs this config's daemon (`daemon --watch`), so its servers survive a
//! logout or reboot. The unit is marked as ours, and uninstall removes only a unit
//! that carries the mark for this config.

use std::path::{Path, PathBuf};

use super::{Error, ok, print};
use crate::config::{Error as ConfigError, store};

/// The first line of every unit we write; uninstall removes nothing without it.
const MARK: &str = "# Written by `mcpctl daemon install --user` for ";

/// `mcpctl-FOLDER-HASH.service`: readable, and one per config file.
pub(super) fn unit_name(config: &Path) -> String {
    let folder = config
        .parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let slug: String = folder
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(32)
        .collect();
    let hash = blake3::hash(config.as_os_str().as_encoded_bytes()).to_hex();
    let hash = hash.get(..8).unwrap_or_default();
    if slug.is_empty() {
        format!("mcpctl-{hash}.service")
    } else {
        format!("mcpctl-{slug}-{hash}.service")
    }
}

/// `text` with systemd's specifiers (`%h`, ...) kept literal.
fn literal(text: &str) -> String {
    text.replace('%', "%%")
}

/// A word of a systemd command line: specifiers and `$` variables kept literal, quoted
/// when it holds a space, a quote or a backslash.
fn word(text: &str) -> String {
    let text = literal(text).replace('$', "$$");
    if text
        .chars()
        .any(|c| c.is_whitespace() || c == '"' || c == '\\' || c == '\'')
    {
        format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        text
    }
}

/// The unit (pure): the daemon in the foreground, watching the file; `KillMode=mixed`
/// sends the stop signal to the daemon alone, which stops every server's process
/// group itself (the shims), and only what is left after the timeout is killed.
pub(super) fn unit_text(exe: &Path, config: &Path, identity: Option<&Path>) -> String {
    let dir = config.parent().unwrap_or(Path::new("/"));
    let mut text = format!(
        "{MARK}{config}\n\
         [Unit]\n\
         Description=mcpctl daemon for {config}\n\
         After=network.target\n\
         \n\
         [Service]\n\
         Type=simple\n\
         WorkingDirectory={dir}\n\
         ExecStart={exe} -f {file} daemon --watch\n\
         Restart=on-failure\n\
         RestartSec=2\n\
         KillMode=mixed\n\
         TimeoutStopSec=90\n",
        config = literal(&config.display().to_string()),
        // The rest of the line is the path: no quotes (systemd would take them as part
        // of it, and then the path is not absolute).
        dir = literal(&dir.display().to_string()),
        exe = word(&exe.display().to_string()),
        file = word(&config.display().to_string()),
    );
    if let Some(identity) = identity {
        text.push_str(&format!(
            "Environment={}\n",
            word(&format!("MCPCTL_IDENTITY={}", identity.display()))
        ));
    }
    text.push_str("\n[Install]\nWantedBy=default.target\n");
    text
}

/// `$XDG_CONFIG_HOME/systemd/user`, else `~/.config/systemd/user`.
fn unit_dir() -> Result<PathBuf, Error> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .ok_or_else(|| Error::Failed("neither XDG_CONFIG_HOME nor HOME is set".into()))?;
    Ok(base.join("systemd").join("user"))
}

fn absolute(config: &Path) -> Result<PathBuf, Error> {
    std::fs::canonicalize(config).map_err(|e| ConfigError::io(config, e).into())
}

pub(super) fn install(config: &Path, only_print: bool) -> Result<u8, Error> {
    let config = absolute(config)?;
    let exe = std::env::current_exe()
        .map_err(|e| Error::Failed(format!("cannot find the mcpctl executable: {e}")))?;
    let identity = crate::secrets::identity::path().ok().filter(|p| p.exists());
    let text = unit_text(&exe, &config, identity.as_deref());
    if only_print {
        print(&text)?;
        return ok();
    }
    let dir = unit_dir()?;
    let path = dir.join(unit_name(&config));
    if let Ok(existing) = std::fs::read_to_string(&path)
        && !existing.starts_with(MARK)
    {
        return Err(Error::Failed(format!(
            "{} exists and was not written by mcpctl; nothing was changed",
            path.display()
        )));
    }
    std::fs::create_dir_all(&dir).map_err(|e| ConfigError::io(&dir, e))?;
    store::write_atomic(&path, &text)?;
    print(&text)?;
    let name = unit_name(&config);
    crate::note!(
        "wrote {}\nstart it now and at every login: systemctl --user daemon-reload && systemctl --user enable --now {name}\n\
         (and at boot, before you log in: loginctl enable-linger)",
        path.display()
    );
    ok()
}

pub(super) fn uninstall(config: &Path) -> Result<u8, Error> {
    let config = absolute(config)?;
    let path = unit_dir()?.join(unit_name(&config));
    let ours = format!("{MARK}{}\n", config.display());
    match std::fs::read_to_string(&path) {
        Ok(text) if text.starts_with(&ours) => {
            std::fs::remove_file(&path).map_err(|e| ConfigError::io(&path, e))?;
            crate::note!(
                "removed {}\nstop it: systemctl --user disable --now {} && systemctl --user daemon-reload",
                path.display(),
                unit_name(&config)
            );
            ok()
        }
        Ok(_) => Err(Error::Failed(format!(
            "{} was not written by `mcpctl daemon install` for {}; nothing was removed",
            path.display(),
            config.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            crate::note!("no unit is installed for {}", config.display());
            ok()
        }
        Err(e) => Err(ConfigError::io(&path, e).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_runs_the_daemon_watching_this_file_and_leaves_the_shims_to_it() {
        let text = unit_text(
            Path::new("/opt/my tools/mcpctl"),
            Path::new("/srv/team/mcpctl.toml"),
            None,
        );
        assert!(text.starts_with(
            "# Written by `mcpctl daemon install --user` for /srv/team/mcpctl.toml\n"
        ));
        assert!(text.contains(
            "\nExecStart=\"/opt/my tools/mcpctl\" -f /srv/team/mcpctl.toml daemon --watch\n"
        ));
        assert!(text.contains("\nRestart=on-failure\n"));
        assert!(text.contains("\nKillMode=mixed\n"));
        assert!(text.contains("\nWantedBy=default.target\n"));
        assert!(!text.contains("Environment="));
        let with = unit_text(
            Path::new("/bin/mcpctl"),
            Path::new("/srv/team/mcpctl.toml"),
            Some(Path::new("/home/a/key.txt")),
        );
        assert!(with.contains("\nEnvironment=MCPCTL_IDENTITY=/home/a/key.txt\n"));
        // Spaces, quotes, `$` and `%` stay what they are.
        let odd = unit_text(
            Path::new("/bin/mcpctl"),
            Path::new("/tmp/we ird$x;\"q/pct%h/mcpctl.toml"),
            None,
        );
        assert!(
            odd.contains("\nWorkingDirectory=/tmp/we ird$x;\"q/pct%%h\n"),
            "{odd}"
        );
        assert!(
            odd.contains(
                "\nExecStart=/bin/mcpctl -f \"/tmp/we ird$$x;\\\"q/pct%%h/mcpctl.toml\" daemon --watch\n"
            ),
            "{odd}"
        );
    }

    #[test]
    fn each_config_gets_its_own_unit_name() {
        let a = unit_name(Path::new("/srv/team/mcpctl.toml"));
        let b = unit_name(Path::new("/srv/team/other.toml"));
        assert!(
            a.starts_with("mcpctl-team-") && a.ends_with(".service"),
            "{a}"
        );
        assert_ne!(a, b);
    }
}
