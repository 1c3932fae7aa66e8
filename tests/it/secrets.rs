//! Secrets end to end: recipients, the place check, no plaintext anywhere, restarts
//! only on a real value change, and clear errors for every way decryption fails.

use crate::common::{Run, TestEnv, echo_bin, free_port};

const TOKEN: &str = "xoxb-very-secret-7311";

impl TestEnv {
    /// `mcpctl --identity PATH ARGS...` (PATH relative to the test folder).
    fn run_as(&self, identity: &str, args: &[&str]) -> Run {
        let path = self.path().join(identity);
        let mut all = vec!["--identity", path.to_str().unwrap()];
        all.extend_from_slice(args);
        self.run(&all)
    }
}

/// `init` (which creates this user's identity and makes it the recipient) plus one
/// server that prints its own token to stderr.
fn setup() -> TestEnv {
    let port = free_port();
    let env = TestEnv::new();
    env.run(&["init"]).success();
    let mut text = env.read("mcpctl.toml");
    text.push_str(&format!(
        "\n[servers.leaky]\ncommand = \"{}\"\nargs = [\"--print-env\", \"TOKEN\", \"--print-env\", \"REGION\"]\nport = {port}\n",
        echo_bin()
    ));
    env.write("mcpctl.toml", &text);
    env.set_secret("TOKEN", Some("leaky"), TOKEN).success();
    env.set_secret("REGION", None, "eu-west-9-secret").success();
    env
}

#[test]
fn every_recipient_can_read_every_secret_and_no_one_else() {
    let env = setup();
    env.run_as("bob.key", &["config", "secret", "keygen"])
        .success();
    let bob = env.run_as("bob.key", &["config", "secret", "keygen"]);
    bob.failure()
        .stderr_has("already exists")
        .stderr_has("age1");
    let bob_recipient = env
        .read("bob.key")
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_string();
    env.run(&["config", "secret", "recipients", "add", &bob_recipient])
        .success()
        .stderr_has("re-encrypted 2 secret(s)");
    env.run_as("carol.key", &["config", "secret", "keygen"])
        .success();

    for who in [None, Some("bob.key")] {
        let get = |args: &[&str]| match who {
            Some(id) => env.run_as(id, args),
            None => env.run(args),
        };
        get(&["config", "secret", "get", "TOKEN", "--server", "leaky"])
            .success()
            .stdout_has(TOKEN);
        get(&["config", "secret", "get", "REGION"])
            .success()
            .stdout_has("eu-west-9-secret");
    }
    env.run_as(
        "carol.key",
        &["config", "secret", "get", "TOKEN", "--server", "leaky"],
    )
    .failure()
    .stderr_has("secret `TOKEN` in [servers.leaky]: this identity is not one of its recipients");
    env.run(&["config", "secret", "list", "--server", "leaky"])
        .success()
        .stdout_has("TOKEN  (encrypted to 2 recipients)");
    let list = env.run(&["config", "secret", "recipients", "list"]);
    assert_eq!(list.stdout.lines().count(), 2, "{}", list.stdout);
}

#[test]
fn no_plaintext_in_the_file_state_logs_ps_or_plan() {
    let env = setup();
    let plan = env.run(&["plan"]);
    plan.success().stdout_has("+ secrets       = (sensitive)");
    let json = env.run(&["plan", "--format", "json"]);
    env.run_within(60, &["apply"]).success();
    let log = crate::common::wait_for("the server to print its token", 20, || {
        let log = std::fs::read_to_string(env.path().join(".mcpctl/logs/leaky-0.log"))
            .unwrap_or_default();
        if log.contains("TOKEN=") {
            Ok(log)
        } else {
            Err(log)
        }
    });
    assert!(
        log.contains("TOKEN=(redacted)") && log.contains("REGION=(redacted)"),
        "{log}"
    );
    let status = env.run(&["status", "--format", "json"]);
    let logs = env.run(&["server", "logs", "leaky"]);
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    let mut outputs: Vec<(String, String)> = vec![
        ("plan".into(), plan.stdout.clone()),
        ("plan json".into(), json.stdout.clone()),
        ("status".into(), status.stdout.clone()),
        ("server logs".into(), logs.stdout.clone()),
        (
            "ps".into(),
            String::from_utf8_lossy(&ps.stdout).into_owned(),
        ),
    ];
    for file in files_below(env.path()) {
        // The identity is the one file allowed to hold key material; it holds no values.
        if !file.starts_with(env.path().join("xdg")) {
            outputs.push((
                file.display().to_string(),
                String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned(),
            ));
        }
    }
    assert!(
        outputs
            .iter()
            .any(|(name, _)| name.ends_with("daemon.log") || name.ends_with("state.json"))
    );
    for (name, text) in outputs {
        for secret in [TOKEN, "eu-west-9-secret"] {
            assert!(!text.contains(secret), "{name} contains a plaintext secret");
        }
    }
}

fn files_below(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_below(&path));
        } else if path.is_file() {
            out.push(path);
        }
    }
    out
}

#[test]
fn removing_a_recipient_re_encrypts_everything_without_it() {
    let env = setup();
    env.run_as("bob.key", &["config", "secret", "keygen"])
        .success();
    let bob = env
        .read("bob.key")
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_string();
    env.run(&["config", "secret", "recipients", "add", &bob])
        .success();
    env.run_as("bob.key", &["config", "secret", "get", "REGION"])
        .success();
    let before = env.read("mcpctl.toml");
    env.run(&["config", "secret", "recipients", "remove", &bob])
        .success()
        .stderr_has("re-encrypted 2 secret(s)")
        .stderr_has("rotate the real credentials");
    let after = env.read("mcpctl.toml");
    assert!(!after.contains(&bob));
    for line in before.lines().filter(|l| l.contains("age:")) {
        assert!(
            !after.contains(line),
            "a value was not re-encrypted: {line}"
        );
    }
    env.run_as("bob.key", &["config", "secret", "get", "REGION"])
        .failure()
        .stderr_has("not one of its recipients");
    env.run_as(
        "bob.key",
        &["config", "secret", "get", "TOKEN", "--server", "leaky"],
    )
    .failure()
    .stderr_has("not one of its recipients");
    env.run(&["config", "secret", "get", "TOKEN", "--server", "leaky"])
        .success()
        .stdout_has(TOKEN);
}

#[test]
fn re_encryption_restarts_nothing_and_a_new_value_restarts_the_server() {
    let env = setup();
    env.run_within(60, &["apply"]).success();
    let shim = env.server_status("leaky")["pids"][0].clone();

    env.run(&["config", "secret", "rekey"])
        .success()
        .stderr_has("re-encrypted 2 secret(s)");
    env.run(&["plan", "--detailed-exitcode"]).code(0);
    env.run_within(60, &["apply"])
        .success()
        .stdout_has("No changes.");
    assert_eq!(env.server_status("leaky")["pids"][0], shim);

    // Setting a secret converges the server it belongs to (r12).
    env.set_secret("TOKEN", Some("leaky"), "a-new-token-value")
        .success()
        .stdout_has("~ secrets = (sensitive) # forces restart")
        .stdout_has("1 to restart");
    assert_ne!(env.server_status("leaky")["pids"][0], shim);
    env.run(&["plan", "--detailed-exitcode"]).code(0);
}

#[test]
fn undecryptable_secrets_are_clear_errors_and_change_nothing() {
    let env = setup();
    let good = env.read("mcpctl.toml");
    let token_line = good
        .lines()
        .position(|l| l.starts_with("secrets = { TOKEN"))
        .unwrap()
        + 1;

    // Moved: the TOKEN ciphertext pasted under another name.
    let ciphertext = good
        .lines()
        .find(|l| l.starts_with("secrets = { TOKEN"))
        .unwrap()
        .replace("TOKEN", "OTHER");
    env.write(
        "mcpctl.toml",
        &good.replace(
            &good
                .lines()
                .find(|l| l.starts_with("secrets = { TOKEN"))
                .unwrap()
                .to_string(),
            &ciphertext,
        ),
    );
    for args in [&["plan"][..], &["apply"], &["validate"]] {
        env.run(args)
            .failure()
            .stderr_has("cannot decrypt secret `OTHER` of server `leaky`")
            .stderr_has("encrypted for `servers.leaky.TOKEN`, not `servers.leaky.OTHER`")
            .stderr_has(&format!("mcpctl.toml:{token_line}:"));
    }
    assert!(
        !env.path().join(".mcpctl/daemon.sock").exists(),
        "nothing was started"
    );

    // Corrupted.
    let corrupt = good.replacen("age:YWdl", "age:YWdm", 1);
    env.write("mcpctl.toml", &corrupt);
    env.run(&["plan"])
        .failure()
        .stderr_has("is corrupted")
        .stderr_has("mcpctl.toml:");

    // Not a recipient, missing identity, identity readable by others.
    env.write("mcpctl.toml", &good);
    env.run_as("carol.key", &["config", "secret", "keygen"])
        .success();
    env.run_as("carol.key", &["plan"])
        .failure()
        .stderr_has("not one of its recipients")
        .stderr_has("secret `TOKEN`");
    env.run_as("nobody.key", &["plan"])
        .failure()
        .stderr_has("no age identity at")
        .stderr_has("mcpctl config secret keygen");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        env.path().join("carol.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    env.run_as("carol.key", &["config", "secret", "get", "REGION"])
        .failure()
        .stderr_has("chmod 600");

    // Plaintext in the file is refused, and set refuses without recipients.
    let port = free_port();
    env.write("mcpctl.toml", &format!("{good}\n[servers.plain]\ncommand = \"x\"\nport = {port}\nsecrets = {{ PLAIN = \"hunter2\" }}\n"));
    env.run(&["validate"])
        .failure()
        .stderr_has("secret `PLAIN` is not encrypted");
    env.write("mcpctl.toml", "version = 1\n");
    env.set_secret("K", None, "v")
        .failure()
        .stderr_has("no recipients");
    assert_eq!(env.read("mcpctl.toml"), "version = 1\n");
}

#[test]
fn removing_a_recipient_that_is_not_there_is_an_error_and_changes_nothing() {
    let env = TestEnv::with_config("version = 1\n");
    let me = env.run(&["config", "secret", "keygen"]);
    me.success();
    let me = me.stdout.trim().to_string();
    env.run(&["config", "secret", "recipients", "add", &me])
        .success();
    env.set_secret("REGION", None, "eu-west-9-secret").success();
    let before = env.read("mcpctl.toml");

    // A typo of the real key: it must not look as if that key lost access.
    // (A different last letter: the key may end in `x` itself.)
    let last = if me.ends_with('x') { 'y' } else { 'x' };
    let typo = format!("{}{last}", &me[..me.len() - 1]);
    env.run(&["config", "secret", "recipients", "remove", &typo])
        .failure()
        .stderr_has(&format!("`{typo}` is not a recipient"))
        .stderr_has(&me);
    assert_eq!(env.read("mcpctl.toml"), before, "the file is untouched");
    env.run(&["config", "secret", "get", "REGION"])
        .success()
        .stdout_has("eu-west-9-secret");
}

#[test]
fn keygen_add_makes_the_new_key_a_recipient_so_set_works_next() {
    let env = TestEnv::with_config("version = 1\n");
    let run = env.run(&["config", "secret", "keygen", "--add"]);
    run.success().stderr_has("added it to the recipients");
    let me = run.stdout.trim().to_string();
    assert!(me.starts_with("age1"), "{me}");
    env.run(&["config", "secret", "recipients", "list"])
        .success()
        .stdout_has(&me);
    env.set_secret("REGION", None, "eu-west-9-secret").success();
    env.run(&["config", "secret", "get", "REGION"])
        .success()
        .stdout_has("eu-west-9-secret");
    env.run(&["validate"]).success();
}

#[test]
fn keygen_without_add_says_the_file_has_no_recipients_and_how_to_add_this_one() {
    let env = TestEnv::with_config("version = 1\n");
    let run = env.run(&["config", "secret", "keygen"]);
    run.success()
        .stderr_has("has no recipients")
        .stderr_has("mcpctl config secret recipients add age1")
        .stderr_has("keygen --add");
    let me = run.stdout.trim().to_string();
    run.stderr_has(&format!("recipients add {me}"));
    assert_eq!(
        env.read("mcpctl.toml"),
        "version = 1\n",
        "keygen alone edits nothing"
    );

    // Following the advice is what makes `set` work.
    env.set_secret("K", None, "v")
        .failure()
        .stderr_has("no recipients");
    env.run(&["config", "secret", "recipients", "add", &me])
        .success();
    env.set_secret("K", None, "v").success();

    // With recipients, or without any file, there is nothing to point out.
    let env = TestEnv::with_config("version = 1\n[secrets]\nrecipients = [\"age1someoneelse\"]\n");
    let run = env.run(&["config", "secret", "keygen"]);
    run.success();
    assert!(!run.stderr.contains("no recipients"), "{}", run.stderr);
    let env = TestEnv::new();
    let run = env.run(&["config", "secret", "keygen"]);
    run.success();
    assert!(!run.stderr.contains("no recipients"), "{}", run.stderr);
}

#[test]
fn keygen_add_refuses_a_file_whose_values_the_new_key_cannot_read() {
    let env = TestEnv::with_config("version = 1\n");
    env.run_as("alice.key", &["config", "secret", "keygen", "--add"])
        .success();
    env.run_as("alice.key", &["config", "secret", "set", "K", "v"])
        .success();
    let before = env.read("mcpctl.toml");
    env.run(&["config", "secret", "keygen", "--add"])
        .failure()
        .stderr_has("the new identity was created, but not added")
        .stderr_has("not one of its recipients")
        .stderr_has("mcpctl config secret recipients add age1");
    assert_eq!(env.read("mcpctl.toml"), before);
    // Without a file, --add has nowhere to add: nothing is created.
    let env = TestEnv::new();
    env.run(&["config", "secret", "keygen", "--add"])
        .failure()
        .stderr_has("no mcpctl.toml");
    assert!(!env.path().join("xdg/mcpctl/identity.txt").exists());
}
