//! Issue 27, part 6: what a new user tripped over, each fixed and kept fixed.

use clap::Parser;
use mcpctl::cli::args::{Cli, Command, ServerCommand};

use crate::common::{TestEnv, free_port, one_server, repo_root};

#[test]
fn the_set_up_lines_say_what_the_tests_need() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let start = readme
        .find("## The two commands")
        .expect("the set-up section");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    assert!(section.contains("python3-venv"), "{section}");
    assert!(section.contains("package registry"), "{section}");
}

#[test]
fn logs_dash_f_follows_and_the_file_flag_comes_before_the_command() {
    let cli = Cli::try_parse_from(["mcpctl", "server", "logs", "github", "-f"]).unwrap();
    assert!(
        matches!(
            cli.command,
            Command::Server(ServerCommand::Logs { follow: true, .. })
        ),
        "{cli:?}"
    );
    assert!(cli.file.is_none());
    let cli =
        Cli::try_parse_from(["mcpctl", "-f", "team.toml", "server", "logs", "github"]).unwrap();
    assert_eq!(cli.file.as_deref(), Some(std::path::Path::new("team.toml")));
    // -F still follows (what it was).
    let cli = Cli::try_parse_from(["mcpctl", "server", "logs", "github", "-F"]).unwrap();
    assert!(matches!(
        cli.command,
        Command::Server(ServerCommand::Logs { follow: true, .. })
    ));
}

#[test]
fn validate_says_an_integer_and_points_at_a_schema_the_user_has() {
    let env =
        TestEnv::with_config("version = 1\n\n[servers.a]\ncommand = \"mcp-echo\"\nport = \"x\"\n");
    let run = env.run(&["validate"]);
    run.failure()
        .stderr_has("expected an integer\n")
        .stderr_has("mcpctl.schema.json");
    assert!(
        !run.stderr.contains("i64") && !run.stderr.contains("schema/mcpctl"),
        "{}",
        run.stderr
    );
}

#[test]
fn plan_shows_integers_as_integers() {
    let env = TestEnv::with_config(&format!(
        "version = 1\n\n[servers.a]\ncommand = \"mcp-echo\"\nport = {}\nhealth = {{ failures = 4 }}\nautoscale = {{ min = 1, max = 3 }}\n",
        free_port()
    ));
    let run = env.run(&["plan"]);
    run.success()
        .stdout_has("failures = 4")
        .stdout_has("max = 3");
    assert!(
        !run.stdout.contains("\"4\"") && !run.stdout.contains("\"3\""),
        "{}",
        run.stdout
    );
}

#[test]
fn the_man_page_names_no_pages_that_do_not_exist() {
    let run = TestEnv::new().run(&["man"]);
    run.success().stdout_has(".SH \"mcpctl server logs\"");
    let pages: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.contains("mcpctl\\-") && l.contains("(1)"))
        .collect();
    assert!(pages.is_empty(), "{pages:?}");
}

#[test]
fn completions_complete_server_names() {
    let env = TestEnv::with_config(&one_server());
    env.run(&["__names"]).success().stdout_has("echo\n");
    let bin_dir = std::path::Path::new(crate::common::bin()).parent().unwrap();
    let script = env.run(&["completions", "bash"]);
    script.success();
    env.write("completion.bash", &script.stdout);
    let out = std::process::Command::new("bash")
        .current_dir(env.path())
        .env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display()))
        .env_remove("MCPCTL_FILE")
        .arg("-c")
        .arg(
            "source ./completion.bash; COMP_WORDS=(mcpctl server logs ''); COMP_CWORD=3; \
             _mcpctl_with_names; echo \"${COMPREPLY[*]}\"; \
             COMP_WORDS=(mcpctl connect e); COMP_CWORD=2; _mcpctl_with_names; echo \"${COMPREPLY[*]}\"",
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout,
        "echo\necho\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for shell in ["zsh", "fish"] {
        env.run(&["completions", shell])
            .success()
            .stdout_has("__names");
    }
}

#[test]
fn a_backup_error_names_the_file_asked_for_not_a_temp_file() {
    let env = TestEnv::with_config(&one_server());
    let run = env.run(&[
        "server",
        "backup",
        "echo",
        "--output",
        "no/such/dir/echo.json",
    ]);
    run.failure().stderr_has("no/such/dir/echo.json");
    assert!(!run.stderr.contains(".tmp"), "{}", run.stderr);
}

#[test]
fn a_credential_set_as_plain_env_gets_a_hint() {
    let env = TestEnv::with_config(&one_server());
    env.run(&[
        "config",
        "env",
        "set",
        "API_KEY",
        "sk-live-4f9a8b7c6d5e4f3a2b1c",
        "--server",
        "echo",
    ])
    .success()
    .stderr_has("looks like a credential")
    .stderr_has("mcpctl config secret set API_KEY --server echo");
    let run = env.run(&[
        "config",
        "env",
        "set",
        "LOG_LEVEL",
        "debug",
        "--server",
        "echo",
    ]);
    run.success();
    assert!(!run.stderr.contains("credential"), "{}", run.stderr);
}

#[test]
fn monitor_shows_each_sample_once_with_its_time_and_a_busy_server_busy_at_once() {
    use crate::operations::server;
    let env = TestEnv::with_config(&format!(
        "version = 1\n{}",
        server("busy", free_port(), r#""--spin""#)
    ));
    let apply = env
        .command(&["apply"])
        .env("MCPCTL_SAMPLE_SECS", "1")
        .output()
        .unwrap();
    crate::common::to_run(&["apply"], &apply).success();
    // The first sample of the server: its CPU since it started, not 0 %.
    let first = crate::common::wait_for("a first sample", 30, || {
        let usage = env.server_status("busy")["usage"].clone();
        if usage["sampled_at"].is_string() {
            Ok(usage)
        } else {
            Err(usage.to_string())
        }
    });
    assert!(first["cpu_percent"].as_f64().unwrap() > 30.0, "{first}");
    // An interval finer than the sampler's: each sample once, with its time.
    let run = env.run_within(
        30,
        &[
            "server",
            "monitor",
            "busy",
            "--interval",
            "0.1",
            "--count",
            "3",
        ],
    );
    run.success();
    let times: Vec<String> = run
        .stdout
        .lines()
        .map(|l| {
            let sample: serde_json::Value = serde_json::from_str(l).unwrap();
            sample["sampled_at"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(times.len(), 3, "{}", run.stdout);
    assert!(times[0] != times[1] && times[1] != times[2], "{times:?}");
}
