//! `plan` end to end: text, JSON and `--detailed-exitcode`.

use crate::common::{TestEnv, free_port, one_server};

#[test]
fn detailed_exitcode_is_2_with_changes_0_without_1_on_error() {
    let env = TestEnv::with_config(&one_server());
    env.run(&["plan", "--detailed-exitcode"])
        .code(2)
        .stdout_has("+ server \"echo\"")
        .stdout_has("Plan: 1 to start, 0 to restart, 0 to update, 0 to stop.");
    env.run(&["plan"]).success();

    let stopped = one_server() + "state = \"stopped\"\n";
    let env = TestEnv::with_config(&stopped);
    env.run(&["plan", "--detailed-exitcode"])
        .code(0)
        .stdout_has("No changes.");

    let env = TestEnv::with_config(&format!(
        "version = 1\n[servers.echo]\nport = {}\n",
        free_port()
    ));
    env.run(&["plan", "--detailed-exitcode"])
        .code(1)
        .stderr_has("has no `command`");
}

#[test]
fn json_format_is_machine_readable() {
    let env = TestEnv::with_config(&one_server());
    let run = env.run(&["plan", "--format", "json"]);
    run.success();
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["has_changes"], true);
    assert_eq!(json["actions"][0]["kind"], "start");
    assert_eq!(json["actions"][0]["server"], "echo");
    assert_eq!(json["summary"]["start"], 1);
    assert_eq!(
        json["actions"][0]["spec_hash"].as_str().map(str::len),
        Some(64)
    );
}

#[test]
fn no_colour_unless_a_terminal() {
    let env = TestEnv::with_config(&one_server());
    let mut cmd = env.command(&["plan"]);
    cmd.env_remove("NO_COLOR");
    let out = cmd.output().unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains('\x1b'));
}

#[test]
fn the_file_is_found_in_a_parent_folder_or_named_with_f() {
    let env = TestEnv::with_config(&one_server());
    env.write("deep/er/.keep", "");
    let mut cmd = env.command(&["validate"]);
    cmd.current_dir(env.path().join("deep/er"));
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 server"));

    env.write("other.toml", "version = 1\n");
    env.run(&["-f", "other.toml", "validate"])
        .success()
        .stdout_has("other.toml is valid: 0 servers");
    env.run(&["--file", "other.toml", "plan", "--detailed-exitcode"])
        .code(0);
}
