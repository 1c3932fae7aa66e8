//! The architecture as docs/architecture.md draws it: parts, the files of each, and the parts
//! each may use. Every `crate::` path in `src/` (and `mcpctl::` in the binaries) is an
//! edge that the table must allow; a part marked pure does no I/O.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::repo_root;

/// One row of the table.
#[derive(Debug)]
struct Part {
    name: String,
    files: Vec<String>,
    /// Part name -> the only items it may be used through (empty: any).
    uses: BTreeMap<String, Vec<String>>,
    pure: bool,
}

/// The table in docs/architecture.md's "Parts and what each may use" block.
fn parse_map(readme: &str) -> Vec<Part> {
    let start = readme
        .find("# Parts and what each may use")
        .expect("docs/architecture.md has the parts table");
    let block = &readme[start..];
    let block = &block[block.find("```text").expect("a text block") + 7..];
    let block = &block[..block.find("```").expect("the block ends")];
    block
        .lines()
        .skip_while(|l| l.trim().is_empty())
        .skip(1) // the header
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            assert!(cols.len() >= 3, "a row is `part files uses [pure]`: {line}");
            let uses = if cols[2] == "-" {
                BTreeMap::new()
            } else {
                cols[2]
                    .split(',')
                    .map(|u| match u.split_once('(') {
                        Some((part, items)) => (
                            part.to_string(),
                            items
                                .trim_end_matches(')')
                                .split('|')
                                .map(str::to_string)
                                .collect(),
                        ),
                        None => (u.to_string(), Vec::new()),
                    })
                    .collect()
            };
            Part {
                name: cols[0].to_string(),
                files: cols[1].split(',').map(str::to_string).collect(),
                uses,
                pure: cols.get(3) == Some(&"pure"),
            }
        })
        .collect()
}

/// The part a file (or a module path, as `src/a/b`) belongs to: longest match.
fn part_of<'a>(parts: &'a [Part], path: &str) -> Option<&'a Part> {
    parts
        .iter()
        .flat_map(|p| p.files.iter().map(move |f| (p, f)))
        .filter(|(_, f)| {
            let dir = f.trim_end_matches('/');
            path == f.as_str()
                || path == dir.trim_end_matches(".rs")
                || (f.ends_with('/') && path.starts_with(f.as_str()))
                || path.starts_with(&format!("{}/", dir.trim_end_matches(".rs")))
        })
        .max_by_key(|(_, f)| f.len())
        .map(|(p, _)| p)
}

/// Code lines of a file: before its tests, comments dropped.
fn code_lines(text: &str) -> Vec<(usize, &str)> {
    text.lines()
        .enumerate()
        .take_while(|(_, l)| !l.trim_start().starts_with("#[cfg(test)]"))
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .map(|(n, l)| (n + 1, l))
        .collect()
}

/// The `crate::a::b` (or `mcpctl::a::b`) paths of a line, as (`src/a/b`, `b`).
fn paths_in(line: &str, root: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let needle = format!("{root}::");
    let mut rest = line;
    while let Some(at) = rest.find(&needle) {
        let after = &rest[at + needle.len()..];
        let segments: Vec<&str> = after
            .split("::")
            .map(|s| {
                let end = s
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(s.len());
                &s[..end]
            })
            .take_while(|s| !s.is_empty())
            .collect();
        if let Some(first) = segments.first() {
            let mut path = format!("src/{first}");
            let mut item = (*first).to_string();
            if let Some(second) = segments.get(1) {
                path = format!("{path}/{second}");
                item = (*second).to_string();
            }
            found.push((path, item));
        }
        rest = after;
    }
    found
}

/// Every forbidden edge and impure line of `file` (its path from the repo root).
fn violations(parts: &[Part], file: &str, text: &str) -> Vec<String> {
    let Some(from) = part_of(parts, file) else {
        return vec![format!("{file}: belongs to no part of the table")];
    };
    let root = if from.name == "main" {
        "mcpctl"
    } else {
        "crate"
    };
    let forbidden_io = [
        "tokio",
        "std::fs",
        "std::process",
        "Instant::now",
        "SystemTime::now",
        "std::env",
        "std::net::TcpStream",
        "getrandom",
    ];
    let mut found = Vec::new();
    for (n, line) in code_lines(text) {
        for (path, item) in paths_in(line, root) {
            // A macro (`crate::note!`) is the module that defines it.
            let path = if path == "src/note" {
                "src/out".to_string()
            } else {
                path
            };
            let Some(to) = part_of(parts, &path).or_else(|| {
                let first = path.rsplit_once('/').map_or(path.as_str(), |(a, _)| a);
                part_of(parts, first)
            }) else {
                found.push(format!("{file}:{n}: `{path}` belongs to no part"));
                continue;
            };
            if to.name == from.name {
                continue;
            }
            match from.uses.get(&to.name) {
                None => found.push(format!(
                    "{file}:{n}: {} may not use {} ({})",
                    from.name,
                    to.name,
                    line.trim()
                )),
                Some(items) if !items.is_empty() && !items.contains(&item) => found.push(format!(
                    "{file}:{n}: {} may use {} only through {}, not `{item}`",
                    from.name,
                    to.name,
                    items.join(", ")
                )),
                Some(_) => {}
            }
        }
        if from.pure {
            for word in forbidden_io {
                if line.contains(word) {
                    found.push(format!(
                        "{file}:{n}: the pure part {} uses `{word}`",
                        from.name
                    ));
                }
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_use_in_src_is_an_edge_the_readme_allows_and_pure_parts_do_no_io() {
    let readme = std::fs::read_to_string(repo_root().join("docs/architecture.md")).unwrap();
    let parts = parse_map(&readme);
    assert!(parts.len() > 15, "{parts:?}");
    let mut files = Vec::new();
    rust_files(&repo_root().join("src"), &mut files);
    let mut problems = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(repo_root()).unwrap().to_string_lossy();
        // Unit-test files belong to their module's tests.
        if relative.ends_with("/tests.rs") {
            continue;
        }
        problems.extend(violations(
            &parts,
            &relative,
            &std::fs::read_to_string(file).unwrap(),
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn unsafe_code_is_denied_outside_sys() {
    let manifest = std::fs::read_to_string(repo_root().join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains("unsafe_code = \"deny\""),
        "the lint table denies unsafe"
    );
    let mut files = Vec::new();
    rust_files(&repo_root().join("src"), &mut files);
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        if !file.ends_with("src/sys.rs") {
            assert!(
                !text.contains("allow(unsafe_code)"),
                "{} allows unsafe code",
                file.display()
            );
        }
    }
}

const SAMPLE_MAP: &str = "### Parts and what each may use\n\n```text\npart files may-use kind\nmodel src/model/ - pure\ndaemon src/daemon/ model\ncli src/cli/ model,daemon(run|Options)\n```\n";

#[test]
fn the_checker_finds_a_forbidden_use() {
    let parts = parse_map(SAMPLE_MAP);
    assert!(
        violations(
            &parts,
            "src/cli/a.rs",
            "use crate::daemon::run;\nuse crate::model::X;\n"
        )
        .is_empty()
    );
    let bad = violations(&parts, "src/cli/a.rs", "use crate::daemon::logs::tail;\n");
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(
        bad[0].contains("cli may use daemon only through run, Options, not `logs`"),
        "{bad:?}"
    );
    let bad = violations(&parts, "src/model/a.rs", "use crate::daemon::Daemon;\n");
    assert!(bad[0].contains("model may not use daemon"), "{bad:?}");
    let bad = violations(
        &parts,
        "src/model/a.rs",
        "fn f() { let _ = std::fs::read(\"x\"); }\n",
    );
    assert!(
        bad[0].contains("the pure part model uses `std::fs`"),
        "{bad:?}"
    );
    // Comments and tests are not edges.
    let fine = "// crate::daemon::x\n#[cfg(test)]\nmod tests { use crate::daemon::y; }\n";
    assert!(violations(&parts, "src/model/a.rs", fine).is_empty());
    assert_eq!(
        violations(&parts, "src/nowhere.rs", "")[0],
        "src/nowhere.rs: belongs to no part of the table"
    );
}
