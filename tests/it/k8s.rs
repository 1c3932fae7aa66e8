//! Kubernetes (issue 17): every example rendered, compared with its golden file and
//! validated offline against Kubernetes' schemas; `plan`/`apply --target k8s` hand the
//! same manifests to kubectl (a recording stand-in here: no cluster runs in tests).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{TestEnv, bin};

const IMAGE: &str = "ghcr.io/mcpctl/mcpctl:test";

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/k8s")
}

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut all: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    all.sort();
    all
}

fn render(file: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(bin())
        .arg("-f")
        .arg(file)
        .args([
            "render",
            "k8s",
            "--namespace",
            "mcp",
            "--mcpctl-image",
            IMAGE,
        ])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn every_example_renders_as_its_golden_file_and_validates_strictly() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let scratch = tempfile::tempdir().unwrap();
    let mut rendered = Vec::new();
    for example in examples() {
        let stem = example.file_stem().unwrap().to_string_lossy().into_owned();
        // `profiles.toml` as production runs it, too.
        let variants: Vec<(String, Vec<&str>)> = if stem == "profiles" {
            vec![
                (stem.clone(), vec![]),
                (
                    format!("{stem}-production"),
                    vec!["--profile", "production"],
                ),
            ]
        } else {
            vec![(stem.clone(), vec![])]
        };
        for (name, extra) in variants {
            let out = render(&example, &extra);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{}: {stderr}", example.display());
            let text = String::from_utf8(out.stdout).unwrap();
            let golden = golden_dir().join(format!("{name}.yaml"));
            if update {
                std::fs::create_dir_all(golden_dir()).unwrap();
                std::fs::write(&golden, &text).unwrap();
            }
            let want = std::fs::read_to_string(&golden).unwrap_or_else(|_| {
                panic!(
                    "{} is missing: UPDATE_GOLDEN=1 cargo test --test it k8s",
                    golden.display()
                )
            });
            assert_eq!(
                text, want,
                "{name}: the rendering moved (UPDATE_GOLDEN=1 to accept)"
            );
            let file = scratch.path().join(format!("{name}.yaml"));
            std::fs::write(&file, &text).unwrap();
            rendered.push(file);
        }
    }
    assert!(rendered.len() >= 4, "{rendered:?}");
    // The rendering is checked above; the strict schema check needs kubernetes-validate.
    let Some(python) = crate::sdk::sdk_python_for(
        "every_example_renders_as_its_golden_file_and_validates_strictly (its schema check)",
    ) else {
        return;
    };
    let mut validate = Command::new(python);
    validate
        .args(["-m", "kubernetes_validate", "--strict", "--quiet"])
        .args(&rendered);
    let out = crate::sdk::run_bounded(validate, 120).unwrap_or_else(|e| panic!("{e}"));
    assert!(!out.contains("ERROR"), "{out}");
}

#[test]
fn no_secret_value_is_rendered_unless_asked() {
    let env = TestEnv::with_config(
        "version = 1\n[servers.gh]\ncommand = \"npx\"\nargs = [\"-y\", \"x\"]\nport = 8001\n",
    );
    env.run(&["config", "secret", "keygen", "--add"]).success();
    env.run_with_stdin(
        &["config", "secret", "set", "GITHUB_TOKEN", "--server", "gh"],
        "ghp_topsecret\n",
    )
    .success();
    let without = env.run(&["render", "k8s"]);
    without.success();
    assert!(
        !without.stdout.contains("ghp_topsecret"),
        "{}",
        without.stdout
    );
    let file = env.read("mcpctl.toml");
    let ciphertext = file
        .split('"')
        .find(|part| part.starts_with("age:"))
        .unwrap_or_else(|| panic!("{file}"));
    assert!(!without.stdout.contains(ciphertext), "no ciphertext either");
    assert!(!without.stdout.contains("kind: \"Secret\""));
    assert!(
        without.stdout.contains("--from-literal=GITHUB_TOKEN="),
        "{}",
        without.stdout
    );
    let with = env.run(&["render", "k8s", "--include-secrets"]);
    with.success();
    assert!(with.stdout.contains("kind: \"Secret\""));
    assert!(with.stdout.contains("\"ghp_topsecret\""), "{}", with.stdout);
    // Files per server, where asked; with values, only their owner reads them, even
    // through a link to a file anyone could read.
    env.run(&["render", "k8s", "--output", "k8s"]).success();
    assert!(!env.read("k8s/gh.yaml").contains("ghp_topsecret"));
    let target = env.path().join("shared.yaml");
    std::fs::write(&target, "").unwrap();
    std::fs::set_permissions(&target, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::remove_file(env.path().join("k8s/gh.yaml")).unwrap();
    std::os::unix::fs::symlink(&target, env.path().join("k8s/gh.yaml")).unwrap();
    env.run(&["render", "k8s", "--include-secrets", "--output", "k8s"])
        .success();
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&target).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn plan_and_apply_target_k8s_go_through_kubectl_server_side() {
    let env = TestEnv::with_config(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart.toml"),
        )
        .unwrap()
        .replace("#:schema ../schema/mcpctl.schema.json\n", ""),
    );
    // A stand-in kubectl: records its arguments and the manifests, exits as told.
    let log = env.path().join("kubectl.log");
    let fake = env.path().join("kubectl");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"$@\" >> {log}\nfor a in \"$@\"; do [ -d \"$a\" ] && cat \"$a\"/*.yaml >> {log}; done\nexit ${{FAKE_EXIT:-0}}\n",
            log = log.display()
        ),
    )
    .unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(&fake).unwrap().permissions(),
        0o755,
    );
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let run = |args: &[&str], exit: &str| {
        let out = env
            .command(args)
            .env("MCPCTL_KUBECTL", &fake)
            .env("FAKE_EXIT", exit)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(
        &[
            "plan",
            "--target",
            "k8s",
            "--context",
            "kind-test",
            "--detailed-exitcode",
        ],
        "1",
    );
    assert_eq!(code, Some(2), "kubectl diff saw changes: {stderr}");
    let (code, _) = run(&["plan", "--target", "k8s"], "0");
    assert_eq!(code, Some(0));
    let (code, stderr) = run(&["apply", "--target", "k8s", "--namespace", "mcp"], "0");
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr) = run(&["apply", "--target", "k8s"], "1");
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("kubectl apply failed (exit code 1)"),
        "{stderr}"
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains(
            "--context kind-test diff --server-side --field-manager=mcpctl --request-timeout=60s -f "
        ),
        "{logged}"
    );
    // Issue 28: apply prunes what mcpctl made and the file no longer has; kubectl has a
    // timeout.
    assert!(
        logged.contains(
            "apply --server-side --field-manager=mcpctl --request-timeout=60s --prune -l app.kubernetes.io/managed-by=mcpctl --prune-allowlist=apps/v1/Deployment --prune-allowlist=core/v1/Service --prune-allowlist=core/v1/ConfigMap --prune-allowlist=autoscaling/v2/HorizontalPodAutoscaler -f "
        ),
        "{logged}"
    );
    assert!(logged.contains("namespace: \"mcp\""), "{logged}");
    // A kubectl named by MCPCTL_KUBECTL that does not exist: that name is said, not
    // PATH (issue 27); none on PATH: said plainly. Nothing else done.
    let bad = env.path().join("no-such-kubectl");
    let out = env
        .command(&["plan", "--target", "k8s"])
        .env("MCPCTL_KUBECTL", &bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "MCPCTL_KUBECTL={}: no such program",
            bad.display()
        )),
        "{stderr}"
    );
    std::fs::create_dir_all(env.path().join("empty")).unwrap();
    let out = env
        .command(&["plan", "--target", "k8s"])
        .env_remove("MCPCTL_KUBECTL")
        .env("PATH", env.path().join("empty"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("kubectl is not on PATH"));
    // A saved plan or a revision is a local-daemon matter.
    let (code, stderr) = run(&["apply", "--target", "k8s", "--rev", "HEAD"], "0");
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("--target k8s applies the file as it is"),
        "{stderr}"
    );
}

#[test]
fn what_cannot_be_rendered_fails_naming_the_server_and_writes_nothing() {
    let env = TestEnv::with_config(
        "version = 1\n[servers.mine]\ncommand = \"./bin/server\"\nport = 8001\n",
    );
    let run = env.run(&["render", "k8s", "--output", "out"]);
    run.failure()
        .stderr_has("server `mine`: set `image` for `./bin/server`");
    assert!(!env.path().join("out").exists());
    let run = env.run(&["render", "k8s", "--profile", "nope"]);
    run.failure().stderr_has("nope");
    for bad in ["", "UPPER", "a_b", "a b", "x-", &"n".repeat(64)] {
        let run = env.run(&["render", "k8s", "--namespace", bad]);
        run.failure()
            .stderr_has("is not a Kubernetes namespace name");
    }
    // An endpoint over a member with `auth`: its pod could not reach the member (no
    // owner's key on a cluster), so it is refused rather than rendered broken.
    let env = TestEnv::with_config(
        "version = 1
[servers.a]
command = \"mcp-echo\"
port = 8001
secrets = { T = \"age:x\" }
auth = { bearer = \"T\" }
[endpoints.work]
port = 8100
servers = [\"a\"]
auth = { oidc = { issuer = \"https://id.example\", audience = \"https://mcp.example/mcp\" } }
",
    );
    env.run(&["render", "k8s", "--output", "out"])
        .failure()
        .stderr_has("its member `a` has `auth`");
    assert!(!env.path().join("out").exists());
}

/// Issue 28: one server that speaks HTTP itself no longer aborts the render: it is
/// skipped with a comment that says what to do, and the others are rendered.
#[test]
fn issue28_a_server_speaking_http_itself_is_skipped_with_a_comment_not_an_abort() {
    let env = TestEnv::with_config(
        "version = 1\n[servers.web]\ncommand = \"python3\"\nargs = [\"-m\", \"http.server\", \"{port}\"]\ntransport = \"streamable-http\"\nport = 8001\n[servers.echo]\ncommand = \"mcp-echo\"\nport = 8002\n",
    );
    let run = env.run(&["render", "k8s", "--output", "out"]);
    run.success();
    let echo = env.read("out/echo.yaml");
    assert!(echo.contains("kind: \"Deployment\""), "{echo}");
    let web = env.read("out/web.yaml");
    assert!(
        web.contains("# server `web` is not rendered: it speaks HTTP itself"),
        "{web}"
    );
    assert!(!web.contains("kind:"), "no object for web: {web}");
}

/// `render k8s --output DIR` removes the file of a server the file no longer has (and
/// nothing it did not write).
#[test]
fn rendering_again_removes_the_files_of_servers_gone_from_the_file() {
    let both = "version = 1\n[servers.a]\ncommand = \"mcp-echo\"\nport = 8001\n[servers.b]\ncommand = \"mcp-echo\"\nport = 8002\n";
    let env = TestEnv::with_config(both);
    env.run(&["render", "k8s", "--output", "out"]).success();
    env.write("out/mine.yaml", "# the user's own\nkind: ConfigMap\n");
    assert!(env.path().join("out/b.yaml").exists());
    env.write(
        "mcpctl.toml",
        "version = 1\n[servers.a]\ncommand = \"mcp-echo\"\nport = 8001\n",
    );
    env.run(&["render", "k8s", "--output", "out"])
        .success()
        .stderr_has("removed");
    assert!(!env.path().join("out/b.yaml").exists(), "b's file is gone");
    assert!(env.path().join("out/a.yaml").exists());
    assert!(
        env.path().join("out/mine.yaml").exists(),
        "not mcpctl's: kept"
    );
}
