//! Output that cannot be written is never a panic (exit 101): a reader that went away
//! from stdout is success, as in `mcpctl plan | head`; a lost message on stderr is
//! dropped and the command ends with its own exit code.

use std::process::Stdio;

use crate::common::{TestEnv, one_server, to_run};

/// A pipe whose read end is already closed: every write to it fails (EPIPE).
fn closed_pipe() -> Stdio {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    writer.into()
}

/// (args, the exit code wanted)
const CASES: &[(&[&str], i32)] = &[
    (&["-f", "/nonexistent/x.toml", "validate"], 1),
    (&["validate"], 0),
    (&["plan", "--format", "json"], 0),
    (&["config", "env", "set", "KEY", "v"], 0),
    (&["config", "env", "list"], 0),
    (&["validate", "--bogus"], 1),
    (&["--help"], 0),
    (&["--version"], 0),
];

#[test]
fn closed_stdout_and_stderr_are_not_a_panic() {
    for &(args, want) in CASES {
        let env = TestEnv::with_config(&one_server());
        let status = env
            .command(args)
            .stdin(Stdio::null())
            .stdout(closed_pipe())
            .stderr(closed_pipe())
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(want), "mcpctl {}", args.join(" "));
    }
}

#[test]
fn closed_stdout_is_success_and_stderr_says_no_panic() {
    for &(args, want) in CASES {
        let env = TestEnv::with_config(&one_server());
        let out = env
            .command(args)
            .stdin(Stdio::null())
            .stdout(closed_pipe())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let run = to_run(args, &out);
        run.code(want);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
}

#[test]
fn closed_stderr_keeps_the_exit_code_and_the_output() {
    for &(args, want) in CASES {
        let env = TestEnv::with_config(&one_server());
        let out = env
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(closed_pipe())
            .output()
            .unwrap();
        to_run(args, &out).code(want);
    }
    let env = TestEnv::with_config(&one_server());
    let out = env
        .command(&["validate"])
        .stdout(Stdio::piped())
        .stderr(closed_pipe())
        .output()
        .unwrap();
    to_run(&["validate"], &out).success().stdout_has("is valid");
}
