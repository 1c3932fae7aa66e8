//! `mcpctl search`: the registry's entries, and which registry a command asks.

use std::path::Path;

use super::args::{Format, RegistryArgs, SearchArgs};
use super::{Error, ok, print, read_raw};
use crate::import::plan::printable;
use crate::registry::fetch::Registry;
use crate::registry::{self, entry::Listed};

/// The registry `args` name, else the file's `[registry] url`, else the official one.
pub(super) fn open(args: &RegistryArgs, file: Option<&Path>) -> Result<Registry, Error> {
    let from_file = || {
        file.and_then(|f| read_raw(f).ok())
            .and_then(|raw| raw.registry)
            .and_then(|r| r.url)
    };
    let url = args
        .registry
        .clone()
        .filter(|u| !u.is_empty())
        .or_else(from_file)
        .unwrap_or_else(|| registry::OFFICIAL.to_string());
    Ok(Registry::new(&url, *args.timeout)?)
}

pub(super) fn search(file: Option<&Path>, args: &SearchArgs) -> Result<u8, Error> {
    let registry = open(&args.registry, file)?;
    let found = registry.search(&args.term, args.limit)?;
    match args.format {
        Format::Json => {
            let list: Vec<serde_json::Value> = found.iter().map(json).collect();
            let text = serde_json::to_string_pretty(&list)
                .map_err(|e| Error::Failed(format!("cannot write JSON: {e}")))?;
            print(&format!("{text}\n"))?;
        }
        Format::Text => print(&table(&found))?,
    }
    if args.format == Format::Text {
        if found.is_empty() {
            crate::note!(
                "no entries match `{}` in {}",
                printable(&args.term),
                registry.base()
            );
        } else {
            crate::note!(
                "{} entr{} from {}; `mcpctl add NAME` adds one",
                found.len(),
                if found.len() == 1 { "y" } else { "ies" },
                registry.base()
            );
        }
    }
    ok()
}

/// One entry as `--format json` shows it (its text as sent: JSON escapes it).
fn json(listed: &Listed) -> serde_json::Value {
    let s = &listed.server;
    serde_json::json!({
        "name": s.name,
        "version": s.version,
        "description": s.description,
        "runs": s.kinds().split(',').filter(|k| !k.is_empty()).collect::<Vec<_>>(),
    })
}

/// The entries as columns; every field with its terminal escapes neutralised, the
/// description cut to one line.
fn table(found: &[Listed]) -> String {
    let cut = |text: &str, max: usize| {
        let text = printable(text);
        if text.chars().count() > max {
            text.chars().take(max - 3).collect::<String>() + "..."
        } else {
            text
        }
    };
    let rows: Vec<[String; 4]> = found
        .iter()
        .map(|l| {
            let s = &l.server;
            [
                cut(&s.name, 60),
                cut(&s.version, 20),
                cut(&s.kinds(), 20),
                cut(&s.description, 80),
            ]
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let header = ["NAME", "VERSION", "RUNS", "DESCRIPTION"].map(str::to_string);
    let mut widths = [0; 3];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    std::iter::once(&header)
        .chain(&rows)
        .map(|row| {
            format!(
                "{:w0$}  {:w1$}  {:w2$}  {}\n",
                row[0],
                row[1],
                row[2],
                row[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2]
            )
        })
        .collect()
}
