use super::*;

const COMMENTED: &str = r#"#:schema ./schema/mcpctl.schema.json
# Team servers.
version = 1

[defaults]
restart = "always" # keep them up

# The echo fixture.
[servers.echo]
command = "mcp-echo"   # our fixture
port = 8000 # keep stable
env = { LOG = "info" } # inline env

[servers.table-env]
command = "x"
port = 8001

# sub-table env
[servers.table-env.env]
A = "1" # first
"#;

fn edited(f: impl FnOnce(&mut DocumentMut) -> Result<(), Error>) -> String {
    let mut doc = parse(COMMENTED).unwrap();
    f(&mut doc).unwrap();
    doc.to_string()
}

/// The lines that differ between the original and the edited text.
fn changed_lines(after: &str) -> (Vec<String>, Vec<String>) {
    let diff = similar::TextDiff::from_lines(COMMENTED, after);
    let mut removed = Vec::new();
    let mut added = Vec::new();
    for c in diff.iter_all_changes() {
        match c.tag() {
            similar::ChangeTag::Delete => removed.push(c.value().to_string()),
            similar::ChangeTag::Insert => added.push(c.value().to_string()),
            similar::ChangeTag::Equal => {}
        }
    }
    (removed, added)
}

#[test]
fn set_env_in_inline_table_changes_one_line() {
    let after = edited(|d| {
        set_entry(
            d,
            &Scope::Server("echo".into()),
            MapTable::Env,
            "MODE",
            "fast",
        )
    });
    let (removed, added) = changed_lines(&after);
    assert_eq!(removed, vec!["env = { LOG = \"info\" } # inline env\n"]);
    assert_eq!(
        added,
        vec!["env = { LOG = \"info\", MODE = \"fast\" } # inline env\n"]
    );
}

#[test]
fn replacing_a_value_keeps_its_comment() {
    let after = edited(|d| {
        set_entry(
            d,
            &Scope::Server("table-env".into()),
            MapTable::Env,
            "A",
            "2",
        )
    });
    let (removed, added) = changed_lines(&after);
    assert_eq!(removed, vec!["A = \"1\" # first\n"]);
    assert_eq!(added, vec!["A = \"2\" # first\n"]);
}

#[test]
fn set_env_in_defaults_adds_one_line() {
    let after = edited(|d| set_entry(d, &Scope::Defaults, MapTable::Env, "TZ", "UTC"));
    let (removed, added) = changed_lines(&after);
    assert!(removed.is_empty(), "{removed:?}");
    assert_eq!(added, vec!["env = { TZ = \"UTC\" }\n"]);
    assert!(after.contains("restart = \"always\" # keep them up\nenv = { TZ = \"UTC\" }\n"));
}

#[test]
fn unset_removes_the_key_and_an_emptied_env() {
    let after = edited(|d| unset_entry(d, &Scope::Server("echo".into()), MapTable::Env, "LOG"));
    let (removed, added) = changed_lines(&after);
    assert_eq!(removed, vec!["env = { LOG = \"info\" } # inline env\n"]);
    assert!(added.is_empty(), "{added:?}");
    let mut doc = parse(COMMENTED).unwrap();
    let err = unset_entry(
        &mut doc,
        &Scope::Server("echo".into()),
        MapTable::Env,
        "NOPE",
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("`NOPE` is not set in [servers.echo]")
    );
}

#[test]
fn unknown_server_lists_the_known_ones() {
    let mut doc = parse(COMMENTED).unwrap();
    let err = set_entry(
        &mut doc,
        &Scope::Server("ghost".into()),
        MapTable::Env,
        "A",
        "1",
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("unknown server `ghost`"), "{text}");
    assert!(text.contains("known servers: echo, table-env"), "{text}");
}

#[test]
fn profiles_are_created_merged_and_removed() {
    let layer: Layer = serde_json::from_str(
        r#"{"instances": 2, "env": {"LOG": "warn"}, "servers": {"echo": {"port": 9000}}}"#,
    )
    .unwrap();
    let mut doc = parse(COMMENTED).unwrap();
    upsert_profile(&mut doc, "prod", &layer, false).unwrap();
    let text = doc.to_string();
    assert!(
        text.starts_with(COMMENTED),
        "existing text is untouched:\n{text}"
    );
    let added = &text[COMMENTED.len()..];
    assert_eq!(
        added,
        "\n[profiles.prod]\ninstances = 2\nenv = { LOG = \"warn\" }\n\n[profiles.prod.servers.echo]\nport = 9000\n"
    );
    assert!(
        upsert_profile(&mut doc, "prod", &layer, false).is_err(),
        "create refuses an existing profile"
    );

    let update: Layer =
        serde_json::from_str(r#"{"instances": 3, "servers": {"echo": {"bind": "0.0.0.0"}}}"#)
            .unwrap();
    upsert_profile(&mut doc, "prod", &update, true).unwrap();
    let text = doc.to_string();
    assert!(
        text.contains("instances = 3\nenv = { LOG = \"warn\" }\n"),
        "{text}"
    );
    assert!(
        text.contains("[profiles.prod.servers.echo]\nport = 9000\nbind = \"0.0.0.0\"\n"),
        "{text}"
    );
    assert!(
        upsert_profile(&mut doc, "other", &update, true).is_err(),
        "update needs an existing profile"
    );

    remove_profile(&mut doc, "prod").unwrap();
    assert_eq!(doc.to_string(), COMMENTED);
    assert!(remove_profile(&mut doc, "prod").is_err());
}

#[test]
fn a_new_defaults_table_goes_before_the_servers() {
    let src = "version = 1\n\n[servers.a]\ncommand = \"x\"\nport = 1\n";
    let mut doc = parse(src).unwrap();
    set_entry(&mut doc, &Scope::Defaults, MapTable::Env, "A", "1").unwrap();
    assert_eq!(
        doc.to_string(),
        "version = 1\n\n[defaults]\nenv = { A = \"1\" }\n\n[servers.a]\ncommand = \"x\"\nport = 1\n"
    );
}

/// `server start/restart --profile/--port/--mode` and `stop`: after the edit, the
/// effective value equals the flag, wherever the active profile sets the field.
#[test]
fn lifecycle_flags_land_where_they_take_effect() {
    let src = r#"version = 1

[profiles.prod]
port = 9000

[profiles.prod.servers.b]
mode = "remote"
url = "http://127.0.0.1:1/mcp"

[servers.a]
command = "x"
port = 8000

[servers.b]
command = "y"
port = 8001
profile = "prod"
"#;
    let cases: &[(&str, &str, &str, Value)] = &[
        ("a", "default", "port", Value::from(8100)),
        ("a", "default", "state", Value::from("stopped")),
        ("a", "default", "mode", Value::from("local")),
        ("b", "prod", "port", Value::from(9100)),
        ("b", "prod", "mode", Value::from("local")),
        ("b", "prod", "state", Value::from("stopped")),
        ("a", "prod", "port", Value::from(9200)),
    ];
    for (server, profile, field, value) in cases {
        let mut doc = parse(src).unwrap();
        let raw = crate::model::parse_raw(src).unwrap();
        if *profile != profile_of(&raw, server) {
            set_value(
                server_table(&mut doc, server).unwrap(),
                "profile",
                Value::from(*profile),
            );
        }
        set_server_field(&mut doc, &raw, server, profile, field, value.clone()).unwrap();
        let text = doc.to_string();
        let config = crate::model::parse(&text).unwrap_or_else(|d| panic!("{d:?}\n{text}"));
        let spec = serde_json::to_value(&config.servers[*server]).unwrap();
        let want = serde_json::to_value(value.as_integer().map_or_else(
            || serde_json::Value::from(value.as_str().unwrap_or_default()),
            serde_json::Value::from,
        ))
        .unwrap();
        assert_eq!(
            spec[*field], want,
            "{server} {field} under {profile}:\n{text}"
        );
        assert!(
            text.starts_with("version = 1\n\n[profiles.prod]\nport = 9000\n"),
            "{text}"
        );
    }
}

#[test]
fn removing_a_recipient_that_is_not_there_is_an_error_naming_those_that_are() {
    let (alice, bob) = ("age1alice".to_string(), "age1bob".to_string());
    let mut list = vec![alice.clone(), bob.clone()];
    remove_recipient(&mut list, &bob).unwrap();
    assert_eq!(list, ["age1alice"]);

    let err = remove_recipient(&mut list, "age1alicf")
        .unwrap_err()
        .to_string();
    assert_eq!(list, ["age1alice"], "nothing removed");
    assert!(err.contains("`age1alicf` is not a recipient"), "{err}");
    assert!(err.contains(&alice), "{err}");

    let err = remove_recipient(&mut Vec::new(), &alice)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no recipients"), "{err}");
}

#[test]
fn instances_and_autoscale_replace_each_other_where_either_is_set() {
    let src = "version = 1\n\n[profiles.prod]\ninstances = 4\n\n[servers.a]\ncommand = \"x\"\nport = 8000\nautoscale = { max = 3 } # follows the load\n\n[servers.b]\ncommand = \"y\"\nport = 8001\nprofile = \"prod\"\n";
    let raw = crate::model::parse_raw(src).unwrap();
    let mut doc = parse(src).unwrap();
    set_server_field(&mut doc, &raw, "a", "default", "instances", Value::from(2)).unwrap();
    let text = doc.to_string();
    assert!(!text.contains("autoscale"), "{text}");
    let config = crate::model::parse(&text).unwrap();
    assert_eq!(
        (config.servers["a"].instances, config.servers["a"].autoscale),
        (2, None)
    );

    let mut doc = parse(src).unwrap();
    let mut bounds = toml_edit::InlineTable::new();
    bounds.insert("min", Value::from(0));
    bounds.insert("max", Value::from(2));
    set_server_field(
        &mut doc,
        &raw,
        "b",
        "prod",
        "autoscale",
        Value::InlineTable(bounds),
    )
    .unwrap();
    let text = doc.to_string();
    let config = crate::model::parse(&text).unwrap_or_else(|d| panic!("{d:?}\n{text}"));
    let b = &config.servers["b"];
    assert_eq!(
        b.autoscale.map(|a| (a.min, a.max)),
        Some((0, 2)),
        "written where the profile's count would win:\n{text}"
    );
    assert!(text.contains("[profiles.prod]\ninstances = 4"), "{text}");
}
