//! `mcpctl tools NAME`: what an agent sees of a server's or an endpoint's tools, as the
//! daemon serves them now, and with `--all` what it does not see, with why.

use std::path::Path;

use super::args::Format;
use super::{Error, ok, print};
use crate::api::{Reply, Request, ToolsReport};
use crate::client;

pub(super) fn tools(
    path: &Path,
    name: &str,
    all: bool,
    pin: bool,
    format: Format,
) -> Result<u8, Error> {
    let loaded = super::load(path)?;
    if !loaded.config.servers.contains_key(name) && !loaded.config.endpoints.contains_key(name) {
        let known: Vec<&str> = loaded
            .config
            .servers
            .keys()
            .chain(loaded.config.endpoints.keys())
            .map(String::as_str)
            .collect();
        return Err(Error::Failed(format!(
            "no server or endpoint `{name}` in {} (it has: {})",
            path.display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )));
    }
    let mut report = match client::ask(
        path,
        &Request::Tools {
            name: name.to_string(),
        },
    ) {
        Ok(Reply::Tools { report }) => report,
        Ok(Reply::Error { message }) => return Err(Error::Failed(message)),
        Ok(other) => return Err(client::Error::BadReply(format!("{other:?}")).into()),
        Err(client::Error::NotRunning(_)) => {
            return Err(Error::Failed(format!(
                "no daemon runs for {}: `mcpctl apply` starts `{name}`, then its tools can be listed",
                path.display()
            )));
        }
        Err(e) => return Err(e.into()),
    };
    if pin {
        return pin_tools(path, name, &report);
    }
    if !all {
        report.hidden.clear();
    }
    if format == Format::Json {
        print(&format!(
            "{}\n",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        ))?;
        return ok();
    }
    print(&render(&report, all))?;
    ok()
}

/// The widest cell shown (`--format json` has every name whole).
const MAX_CELL: usize = 96;

/// The report as a table: the shown tools, then (with `--all`) the hidden ones.
fn render(report: &ToolsReport, all: bool) -> String {
    let endpoint = report.kind == "endpoint";
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut head = vec!["TOOL".to_string()];
    if endpoint {
        head.extend(["MEMBER".to_string(), "ORIGINAL".to_string()]);
    }
    if all {
        head.push("HIDDEN".to_string());
    }
    rows.push(head);
    let lines = report.shown.iter().map(|l| (l, "-".to_string())).chain(
        report
            .hidden
            .iter()
            .map(|l| (l, l.why.clone().unwrap_or_default())),
    );
    for (line, why) in lines {
        let mut row = vec![crate::import::plan::printable(&line.name)];
        if endpoint {
            row.push(line.member.clone().unwrap_or_default());
            row.push(crate::import::plan::printable(&line.original));
        }
        if all {
            row.push(why);
        }
        rows.push(row);
    }
    // A member decides its names: a cell is cut to what a terminal shows.
    for row in &mut rows {
        for cell in row.iter_mut() {
            if cell.chars().count() > MAX_CELL {
                *cell = format!("{}…", cell.chars().take(MAX_CELL - 1).collect::<String>());
            }
        }
    }
    let mut out = super::status::table(&rows);
    out.push_str(&format!(
        "\n{} {} shown to agents{}\n",
        report.shown.len(),
        if report.shown.len() == 1 {
            "tool"
        } else {
            "tools"
        },
        if all {
            format!(", {} hidden", report.hidden.len())
        } else {
            String::new()
        }
    ));
    if let Some(d) = &report.discovery {
        out.push_str(&discovery_line(d, report.shown.len()));
    }
    for down in &report.down {
        out.push_str(&format!("member down: {down}\n"));
    }
    for note in &report.notes {
        out.push_str(&format!("note: {}\n", crate::import::plan::printable(note)));
    }
    out
}

/// Whether tools on demand is on, and what it keeps out of a session's first list.
fn discovery_line(d: &crate::api::DiscoveryReport, tools: usize) -> String {
    let when = d
        .when_over
        .map_or_else(|| "always".to_string(), |n| format!("over {n} tools"));
    if d.on {
        format!(
            "discovery: on ({when}): a session's first tools/list holds {} (find_tools, use_tools and the `always` tools); {} of {tools} kept out until asked for\n",
            d.initial, d.kept_out
        )
    } else {
        format!("discovery: off ({tools} tools; on {when}): every tool is listed\n")
    }
}

/// `--pin`: the digests of what the server lists now (every tool its policy lets
/// through, pinned or not) become its table of `mcpctl.lock`; a running daemon takes
/// them at once. An endpoint's are of its advertised definitions, by advertised name.
fn pin_tools(path: &Path, name: &str, report: &ToolsReport) -> Result<u8, Error> {
    let endpoint = report.kind == "endpoint";
    let pins: std::collections::BTreeMap<String, String> = report
        .shown
        .iter()
        .chain(report.hidden.iter().filter(|t| {
            t.why
                .as_deref()
                .is_some_and(|w| w == "changed since pinned" || w == "not pinned")
        }))
        .filter_map(|t| {
            let key = if endpoint { &t.name } else { &t.original };
            Some((key.clone(), t.digest.clone()?))
        })
        .collect();
    let lock_path = path.with_extension("lock");
    let mut lock = match std::fs::read_to_string(&lock_path) {
        Ok(text) => crate::model::lock::parse(&text).map_err(|why| {
            Error::Failed(format!(
                "{}: {why}; fix or remove it first",
                lock_path.display()
            ))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Default::default(),
        Err(e) => return Err(Error::Failed(format!("{}: {e}", lock_path.display()))),
    };
    let count = pins.len();
    lock.insert(name.to_string(), pins);
    crate::config::store::write_atomic(&lock_path, &crate::model::lock::render(&lock))?;
    crate::note!(
        "pinned {count} tool(s) of `{name}` in {} (commit it with the file)",
        lock_path.display()
    );
    super::token::reload(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ToolLine;

    #[test]
    fn a_name_of_any_length_is_shown_cut_not_a_panic() {
        let report = ToolsReport {
            kind: "endpoint".into(),
            name: "ep".into(),
            shown: vec![ToolLine {
                name: "n".repeat(1_000_000),
                member: Some("m".into()),
                original: "o".repeat(1_000_000),
                description: None,
                why: None,
                digest: None,
            }],
            ..ToolsReport::default()
        };
        let text = render(&report, true);
        assert!(text.lines().all(|l| l.chars().count() < 400), "cut");
        assert!(text.contains('…'));
    }

    #[test]
    fn discovery_says_on_or_off_and_what_it_keeps_out() {
        use crate::api::DiscoveryReport;
        let on = DiscoveryReport {
            on: true,
            when_over: Some(40),
            initial: 3,
            kept_out: 57,
        };
        assert_eq!(
            discovery_line(&on, 58),
            "discovery: on (over 40 tools): a session's first tools/list holds 3 (find_tools, use_tools and the `always` tools); 57 of 58 kept out until asked for\n"
        );
        let off = DiscoveryReport {
            on: false,
            when_over: Some(40),
            initial: 12,
            kept_out: 0,
        };
        assert_eq!(
            discovery_line(&off, 12),
            "discovery: off (12 tools; on over 40 tools): every tool is listed\n"
        );
        let always = DiscoveryReport {
            when_over: None,
            ..on
        };
        assert!(discovery_line(&always, 58).starts_with("discovery: on (always)"));
    }
}
