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

/// `text` with its comments and the insides of its string and char literals blanked
/// (newlines kept, so lines keep their numbers): what is left is code.
fn strip(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !ident_before(&chars, i) {
            // A raw string: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let close: String = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            out.push('"');
            let body_start = j + 1;
            let rest: String = chars[body_start..].iter().collect();
            let len = rest
                .find(&close)
                .map_or(rest.chars().count(), |at| rest[..at].chars().count());
            for ch in chars[i + 1..body_start]
                .iter()
                .chain(&chars[body_start..body_start + len])
            {
                out.push(blank(*ch));
            }
            out.push('"');
            i = body_start + len + close.chars().count();
            for _ in 1..close.chars().count() {
                out.push(' ');
            }
        } else if c == '"' {
            out.push('"');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if let Some(&ch) = chars.get(i) {
                    out.push(blank(ch));
                }
                i += 1;
            }
            out.push('"');
            i += 1;
        } else if c == '\'' && char_literal_len(&chars, i).is_some() {
            let len = char_literal_len(&chars, i).unwrap_or(1);
            out.push('\'');
            for _ in 1..len - 1 {
                out.push(' ');
            }
            out.push('\'');
            i += len;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_before(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// The length of a char literal starting at `i` (`'a'`, `'\n'`, `'\u{1F600}'`), or
/// `None` for a lifetime.
fn char_literal_len(chars: &[char], i: usize) -> Option<usize> {
    if chars.get(i + 1) == Some(&'\\') {
        let end = chars[i + 2..].iter().position(|&c| c == '\'')?;
        return Some(end + 3);
    }
    (chars.get(i + 2) == Some(&'\'')).then_some(3)
}

/// The module path of a file: `src/daemon/ui/routes.rs` -> daemon, ui, routes
/// (`mod.rs` is its folder; `lib.rs` and `main.rs` the crate).
fn module_of(file: &str) -> Vec<String> {
    let path = file.trim_start_matches("src/").trim_end_matches(".rs");
    let mut segments: Vec<String> = path.split('/').map(str::to_string).collect();
    if matches!(
        segments.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        segments.pop();
    }
    if segments.first().map(String::as_str) == Some("bin") {
        segments.clear();
    }
    segments
}

/// Every path a piece of code names from the crate's root: `crate::a::b`, `super::x`
/// resolved against the module it is written in (`module`, and the inline `mod x { }`
/// around it), and each leaf of a group (`crate::a::{b::c, d}`); with its line.
fn crate_paths(code: &str, module: &[String], root: &str) -> Vec<(usize, Vec<String>)> {
    let chars: Vec<char> = code.chars().collect();
    let mut found = Vec::new();
    // Inline modules open here, with the brace depth inside each.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < chars.len() {
        let starts_word = !ident_before(&chars, i) && (i == 0 || chars[i - 1] != ':');
        let word_at = |w: &str| {
            chars[i..].iter().take(w.len()).copied().eq(w.chars())
                && !chars
                    .get(i + w.len())
                    .is_some_and(|c| c.is_alphanumeric() || *c == '_')
        };
        let path_at = |w: &str| {
            word_at(w)
                && chars.get(i + w.len()) == Some(&':')
                && chars.get(i + w.len() + 1) == Some(&':')
        };
        match chars[i] {
            '{' => depth += 1,
            '}' => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, d)| *d > depth) {
                    inline.pop();
                }
            }
            _ => {}
        }
        if starts_word && word_at("mod") {
            // `mod name {`: what follows is in `name`.
            let mut j = i + 3;
            while chars.get(j).is_some_and(|c| c.is_whitespace()) {
                j += 1;
            }
            let start = j;
            while chars
                .get(j)
                .is_some_and(|c| c.is_alphanumeric() || *c == '_')
            {
                j += 1;
            }
            let name: String = chars[start..j].iter().collect();
            while chars.get(j).is_some_and(|c| c.is_whitespace()) {
                j += 1;
            }
            if !name.is_empty() && chars.get(j) == Some(&'{') {
                depth += 1;
                inline.push((name, depth));
                i = j + 1;
                continue;
            }
        }
        if starts_word && (path_at(root) || path_at("super")) {
            let line = chars[..i].iter().filter(|&&c| c == '\n').count() + 1;
            let (paths, end) = path_tree(&chars, i);
            let here: Vec<String> = module
                .iter()
                .cloned()
                .chain(inline.iter().map(|(name, _)| name.clone()))
                .collect();
            for path in paths {
                let mut resolved = here.clone();
                let mut rest = path.as_slice();
                if rest.first().map(String::as_str) == Some(root) {
                    resolved.clear();
                    rest = &rest[1..];
                }
                while rest.first().map(String::as_str) == Some("super") {
                    resolved.pop();
                    rest = &rest[1..];
                }
                resolved.extend(rest.iter().filter(|s| *s != "self").cloned());
                found.push((line, resolved));
            }
            // Braces inside a group are the group's, not blocks.
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
    found
}

/// The paths of the path (with groups) that starts at `i`, and where it ends.
fn path_tree(chars: &[char], mut i: usize) -> (Vec<Vec<String>>, usize) {
    let mut prefix = Vec::new();
    loop {
        while chars.get(i).is_some_and(|c| c.is_whitespace()) {
            i += 1;
        }
        if chars.get(i) == Some(&'{') {
            // A group: each comma-separated member is a path below the prefix.
            let mut out = Vec::new();
            i += 1;
            loop {
                while chars.get(i).is_some_and(|c| c.is_whitespace() || *c == ',') {
                    i += 1;
                }
                match chars.get(i) {
                    None => return (out, i),
                    Some('}') => return (out, i + 1),
                    _ => {}
                }
                let (inner, end) = path_tree(chars, i);
                for path in inner {
                    out.push(prefix.iter().cloned().chain(path).collect());
                }
                // Past `as name` and anything else up to the member's end.
                i = end;
                while chars.get(i).is_some_and(|c| *c != ',' && *c != '}') {
                    i += 1;
                }
                if end == i && chars.get(i).is_none() {
                    return (out, i);
                }
            }
        }
        let start = i;
        while chars
            .get(i)
            .is_some_and(|c| c.is_alphanumeric() || *c == '_')
        {
            i += 1;
        }
        if start == i {
            return (vec![prefix], i);
        }
        prefix.push(chars[start..i].iter().collect());
        if chars.get(i) == Some(&':') && chars.get(i + 1) == Some(&':') {
            i += 2;
        } else {
            return (vec![prefix], i);
        }
    }
}

/// The `crate::a::b::...` paths of `code` as (line, `src/a/b/...`, `b`): the whole
/// path (the part is the longest file that matches it) and the item named below the
/// crate's top module (what `daemon(run|...)` lists).
fn paths_in(code: &str, module: &[String], root: &str) -> Vec<(usize, String, String)> {
    crate_paths(code, module, root)
        .into_iter()
        .filter_map(|(line, path)| {
            let first = path.first()?;
            let item = path.get(1).unwrap_or(first).clone();
            Some((line, format!("src/{}", path.join("/")), item))
        })
        .collect()
}

/// The line where a file's tests begin (its first `#[cfg(test)]`), if any.
fn tests_start(code: &str) -> Option<usize> {
    code.lines()
        .position(|l| l.trim_start().starts_with("#[cfg(test)]"))
        .map(|n| n + 1)
}

/// Every forbidden edge of `file` (its path from the repo root), its tests included,
/// and every impure line of its code before the tests.
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
    let code = strip(text);
    let lines: Vec<&str> = text.lines().collect();
    let shown = |n: usize| lines.get(n - 1).map_or("", |l| l.trim());
    let tests_from = tests_start(&code);
    // A unit-test file (`tests.rs`) is all tests.
    let module = module_of(file);
    let mut found = Vec::new();
    for (n, path, item) in paths_in(&code, &module, root) {
        // A macro (`crate::note!`) is the module that defines it.
        let path = if path.starts_with("src/note") {
            "src/out".to_string()
        } else {
            path
        };
        let Some(to) = part_of(parts, &path) else {
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
                shown(n)
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
    if from.pure && !file.ends_with("/tests.rs") {
        for (n, line) in code.lines().enumerate().map(|(n, l)| (n + 1, l)) {
            if tests_from.is_some_and(|t| n >= t) {
                break;
            }
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
    // Comments and strings are not edges; tests are, whatever their form.
    let fine = "// crate::daemon::x\nconst A: &str = \"crate::daemon::y\";\nlet r = r#\"crate::daemon\"#;\n";
    assert!(violations(&parts, "src/model/a.rs", fine).is_empty());
    let test = "fn f() {}\n#[cfg(test)]\nmod tests {\n    use crate::daemon::y;\n}\n";
    let bad = violations(&parts, "src/model/a.rs", test);
    assert!(
        bad[0].starts_with("src/model/a.rs:4: model may not use daemon"),
        "{bad:?}"
    );
    // A group hides no path; `super` is resolved from where it is written.
    let grouped = "use crate::{model::X, daemon::{Daemon, y}};\n";
    let bad = violations(&parts, "src/cli/a.rs", grouped);
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert!(
        bad[0].contains("only through run, Options, not `Daemon`"),
        "{bad:?}"
    );
    let up = "use super::super::daemon::Daemon;\n#[cfg(test)]\nmod tests {\n    use super::*;\n}\n";
    let bad = violations(&parts, "src/model/a.rs", up);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(bad[0].contains("model may not use daemon"), "{bad:?}");
    assert_eq!(
        violations(&parts, "src/nowhere.rs", "")[0],
        "src/nowhere.rs: belongs to no part of the table"
    );
}

/// Issue 25: no task of the daemon or the gateway is detached. Every one is started
/// through `gateway/owned.rs` (a handle whose drop ends it, a tracked set its owner
/// waits for, a scope that ends with its port or endpoint) or a `JoinSet`; a bare
/// `tokio::spawn` outside tests is refused here.
#[test]
fn no_task_of_the_daemon_or_the_gateway_is_detached() {
    let mut files = Vec::new();
    rust_files(&repo_root().join("src/daemon"), &mut files);
    rust_files(&repo_root().join("src/gateway"), &mut files);
    let mut found = Vec::new();
    for file in &files {
        let relative = file
            .strip_prefix(repo_root())
            .unwrap()
            .to_string_lossy()
            .to_string();
        if relative.ends_with("/tests.rs") || relative == "src/gateway/owned.rs" {
            continue;
        }
        let code = strip(&std::fs::read_to_string(file).unwrap());
        let tests_from = tests_start(&code);
        for (n, line) in code.lines().enumerate().map(|(n, l)| (n + 1, l)) {
            if tests_from.is_some_and(|t| n >= t) {
                break;
            }
            if ["tokio::spawn", "task::spawn(", "spawn_local("]
                .iter()
                .any(|w| line.contains(w))
            {
                found.push(format!("{relative}:{n}: {}", line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "detached tasks (start them through gateway/owned.rs):\n{}",
        found.join("\n")
    );
    // The check sees what it is meant to.
    let sample = strip("fn f() { tokio::spawn(async {}); }\n// tokio::spawn\n");
    assert_eq!(sample.matches("tokio::spawn").count(), 1);
}
