//! Kubernetes manifests of a config (`mcpctl render k8s`), pure: per server a
//! Deployment running its command under `mcpctl gateway`, a Service, a ConfigMap of its
//! env, a HorizontalPodAutoscaler from `autoscale`, and its secrets as references to a
//! Secret the user provides (with values only when asked); per endpoint a Deployment
//! aggregating its members' Services ([`endpoint`]). Pods carry the hash of what
//! they run as an annotation, so a server that did not change is not rolled.

mod endpoint;
pub mod yaml;

pub use endpoint::render_endpoints;

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::model::ServerSpec;
use crate::model::endpoint::EndpointSpec;
use crate::model::spec::{Mode, Sharing, State, ToolPolicy, Transport};

/// Where the `mcpctl` binary comes from: its image, copied into runtime images.
pub const MCPCTL_IMAGE: &str = "ghcr.io/mcpctl/mcpctl";
/// The key, in each server's `-session-key` Secret, that the replicas share.
const SESSION_KEY: &str = "key";
/// The port `/metrics` is served on in a pod (for the autoscaler's pods metrics).
const METRICS_PORT: u16 = 9464;

/// How 2025 sessions find their replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionRouting {
    /// Ids sealed with a shared key, forwarded pod to pod (`mcpctl gateway
    /// --session-key-env --advertise`).
    Sealed,
    /// `sessionAffinity: ClientIP` on the Service, for clusters without pod-to-pod traffic.
    Affinity,
}

pub struct Options<'a> {
    pub namespace: &'a str,
    /// `MCPCTL_IMAGE:TAG`.
    pub mcpctl_image: String,
    pub session_routing: SessionRouting,
    /// Secret values by server and key, when they are to be written (`--include-secrets`).
    pub secrets: Option<&'a BTreeMap<String, BTreeMap<String, String>>>,
}

/// One server's objects.
#[derive(Debug)]
pub struct Rendered {
    pub server: String,
    pub objects: Vec<Value>,
    /// What the user must create, and what cannot be carried over (shown as comments).
    pub notes: Vec<String>,
}

impl Rendered {
    /// The file's text: the notes as comments, then the objects.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for note in &self.notes {
            for line in note.lines() {
                out.push_str("# ");
                out.push_str(line);
                out.push('\n');
            }
        }
        out.push_str(&yaml::stream(&self.objects));
        out
    }
}

/// The image a command runs in by default: `mcp-echo` ships in mcpctl's own.
pub fn default_image(command: &str, mcpctl_image: &str) -> Option<String> {
    let program = command.rsplit('/').next().unwrap_or(command);
    match program {
        "npx" | "node" => Some("node:22-bookworm-slim".into()),
        "uvx" | "uv" => Some("ghcr.io/astral-sh/uv:python3.12-bookworm-slim".into()),
        "mcp-echo" => Some(mcpctl_image.into()),
        _ => None,
    }
}

/// A Kubernetes name for a server: a DNS label (`_` is not allowed in one, at most 63
/// characters, alphanumeric at both ends); a long one is cut and keeps a hash of the
/// whole name, so two long names stay apart.
fn k8s_name(server: &str) -> String {
    let name = format!("mcp-{}", server.replace('_', "-"));
    let name = name.trim_end_matches('-');
    if name.len() <= 63 && name.len() == server.len() + 4 {
        return name.to_string();
    }
    let hash = &blake3::hash(server.as_bytes()).to_hex()[..8];
    let keep = name.len().min(63 - 9);
    format!("{}-{hash}", name[..keep].trim_end_matches('-'))
}

/// Kubernetes expands `$(VAR)` in a container's args and turns `$$` into `$`: every `$`
/// of a server's own doubled, so the process gets them as written.
fn literal(arg: &str) -> String {
    arg.replace('$', "$$")
}

/// Every running-or-stopped server's objects; the problems of all servers, or them.
pub fn render(
    servers: &BTreeMap<String, ServerSpec>,
    endpoints: &BTreeMap<String, EndpointSpec>,
    options: &Options<'_>,
) -> Result<Vec<Rendered>, Vec<String>> {
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut problems = Vec::new();
    let mut out = Vec::new();
    for (name, spec) in servers {
        let k8s = k8s_name(name);
        if let Some(other) = names.insert(k8s.clone(), name.clone()) {
            problems.push(format!(
                "servers `{other}` and `{name}` would both be named `{k8s}` in Kubernetes: rename one"
            ));
            continue;
        }
        if spec.mode == Mode::Local && spec.transport != Transport::Stdio {
            // Skipped, said where the user looks: the rest of the file still renders.
            out.push(Rendered {
                server: name.clone(),
                objects: Vec::new(),
                notes: vec![format!(
                    "server `{name}` is not rendered: it speaks HTTP itself. Run it as its own \
                     Deployment (its own image), and make `{name}` in mcpctl.toml a remote \
                     server (mode = \"remote\") pointing at that Deployment's Service."
                )],
            });
            continue;
        }
        match server(spec, &k8s, options) {
            Ok(rendered) => out.push(rendered),
            Err(why) => problems.push(format!("server `{name}`: {why}")),
        }
    }
    match render_endpoints(endpoints, servers, &mut names, options) {
        Ok(rendered) => out.extend(rendered),
        Err(more) => problems.extend(more),
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// A tool policy as `mcpctl gateway` flags.
fn tool_flags(tools: &ToolPolicy) -> Vec<String> {
    let mut args = Vec::new();
    for glob in &tools.allow {
        args.extend(["--tools-allow".to_string(), glob.clone()]);
    }
    for glob in &tools.deny {
        args.extend(["--tools-deny".to_string(), glob.clone()]);
    }
    if tools.read_only {
        args.push("--read-only".into());
    }
    args
}

/// `auth.oidc` as `mcpctl gateway`'s flags (each value literal: no `$(VAR)` expansion).
fn oidc_flags(oidc: &crate::model::oidc::OidcSpec) -> Vec<String> {
    let mut args = vec![
        "--oidc-issuer".to_string(),
        literal(&oidc.issuer),
        "--oidc-audience".into(),
        literal(&oidc.audience),
    ];
    for (scope, globs) in &oidc.scopes {
        args.extend([
            "--oidc-scope".to_string(),
            literal(&format!("{scope}={}", globs.join(","))),
        ]);
    }
    if let Some(rate) = oidc.rate {
        let per = match rate.per_secs {
            1 => "sec",
            60 => "min",
            _ => "hour",
        };
        args.extend([
            "--oidc-rate".to_string(),
            format!("{}/{per}", rate.requests),
        ]);
    }
    args
}

fn labels(k8s: &str) -> Value {
    json!({
        "app.kubernetes.io/name": k8s,
        "app.kubernetes.io/instance": k8s,
        "app.kubernetes.io/component": "mcp-server",
        "app.kubernetes.io/part-of": "mcpctl",
        "app.kubernetes.io/managed-by": "mcpctl",
    })
}

fn selector(k8s: &str) -> Value {
    json!({"app.kubernetes.io/name": k8s})
}

fn server(spec: &ServerSpec, k8s: &str, o: &Options<'_>) -> Result<Rendered, String> {
    let mut notes = Vec::new();
    let replicated = spec.autoscale.is_some_and(|a| a.max > 1)
        || (spec.autoscale.is_none() && spec.instances > 1);
    // A remote server's sessions live upstream: any replica reaches them.
    let sealed =
        replicated && o.session_routing == SessionRouting::Sealed && spec.mode == Mode::Local;
    let metrics = spec
        .autoscale
        .is_some_and(|a| a.target_sessions.is_some() || a.target_inflight.is_some());
    let port = spec.port;
    let meta = |kind_name: String| json!({"name": kind_name, "namespace": o.namespace, "labels": labels(k8s)});

    // The gateway's flags, then the server's command.
    let mut args: Vec<String> = vec![
        "gateway".into(),
        "--port".into(),
        port.to_string(),
        "--bind".into(),
        "0.0.0.0".into(),
    ];
    if spec.auth_tokens {
        // The pod's gateway takes no callers' tokens yet: rendering it open (or with
        // the owner's bearer only) would widen who may call what.
        return Err("`auth = { tokens = true }` is not rendered yet: callers' tokens are checked only by the daemon and its gateway here".into());
    }
    if let Some(oidc) = &spec.auth_oidc {
        args.extend(oidc_flags(oidc));
    }
    match &spec.auth_bearer {
        Some(key) => args.extend(["--auth-bearer-env".into(), key.clone()]),
        None if spec.auth_oidc.is_some() => {}
        None => {
            args.push("--allow-no-auth".into());
            notes.push(format!(
                "{k8s} has no `auth`: anyone who can reach its Service can use it (add a NetworkPolicy, or `auth`)"
            ));
        }
    }
    if sealed {
        args.extend([
            "--session-key-env".into(),
            "MCPCTL_SESSION_KEY".into(),
            "--advertise".into(),
            format!("http://$(POD_IP):{port}"),
        ]);
    }
    if metrics {
        args.extend(["--metrics".into(), format!("0.0.0.0:{METRICS_PORT}")]);
    }
    if spec.sharing == Sharing::PerSession {
        args.extend(["--sharing".into(), "per-session".into()]);
    }
    args.extend(tool_flags(&spec.tools).iter().map(|a| literal(a)));
    let (image, copied) = match spec.mode {
        Mode::Remote => {
            let url = spec.url.clone().ok_or("a remote server needs its url")?;
            args.extend(["--url".into(), literal(&url)]);
            for (name, value) in &spec.headers {
                args.extend(["--header".into(), literal(&format!("{name}={value}"))]);
            }
            (o.mcpctl_image.clone(), false)
        }
        Mode::Local => {
            if spec.transport != Transport::Stdio {
                return Err(
                    "it speaks HTTP itself: run it as its own Deployment and make this a remote server pointing at its Service".into(),
                );
            }
            let command = spec
                .command
                .clone()
                .ok_or("a local server needs its command")?;
            let image = match &spec.image {
                Some(image) => image.clone(),
                None => default_image(&command, &o.mcpctl_image).ok_or_else(|| {
                    format!("set `image` for `{command}` (the image its command runs in; npx, uvx and mcp-echo have defaults)")
                })?,
            };
            args.push("--".into());
            args.push(literal(&command));
            args.extend(spec.args.iter().map(|a| literal(a)));
            let copied = image != o.mcpctl_image;
            (image, copied)
        }
    };
    if spec.tls.is_some() {
        notes.push(format!(
            "{k8s}: `tls` is not rendered: terminate TLS at the Ingress or Gateway in front of the Service"
        ));
    }
    let mut dropped = Vec::new();
    if spec.max_sessions != crate::model::spec::DEFAULT_MAX_SESSIONS
        && spec.sharing == Sharing::Multiplex
    {
        dropped.push("max_sessions");
    }
    if spec.call_timeout != std::time::Duration::from_secs(300) {
        dropped.push("call_timeout");
    }
    if spec.health != crate::model::spec::HealthCheck::default() {
        dropped.push("health");
    }
    if spec.cwd.as_deref().is_some_and(|c| !c.starts_with('/')) {
        dropped.push("cwd (relative to the file, which the pod does not have)");
    }
    if !dropped.is_empty() {
        notes.push(format!(
            "{k8s}: not rendered ({}): the pod's gateway runs with its defaults",
            dropped.join(", ")
        ));
    }
    if spec.limits.nofile.is_some() {
        notes.push(format!(
            "{k8s}: `limits.nofile` is not rendered: the container runtime sets the open-file limit"
        ));
    }

    // Environment: the ConfigMap's, each secret by reference, the pod's own IP.
    let mut env = vec![];
    if sealed {
        env.push(
            json!({"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}),
        );
        env.push(
            json!({"name": "MCPCTL_SESSION_KEY", "valueFrom": {"secretKeyRef": {
            "name": format!("{k8s}-session-key"), "key": SESSION_KEY}}}),
        );
        notes.push(format!(
            "The replicas of {k8s} share a key for their session ids, in the Secret {k8s}-session-key (key `{SESSION_KEY}`), which you create:\n  kubectl -n {ns} create secret generic {k8s}-session-key --from-literal={SESSION_KEY}=$(openssl rand -hex 32)",
            ns = o.namespace
        ));
    }
    let secret_name = format!("{k8s}-secrets");
    for key in spec.secrets.keys() {
        env.push(
            json!({"name": key, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key}}}),
        );
    }
    let mut objects = Vec::new();
    if !spec.env.is_empty() {
        objects.push(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": meta(format!("{k8s}-env")),
            "data": spec.env,
        }));
    }
    if !spec.secrets.is_empty() {
        match o.secrets.and_then(|all| all.get(&spec.name)) {
            Some(values) => objects.push(json!({
                "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": meta(secret_name.clone()),
                "stringData": values,
            })),
            None => {
                let keys: Vec<&str> = spec.secrets.keys().map(String::as_str).collect();
                let literals: Vec<String> = keys
                    .iter()
                    .map(|k| format!("--from-literal={k}=..."))
                    .collect();
                notes.push(format!(
                    "{k8s} reads its secrets from the Secret {secret_name} (keys: {}), which you create (or render with --include-secrets):\n  kubectl -n {} create secret generic {secret_name} {}",
                    keys.join(", "),
                    o.namespace,
                    literals.join(" ")
                ));
            }
        }
    }

    let mut ports = vec![json!({"name": "mcp", "containerPort": port, "protocol": "TCP"})];
    if metrics {
        ports.push(json!({"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}));
    }
    let mut resources = serde_json::Map::new();
    if let Some(bytes) = spec.limits.memory_bytes {
        resources.insert("memory".into(), json!(bytes.to_string()));
    }
    if let Some(millis) = spec.limits.cpu_millis {
        resources.insert("cpu".into(), json!(format!("{millis}m")));
    }
    let probe = |path: &str, period: u64| json!({"httpGet": {"path": path, "port": "mcp"}, "periodSeconds": period, "failureThreshold": 3});
    let mut container = json!({
        "name": "server",
        "image": image,
        "command": [if copied { "/mcpctl/mcpctl" } else { "mcpctl" }],
        "args": args,
        "ports": ports,
        "readinessProbe": probe("/readyz", 5),
        "livenessProbe": probe("/healthz", 10),
        "startupProbe": {"httpGet": {"path": "/readyz", "port": "mcp"}, "periodSeconds": 2,
            "failureThreshold": (spec.start_timeout.as_secs() / 2).clamp(5, 900)},
    });
    if !env.is_empty() {
        container["env"] = json!(env);
    }
    if let Some(dir) = spec.cwd.as_deref().filter(|c| c.starts_with('/')) {
        container["workingDir"] = json!(dir);
    }
    if !spec.env.is_empty() {
        container["envFrom"] = json!([{"configMapRef": {"name": format!("{k8s}-env")}}]);
    }
    if !resources.is_empty() {
        container["resources"] = json!({"limits": resources});
    }
    let mut pod = json!({
        "containers": [container],
        "terminationGracePeriodSeconds": spec.stop_timeout.as_secs() + 5,
    });
    if copied {
        // mcpctl comes from its own image into the runtime image's pod.
        pod["initContainers"] = json!([{
            "name": "mcpctl",
            "image": o.mcpctl_image,
            "command": ["mcpctl", "__copy-self", "/mcpctl/mcpctl"],
            "volumeMounts": [{"name": "mcpctl", "mountPath": "/mcpctl"}],
        }]);
        pod["containers"][0]["volumeMounts"] =
            json!([{"name": "mcpctl", "mountPath": "/mcpctl", "readOnly": true}]);
        pod["volumes"] = json!([{"name": "mcpctl", "emptyDir": {}}]);
    }
    // What the pods run, env included: the annotation that rolls them when it changes.
    let hash = blake3::hash(
        // Secrets by their ciphertext: a new value is a new ciphertext, and the pods
        // read secrets only when they start.
        serde_json::to_string(&json!([pod, spec.env, spec.secrets]))
            .unwrap_or_default()
            .as_bytes(),
    )
    .to_hex()[..16]
        .to_string();
    let mut template_meta =
        json!({"labels": labels(k8s), "annotations": {"mcpctl.dev/spec-hash": hash}});
    if metrics {
        template_meta["annotations"]["prometheus.io/scrape"] = json!("true");
        template_meta["annotations"]["prometheus.io/port"] = json!(METRICS_PORT.to_string());
    }
    let mut deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": meta(k8s.to_string()),
        "spec": {
            "selector": {"matchLabels": selector(k8s)},
            "template": {"metadata": template_meta, "spec": pod},
        },
    });
    deployment["metadata"]["annotations"] = json!({"mcpctl.dev/spec-hash": hash});
    let stopped = spec.state == State::Stopped;
    if stopped {
        deployment["spec"]["replicas"] = json!(0);
    } else if spec.autoscale.is_none() {
        deployment["spec"]["replicas"] = json!(spec.instances);
    }
    objects.push(deployment);

    let mut service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": meta(k8s.to_string()),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(k8s),
            "ports": [{"name": "mcp", "port": port, "targetPort": "mcp", "protocol": "TCP"}],
        },
    });
    if replicated && o.session_routing == SessionRouting::Affinity {
        service["spec"]["sessionAffinity"] = json!("ClientIP");
    }
    objects.push(service);

    if let (Some(a), false) = (spec.autoscale, stopped) {
        let mut metrics = Vec::new();
        if let Some(s) = a.target_sessions {
            metrics.push(pods_metric("mcpctl_sessions", s));
        }
        if let Some(r) = a.target_inflight {
            metrics.push(pods_metric("mcpctl_requests_in_flight", r));
        }
        if metrics.is_empty() {
            metrics.push(json!({"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80}}}));
            if spec.limits.cpu_millis.is_none() {
                notes.push(format!(
                    "{k8s}: autoscale without targets scales on CPU: set `limits.cpu` so utilization has a base"
                ));
            }
        } else {
            notes.push(format!(
                "{k8s}'s autoscaler reads the pods metrics mcpctl_sessions / mcpctl_requests_in_flight: serve them to the HPA through a metrics adapter (e.g. prometheus-adapter) from the pods' /metrics on port {METRICS_PORT}"
            ));
        }
        if a.min == 0 {
            notes.push(format!(
                "{k8s}: `autoscale.min = 0` becomes minReplicas 1 (a HorizontalPodAutoscaler does not scale to zero)"
            ));
        }
        let down = a.scale_down_after.as_secs().clamp(1, 3600);
        objects.push(json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": meta(k8s.to_string()),
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": k8s},
                "minReplicas": a.min.max(1),
                "maxReplicas": a.max,
                "metrics": metrics,
                "behavior": {
                    "scaleUp": {"stabilizationWindowSeconds": 0},
                    "scaleDown": {"stabilizationWindowSeconds": down,
                        "policies": [{"type": "Pods", "value": 1, "periodSeconds": down.min(1800)}]},
                },
            },
        }));
    }
    Ok(Rendered {
        server: spec.name.clone(),
        objects,
        notes,
    })
}

fn pods_metric(name: &str, per_pod: u32) -> Value {
    json!({"type": "Pods", "pods": {"metric": {"name": name},
        "target": {"type": "AverageValue", "averageValue": per_pod.to_string()}}})
}

#[cfg(test)]
mod tests;
