//! `server backup`, `backup --all` and `server restore` with real files, secrets and a
//! real daemon: what comes back, and every way a backup is refused.

use crate::common::{TestEnv, echo_bin, free_port, wait_for};

const TOKEN: &str = "xoxb-backup-secret-4471";

/// `init` (this user's identity becomes the recipient) plus a commented server with
/// env and a secret that it prints to its log.
fn setup() -> (TestEnv, u16) {
    let port = free_port();
    let env = TestEnv::new();
    env.run(&["init"]).success();
    let mut text = env.read("mcpctl.toml");
    text.push_str(&format!(
        "\n# The leaky one: prints its token.\n# Two lines of comment.\n[servers.leaky]\ncommand = \"{}\" # the fixture\nargs = [\"--print-env\", \"TOKEN\"]\nport = {port}\nenv = {{ MODE = \"fast\" }} # inline env\n",
        echo_bin()
    ));
    env.write("mcpctl.toml", &text);
    env.run_with_stdin(
        &["config", "secret", "set", "TOKEN", "--server", "leaky"],
        &format!("{TOKEN}\n"),
    )
    .success();
    (env, port)
}

/// The file with the leaky block (from its comment to the end) cut out.
fn without_leaky(text: &str) -> String {
    let at = text.find("\n# The leaky one").expect("the block");
    format!("{}\n", text[..at].trim_end())
}

/// The log of leaky's newest instance, once it has printed its token.
fn token_line(env: &TestEnv, after_instance: u32) -> String {
    wait_for("the restored server to print its token", 30, || {
        let status = env.server_status("leaky");
        let id = status["instance_ids"][0].as_u64().unwrap_or(0) as u32;
        if id <= after_instance {
            return Err(format!("instance {id}"));
        }
        let log = std::fs::read_to_string(env.path().join(format!(".mcpctl/logs/leaky-{id}.log")))
            .unwrap_or_default();
        log.lines()
            .find(|l| l.contains("TOKEN="))
            .map(str::to_string)
            .ok_or(log)
    })
}

#[test]
fn backup_remove_restore_brings_back_the_block_its_comments_and_secrets_and_it_runs_again() {
    let (env, _) = setup();
    let original = env.read("mcpctl.toml");
    env.run_within(60, &["apply"]).success();
    let first = env.server_status("leaky")["instance_ids"][0]
        .as_u64()
        .unwrap() as u32;

    env.run(&["server", "backup", "leaky", "--output", "leaky.json"])
        .success()
        .stderr_has("backed up leaky to leaky.json");
    let backup = env.read("leaky.json");
    assert!(!backup.contains(TOKEN), "no plaintext secret in a backup");
    let doc: serde_json::Value = serde_json::from_str(&backup).unwrap();
    assert_eq!(doc["format"], "mcpctl-server-backup");
    assert_eq!(doc["format_version"], 1);
    let content = &doc["content"];
    let block = content["block"].as_str().unwrap();
    assert!(
        block.contains("# Two lines of comment.\n[servers.leaky]\n"),
        "{block}"
    );
    assert!(block.contains("secrets = { TOKEN = \"age:"), "{block}");
    assert_eq!(content["runtime"]["status"], "running");
    assert_eq!(content["recipients"].as_array().unwrap().len(), 1);
    // `-` is stdout, the same document but for its time stamp.
    let out = env.run(&["server", "backup", "leaky", "--output", "-"]);
    out.success()
        .stdout_has("\"format\": \"mcpctl-server-backup\"");

    // Gone from the file, and stopped.
    env.write("mcpctl.toml", &without_leaky(&original));
    env.run_within(60, &["apply"])
        .success()
        .stdout_has("- server \"leaky\"");

    env.run_within(60, &["server", "restore", "leaky", "--input", "leaky.json"])
        .success()
        .stderr_has("restored leaky from leaky.json")
        .stdout_has("+ server \"leaky\"")
        .stdout_has("leaky: instance");
    // The block, its env, secret and the comments above it come back as they were,
    // after the last table (the file's closing comments stay last); nothing else moved.
    let restored = env.read("mcpctl.toml");
    let block = &original[original.find("# The leaky one").unwrap()..];
    assert!(restored.contains(block), "{restored}");
    assert_eq!(
        restored.replacen(&format!("{block}\n"), "", 1),
        without_leaky(&original)
    );
    env.run(&["config", "secret", "get", "TOKEN", "--server", "leaky"])
        .success()
        .stdout_has(TOKEN);
    // The new instance got the same value: the daemon redacts the value it knows
    // (any other value, or none, would show).
    let line = token_line(&env, first);
    assert!(line.ends_with("TOKEN=(redacted)"), "{line}");
    assert_eq!(env.server_status("leaky")["status"], "running");
    env.run(&["plan", "--detailed-exitcode"]).code(0);
}

#[test]
fn a_damaged_foreign_or_newer_backup_is_refused_each_with_its_reason_and_the_file_is_untouched() {
    let env = TestEnv::with_config(&format!(
        "version = 1\n\n# keep me\n[servers.echo]\ncommand = \"mcp-echo\"\nport = {}\n",
        free_port()
    ));
    env.run(&["server", "backup", "echo", "--output", "good.json"])
        .success();
    let good = env.read("good.json");
    let text = good.clone();
    let elsewhere = TestEnv::with_config(&format!(
        "version = 1\n\n[servers.other]\ncommand = \"mcp-echo\"\nport = {}\n",
        free_port()
    ));
    elsewhere
        .run(&["server", "backup", "other", "--output", "other.json"])
        .success();
    let others = elsewhere.read("other.json");
    let start = without_echo(&env);
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "one byte changed",
            good.replacen("mcp-echo", "mcp-echp", 1),
            "its checksum does not match its content",
        ),
        (
            "truncated",
            good[..good.len() / 2].to_string(),
            "the backup is truncated",
        ),
        (
            "newer format",
            good.replacen("\"format_version\": 1", "\"format_version\": 7", 1),
            "it is backup format 7, newer than this mcpctl reads (1)",
        ),
        (
            "another server's",
            others,
            "it is a backup of server `other`, not `echo`",
        ),
        ("not JSON", "version = 1\n".to_string(), "it is not JSON"),
        (
            "foreign JSON",
            "{\"servers\": {}}".to_string(),
            "it is not an mcpctl server backup",
        ),
    ];
    let mut seen = Vec::new();
    for (what, bytes, message) in cases {
        env.write("bad.json", &bytes);
        let run = env.run(&["server", "restore", "echo", "--input", "bad.json"]);
        run.failure()
            .stderr_has("cannot restore from bad.json: ")
            .stderr_has(message)
            .stderr_has("nothing was changed");
        assert_eq!(
            env.read("mcpctl.toml"),
            start,
            "{what}: the file is untouched"
        );
        assert!(!seen.contains(&run.stderr), "{what}: a distinct message");
        seen.push(run.stderr.clone());
    }
    // A changed checksum is the same refusal as changed content.
    let flipped = text.replacen("\"checksum\": \"blake3:", "\"checksum\": \"blake3:0", 1);
    env.write("bad.json", &flipped);
    env.run(&["server", "restore", "echo", "--input", "bad.json"])
        .failure()
        .stderr_has("its checksum does not match");
    // The good one restores.
    env.run(&["server", "restore", "echo", "--input", "good.json"])
        .success()
        .stderr_has("no daemon runs");
    assert!(
        env.read("mcpctl.toml")
            .contains("# keep me\n[servers.echo]\n")
    );
}

/// Removes `[servers.echo]` (the file's last block) and returns the file.
fn without_echo(env: &TestEnv) -> String {
    let text = env.read("mcpctl.toml");
    let at = text.find("\n# keep me").unwrap();
    let rest = format!("{}\n", &text[..at]);
    env.write("mcpctl.toml", &rest);
    rest
}

#[test]
fn restore_refuses_a_name_or_port_in_use_and_a_profile_it_cannot_bring() {
    let port = free_port();
    let other = free_port();
    let env = TestEnv::with_config(&format!(
        "version = 1\n\n[profiles.prod]\ninstances = 1\n\n[servers.echo]\ncommand = \"mcp-echo\"\nport = {port}\nprofile = \"prod\"\n\n[servers.two]\ncommand = \"mcp-echo\"\nport = {other}\n"
    ));
    env.run(&["server", "backup", "echo", "--output", "echo.json"])
        .success();
    let start = env.read("mcpctl.toml");
    env.run(&["server", "restore", "echo", "--input", "echo.json"])
        .failure()
        .stderr_has("server `echo` is already in the file; nothing was restored")
        .stderr_has("--as NEW_NAME");
    env.run(&[
        "server",
        "restore",
        "echo",
        "--input",
        "echo.json",
        "--as",
        "copy",
    ])
    .failure()
    .stderr_has(&format!(
        "port {port} is already served by server `echo`; nothing was restored"
    ));
    env.run(&[
        "server",
        "restore",
        "echo",
        "--input",
        "echo.json",
        "--as",
        "copy",
        "--port",
        &other.to_string(),
    ])
    .failure()
    .stderr_has(&format!("port {other} is already served by server `two`"));
    assert_eq!(env.read("mcpctl.toml"), start);

    // --dry-run shows the plan and changes nothing.
    let free = free_port().to_string();
    env.run(&[
        "server",
        "restore",
        "echo",
        "--input",
        "echo.json",
        "--as",
        "copy",
        "--port",
        &free,
        "--dry-run",
    ])
    .success()
    .stdout_has("+ server \"copy\"")
    .stdout_has(&free)
    .stderr_has("dry run");
    assert_eq!(env.read("mcpctl.toml"), start);

    // A backup whose profile the file lacks brings it along; one that does not carry
    // it is refused.
    let bare = TestEnv::with_config("version = 1\n");
    std::fs::copy(env.path().join("echo.json"), bare.path().join("echo.json")).unwrap();
    bare.run(&["server", "restore", "echo", "--input", "echo.json"])
        .success()
        .stderr_has("restored profile prod from the backup");
    let restored = bare.read("mcpctl.toml");
    assert!(
        restored.contains("[profiles.prod]\ninstances = 1\n"),
        "{restored}"
    );
    bare.run(&["validate"]).success();

    let doc: serde_json::Value = serde_json::from_str(&env.read("echo.json")).unwrap();
    let mut content = doc["content"].clone();
    content["profile"] = serde_json::Value::Null;
    let text = serde_json::to_string_pretty(&content).unwrap();
    let checksum = format!("blake3:{}", blake3::hash(text.as_bytes()).to_hex());
    let without = format!(
        "{{\"format\": \"mcpctl-server-backup\", \"format_version\": 1, \"checksum\": \"{checksum}\", \"content\": {text}}}"
    );
    let empty = TestEnv::with_config("version = 1\n");
    empty.write("echo.json", &without);
    empty
        .run(&["server", "restore", "echo", "--input", "echo.json"])
        .failure()
        .stderr_has(
            "uses profile `prod`, which the file does not define and the backup does not carry",
        );
    assert_eq!(empty.read("mcpctl.toml"), "version = 1\n");
}

#[test]
fn a_copy_under_a_new_name_gets_its_secrets_encrypted_again_for_its_place() {
    let (env, _) = setup();
    env.run(&["server", "backup", "leaky", "--output", "leaky.json"])
        .success();
    let port = free_port().to_string();
    env.run(&[
        "server",
        "restore",
        "leaky",
        "--input",
        "leaky.json",
        "--as",
        "copy",
        "--port",
        &port,
        "--no-apply",
    ])
    .success()
    .stderr_has("re-encrypted 1 secret(s) for their new place in [servers.copy]");
    let text = env.read("mcpctl.toml");
    assert!(text.contains("[servers.copy]\n"), "{text}");
    assert!(text.contains(&format!("port = {port}")), "{text}");
    env.run(&["config", "secret", "get", "TOKEN", "--server", "copy"])
        .success()
        .stdout_has(TOKEN);
    env.run(&["validate"])
        .success()
        .stdout_has("secrets decrypt");
}

#[test]
fn backup_all_writes_a_folder_or_a_bundle_and_restore_takes_one_server_from_a_bundle() {
    let (a, b) = (free_port(), free_port());
    let env = TestEnv::with_config(&format!(
        "version = 1\n\n[servers.a]\ncommand = \"mcp-echo\"\nport = {a}\n\n[servers.b]\ncommand = \"mcp-echo\"\nport = {b}\n"
    ));
    env.run(&["backup", "--all", "--output", "saved/"])
        .success()
        .stderr_has("backed up 2 server(s)");
    assert!(env.read("saved/a.json").contains("[servers.a]"));
    assert!(env.read("saved/b.json").contains("[servers.b]"));
    env.run(&["backup", "--all", "--output", "all.json"])
        .success();
    env.write(
        "mcpctl.toml",
        &format!("version = 1\n\n[servers.a]\ncommand = \"mcp-echo\"\nport = {a}\n"),
    );
    env.run(&["server", "restore", "b", "--input", "all.json"])
        .success();
    assert!(env.read("mcpctl.toml").contains("[servers.b]\n"));
    env.run(&["server", "restore", "c", "--input", "all.json"])
        .failure()
        .stderr_has("the bundle holds no backup of server `c` (it has: a, b)");
    env.run(&["backup", "--output", "x.json"]).failure();
}
