//! `render k8s`, `plan --target k8s`, `apply --target k8s`: the file as Kubernetes
//! manifests (`crate::render::k8s`), written out, or handed to kubectl (`diff`, and
//! `apply --server-side --field-manager=mcpctl`).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use age::secrecy::ExposeSecret;

use super::args::{K8sArgs, SessionRoutingArg, TargetArgs};
use super::{Error, ok, print};
use crate::config::{self, edit, store};
use crate::exit;
use crate::render::k8s::{self, Options, Rendered, SessionRouting};

/// The manifests of the file at `path`, rendered as `args` asks.
fn manifests(path: &Path, args: &K8sArgs) -> Result<Vec<Rendered>, Error> {
    let ns = &args.namespace;
    let label = ns.len() <= 63
        && ns.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && ns.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && ns
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !label {
        return Err(Error::Failed(format!(
            "--namespace {ns:?} is not a Kubernetes namespace name: lowercase letters, digits and `-`, at most 63, a letter or digit at each end"
        )));
    }
    let source = store::read(path)?;
    // `--profile P`: every server as if it said `profile = "P"`.
    let source = match &args.profile {
        None => source,
        Some(profile) => {
            let mut doc =
                edit::parse(&source).map_err(|e| config::Error::edit(e.to_string(), None))?;
            let raw = crate::model::parse_raw(&source)
                .map_err(|d| config::Error::invalid(path, &source, vec![d]))?;
            for name in raw.servers.keys() {
                edit::set_value(
                    edit::server_table(&mut doc, name)?,
                    "profile",
                    toml_edit::Value::from(profile.as_str()),
                );
            }
            doc.to_string()
        }
    };
    let label = match &args.profile {
        Some(p) => format!("{} (with profile `{p}`)", path.display()),
        None => path.display().to_string(),
    };
    let mut loaded = config::load_text(path, &label, source)?;
    let values: Option<BTreeMap<String, BTreeMap<String, String>>> = if args.include_secrets {
        let unlocked = crate::secrets::unlock::unlock(&mut loaded)?;
        Some(
            unlocked
                .values
                .iter()
                .map(|(server, keys)| {
                    let plain = keys
                        .iter()
                        .map(|(k, v)| (k.clone(), v.expose_secret().to_string()))
                        .collect();
                    (server.clone(), plain)
                })
                .collect(),
        )
    } else {
        None
    };
    let options = Options {
        namespace: &args.namespace,
        mcpctl_image: args
            .mcpctl_image
            .clone()
            .unwrap_or_else(|| format!("{}:{}", k8s::MCPCTL_IMAGE, env!("CARGO_PKG_VERSION"))),
        session_routing: match args.session_routing {
            SessionRoutingArg::Sealed => SessionRouting::Sealed,
            SessionRoutingArg::Affinity => SessionRouting::Affinity,
        },
        secrets: values.as_ref(),
    };
    k8s::render(&loaded.config.servers, &loaded.config.endpoints, &options).map_err(|problems| {
        Error::Failed(format!(
            "cannot render {} for Kubernetes:\n  {}",
            path.display(),
            problems.join("\n  ")
        ))
    })
}

/// `render k8s`: to stdout (`-`) or one `NAME.yaml` per server in `output`.
pub(super) fn render(path: &Path, args: &K8sArgs, output: &Path) -> Result<u8, Error> {
    let rendered = manifests(path, args)?;
    if output == Path::new("-") {
        let all: String = rendered.iter().map(Rendered::text).collect();
        print(&all)?;
        return ok();
    }
    write_all(&rendered, output)?;
    for gone in remove_stale(&rendered, output) {
        crate::note!(
            "removed {} (its server is no longer in the file)",
            gone.display()
        );
    }
    crate::note!(
        "wrote {} file(s) to {}: `kubectl apply --server-side -f {}` applies them",
        rendered.len(),
        output.display(),
        output.display()
    );
    ok()
}

/// Files of an earlier render in `dir` whose server the file no longer has: removed (a
/// file mcpctl did not write, one without its managed-by label, is left alone).
fn remove_stale(rendered: &[Rendered], dir: &Path) -> Vec<std::path::PathBuf> {
    let current: Vec<String> = rendered
        .iter()
        .map(|r| format!("{}.yaml", r.server))
        .collect();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".yaml") || current.contains(&name) {
            continue;
        }
        // Bounded: a manifest of ours is small; a large file is not ours.
        let ours = std::fs::metadata(&path).is_ok_and(|m| m.len() < (4 << 20))
            && std::fs::read_to_string(&path).is_ok_and(|text| {
                text.contains("app.kubernetes.io/managed-by: \"mcpctl\"")
                    || text.starts_with("# server `")
            });
        if ours && std::fs::remove_file(&path).is_ok() {
            removed.push(path);
        }
    }
    removed
}

fn write_all(rendered: &[Rendered], dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::Failed(format!("cannot create {}: {e}", dir.display())))?;
    for r in rendered {
        let file = dir.join(format!("{}.yaml", r.server));
        store::write_atomic(&file, &r.text())?;
        // It may hold secret values: only its owner reads it, a link's target too.
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600));
    }
    Ok(())
}

/// `plan --target k8s` (`kubectl diff`) and `apply --target k8s` (`kubectl apply`).
/// `detailed`: `plan --detailed-exitcode` (2 when kubectl sees differences).
pub(super) fn converge(
    path: &Path,
    target: &TargetArgs,
    apply: bool,
    detailed: bool,
) -> Result<u8, Error> {
    let rendered = manifests(path, &target.k8s)?;
    let dir = tempfile::Builder::new()
        .prefix("mcpctl-k8s-")
        .tempdir()
        .map_err(|e| Error::Failed(format!("cannot make a folder for the manifests: {e}")))?;
    write_all(&rendered, dir.path())?;
    let mut kubectl = Command::new(kubectl_program());
    if let Some(context) = &target.context {
        kubectl.args(["--context", context]);
    }
    let verb = if apply { "apply" } else { "diff" };
    // A cluster that does not answer fails the call instead of hanging it.
    kubectl.arg(verb).args([
        "--server-side",
        "--field-manager=mcpctl",
        "--request-timeout=60s",
    ]);
    if apply {
        // What mcpctl made and the file no longer has (a removed server, an HPA left by a
        // switch to a fixed count) goes: everything mcpctl manages in the namespace is
        // the file's. Secrets are never pruned (they may be the user's own).
        kubectl.args(["--prune", "-l", "app.kubernetes.io/managed-by=mcpctl"]);
        for kind in PRUNED {
            kubectl.arg(format!("--prune-allowlist={kind}"));
        }
    }
    kubectl.arg("-f").arg(dir.path());
    let status = run_bounded(kubectl).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Failed(match std::env::var_os("MCPCTL_KUBECTL") {
                // The user named it: say that name, not PATH.
                Some(named) => format!(
                    "MCPCTL_KUBECTL={}: no such program; point it at a kubectl, or unset it to use the one on PATH",
                    named.to_string_lossy()
                ),
                None => "kubectl is not on PATH: install it (https://kubernetes.io/docs/tasks/tools/), or `mcpctl render k8s --output DIR` and apply that folder yourself".into(),
            })
        } else {
            Error::Failed(format!("cannot run kubectl: {e}"))
        }
    })?;
    match (apply, status.code()) {
        (true, Some(0)) => ok(),
        // `kubectl diff`: 0 no differences, 1 differences, more an error.
        (false, Some(0)) => ok(),
        (false, Some(1)) => Ok(if detailed { exit::CHANGES } else { exit::OK }),
        (_, code) => Err(Error::Failed(format!(
            "kubectl {verb} failed ({}): is a cluster reachable with this context? (`kubectl config current-context`)",
            code.map_or_else(
                || "killed by a signal".to_string(),
                |c| format!("exit code {c}")
            )
        ))),
    }
}

/// The kinds `apply --target k8s` prunes when the file no longer has them.
const PRUNED: [&str; 4] = [
    "apps/v1/Deployment",
    "core/v1/Service",
    "core/v1/ConfigMap",
    "autoscaling/v2/HorizontalPodAutoscaler",
];

/// How long one kubectl may run before it is killed.
const KUBECTL_LIMIT: std::time::Duration = std::time::Duration::from_secs(300);

/// Runs kubectl to its end, killed past [`KUBECTL_LIMIT`] (a stuck one must not hang
/// the command).
fn run_bounded(mut kubectl: Command) -> std::io::Result<std::process::ExitStatus> {
    let mut child = kubectl.spawn()?;
    let deadline = std::time::Instant::now() + KUBECTL_LIMIT;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            return child.wait();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `MCPCTL_KUBECTL` names another kubectl (a wrapper, or tests' fake one).
fn kubectl_program() -> std::ffi::OsString {
    std::env::var_os("MCPCTL_KUBECTL").unwrap_or_else(|| "kubectl".into())
}
