use super::*;

fn config(src: &str) -> BTreeMap<String, ServerSpec> {
    crate::model::parse(src).unwrap().servers
}

fn options(secrets: Option<&BTreeMap<String, BTreeMap<String, String>>>) -> Options<'_> {
    Options {
        namespace: "mcp",
        mcpctl_image: "ghcr.io/mcpctl/mcpctl:test".into(),
        session_routing: SessionRouting::Sealed,
        secrets,
    }
}

fn text(servers: &BTreeMap<String, ServerSpec>, o: &Options<'_>) -> BTreeMap<String, String> {
    render(servers, &BTreeMap::new(), o)
        .unwrap()
        .into_iter()
        .map(|r| (r.server.clone(), r.text()))
        .collect()
}

const TWO: &str = r#"version = 1
[servers.github]
command = "npx"
args = ["-y", "@modelcontextprotocol/server-github"]
port = 8001
env = { LOG = "info" }
secrets = { GITHUB_TOKEN = "age:c2VjcmV0LWNpcGhlcnRleHQ" }
auth = { bearer = "GITHUB_TOKEN" }
autoscale = { min = 1, max = 4, target_sessions = 20, scale_down_after = "2m" }
limits = { memory = "512MiB", cpu = 0.5 }

[servers.echo]
command = "mcp-echo"
port = 8002
"#;

#[test]
fn a_server_becomes_a_deployment_service_configmap_and_autoscaler_without_secret_values() {
    let servers = config(TWO);
    let all = render(&servers, &BTreeMap::new(), &options(None)).unwrap();
    let github = all.iter().find(|r| r.server == "github").unwrap();
    let kinds: Vec<&str> = github
        .objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "Deployment",
            "Service",
            "HorizontalPodAutoscaler"
        ],
        "no Secret without --include-secrets"
    );
    let deployment = &github.objects[1];
    assert!(
        deployment["spec"].get("replicas").is_none(),
        "the HPA owns it"
    );
    let pod = &deployment["spec"]["template"]["spec"];
    let args: Vec<&str> = pod["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let joined = args.join(" ");
    assert!(
        joined.starts_with("gateway --port 8001 --bind 0.0.0.0 --auth-bearer-env GITHUB_TOKEN --session-key-env MCPCTL_SESSION_KEY --advertise http://$(POD_IP):8001 --metrics 0.0.0.0:9464 -- npx -y"),
        "{joined}"
    );
    assert_eq!(pod["containers"][0]["image"], "node:22-bookworm-slim");
    assert_eq!(
        pod["initContainers"][0]["image"],
        "ghcr.io/mcpctl/mcpctl:test"
    );
    assert_eq!(
        pod["containers"][0]["resources"]["limits"],
        json!({"memory": "536870912", "cpu": "500m"})
    );
    let hpa = &github.objects[3];
    assert_eq!(
        (
            hpa["spec"]["minReplicas"].as_u64(),
            hpa["spec"]["maxReplicas"].as_u64()
        ),
        (Some(1), Some(4))
    );
    assert_eq!(
        hpa["spec"]["metrics"][0]["pods"]["metric"]["name"],
        "mcpctl_sessions"
    );
    assert_eq!(
        hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"],
        120
    );
    let text = github.text();
    assert!(
        !text.contains("c2VjcmV0"),
        "no ciphertext in a manifest:\n{text}"
    );
    assert!(
        text.contains("create secret generic mcp-github-secrets --from-literal=GITHUB_TOKEN=..."),
        "{text}"
    );
    assert!(text.contains("mcp-github-session-key"), "{text}");
    for label in [
        "app.kubernetes.io/name",
        "app.kubernetes.io/managed-by",
        "app.kubernetes.io/part-of",
    ] {
        assert!(
            deployment["metadata"]["labels"].get(label).is_some(),
            "{label}"
        );
    }
    // One instance, no auth: a plain Deployment of one, said to be open.
    let echo = all.iter().find(|r| r.server == "echo").unwrap();
    let deployment = echo
        .objects
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .unwrap();
    assert_eq!(deployment["spec"]["replicas"], 1);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["containers"][0]["image"], "ghcr.io/mcpctl/mcpctl:test");
    assert!(
        pod.get("initContainers").is_none(),
        "mcp-echo ships in mcpctl's image"
    );
    assert!(echo.text().contains("--allow-no-auth"));
    assert!(echo.notes.iter().any(|n| n.contains("has no `auth`")));
}

#[test]
fn secret_values_appear_only_when_given() {
    let servers = config(TWO);
    let values = BTreeMap::from([(
        "github".to_string(),
        BTreeMap::from([("GITHUB_TOKEN".to_string(), "ghp_plaintext".to_string())]),
    )]);
    let with = text(&servers, &options(Some(&values)));
    assert!(with["github"].contains("kind: \"Secret\""));
    assert!(with["github"].contains("ghp_plaintext"));
    let without = text(&servers, &options(None));
    assert!(
        without
            .values()
            .all(|t| !t.contains("ghp_plaintext") && !t.contains("kind: \"Secret\""))
    );
}

#[test]
fn changing_one_servers_args_changes_only_its_deployment_and_hash() {
    let before = text(&config(TWO), &options(None));
    let changed = TWO.replace("server-github\"]", "server-github\", \"--read-only\"]");
    let after = text(&config(&changed), &options(None));
    assert_eq!(
        before["echo"], after["echo"],
        "the other server is not touched"
    );
    assert_ne!(before["github"], after["github"]);
    let hash = |t: &str| {
        t.lines()
            .find(|l| l.contains("mcpctl.dev/spec-hash"))
            .map(str::to_string)
    };
    assert_ne!(hash(&before["github"]), hash(&after["github"]));
    // Rendering again is byte-identical (nothing random, nothing timed).
    assert_eq!(before, text(&config(TWO), &options(None)));
}

#[test]
fn what_cannot_be_rendered_is_said_per_server() {
    let src = "version = 1\n[servers.a]\ncommand = \"./bin/server\"\nport = 1\n[servers.b]\ncommand = \"python\"\nport = 2\ntransport = \"streamable-http\"\n[servers.c_d]\ncommand = \"mcp-echo\"\nport = 3\n[servers.c-d]\ncommand = \"mcp-echo\"\nport = 4\n";
    let problems = render(&config(src), &BTreeMap::new(), &options(None))
        .unwrap_err()
        .join("\n");
    assert!(
        problems.contains("server `a`: set `image` for `./bin/server`"),
        "{problems}"
    );
    // One that speaks HTTP itself is skipped with a comment, not a problem (issue 28).
    assert!(!problems.contains("server `b`"), "{problems}");
    assert!(
        problems.contains("would both be named `mcp-c-d`"),
        "{problems}"
    );
}

#[test]
fn affinity_pins_client_ips_instead_of_sealing_ids() {
    let src = "version = 1\n[servers.e]\ncommand = \"mcp-echo\"\nport = 1\ninstances = 3\n";
    let o = Options {
        session_routing: SessionRouting::Affinity,
        ..options(None)
    };
    let all = render(&config(src), &BTreeMap::new(), &o).unwrap();
    let text = all[0].text();
    assert!(text.contains("sessionAffinity: \"ClientIP\""), "{text}");
    assert!(!text.contains("--session-key-env"), "{text}");
    let sealed = render(&config(src), &BTreeMap::new(), &options(None)).unwrap()[0].text();
    assert!(sealed.contains("--session-key-env") && !sealed.contains("sessionAffinity"));
}

#[test]
fn long_and_odd_names_become_valid_dns_labels_and_args_are_not_expanded() {
    let long = "a".repeat(63);
    let src = format!(
        "version = 1\n[servers.{long}]\ncommand = \"mcp-echo\"\nport = 1\n[servers.x_]\ncommand = \"mcp-echo\"\nport = 2\nargs = [\"$(date)\", \"$HOME\"]\n"
    );
    let all = render(&config(&src), &BTreeMap::new(), &options(None)).unwrap();
    for r in &all {
        let name = r.objects[0]["metadata"]["name"].as_str().unwrap();
        assert!(name.len() <= 63, "{name}");
        assert!(
            name.ends_with(|c: char| c.is_ascii_alphanumeric()),
            "{name}"
        );
        assert_eq!(
            r.objects[0]["metadata"]["labels"]["app.kubernetes.io/instance"],
            name
        );
    }
    let odd = all.iter().find(|r| r.server == "x_").unwrap();
    let args = &odd.objects[0]["spec"]["template"]["spec"]["containers"][0]["args"];
    let args: Vec<&str> = args
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.ends_with(&["$$(date)", "$$HOME"]), "{args:?}");
    assert_ne!(k8s_name(&long), k8s_name(&format!("{}b", "a".repeat(62))));
}

#[test]
fn a_new_secret_value_rolls_the_pods() {
    let before = text(&config(TWO), &options(None));
    let after = text(
        &config(&TWO.replace("c2VjcmV0LWNpcGhlcnRleHQ", "bmV3LWNpcGhlcnRleHQ")),
        &options(None),
    );
    let hash = |t: &str| {
        t.lines()
            .find(|l| l.contains("mcpctl.dev/spec-hash"))
            .map(str::to_string)
    };
    assert_ne!(hash(&before["github"]), hash(&after["github"]));
    assert!(
        !after["github"].contains("bmV3"),
        "still no ciphertext in it"
    );
}

#[test]
fn fields_the_pod_does_not_take_are_said_and_an_absolute_cwd_is_its_working_dir() {
    let src = "version = 1\n[servers.a]\ncommand = \"mcp-echo\"\nport = 1\ncwd = \"/srv/a\"\ncall_timeout = \"5s\"\nmax_sessions = 5\n[servers.b]\ncommand = \"mcp-echo\"\nport = 2\ncwd = \"sub\"\n";
    let all = render(&config(src), &BTreeMap::new(), &options(None)).unwrap();
    let a = all.iter().find(|r| r.server == "a").unwrap();
    let container = &a.objects[0]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["workingDir"], "/srv/a");
    assert!(
        a.notes
            .iter()
            .any(|n| n.contains("max_sessions, call_timeout")),
        "{:?}",
        a.notes
    );
    let b = all.iter().find(|r| r.server == "b").unwrap();
    assert!(
        b.notes.iter().any(|n| n.contains("cwd (relative")),
        "{:?}",
        b.notes
    );
}

fn args_of(r: &Rendered) -> Vec<String> {
    let deployment = r
        .objects
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .unwrap();
    deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

const SET: &str = r#"version = 1
[servers.fs]
command = "mcp-echo"
port = 8001
tools = { allow = ["read_*"], deny = ["*$*"], read_only = true }
[servers.web]
command = "python"
port = 8002
transport = "streamable-http"
[servers.api]
mode = "remote"
url = "https://mcp.example.com/mcp"
port = 8003
[endpoints.work]
port = 8100
servers = ["fs", "web", "api"]
prefix = "on-collision"
failure = "closed"
tools = { deny = ["*delete*"] }
rename = { fs__read_file = "read" }
descriptions = { read = "Costs $5" }
discovery = { when_over = 40, always = ["read"] }
"#;

#[test]
fn an_endpoint_is_a_deployment_aggregating_its_members_services_with_its_policy() {
    let parsed = crate::model::parse(SET).unwrap();
    let all = render(&parsed.servers, &parsed.endpoints, &options(None)).unwrap();
    let work = all.iter().find(|r| r.server == "work").unwrap();
    let kinds: Vec<&str> = work
        .objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["Deployment", "Service"]);
    assert_eq!(work.objects[0]["metadata"]["name"], "mcp-work");
    assert_eq!(work.objects[0]["spec"]["replicas"], 1);
    assert_eq!(
        work.objects[0]["metadata"]["labels"]["app.kubernetes.io/component"],
        "mcp-endpoint"
    );
    assert_eq!(work.objects[1]["spec"]["ports"][0]["port"], 8100);
    let args = args_of(work).join(" ");
    for want in [
        "gateway --name work --port 8100 --bind 0.0.0.0 --allow-no-auth",
        "--upstream fs=http://mcp-fs:8001/mcp --upstream api=http://mcp-api:8003/mcp",
        "--prefix on-collision --failure closed --tools-deny *delete*",
        "--rename fs__read_file=read --describe read=Costs $$5 --discovery-over 40 --discovery-always read",
    ] {
        assert!(args.contains(want), "{want:?} in {args}");
    }
    // The member that is not rendered (it speaks HTTP itself) is left out, and said.
    assert!(!args.contains("mcp-web"), "{args}");
    assert!(
        work.notes.iter().any(|n| n.contains("leaves out web")),
        "{:?}",
        work.notes
    );
    // A member's own policy goes to its own gateway, `$` kept from Kubernetes.
    let fs = all.iter().find(|r| r.server == "fs").unwrap();
    let fs_args = args_of(fs).join(" ");
    assert!(
        fs_args.contains("--tools-allow read_* --tools-deny *$$* --read-only"),
        "{fs_args}"
    );
}

#[test]
fn an_endpoint_with_no_rendered_member_or_a_clashing_name_is_a_problem() {
    let src = "version = 1\n[servers.web]\ncommand = \"python\"\nport = 1\ntransport = \"streamable-http\"\n[servers.a-b]\ncommand = \"mcp-echo\"\nport = 2\n[endpoints.only_web]\nport = 3\nservers = [\"web\"]\n[endpoints.a_b]\nport = 4\nservers = [\"a-b\"]\n";
    let parsed = crate::model::parse(src).unwrap();
    let problems = render(&parsed.servers, &parsed.endpoints, &options(None))
        .unwrap_err()
        .join("\n");
    assert!(
        problems.contains("endpoint `only_web`: none of its members is rendered"),
        "{problems}"
    );
    assert!(
        problems.contains("`a-b` and endpoint `a_b` would both be named `mcp-a-b`"),
        "{problems}"
    );
}

#[test]
fn a_server_taking_callers_tokens_is_refused_not_rendered_open() {
    let src = "version = 1\n[servers.a]\ncommand = \"mcp-echo\"\nport = 1\nauth = { tokens = true }\n[tokens.ci]\nallow = [\"a/*\"]\nhash = \"blake3:0000000000000000000000000000000000000000000000000000000000000000\"\n";
    let problems = render(&config(src), &BTreeMap::new(), &options(None))
        .unwrap_err()
        .join("\n");
    assert!(
        problems.contains("server `a`: `auth = { tokens = true }` is not rendered yet"),
        "{problems}"
    );
}
