//! Every bad input of the file: exit 1, a message naming `mcpctl.toml:line:col` with
//! the text underlined and a hint, and the file unchanged by every command.

use crate::common::{TestEnv, free_port, one_server, one_server_on};

/// (name, file, expected message, expected place)
fn cases() -> Vec<(&'static str, String, String, &'static str)> {
    // Nothing is started: the port is only read, but still never a constant.
    let port = free_port();
    let server = format!("[servers.echo]\ncommand = \"mcp-echo\"\nport = {port}\n");
    let server = server.as_str();
    let duplicate = format!("port {port} is used by both");
    let cases = vec![
        (
            "malformed TOML",
            format!("version = 1\n{server}[servers.b\n"),
            "invalid TOML",
            "mcpctl.toml:5:",
        ),
        (
            "unknown key",
            format!("version = 1\n{server}prot = 1\n"),
            "unknown field `prot`",
            "mcpctl.toml:5:1",
        ),
        (
            "wrong type",
            format!("version = 1\n{server}instances = \"two\"\n"),
            "invalid type",
            "mcpctl.toml:5:13",
        ),
        (
            "port out of range",
            // One past the largest port.
            format!(
                "version = 1\n[servers.echo]\ncommand = \"x\"\nport = {}\n",
                u32::from(u16::MAX) + 1
            ),
            "out of range",
            "mcpctl.toml:4:8",
        ),
        (
            "duplicate port",
            format!("version = 1\n{server}[servers.other]\ncommand = \"y\"\nport = {port}\n"),
            duplicate.as_str(),
            "mcpctl.toml:7:8",
        ),
        (
            "invalid server name",
            "version = 1\n[servers.\"my server\"]\ncommand = \"x\"\nport = 1\n".into(),
            "invalid server name",
            "mcpctl.toml:2:10",
        ),
        (
            "invalid profile name",
            format!("version = 1\n{server}[profiles.Prod]\n"),
            "invalid profile name",
            "mcpctl.toml:5:11",
        ),
        (
            "invalid env name",
            format!("version = 1\n{server}env = {{ \"A-B\" = \"1\" }}\n"),
            "invalid environment variable name",
            "mcpctl.toml:5:9",
        ),
        (
            "unknown profile",
            format!("version = 1\n{server}profile = \"prod\"\n"),
            "does not exist",
            "mcpctl.toml:5:11",
        ),
        (
            "remote without url",
            "version = 1\n[servers.echo]\nmode = \"remote\"\nport = 1\n".into(),
            "no `url`",
            "mcpctl.toml:3:8",
        ),
        (
            "unsupported version",
            format!("version = 3\n{server}"),
            "unsupported format version 3",
            "mcpctl.toml:1:11",
        ),
    ];
    cases
        .into_iter()
        .map(|(name, file, message, place)| (name, file, message.to_string(), place))
        .collect()
}

#[test]
fn every_command_refuses_a_bad_file_and_leaves_it_unchanged() {
    for (name, config, message, place) in cases() {
        let env = TestEnv::with_config(&config);
        env.write("p.json", "{\"instances\": 2}");
        let commands: &[&[&str]] = &[
            &["validate"],
            &["plan"],
            &["plan", "--detailed-exitcode"],
            &["config", "env", "set", "K", "v"],
            &["config", "env", "set", "K", "v", "--server", "echo"],
            &["profile", "create", "extra", "--config", "p.json"],
        ];
        for args in commands {
            let run = env.run(args);
            run.failure()
                .stderr_has(&message)
                .stderr_has(place)
                .stderr_has("help:")
                .stderr_has("^");
            assert_eq!(
                env.read("mcpctl.toml"),
                config,
                "{name}: `{}` changed the file",
                args.join(" ")
            );
        }
    }
}

#[test]
fn an_edit_that_would_break_the_file_is_refused() {
    let (echo, other) = (free_port(), free_port());
    let config = format!(
        "{}\n[servers.other]\ncommand = \"y\"\nport = {other}\nprofile = \"p\"\n\n[profiles.p]\n",
        one_server_on(echo)
    );
    let env = TestEnv::with_config(&config);
    // The update would move `other` onto echo's port.
    env.write("clash.json", &format!("{{\"port\": {echo}}}"));
    env.run(&["profile", "update", "p", "--config", "clash.json"])
        .failure()
        .stderr_has(&format!("port {echo} is used by both"))
        .stderr_has("as this change would leave it");
    assert_eq!(env.read("mcpctl.toml"), config);
}

#[test]
fn bad_command_arguments_are_refused_without_touching_the_file() {
    let config = one_server();
    let env = TestEnv::with_config(&config);
    env.run(&["config", "env", "set", "1BAD", "v"])
        .failure()
        .stderr_has("invalid environment variable name `1BAD`");
    env.run(&["config", "env", "set", "K", "v", "--server", "ghost"])
        .failure()
        .stderr_has("unknown server `ghost`")
        .stderr_has("known servers: echo");
    env.run(&["config", "env", "unset", "NOPE"])
        .failure()
        .stderr_has("`NOPE` is not set in [defaults]");
    env.run(&["config", "env", "get", "NOPE", "--server", "echo"])
        .failure()
        .stderr_has("not set");
    env.run(&["profile", "create", "Bad Name"])
        .failure()
        .stderr_has("invalid profile name");
    env.write("unknown.json", "{\n  \"instances\": 2,\n  \"prot\": 1\n}");
    env.run(&["profile", "create", "p", "--config", "unknown.json"])
        .failure()
        .stderr_has("unknown.json:3:")
        .stderr_has("unknown field `prot`");
    env.write("type.json", "{\"instances\": \"many\"}");
    env.run(&["profile", "create", "p", "--config", "type.json"])
        .failure()
        .stderr_has("type.json:1:");
    env.write("garbage.json", "not json");
    env.run(&["profile", "create", "p", "--config", "garbage.json"])
        .failure()
        .stderr_has("garbage.json:1:");
    env.run(&["profile", "create", "p", "--config", "missing.json"])
        .failure()
        .stderr_has("missing.json");
    env.run(&["profile", "delete", "nope"])
        .failure()
        .stderr_has("profile `nope` is not defined");
    assert_eq!(env.read("mcpctl.toml"), config);
}

#[test]
fn a_missing_file_says_where_it_looked() {
    let env = TestEnv::new();
    env.run(&["validate"])
        .failure()
        .stderr_has("no mcpctl.toml in")
        .stderr_has("mcpctl init");
    env.run(&["-f", "nope.toml", "plan"])
        .failure()
        .stderr_has("nope.toml");
}

#[test]
fn thousands_of_errors_show_a_screenful_and_count_the_rest() {
    // 20,000 servers on one port: 19,999 clashes. (Rendering them once took minutes.)
    const SERVERS: usize = 20_000;
    let port = free_port();
    let mut config = String::from("version = 1\n");
    for i in 0..SERVERS {
        config.push_str(&format!("[servers.s{i}]\ncommand = \"x\"\nport = {port}\n"));
    }
    let env = TestEnv::with_config(&config);
    let clashes = |run: &crate::common::Run| run.stderr.matches("is used by both").count();

    for args in [&["validate"][..], &["plan"]] {
        let run = env.run(args);
        run.failure()
            .stderr_has(&format!("port {port} is used by both"))
            .stderr_has("mcpctl.toml:")
            .stderr_has(&format!(
                "... and {} more errors; `mcpctl validate --all` shows every one",
                SERVERS - 1 - 20
            ));
        assert_eq!(clashes(&run), 20, "{}", args.join(" "));
    }

    let run = env.run(&["validate", "--all"]);
    // The last clash: three lines a server, after the version line.
    run.failure()
        .stderr_has(&format!("mcpctl.toml:{}:8", 1 + 3 * SERVERS));
    assert_eq!(clashes(&run), SERVERS - 1);
    assert!(!run.stderr.contains("more errors"));
    assert_eq!(env.read("mcpctl.toml"), config);
}
