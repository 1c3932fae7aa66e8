//! The README's commands work: the main job runs, and the test command is CI's.

use std::process::Command;

use crate::common::{bin, repo_root, to_run};

fn readme() -> String {
    std::fs::read_to_string(repo_root().join("README.md")).unwrap()
}

#[test]
fn the_main_job_command_works() {
    let text = readme();
    let line = text
        .lines()
        .find(|l| l.starts_with("cargo run -- "))
        .expect("README has a `cargo run -- ...` main job");
    let args: Vec<&str> = line
        .trim_start_matches("cargo run -- ")
        .split_whitespace()
        .collect();
    let out = Command::new(bin())
        .args(&args)
        .current_dir(repo_root())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    to_run(&args, &out)
        .success()
        .stdout_has("+ server \"echo\"");
}

#[test]
fn ci_runs_the_readme_test_command() {
    let ci = std::fs::read_to_string(repo_root().join(".ci/run")).unwrap();
    assert!(readme().contains("\ncargo test\n"));
    assert!(ci.lines().any(|l| l.starts_with("cargo test")), "{ci}");
}
