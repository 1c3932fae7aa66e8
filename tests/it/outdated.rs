//! Issue 27: `mcpctl outdated` and `mcpctl upgrade` against a registry served on
//! 127.0.0.1.

use crate::common::registry::FakeRegistry;
use crate::common::{TestEnv, free_port, one_server};

const BRAVE: &str = "io.github.example/brave-search";

/// A file with brave-search added from `registry` at 1.0.2.
fn added(registry: &FakeRegistry) -> TestEnv {
    let env = TestEnv::with_config(&one_server());
    env.run(&["config", "secret", "keygen", "--add"]).success();
    let port = free_port().to_string();
    env.run(&[
        "add",
        BRAVE,
        "--secret",
        "BRAVE_API_KEY=x",
        "--port",
        &port,
        "--no-apply",
        "--registry",
        &registry.url,
    ])
    .success();
    env
}

#[test]
fn outdated_lists_a_server_behind_the_registry_and_exits_2() {
    let env = added(&FakeRegistry::with_fixtures(&[]));
    let newer = FakeRegistry::with_fixtures(&[(BRAVE, "1.1.0")]);
    let run = env.run(&["outdated", "--registry", &newer.url]);
    run.code(2)
        .stdout_has("brave-search")
        .stdout_has("1.0.2")
        .stdout_has("1.1.0");
    let run = env.run(&["outdated", "--format", "json", "--registry", &newer.url]);
    run.code(2);
    let list: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(list[0]["server"], "brave-search");
    assert_eq!(list[0]["latest"], "1.1.0");
    assert_eq!(list[0]["outdated"], true);
    // At the latest: 0.
    let same = FakeRegistry::with_fixtures(&[]);
    env.run(&["outdated", "--registry", &same.url])
        .success()
        .stderr_has("1 server(s) at the latest version");
}

#[test]
fn upgrade_bumps_the_pin_and_the_plan_shows_it() {
    let env = added(&FakeRegistry::with_fixtures(&[]));
    let newer = FakeRegistry::with_fixtures(&[(BRAVE, "1.1.0")]);
    env.run(&[
        "upgrade",
        "brave-search",
        "--no-apply",
        "--registry",
        &newer.url,
    ])
    .success()
    .stderr_has("upgraded brave-search from 1.0.2 to 1.1.0");
    let file = env.read("mcpctl.toml");
    assert!(
        file.contains("\"@example/server-brave-search@1.1.0\""),
        "{file}"
    );
    assert!(
        file.contains(&format!("# from the MCP registry: {BRAVE} 1.1.0")),
        "{file}"
    );
    env.run(&["validate"]).success();
    env.run(&["fmt", "--check"]).success();
    env.run(&["outdated", "--registry", &newer.url]).success();
    env.run(&["plan"]).stdout_has("brave-search");
    // Nothing left to do.
    env.run(&["upgrade", "--all", "--no-apply", "--registry", &newer.url])
        .success()
        .stderr_has("nothing to upgrade");
}

#[test]
fn a_server_pinned_by_hand_is_found_by_its_package() {
    let port = free_port();
    let env = TestEnv::with_config(&format!(
        "version = 1\n\n[servers.search]\ncommand = \"npx\"\nargs = [\"-y\", \"@example/server-brave-search@1.0.0\"]\nport = {port}\n\n[servers.unpinned]\ncommand = \"npx\"\nargs = [\"-y\", \"some-package\"]\nport = {}\n",
        free_port()
    ));
    let registry = FakeRegistry::with_fixtures(&[]);
    env.run(&["outdated", "--registry", &registry.url])
        .code(2)
        .stdout_has("search")
        .stdout_has(BRAVE);
    env.run(&[
        "upgrade",
        "--all",
        "--no-apply",
        "--registry",
        &registry.url,
    ])
    .success();
    assert!(
        env.read("mcpctl.toml")
            .contains("\"@example/server-brave-search@1.0.2\"")
    );
    env.run(&["upgrade", "unpinned", "--registry", &registry.url])
        .failure()
        .stderr_has("is not pinned");
}

#[test]
fn a_hostile_latest_version_is_refused() {
    let env = added(&FakeRegistry::with_fixtures(&[]));
    let before = env.read("mcpctl.toml");
    let evil = FakeRegistry::with_fixtures(&[(BRAVE, "9.9.9;rm")]);
    // Not a pinned version: said (from the attack: taking it for "not in the registry"
    // made a server that is behind look current), and nothing written.
    env.run(&["outdated", "--registry", &evil.url])
        .failure()
        .stderr_has("`9.9.9;rm`, not a pinned version");
    env.run(&["upgrade", "--all", "--registry", &evil.url])
        .failure()
        .stderr_has("not a pinned version");
    assert_eq!(env.read("mcpctl.toml"), before);
}
