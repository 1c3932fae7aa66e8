//! Issue 27: the README and `docs/` show only what works. Every `mcpctl ...` line in
//! their code blocks parses as the CLI does, and every TOML example is a valid file
//! (a fragment is checked as the part of a file it shows).

use clap::Parser;
use mcpctl::cli::args::Cli;

use crate::common::repo_root;

/// README.md and every page of docs/, with their text.
fn pages() -> Vec<(String, String)> {
    let mut pages = vec![(
        "README.md".to_string(),
        std::fs::read_to_string(repo_root().join("README.md")).unwrap(),
    )];
    let mut docs: Vec<_> = std::fs::read_dir(repo_root().join("docs"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    for path in docs {
        let name = format!("docs/{}", path.file_name().unwrap().to_string_lossy());
        pages.push((name, std::fs::read_to_string(path).unwrap()));
    }
    pages
}

/// The code blocks of `text`: (language, first line number, body).
fn blocks(text: &str) -> Vec<(String, usize, String)> {
    let mut out = Vec::new();
    let mut open: Option<(String, usize, String)> = None;
    for (n, line) in text.lines().enumerate() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(lang)) => open = Some((lang.trim().to_string(), n + 2, String::new())),
            (Some(_), Some(_)) => out.extend(open.take()),
            (Some((_, _, body)), None) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}

/// Words of a shell command line: quotes kept together, `\` continuations joined.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
                any = false;
            }
            (None, c) => word.push(c),
        }
    }
    if any || !word.is_empty() {
        out.push(word);
    }
    out
}

/// The `mcpctl` invocations of a shell block's lines: comments dropped, continuations
/// joined, split at `|`, `&&`, `;`, `$(`, and cut at a redirection.
fn invocations(body: &str) -> Vec<Vec<String>> {
    let mut joined = String::new();
    for line in body.lines() {
        match line.strip_suffix('\\') {
            Some(start) => {
                joined.push_str(start.trim());
                joined.push(' ');
            }
            None => {
                joined.push_str(line.trim_start());
                joined.push('\n');
            }
        }
    }
    let mut found = Vec::new();
    for line in joined.lines() {
        let line = line.trim_start().trim_start_matches("$ ");
        let line = match line.find(" #") {
            Some(at) => &line[..at],
            None if line.starts_with('#') => continue,
            None => line,
        };
        // A table of commands: the description after a run of spaces.
        let line = line.split("   ").next().unwrap_or_default();
        for part in line
            .split(" | ")
            .flat_map(|p| p.split(" && "))
            .flat_map(|p| p.split("; "))
        {
            let mut part = part
                .trim()
                .trim_start_matches("$(")
                .trim_end_matches(')')
                .to_string();
            if let Some(rest) = part.strip_prefix("cargo run -- ") {
                part = format!("mcpctl {rest}");
            }
            if !part.starts_with("mcpctl ") && part != "mcpctl" {
                continue;
            }
            let cut = part
                .split_whitespace()
                .take_while(|w| !matches!(*w, ">" | "<" | "2>" | ">>") && !w.starts_with('>'))
                .collect::<Vec<_>>()
                .join(" ");
            found.push(words(&cut));
        }
    }
    found
}

/// A synopsis line (`server start|stop|... NAME [--port N]`) describes commands; it is
/// not one to run.
fn is_synopsis(words: &[String]) -> bool {
    words.iter().any(|w| {
        w.starts_with('[')
            || w.ends_with(']')
            || w == "..."
            || (w.contains('|') && !w.contains('=') && !w.contains('/'))
            || w.starts_with('(')
    })
}

#[test]
fn every_mcpctl_line_in_the_readme_and_docs_parses() {
    let mut checked = 0;
    let mut problems = Vec::new();
    for (page, text) in pages() {
        for (lang, line, body) in blocks(&text) {
            if !matches!(lang.as_str(), "sh" | "console" | "bash" | "") {
                continue;
            }
            for args in invocations(&body) {
                if is_synopsis(&args) {
                    continue;
                }
                checked += 1;
                if let Err(e) = Cli::try_parse_from(&args) {
                    let first = e.to_string().lines().next().unwrap_or_default().to_string();
                    problems.push(format!(
                        "{page} (block at line {line}): `{}`: {first}",
                        args.join(" ")
                    ));
                }
            }
        }
    }
    assert!(checked > 40, "only {checked} command lines found");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_toml_example_in_the_readme_and_docs_is_valid() {
    let mut checked = 0;
    let mut problems = Vec::new();
    for (page, text) in pages() {
        for (lang, line, body) in blocks(&text) {
            if lang != "toml" {
                continue;
            }
            checked += 1;
            // A fragment (`# ...` stands for what it leaves out) is checked as the part
            // of a file it shows: every key, type and value as validate checks them;
            // only what it refers to and does not show (the servers an endpoint or a
            // token names, a server's command or port, a token's hash) may be missing.
            let text = if body.contains("version = ") {
                body.clone()
            } else {
                format!("version = 1\n{body}")
            };
            if let Err(diags) = mcpctl::model::parse(&text) {
                let elided = [
                    "which the file lacks",
                    "has no `command`",
                    "has no `port`",
                    "names no server or endpoint of this file",
                    "is not a token's hash",
                ];
                let messages: Vec<String> = diags
                    .iter()
                    .map(|d| d.message.clone())
                    .filter(|m| !elided.iter().any(|e| m.contains(e)))
                    .collect();
                if !messages.is_empty() {
                    problems.push(format!(
                        "{page} (block at line {line}): {}",
                        messages.join("; ")
                    ));
                }
            }
        }
    }
    assert!(checked >= 8, "only {checked} TOML examples found");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
