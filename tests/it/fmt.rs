//! `fmt` and `fmt --check`.

use crate::common::{TestEnv, free_port};

#[test]
fn check_reports_and_changes_nothing_then_fmt_fixes() {
    let port = free_port();
    let messy = format!(
        "version=1   # v\n\n\n[servers.a]   # first\n   command   =  \"x\"\nport={port}\nargs=[ \"a\",\"b\" ]\n"
    );
    let tidy = format!(
        "version = 1 # v\n\n[servers.a] # first\ncommand = \"x\"\nport = {port}\nargs = [\"a\", \"b\"]\n"
    );
    let env = TestEnv::with_config(&messy);
    env.run(&["fmt", "--check"])
        .failure()
        .stderr_has("is not formatted")
        .stdout_has(&format!("+port = {port}"));
    assert_eq!(env.read("mcpctl.toml"), messy);
    env.run(&["fmt"]).success();
    assert_eq!(env.read("mcpctl.toml"), tidy);
    env.run(&["fmt", "--check"]).success();
    env.run(&["fmt"]).success();
    assert_eq!(env.read("mcpctl.toml"), tidy);
}

#[test]
fn fmt_refuses_broken_toml_and_keeps_it() {
    let broken = "version = 1\n[servers.a\n";
    let env = TestEnv::with_config(broken);
    env.run(&["fmt"]).failure().stderr_has("mcpctl.toml:2:");
    assert_eq!(env.read("mcpctl.toml"), broken);
}

#[test]
fn formatting_keeps_every_comment_of_the_golden_file() {
    let src =
        std::fs::read_to_string(crate::common::repo_root().join("tests/golden/commented.toml"))
            .unwrap();
    let env = TestEnv::with_config(&src);
    env.run(&["fmt"]).success();
    let out = env.read("mcpctl.toml");
    for comment in src
        .lines()
        .filter_map(|l| l.find('#').map(|i| l[i..].trim()))
    {
        assert!(out.contains(comment), "lost `{comment}`:\n{out}");
    }
    assert!(
        out.contains("[servers.github]\ncommand = \"github-mcp\" # pinned in the lockfile\n"),
        "{out}"
    );
    let a: toml::Table = toml::from_str(&src).unwrap();
    let b: toml::Table = toml::from_str(&out).unwrap();
    assert_eq!(a, b);
}
