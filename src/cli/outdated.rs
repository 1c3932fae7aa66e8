//! `mcpctl outdated` and `mcpctl upgrade`: the servers whose pinned version is
//! behind the registry's latest, and bumping the pin (the plan then shows it).

use std::path::Path;

use toml_edit::{DocumentMut, Item, Value};

use super::args::{Format, OutdatedArgs, RegistryArgs, UpgradeArgs};
use super::lifecycle::{after_edit, declared};
use super::{Error, edit_file, print};
use crate::config::{Error as ConfigError, edit, store};
use crate::exit;
use crate::import::plan::printable;
use crate::registry::fetch::Registry;
use crate::registry::version::{self, Pin, compare};
use crate::registry::{self, check};

/// One server `outdated` looked at.
#[derive(Debug, Clone)]
struct Row {
    server: String,
    entry: Option<String>,
    pin: Option<Pin>,
    current: String,
    latest: Option<String>,
}

impl Row {
    fn outdated(&self) -> bool {
        self.latest
            .as_deref()
            .is_some_and(|l| compare(l, &self.current).is_gt())
    }
}

pub(super) fn outdated(path: &Path, args: &OutdatedArgs) -> Result<u8, Error> {
    let rows = rows(path, &args.registry)?;
    let behind: Vec<&Row> = rows.iter().filter(|r| r.outdated()).collect();
    match args.format {
        Format::Json => {
            let list: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "server": r.server,
                        "entry": r.entry,
                        "current": r.current,
                        "latest": r.latest,
                        "outdated": r.outdated(),
                    })
                })
                .collect();
            let text = serde_json::to_string_pretty(&list)
                .map_err(|e| Error::Failed(format!("cannot write JSON: {e}")))?;
            print(&format!("{text}\n"))?;
        }
        Format::Text => {
            if !behind.is_empty() {
                let mut text = String::from("SERVER  CURRENT  LATEST  ENTRY\n");
                for r in &behind {
                    text.push_str(&format!(
                        "{}  {}  {}  {}\n",
                        r.server,
                        r.current,
                        r.latest.as_deref().unwrap_or("?"),
                        r.entry.as_deref().unwrap_or("-")
                    ));
                }
                print(&align(&text))?;
                crate::note!(
                    "`mcpctl upgrade NAME` (or `--all`) bumps the pin; `mcpctl plan` shows it"
                );
            }
            let current = rows
                .iter()
                .filter(|r| r.latest.is_some() && !r.outdated())
                .count();
            let unknown: Vec<&str> = rows
                .iter()
                .filter(|r| r.latest.is_none())
                .map(|r| r.server.as_str())
                .collect();
            if current > 0 {
                crate::note!("{current} server(s) at the latest version");
            }
            if !unknown.is_empty() {
                crate::note!("not found in the registry: {}", unknown.join(", "));
            }
            if rows.is_empty() {
                crate::note!("no server is pinned to a registry or package version");
            }
        }
    }
    Ok(if behind.is_empty() {
        exit::OK
    } else {
        exit::CHANGES
    })
}

pub(super) fn upgrade(path: &Path, args: &UpgradeArgs) -> Result<u8, Error> {
    let mut rows = rows(path, &args.registry)?;
    if let Some(name) = &args.name {
        let raw = super::read_raw(path)?;
        if !raw.servers.contains_key(name) {
            let known: Vec<String> = raw.servers.keys().cloned().collect();
            return Err(edit::unknown_server(name, &known).into());
        }
        rows.retain(|r| &r.server == name);
        let Some(row) = rows.first() else {
            return Err(Error::Failed(format!(
                "`{name}` is not pinned to a registry entry or a package version (npx pkg@V, uvx pkg==V, docker run image:tag)"
            )));
        };
        if row.latest.is_none() {
            return Err(Error::Failed(format!(
                "`{name}` was not found in the registry"
            )));
        }
    }
    rows.retain(Row::outdated);
    if rows.is_empty() {
        crate::note!("nothing to upgrade: every server is at the latest version");
        return Ok(exit::OK);
    }
    let before = declared(path);
    edit_file(path, |doc, _| {
        for row in &rows {
            bump(doc, row)?;
        }
        Ok(())
    })?;
    for row in &rows {
        crate::note!(
            "upgraded {} from {} to {}",
            row.server,
            row.current,
            row.latest.as_deref().unwrap_or("?")
        );
    }
    let one = (rows.len() == 1).then(|| rows[0].server.clone());
    after_edit(path, before, one.as_deref(), args.apply.no_apply)
}

/// The new pin in the server's args, and the new version in its comment.
fn bump(doc: &mut DocumentMut, row: &Row) -> Result<(), ConfigError> {
    let latest = row.latest.clone().unwrap_or_default();
    let table = doc
        .get_mut("servers")
        .and_then(|s| s.get_mut(&row.server))
        .ok_or_else(|| ConfigError::edit(format!("no server `{}`", row.server), None))?;
    if let Some(pin) = &row.pin {
        let args = table
            .get_mut("args")
            .and_then(Item::as_array_mut)
            .ok_or_else(|| {
                ConfigError::edit(format!("`{}` has no args to bump", row.server), None)
            })?;
        args.replace(pin.index, Value::from(pin.with_version(&latest)));
    }
    if let (Some(entry), Some(table)) = (&row.entry, table.as_table_mut()) {
        let prefix = table
            .decor()
            .prefix()
            .and_then(|p| p.as_str())
            .unwrap_or_default();
        let old = format!("{}{entry} {}", registry::MARK, row.current);
        let new = format!("{}{entry} {latest}", registry::MARK);
        let updated = prefix.replacen(&old, &new, 1);
        table.decor_mut().set_prefix(updated);
    }
    Ok(())
}

/// Every server pinned to a registry entry or a package version, with the
/// registry's latest (`None`: not found there).
fn rows(path: &Path, args: &RegistryArgs) -> Result<Vec<Row>, Error> {
    let source = store::read(path)?;
    let raw = super::read_raw(path)?;
    let doc = edit::parse(&source).map_err(|e| ConfigError::edit(e.to_string(), None))?;
    let mut rows = Vec::new();
    for (name, layer) in &raw.servers {
        let pin = layer
            .command
            .as_deref()
            .and_then(|c| version::pin_of(c, layer.args.as_deref().unwrap_or_default()));
        let marked = doc
            .get("servers")
            .and_then(|s| s.get(name))
            .and_then(Item::as_table)
            .and_then(|t| t.decor().prefix())
            .and_then(|p| p.as_str())
            .and_then(registry::parse_mark);
        let current = match (&pin, &marked) {
            (Some(pin), _) => pin.version.clone(),
            (None, Some((_, v))) => v.clone(),
            (None, None) => continue,
        };
        rows.push(Row {
            server: name.clone(),
            entry: marked.map(|(e, _)| e),
            pin,
            current,
            latest: None,
        });
    }
    if rows.is_empty() {
        return Ok(rows);
    }
    let registry = super::registry::open(args, Some(path))?;
    for row in &mut rows {
        find_latest(&registry, row)?;
    }
    Ok(rows)
}

/// The registry's latest for `row`: by its entry, else by a search for its package.
fn find_latest(registry: &Registry, row: &mut Row) -> Result<(), Error> {
    use crate::registry::fetch::Error as FetchError;
    let entry = match &row.entry {
        Some(name) => match registry.entry(name, None) {
            Ok(listed) => Some(listed.server),
            Err(FetchError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        },
        None => {
            let Some(pin) = &row.pin else { return Ok(()) };
            let found = registry.search(&pin.package, 50)?;
            let entry = found
                .into_iter()
                .map(|l| l.server)
                .find(|s| version::latest_for(s, Some(pin)).is_some());
            if let Some(e) = &entry {
                row.entry = Some(e.name.clone()).filter(|n| check::entry_name(n).is_ok());
            }
            entry
        }
    };
    // A latest that does not pin (a tag, a range, garbage) is said, never taken for
    // "not in the registry": a server behind must not look current.
    if let Some(given) = entry
        .as_ref()
        .and_then(|e| version::version_for(e, row.pin.as_ref()))
        && version::latest_for_text(&given).is_none()
    {
        return Err(Error::Failed(format!(
            "the registry's latest for {} is `{}`, not a pinned version",
            printable(&row.server),
            printable(&given)
        )));
    }
    row.latest = entry.and_then(|e| version::latest_for(&e, row.pin.as_ref()));
    if let Some(latest) = &row.latest {
        // What the registry says is shown and written: it must be a plain version.
        check::version(latest).map_err(|e| {
            Error::Failed(format!(
                "the registry's latest for {}: {e}",
                printable(&row.server)
            ))
        })?;
    }
    Ok(())
}

/// Space-separated columns aligned.
fn align(text: &str) -> String {
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split("  ").collect()).collect();
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|r| {
            let cells: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    if i + 1 == r.len() {
                        c.to_string()
                    } else {
                        format!("{c:w$}", w = widths[i])
                    }
                })
                .collect();
            format!("{}\n", cells.join("  "))
        })
        .collect()
}
