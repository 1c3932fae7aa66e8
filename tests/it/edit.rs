//! Edit commands keep comments, blank lines and key order, change only the targeted
//! lines, and never lose an edit when run concurrently.

use std::process::Stdio;

use crate::common::{TestEnv, one_server, repo_root, to_run};

fn golden(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("tests/golden").join(name)).unwrap()
}

#[test]
fn edits_on_a_commented_file_change_only_the_targeted_lines() {
    let env = TestEnv::with_config(&golden("commented.toml"));
    env.write(
        "staging.json",
        r#"{"instances": 1, "env": {"LOG_LEVEL": "info"}, "servers": {"github": {"port": 9001}}}"#,
    );
    let steps: &[&[&str]] = &[
        &[
            "config",
            "env",
            "set",
            "LOG_LEVEL",
            "debug",
            "--server",
            "github",
        ],
        &["config", "env", "set", "TZ", "UTC"],
        &[
            "config",
            "env",
            "set",
            "API_BASE",
            "https://new.invalid",
            "--server",
            "github",
        ],
        &["config", "env", "unset", "OLD", "--server", "slack"],
        &["profile", "create", "staging", "--config", "staging.json"],
        &["config", "env", "set", "KEEP", "3", "--server", "slack"],
    ];
    for step in steps {
        env.run(step).success();
    }
    assert_eq!(env.read("mcpctl.toml"), golden("commented.edited.toml"));
    env.run(&["validate"]).success();
}

#[test]
fn env_get_and_list_read_one_layer() {
    let env = TestEnv::with_config(&golden("commented.toml"));
    env.run(&["config", "env", "get", "OWNER", "--server", "github"])
        .success()
        .stdout_has("team\n");
    let run = env.run(&["config", "env", "list", "--server", "slack"]);
    run.success();
    assert_eq!(run.stdout, "KEEP=2\nOLD=1\n");
    let run = env.run(&["config", "env", "list"]);
    run.success();
    assert_eq!(run.stdout, "");
    env.run(&["config", "env", "set", "TZ", "UTC"]).success();
    env.run(&["config", "env", "get", "TZ"])
        .success()
        .stdout_has("UTC");
}

#[test]
fn setting_the_same_value_twice_writes_nothing_new() {
    let env = TestEnv::with_config(&one_server());
    env.run(&["config", "env", "set", "A", "1", "--server", "echo"])
        .success();
    let once = env.read("mcpctl.toml");
    env.run(&["config", "env", "set", "A", "1", "--server", "echo"])
        .success();
    assert_eq!(env.read("mcpctl.toml"), once);
}

#[test]
fn twenty_concurrent_edits_all_land() {
    let env = TestEnv::with_config(&one_server());
    let children: Vec<_> = (0..20)
        .map(|i| {
            let key = format!("KEY_{i}");
            let value = format!("value-{i}");
            let scope: &[&str] = if i % 2 == 0 {
                &["--server", "echo"]
            } else {
                &[]
            };
            let mut args = vec!["config", "env", "set", key.as_str(), value.as_str()];
            args.extend_from_slice(scope);
            env.command(&args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        to_run(&["config", "env", "set"], &out).success();
    }
    let text = env.read("mcpctl.toml");
    let parsed: toml::Table = toml::from_str(&text).unwrap();
    for i in 0..20 {
        let table = if i % 2 == 0 {
            &parsed["servers"]["echo"]
        } else {
            &parsed["defaults"]
        };
        assert_eq!(
            table["env"][&format!("KEY_{i}")].as_str(),
            Some(format!("value-{i}").as_str()),
            "KEY_{i} was lost:\n{text}"
        );
    }
    env.run(&["validate"]).success();
    // No temp files are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(env.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn writes_keep_the_file_mode() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::with_config(&one_server());
    let path = env.path().join("mcpctl.toml");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    env.run(&["config", "env", "set", "A", "1"]).success();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
}
