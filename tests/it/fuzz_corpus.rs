//! Every file of every `fuzz/corpus/NAME/` through `mcpctl::fuzzing::NAME`, the body
//! its fuzz target runs: past crashers stay fixed on stable, without nightly or
//! libFuzzer (docs/reliability.md).

use std::path::Path;

use crate::common::repo_root;

/// A target's body.
type Body = fn(&[u8]);

/// The targets, by the name of their folder in `fuzz/corpus/`.
const TARGETS: [(&str, Body); 9] = [
    ("backup", mcpctl::fuzzing::backup),
    ("client_import", mcpctl::fuzzing::client_import),
    ("client_link", mcpctl::fuzzing::client_link),
    ("config", mcpctl::fuzzing::config),
    ("edit", mcpctl::fuzzing::edit),
    ("jwt", mcpctl::fuzzing::jwt),
    ("sse", mcpctl::fuzzing::sse),
    ("token", mcpctl::fuzzing::token),
    ("wire", mcpctl::fuzzing::wire),
];

fn replay(dir: &Path, body: Body) -> usize {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    for file in &files {
        let data = std::fs::read(file).unwrap();
        if std::panic::catch_unwind(|| body(&data)).is_err() {
            panic!(
                "{} panics (replay: cargo +nightly fuzz run NAME {0})",
                file.display()
            );
        }
    }
    files.len()
}

#[test]
fn every_corpus_file_replays_through_its_target_without_a_panic() {
    let corpus = repo_root().join("fuzz/corpus");
    let mut folders: Vec<String> = std::fs::read_dir(&corpus)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    let names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        folders, names,
        "one corpus folder per target, and a target per folder"
    );
    for (name, body) in TARGETS {
        let replayed = replay(&corpus.join(name), body);
        assert!(replayed > 0, "fuzz/corpus/{name} is empty");
    }
}

#[test]
fn every_fuzz_target_calls_its_shared_body() {
    for (name, _) in TARGETS {
        let target = repo_root().join(format!("fuzz/fuzz_targets/{name}.rs"));
        let text = std::fs::read_to_string(&target).unwrap();
        assert!(
            text.contains(&format!("mcpctl::fuzzing::{name}(data)")),
            "{} does not call mcpctl::fuzzing::{name}",
            target.display()
        );
    }
}
