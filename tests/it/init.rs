//! `mcpctl init`.

use crate::common::TestEnv;

#[test]
fn init_writes_a_valid_commented_starter_and_ignores_the_runtime_folder() {
    let env = TestEnv::new();
    env.write(".gitignore", "/target");
    env.run(&["init"]).success();
    let text = env.read("mcpctl.toml");
    // Beside the file, not in the git-ignored `.mcpctl/`: a clone's link resolves
    // (issue 27).
    assert!(text.starts_with("#:schema ./mcpctl.schema.json\n"));
    assert!(env.path().join("mcpctl.schema.json").is_file());
    assert!(
        text.lines().filter(|l| l.starts_with('#')).count() > 5,
        "starter is commented"
    );
    assert_eq!(env.read(".gitignore"), "/target\n.mcpctl/\n");
    env.run(&["validate"]).success();
    env.run(&["fmt", "--check"]).success();
    env.run(&["plan", "--detailed-exitcode"]).code(0);

    env.run(&["init"]).failure().stderr_has("already exists");
    assert_eq!(env.read("mcpctl.toml"), text);
    assert_eq!(env.read(".gitignore"), "/target\n.mcpctl/\n");
}

#[test]
fn init_creates_gitignore_when_missing() {
    let env = TestEnv::new();
    env.run(&["-f", "team.toml", "init"]).success();
    assert_eq!(env.read(".gitignore"), ".mcpctl/\n");
    env.run(&["-f", "team.toml", "validate"]).success();
}
