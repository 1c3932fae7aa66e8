//! `mcpctl audit`: the daemon's audit log (`.mcpctl/audit.log` and its rotated files),
//! filtered, newest last.

use std::collections::VecDeque;
use std::io::BufRead;
use std::path::Path;
use std::time::SystemTime;

use super::args::Format;
use super::{Error, ok, print};
use crate::api::AuditEntry;
use crate::config::store;

pub(super) struct Filter {
    pub caller: Option<String>,
    pub target: Option<String>,
    pub since: Option<String>,
    pub refused: bool,
    pub limit: usize,
}

pub(super) fn run(path: &Path, filter: &Filter, format: Format) -> Result<u8, Error> {
    let after = match &filter.since {
        None => None,
        Some(text) => {
            let span = humantime::parse_duration(text).map_err(|e| {
                Error::Failed(format!(
                    "--since {text}: {e} (a duration such as 1h or 30m)"
                ))
            })?;
            Some(
                SystemTime::now()
                    .checked_sub(span)
                    .unwrap_or(SystemTime::UNIX_EPOCH),
            )
        }
    };
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let log = crate::logs::audit_path(&store::runtime_dir(&absolute));
    let mut kept: VecDeque<AuditEntry> = VecDeque::new();
    for file in crate::logs::generations(&log) {
        let Ok(opened) = std::fs::File::open(&file) else {
            continue;
        };
        // A line that is not an entry (torn by a kill, or edited) is skipped, never the
        // rest of the file.
        for line in std::io::BufReader::new(opened).split(b'\n') {
            let Ok(line) = line else { break };
            let Ok(entry) = serde_json::from_slice::<AuditEntry>(&line) else {
                continue;
            };
            if !wanted(&entry, filter, after) {
                continue;
            }
            if kept.len() == filter.limit.max(1) {
                kept.pop_front();
            }
            kept.push_back(entry);
        }
    }
    match format {
        Format::Json => {
            let mut out = String::new();
            for entry in &kept {
                let line = serde_json::to_string(entry)
                    .map_err(|e| Error::Failed(format!("cannot write JSON: {e}")))?;
                out.push_str(&line);
                out.push('\n');
            }
            print(&out)?;
        }
        Format::Text if kept.is_empty() => {
            crate::note!(
                "nothing in {} matches (only ports with `auth` are audited)",
                log.display()
            );
        }
        Format::Text => {
            let mut out = format!(
                "{:<24} {:<12} {:<14} {:<16} {:<20} {:<8} {:>6} {:>5} {:>8}  WHY\n",
                "AT", "CALLER", "TARGET", "METHOD", "TOOL", "DECISION", "STATUS", "MS", "BYTES"
            );
            for e in &kept {
                // Names come from clients: shown escaped, never as terminal input.
                let shown = |t: &str| -> String {
                    t.chars()
                        .map(|c| {
                            if c.is_control() {
                                c.escape_default().to_string()
                            } else {
                                c.to_string()
                            }
                        })
                        .collect()
                };
                out.push_str(&format!(
                    "{:<24} {:<12} {:<14} {:<16} {:<20} {:<8} {:>6} {:>5} {:>8}  {}\n",
                    shown(&e.at),
                    shown(e.caller.as_deref().unwrap_or("-")),
                    shown(&e.target),
                    shown(e.method.as_deref().unwrap_or("-")),
                    shown(e.tool.as_deref().unwrap_or("-")),
                    shown(&e.decision),
                    e.status,
                    e.ms,
                    e.bytes,
                    shown(e.why.as_deref().unwrap_or("")),
                ));
            }
            print(&out)?;
        }
    }
    ok()
}

fn wanted(entry: &AuditEntry, filter: &Filter, after: Option<SystemTime>) -> bool {
    if filter
        .caller
        .as_ref()
        .is_some_and(|c| entry.caller.as_ref() != Some(c))
    {
        return false;
    }
    if filter.target.as_ref().is_some_and(|t| &entry.target != t) {
        return false;
    }
    if filter.refused && entry.decision != "refused" {
        return false;
    }
    match after {
        Some(after) => humantime::parse_rfc3339_weak(&entry.at).is_ok_and(|at| at >= after),
        None => true,
    }
}
