//! Command-line usage errors exit 1, like every other error: exit 2 belongs to
//! `plan --detailed-exitcode` ("changes present"). `--help` and `--version` exit 0.

use crate::common::{TestEnv, one_server};

#[test]
fn usage_errors_exit_1_never_2() {
    let config = one_server();
    let env = TestEnv::with_config(&config);
    for (args, message) in [
        (&["plan", "--detailed-exitcod"][..], "unexpected argument"),
        (&["validate", "--bogus"], "unexpected argument"),
        (&["plan", "--format", "yaml"], "invalid value 'yaml'"),
        (&["server", "start"], "required"),
        (
            &["server", "start", "echo", "--port", "http"],
            "invalid value",
        ),
        (
            &["server", "start", "echo", "--mode", "cloud"],
            "invalid value 'cloud'",
        ),
        (&["config", "env", "set", "KEY"], "required"),
        (&["frobnicate"], "unrecognized subcommand"),
        (&[], "Usage"),
        (&["--file"], "a value is required"),
    ] {
        env.run(args).failure().stderr_has(message);
    }
    // The file was never touched, whatever the arguments.
    assert_eq!(env.read("mcpctl.toml"), config);
}

#[test]
fn help_and_version_exit_0_on_stdout() {
    let env = TestEnv::with_config(&one_server());
    for args in [
        &["--help"][..],
        &["-h"],
        &["help"],
        &["plan", "--help"],
        &["config", "secret", "help", "keygen"],
    ] {
        env.run(args).success().stdout_has("Usage");
    }
    env.run(&["--version"])
        .success()
        .stdout_has(env!("CARGO_PKG_VERSION"));
}
