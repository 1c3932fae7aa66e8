//! From the attack on issue 24: a broken entry elsewhere in the file must not keep a
//! token in force. `token revoke` edits a file that is invalid for another reason
//! (leaving no new problem), and the running daemon drops the token at once.

use serde_json::json;

use crate::common::{TestEnv, echo_bin, free_port, http};

fn init(port: u16, token: &str) -> u16 {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let auth = format!("Bearer {token}");
    http(
        port,
        "POST",
        "/mcp",
        &[("Authorization", &auth)],
        body.to_string().as_bytes(),
    )
    .status
}

#[test]
fn revoke_works_while_another_token_entry_is_broken() {
    let a = free_port();
    let env = TestEnv::with_config(&format!(
        "version = 1\n\n[servers.alpha]\ncommand = \"{}\"\nport = {a}\nauth = {{ tokens = true }}\n",
        echo_bin()
    ));
    let make = |name: &str| {
        let made = env.run(&["token", "create", name, "--allow", "alpha/*"]);
        made.success();
        made.stdout.trim().to_string()
    };
    let ci = make("ci");
    let ops = make("ops");
    env.run_within(60, &["apply"]).success();
    assert_eq!(init(a, &ci), 200);
    // Someone breaks `ops` by hand.
    let text = env.read("mcpctl.toml");
    let broken = text.replacen(&hash_line(&text, "ops"), "hash = \"nope\"", 1);
    assert_ne!(broken, text);
    env.write("mcpctl.toml", &broken);
    env.run(&["validate"]).failure();

    // `ci` leaks: revoking it must work, and take effect at once.
    let revoke = env.run(&["token", "revoke", "ci"]);
    revoke.stderr_has("token `ci` revoked");
    assert!(!env.read("mcpctl.toml").contains("[tokens.ci]"));
    assert!(
        env.read("mcpctl.toml").contains("hash = \"nope\""),
        "the rest as it was"
    );
    assert_eq!(init(a, &ci), 401, "{}", revoke.stderr);
    // Revoking what is not there is still an error naming it.
    env.run(&["token", "revoke", "nobody"]).failure();
    // Adding access on a broken file is refused.
    env.run(&["token", "create", "new", "--allow", "alpha/*"])
        .failure();
    let _ = ops;
    env.run(&["daemon", "stop"]);
}

/// The `hash = "..."` line of token `name`.
fn hash_line(text: &str, name: &str) -> String {
    let start = text.find(&format!("[tokens.{name}]")).unwrap();
    text[start..]
        .lines()
        .find(|l| l.starts_with("hash = "))
        .unwrap()
        .to_string()
}
