use super::*;
use crate::model::spec::{Mode, RestartPolicy, State, Transport};

const BASE: &str = r#"
version = 1

[defaults]
restart = "always"
env = { LOG = "info", SHARED = "d" }
stop_timeout = "5s"

[profiles.production]
instances = 2
env = { LOG = "warn" }

[profiles.production.servers.web]
port = 9001
args = ["--prod"]

[servers.web]
command = "web-server"
args = ["--dev"]
port = 8001
env = { OWN = "1" }
profile = "production"

[servers.other]
command = "other"
port = 8002
"#;

fn config(src: &str) -> Config {
    match parse(src) {
        Ok(c) => c,
        Err(diags) => panic!(
            "{}",
            diags
                .iter()
                .map(|d| d.render("t.toml", src))
                .collect::<String>()
        ),
    }
}

fn errors(src: &str) -> Vec<String> {
    match parse(src) {
        Ok(_) => panic!("expected errors for:\n{src}"),
        Err(diags) => diags.iter().map(|d| d.render("t.toml", src)).collect(),
    }
}

#[test]
fn layers_apply_in_order_defaults_server_profile_override() {
    let c = config(BASE);
    let web = &c.servers["web"];
    assert_eq!(web.port, 9001, "the profile's per-server override wins");
    assert_eq!(web.args, vec!["--prod"]);
    assert_eq!(web.instances, 2, "the profile beats the built-in default");
    assert_eq!(web.restart, RestartPolicy::Always, "[defaults] applies");
    assert_eq!(web.stop_timeout, std::time::Duration::from_secs(5));
    let env: Vec<(&str, &str)> = web
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(env, vec![("LOG", "warn"), ("OWN", "1"), ("SHARED", "d")]);
    assert_eq!(web.profile, "production");

    let other = &c.servers["other"];
    assert_eq!(other.instances, 1);
    assert_eq!(other.profile, DEFAULT_PROFILE);
    assert_eq!(other.transport, Transport::Stdio);
    assert_eq!(other.mode, Mode::Local);
    assert_eq!(other.state, State::Running);
    assert_eq!(other.bind.to_string(), "127.0.0.1");
    assert_eq!(
        c.profiles.iter().collect::<Vec<_>>(),
        vec!["default", "production"]
    );
}

#[test]
fn switching_profile_changes_what_runs() {
    let dev = config(&BASE.replace("profile = \"production\"", "profile = \"default\""));
    let prod = config(BASE);
    assert_eq!(dev.servers["web"].port, 8001);
    assert_ne!(
        SpecHash::of(&dev.servers["web"]),
        SpecHash::of(&prod.servers["web"])
    );
}

#[test]
fn spec_hash_ignores_key_order_formatting_and_comments() {
    let a = "version = 1\n[servers.s]\ncommand = \"x\"\nargs = [\"a\", \"b\"]\nport = 8000\nenv = { A = \"1\", B = \"2\" }\n";
    let b = "# a comment\nversion=1\n\n[servers.s.env]\nB=\"2\"\nA = '1'\n\n[servers.s]\nport=8000 # port\ncommand = 'x'\nargs = [ 'a',\n 'b', ]\n";
    let ha = SpecHash::of(&config(a).servers["s"]);
    let hb = SpecHash::of(&config(b).servers["s"]);
    assert_eq!(ha, hb);
}

#[test]
fn spec_hash_changes_with_every_field_that_matters() {
    let base = "version = 1\n[servers.s]\ncommand = \"x\"\nport = 8000\n";
    let h = |extra: &str, replace: Option<(&str, &str)>| {
        let mut src = format!("{base}{extra}");
        if let Some((from, to)) = replace {
            src = src.replace(from, to);
        }
        SpecHash::of(&config(&src).servers["s"])
    };
    let original = h("", None);
    let restarting = [
        ("args = [\"a\"]\n", None),
        ("cwd = \"sub\"\n", None),
        ("env = { A = \"1\" }\n", None),
        ("transport = \"sse\"\n", None),
        ("bind = \"127.0.0.2\"\n", None),
        ("mode = \"remote\"\nurl = \"https://x.invalid/mcp\"\n", None),
        ("", Some(("command = \"x\"", "command = \"y\""))),
        ("", Some(("port = 8000", "port = 8001"))),
    ];
    for (extra, replace) in restarting {
        assert_ne!(
            h(extra, replace),
            original,
            "changing {extra}{replace:?} must change the hash"
        );
    }
    for extra in [
        "instances = 3\n",
        "restart = \"never\"\n",
        "stop_timeout = \"1m\"\n",
        "start_timeout = \"5s\"\n",
        "state = \"stopped\"\n",
    ] {
        assert_eq!(h(extra, None), original, "{extra} is not part of what runs");
    }
    // Equivalent durations and defaults spelled out are the same spec.
    assert_eq!(
        h("bind = \"127.0.0.1\"\ntransport = \"stdio\"\n", None),
        original
    );
}

#[test]
fn remote_servers_ignore_command_fields() {
    let c = config(
        "version = 1\n[servers.r]\nmode = \"remote\"\nurl = \"http://127.0.0.1:9/mcp\"\ncommand = \"x\"\nport = 8000\n",
    );
    assert_eq!(c.servers["r"].command, None);
}

/// Each bad input: the message, and the `file:line:col` it points at.
#[test]
fn every_bad_input_names_file_line_and_column() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "version = 1\n[servers.a]\nprot = 1\n",
            "unknown field `prot`",
            "t.toml:3:1",
        ),
        (
            "version = 1\n[servers.a]\ncommand = 1\nport = 1\n",
            "invalid type",
            "t.toml:3:11",
        ),
        (
            "version = 1\n[servers.a]\ncommand = \"x\"\nport = 1\ntransport = \"sse\"\ninstances = 2\n",
            "only one instance is supported",
            "t.toml:6:13",
        ),
        (
            "version = 1\n[servers.a]\ncommand = \"x\"\nport = 1\ntls = { cert = \"c.pem\" }\n",
            "missing field `key`",
            "t.toml:5:7",
        ),
        (
            "version = 1\n[servers.a]\ncommand = \"x\"\nport = 1\ntls = { cert = \"c.pem\", key = \"k.pem\", ca = \"x\" }\n",
            "unknown field `ca`",
            "t.toml:5:",
        ),
        (
            "version = 1\n[servers.a]\ncommand = \"x\"\nport = 70000\n",
            "out of range",
            "t.toml:4:8",
        ),
        (
            "version = 1\n[servers.a]\ncommand = \"x\"\nport = 0\n",
            "out of range",
            "t.toml:4:8",
        ),
        (
            "version = 1\n[servers.a]\ncommand = \"x\"\nport = 8000\n[servers.b]\ncommand = \"y\"\nport = 8000\n",
            "port 8000 is used by both",
            "t.toml:7:8",
        ),
        (
            "version = 1\n[servers.A]\ncommand = \"x\"\nport = 1\n",
            "invalid server name `A`",
            "t.toml:2:10",
        ),
        (
            "version = 1\n[profiles.\"a b\"]\n",
            "invalid profile name `a b`",
            "t.toml:2:11",
        ),
        (
            "version = 1\n[servers.a]\ncommand = \"x\"\nport = 1\nenv = { 1X = \"v\" }\n",
            "invalid environment variable name `1X`",
            "t.toml:5:9",
        ),
        (
            "version = 1\n[servers.a]\ncommand = \"x\"\nport = 1\nprofile = \"prod\"\n",
            "profile `prod`, which does not exist",
            "t.toml:5:11",
        ),
        (
            "version = 1\n[servers.a]\nmode = \"remote\"\nport = 1\n",
            "remote but has no `url`",
            "t.toml:3:8",
        ),
        (
            "version = 2\n",
            "unsupported format version 2",
            "t.toml:1:11",
        ),
        (
            "[servers.a]\ncommand = \"x\"\nport = 1\n",
            "missing `version`",
            "t.toml:1:1",
        ),
        (
            "version = 1\n[servers.a]\nport = 1\n",
            "has no `command`",
            "t.toml:2:10",
        ),
        (
            "version = 1\n[servers.a]\ncommand = \"x\"\n",
            "has no `port`",
            "t.toml:2:10",
        ),
        (
            "version = 1\n[servers.a]\ncommand = \"x\"\nport = 1\nbind = \"home\"\n",
            "not an IP address",
            "t.toml:5:8",
        ),
        (
            "version = 1\n[servers.a]\ncommand = \"x\"\nport = 1\ninstances = 0\n",
            "`instances`",
            "t.toml:5:13",
        ),
        (
            "version = 1\n[servers.a]\ncommand = \"x\"\nport = 1\nstop_timeout = \"soon\"\n",
            "not a duration",
            "t.toml:5:16",
        ),
        (
            "version = 1\n[servers.a]\ncommand = \"x\"\nport = 1\ntransport = \"grpc\"\n",
            "unknown variant `grpc`",
            "t.toml:5:13",
        ),
        (
            "version = 1\n[servers.a]\ncommand = \"x\"\nport = 1\nurl = \"ftp://x\"\n",
            "invalid `url`",
            "t.toml:5:7",
        ),
        ("version = 1\n[servers.a\n", "invalid TOML", "t.toml:2:"),
        (
            "version = 1\n[profiles.p]\nprofile = \"q\"\n",
            "cannot select another profile",
            "t.toml:3:1",
        ),
        (
            "version = 1\n[profiles.p.servers.ghost]\nport = 1\n",
            "overrides unknown server `ghost`",
            "t.toml:2:21",
        ),
        (
            "version = 1\n[servers.a]\ncommand = \"x\"\nport = 1\n[servers.a.servers.b]\n",
            "only allowed inside a profile",
            "t.toml:5:",
        ),
    ];
    for (src, message, place) in cases {
        let all = errors(src).join("\n");
        assert!(
            all.contains(message),
            "want `{message}` for:\n{src}\ngot:\n{all}"
        );
        assert!(
            all.contains(place),
            "want `{place}` for:\n{src}\ngot:\n{all}"
        );
        assert!(all.contains("help:"), "every error carries a hint:\n{all}");
    }
}

#[test]
fn profile_override_error_points_at_the_override() {
    let src = "version = 1\n[servers.a]\ncommand = \"x\"\nport = 8000\nprofile = \"p\"\n[profiles.p.servers.a]\nport = 99999\n";
    let all = errors(src).join("\n");
    assert!(all.contains("t.toml:7:8"), "{all}");
}

#[test]
fn all_problems_are_reported_at_once() {
    let src = "version = 1\n[servers.a]\nport = 1\n[servers.b]\ncommand = \"x\"\n";
    assert_eq!(errors(src).len(), 2);
}

/// Every field a server block can hold reaches the effective spec (a field added to
/// `Layer` but forgotten in `resolve` fails here).
#[test]
fn every_server_field_reaches_the_spec() {
    let src = r#"
version = 1
[profiles.p]
[servers.s]
command = "c"
args = ["a"]
cwd = "sub"
env = { K = "v" }
secrets = { T = "age:abc" }
auth = { bearer = "T", tokens = true, oidc = { issuer = "https://id.example", audience = "https://mcp.example/mcp", scopes = { "mcp:read" = ["r*"] }, rate = "10/min" } }
tls = { cert = "c.pem", key = "k.pem" }
image = "node:22-bookworm-slim"
headers = { X = "${K}" }
pin = true
transport = "stdio"
mode = "local"
url = "http://127.0.0.1:1/mcp"
port = 1234
bind = "0.0.0.0"
profile = "p"
state = "stopped"
sharing = "per-session"
network = "isolated"
tools = { deny = ["x*"] }
instances = 3
restart = "never"
stop_timeout = "7s"
start_timeout = "9s"
call_timeout = "2m"
drain_timeout = "4s"
session_idle = "90s"
max_sessions = 50
limits = { memory = "1GiB", nofile = 2048 }
health = { interval = "5s", timeout = "1s", failures = 2 }
"#;
    let raw = parse_raw(src).unwrap();
    let table: toml::Table = toml::from_str(src).unwrap();
    let written: Vec<&String> = table["servers"]["s"].as_table().unwrap().keys().collect();
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<super::raw::RawConfig>()
        .to_value();
    let mut every: Vec<&String> = schema["$defs"]["Layer"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        // `autoscale` excludes `instances`: autoscale_replaces_instances_... covers it.
        .filter(|k| *k != "servers" && *k != "autoscale")
        .collect();
    let mut set = written.clone();
    every.sort();
    set.sort();
    assert_eq!(set, every, "the test must set every server field");
    assert!(toml::Value::try_from(&raw.servers["s"]).is_ok());
    let spec = &config(src).servers["s"];
    let json = serde_json::to_value(spec).unwrap();
    let expect = serde_json::json!({
        "name": "s", "command": "c", "args": ["a"], "cwd": "sub", "env": {"K": "v"},
        "secrets": {"T": {"place": "servers.s.T", "ciphertext": "age:abc", "digest": null}},
        "transport": "stdio", "network": "isolated", "tools": {"deny": ["x*"]}, "mode": "local", "url": "http://127.0.0.1:1/mcp", "port": 1234,
        "bind": "0.0.0.0", "profile": "p", "state": "stopped", "sharing": "per-session", "instances": 3, "restart": "never",
        "stop_timeout": "7s", "start_timeout": "9s", "call_timeout": "2m", "drain_timeout": "4s", "session_idle": "1m 30s", "max_sessions": 50,
        "limits": {"memory_bytes": 1073741824u64, "nofile": 2048},
        "health": {"interval": "5s", "timeout": "1s", "failures": 2},
        "auth_bearer": "T", "auth_tokens": true, "pin": true,
        "auth_oidc": {"issuer": "https://id.example", "audience": "https://mcp.example/mcp",
            "scopes": {"mcp:read": ["r*"]}, "rate": {"requests": 10, "per_secs": 60}}, "headers": {"X": "${K}"},
        "tls": {"cert": "c.pem", "key": "k.pem"},
        "image": "node:22-bookworm-slim"
    });
    assert_eq!(json, expect);
    assert!(
        spec.warnings().is_empty(),
        "TLS: nothing crosses the network in clear"
    );
    assert!(spec.base_url().starts_with("https://"));
    let mut clear = spec.clone();
    clear.tls = None;
    assert_eq!(clear.warnings().len(), 1, "beyond loopback without TLS");
    let layer_fields = serde_json::to_value(crate::model::raw::Layer::default()).unwrap();
    assert!(layer_fields.as_object().unwrap().is_empty());
}

#[test]
fn header_templates_name_their_variables() {
    use crate::model::resolve::template_names;
    assert_eq!(template_names("Bearer ${TOKEN}"), vec!["TOKEN"]);
    assert_eq!(template_names("${A}-${B} ${unterminated"), vec!["A", "B"]);
    assert!(template_names("plain").is_empty());
    let c = config(
        "version = 1\n[servers.r]\nmode = \"remote\"\nurl = \"http://127.0.0.1:9/mcp\"\nport = 8000\nenv = { T = \"x\" }\nheaders = { Authorization = \"Bearer ${T}\" }\n",
    );
    assert_eq!(
        c.servers["r"].transport,
        Transport::StreamableHttp,
        "remote servers default to Streamable HTTP"
    );
}

#[test]
fn max_sessions_defaults_and_is_checked() {
    let spec = &config("version = 1\n[servers.s]\ncommand = \"c\"\nport = 1\n").servers["s"];
    assert_eq!(spec.max_sessions, 10_000);
    assert_eq!(spec.session_idle, std::time::Duration::from_secs(1800));
    let own =
        &config("version = 1\n[servers.s]\ncommand = \"c\"\nport = 1\nsharing = \"per-session\"\n")
            .servers["s"];
    assert_eq!(
        (own.max_sessions, own.session_idle),
        (100, std::time::Duration::from_secs(300)),
        "a per-session server's sessions are processes: fewer, and shorter-lived"
    );
    let bad = "version = 1\n[servers.s]\ncommand = \"c\"\nport = 1\nmax_sessions = 0\n";
    let errors = errors(bad);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("`max_sessions` of server `s` must be at least 1")),
        "{errors:?}"
    );
}

#[test]
fn health_and_call_timeout_default_and_are_checked() {
    let c = config("version = 1\n[servers.s]\ncommand = \"c\"\nport = 1\n");
    let spec = &c.servers["s"];
    assert_eq!(spec.call_timeout, std::time::Duration::from_secs(300));
    assert_eq!(spec.health, crate::model::spec::HealthCheck::default());
    let bad = "version = 1\n[servers.s]\ncommand = \"c\"\nport = 1\ncall_timeout = \"soon\"\nhealth = { interval = \"x\", failures = 0 }\n";
    let errors = errors(bad);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("`call_timeout` of server `s` is not a duration")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("`health.interval` of server `s` is not a duration")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("`health.failures` of server `s` is out of range")),
        "{errors:?}"
    );
}

#[test]
fn the_metrics_address_is_checked_for_its_form_and_its_port() {
    let server = "[servers.a]\ncommand = \"a\"\nport = 9000\n";
    let ok = config(&format!(
        "version = 1\n[daemon]\nmetrics = \"127.0.0.1:9464\"\n{server}"
    ));
    assert_eq!(ok.metrics, Some("127.0.0.1:9464".parse().unwrap()));
    assert_eq!(config(&format!("version = 1\n{server}")).metrics, None);
    let bad = errors(&format!(
        "version = 1\n[daemon]\nmetrics = \"localhost\"\n{server}"
    ));
    assert!(
        bad[0].contains("`localhost` is not an address to listen on"),
        "{bad:?}"
    );
    assert!(bad[0].contains("t.toml:3:"), "{bad:?}");
    let clash = errors(&format!(
        "version = 1\n[daemon]\nmetrics = \"127.0.0.1:9000\"\n{server}"
    ));
    assert!(
        clash[0].contains("port 9000 is used by both `a` and `[daemon] metrics`"),
        "{clash:?}"
    );
    let unknown = errors(&format!("version = 1\n[daemon]\nmetric = \"x\"\n{server}"));
    assert!(unknown[0].contains("unknown field `metric`"), "{unknown:?}");
}

#[test]
fn the_dashboard_address_is_loopback_with_a_port_of_its_own() {
    let server = "[servers.a]\ncommand = \"a\"\nport = 9000\n";
    let ok = config(&format!(
        "version = 1\n[daemon]\nui = \"127.0.0.1:9470\"\n{server}"
    ));
    assert_eq!(ok.ui, Some("127.0.0.1:9470".parse().unwrap()));
    let wide = errors(&format!(
        "version = 1\n[daemon]\nui = \"0.0.0.0:9470\"\n{server}"
    ));
    assert!(
        wide[0].contains("loopback only, not on 0.0.0.0"),
        "{wide:?}"
    );
    assert!(wide[0].contains("t.toml:3:"), "{wide:?}");
    let clash = errors(&format!(
        "version = 1\n[daemon]\nui = \"127.0.0.1:9000\"\n{server}"
    ));
    assert!(
        clash[0].contains("used by both `a` and `[daemon] ui`"),
        "{clash:?}"
    );
    let both = errors(&format!(
        "version = 1\n[daemon]\nmetrics = \"127.0.0.1:9464\"\nui = \"127.0.0.1:9464\"\n{server}"
    ));
    assert!(
        both[0].contains("used by both `[daemon] metrics` and `[daemon] ui`"),
        "{both:?}"
    );
}

#[test]
fn limits_are_parsed_and_checked() {
    use super::resolve::parse_size;
    assert_eq!(parse_size("512MiB"), Some(512 << 20));
    assert_eq!(parse_size("2GiB"), Some(2 << 30));
    assert_eq!(parse_size("800MB"), Some(800_000_000));
    assert_eq!(parse_size("64K"), Some(64 << 10));
    assert_eq!(parse_size("1.5G"), Some(3 << 29));
    assert_eq!(parse_size("lots"), None);
    assert_eq!(parse_size("5 parsecs"), None);
    let src = "version = 1\n[defaults]\nlimits = { memory = \"256MiB\" }\n[servers.s]\ncommand = \"c\"\nport = 1\nlimits = { memory = \"64MiB\", nofile = 4096, cpu = 1.5 }\n";
    let spec = &config(src).servers["s"];
    assert_eq!(
        spec.limits.memory_bytes,
        Some(64 << 20),
        "the server's own table wins"
    );
    assert_eq!(spec.limits.nofile, Some(4096));
    assert_eq!(spec.limits.cpu_millis, Some(1500));
    assert!(
        spec.warnings().is_empty(),
        "whether cgroups enforce limits is the machine's matter (crate's cgroup module): {:?}",
        spec.warnings()
    );
    let bad = errors(
        "version = 1\n[servers.s]\ncommand = \"c\"\nport = 1\nlimits = { memory = \"1KiB\", nofile = 3, cpu = 0.0001 }\n",
    );
    let all = bad.join("\n");
    assert!(
        all.contains("`limits.memory` of server `s` is not a size"),
        "{all}"
    );
    assert!(
        all.contains("`limits.nofile` of server `s` is out of range"),
        "{all}"
    );
    assert!(
        all.contains("`limits.cpu` of server `s` is out of range"),
        "{all}"
    );
    let unknown =
        errors("version = 1\n[servers.s]\ncommand = \"c\"\nport = 1\nlimits = { disk = \"1G\" }\n");
    assert!(unknown[0].contains("unknown field `disk`"), "{unknown:?}");
}

#[test]
fn per_session_servers_keep_fewer_sessions_by_default() {
    let shared = config("version = 1\n[servers.s]\ncommand = \"c\"\nport = 1\n");
    assert_eq!(shared.servers["s"].max_sessions, 10_000);
    let own =
        config("version = 1\n[servers.s]\ncommand = \"c\"\nport = 1\nsharing = \"per-session\"\n");
    assert_eq!(own.servers["s"].max_sessions, 100);
    let set = config(
        "version = 1\n[servers.s]\ncommand = \"c\"\nport = 1\nsharing = \"per-session\"\nmax_sessions = 7\n",
    );
    assert_eq!(set.servers["s"].max_sessions, 7);
}

#[test]
fn autoscale_replaces_instances_layer_by_layer_and_is_checked() {
    let server = "[servers.s]\ncommand = \"c\"\nport = 1\n";
    let spec = &config(&format!(
        "version = 1\n{server}autoscale = {{ min = 0, max = 3, target_sessions = 2, scale_down_after = \"1m\" }}\n"
    ))
    .servers["s"];
    let a = spec.autoscale.expect("autoscale");
    assert_eq!((a.min, a.max, a.target_sessions), (0, 3, Some(2)));
    assert_eq!(a.scale_down_after, std::time::Duration::from_secs(60));
    assert_eq!(a.idle_after, std::time::Duration::from_secs(600), "default");
    assert_eq!(
        spec.instances, 1,
        "a start begins with one, even with min 0"
    );
    // The later layer's choice wins (defaults < server < profile < its override).
    let profile = "[profiles.default]\nautoscale = { max = 2 }\n";
    let spec = &config(&format!("version = 1\n{profile}{server}instances = 4\n")).servers["s"];
    assert_eq!(spec.autoscale.map(|a| (a.min, a.max)), Some((1, 2)));
    let over = "[profiles.default.servers.s]\ninstances = 3\n";
    let spec = &config(&format!(
        "version = 1\n{server}autoscale = {{ max = 2 }}\n{over}"
    ))
    .servers["s"];
    assert_eq!(
        (spec.autoscale, spec.instances),
        (None, 3),
        "the override wins"
    );

    let bad = |extra: &str| errors(&format!("version = 1\n{server}{extra}\n")).join("\n");
    let both = bad("instances = 2\nautoscale = { max = 3 }");
    assert!(
        both.contains("sets both `instances` and `autoscale`"),
        "{both}"
    );
    let inverted = bad("autoscale = { min = 4, max = 2 }");
    assert!(inverted.contains("`min` (4) above `max` (2)"), "{inverted}");
    let range = bad("autoscale = { max = 100 }");
    assert!(
        range.contains("`autoscale.max` of server `s` is out of range"),
        "{range}"
    );
    let zero = bad("autoscale = { max = 1, target_sessions = 0 }");
    assert!(zero.contains("`autoscale.target_sessions`"), "{zero}");
    let flap = bad("autoscale = { max = 2, scale_down_after = \"0s\" }");
    assert!(
        flap.contains("`autoscale.scale_down_after` of server `s` is zero"),
        "{flap}"
    );
    let idle = bad("autoscale = { min = 0, max = 1, idle_after = \"0s\" }");
    assert!(
        idle.contains("`autoscale.idle_after` of server `s` is zero"),
        "{idle}"
    );
    let unknown = bad("autoscale = { max = 2, target = 3 }");
    assert!(unknown.contains("unknown field `target`"), "{unknown}");
    let missing = bad("autoscale = { min = 1 }");
    assert!(missing.contains("missing field `max`"), "{missing}");
    let http = bad("transport = \"streamable-http\"\nautoscale = { max = 2 }");
    assert!(http.contains("`autoscale` is for stdio servers"), "{http}");
    let own = bad("sharing = \"per-session\"\nautoscale = { max = 2 }");
    assert!(
        own.contains("`sharing = \"per-session\"` and `autoscale`"),
        "{own}"
    );
}

/// Issue 28: a local server that speaks HTTP behind `auth` gets a network of its own by
/// default (its inner port would let any local user around the bearer); the file can
/// say otherwise, and only a local server runs anywhere.
#[test]
fn r28_a_local_http_server_behind_auth_is_isolated_unless_the_file_says_host() {
    use crate::model::spec::Network;
    let src = r#"
version = 1
[servers.web]
command = "web"
transport = "streamable-http"
port = 8001
secrets = { TOK = "age:abc" }
auth = { bearer = "TOK" }
[servers.open]
command = "web"
transport = "streamable-http"
port = 8002
[servers.chosen]
command = "web"
transport = "streamable-http"
port = 8003
secrets = { TOK = "age:abc" }
auth = { bearer = "TOK" }
network = "host"
[servers.stdio]
command = "echo"
port = 8004
network = "isolated"
"#;
    let c = config(src);
    let network = |name: &str| c.servers[name].network;
    assert_eq!(network("web"), Network::Isolated);
    assert_eq!(network("open"), Network::Host);
    assert_eq!(network("chosen"), Network::Host);
    assert_eq!(network("stdio"), Network::Isolated);
    assert_eq!(
        crate::model::resolve::network_of(
            false,
            Transport::StreamableHttp,
            true,
            Some(Network::Isolated)
        ),
        Network::Host,
        "a remote server runs nothing here"
    );
    // Where the machine gives no namespace, the risk is said for what asked for one.
    let why = "no user namespaces";
    let web = c.servers["web"].unisolated_warning(why).unwrap();
    assert!(
        web.contains(
            "server `web` runs on the machine's network, not isolated (no user namespaces)"
        ),
        "{web}"
    );
    assert!(web.contains("without the bearer"), "{web}");
    assert!(
        c.servers["stdio"]
            .unisolated_warning(why)
            .unwrap()
            .contains("can reach the network")
    );
    assert_eq!(c.servers["open"].unisolated_warning(why), None);
    // Behind auth on the machine's network: the risk is said.
    let chosen = c.servers["chosen"].warnings();
    assert!(
        chosen
            .iter()
            .any(|w| w.contains("has `auth` but runs on the machine's network")),
        "{chosen:?}"
    );
    assert!(c.servers["web"].warnings().is_empty());
    // Only what is isolated counts in the spec's identity: host servers hash as before.
    let attrs = c.servers["open"].attributes();
    assert!(
        attrs
            .iter()
            .all(|a| a.name != "network" || a.value.is_none())
    );
}

/// From the attack: a secret not set yet no longer hides other problems (a port that
/// collides was invisible while `auth` named a missing secret).
#[test]
fn a_secret_not_set_yet_does_not_hide_a_port_collision() {
    let src = "version = 1\n[servers.s1]\ncommand = \"c\"\nport = 8001\nsecrets = { T1 = \"age:abc\" }\nauth = { bearer = \"T1\" }\n[servers.s2]\ncommand = \"c\"\nport = 8001\nauth = { bearer = \"T2\" }\n";
    let all = errors(src).join("\n");
    assert!(all.contains("names secret `T2`"), "{all}");
    assert!(all.contains("port 8001 is used by both"), "{all}");
}

/// Issue 29: `discovery` on an endpoint, as a switch or a table.
fn with_discovery(value: &str) -> String {
    format!(
        "version = 1\n[servers.a]\ncommand = \"a\"\nport = 8001\n\
         [endpoints.work]\nport = 8100\nservers = [\"a\"]\ndiscovery = {value}\n"
    )
}

#[test]
fn discovery_is_a_switch_or_a_table() {
    use crate::model::endpoint::DiscoverySpec;
    let on = |v: &str| {
        config(&with_discovery(v)).endpoints["work"]
            .discovery
            .clone()
    };
    assert_eq!(on("true"), Some(DiscoverySpec::default()));
    assert_eq!(on("false"), None);
    assert_eq!(
        on("{ when_over = 40, always = [\"a__echo\"] }"),
        Some(DiscoverySpec {
            when_over: Some(40),
            always: vec!["a__echo".into()],
        })
    );
    // A table without `when_over` is always on.
    assert_eq!(on("{ always = [\"x\"] }").and_then(|d| d.when_over), None);
    let missing = config(&with_discovery("false").replace("discovery = false\n", ""));
    assert_eq!(missing.endpoints["work"].discovery, None);
}

#[test]
fn bad_discovery_names_file_line_and_column() {
    let cases: &[(&str, &[&str])] = &[
        ("0", &["t.toml:8:", "`true`, `false` or a table"]),
        ("\"yes\"", &["t.toml:8:", "`true`, `false` or a table"]),
        (
            "{ when_ove = 4 }",
            &["t.toml:8:", "unknown field `when_ove`"],
        ),
        ("{ when_over = \"4\" }", &["t.toml:8:", "invalid type"]),
        ("{ when_over = 0 }", &["t.toml:8:27", "below 1"]),
        (
            "{ always = [\"fs read\"] }",
            &["t.toml:8:24", "`fs read`", "no agent can call"],
        ),
        ("{ always = \"x\" }", &["t.toml:8:", "invalid type"]),
    ];
    for (value, wants) in cases {
        let all = errors(&with_discovery(value)).join("\n");
        for want in *wants {
            assert!(all.contains(want), "{value}: want {want:?} in\n{all}");
        }
    }
    let many: Vec<String> = (0..65).map(|i| format!("\"t{i}\"")).collect();
    let all = errors(&with_discovery(&format!(
        "{{ always = [{}] }}",
        many.join(", ")
    )))
    .join("\n");
    assert!(all.contains("more than 64"), "{all}");
}
