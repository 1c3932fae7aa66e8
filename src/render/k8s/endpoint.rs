//! An endpoint's objects: a Deployment whose `mcpctl gateway --upstream ...`
//! aggregates its members' Services (each member rendered as its own server), and a
//! Service of its port. One replica: its clients' sessions live in that pod.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Options, Rendered, k8s_name, literal, selector};
use crate::model::ServerSpec;
use crate::model::endpoint::EndpointSpec;
use crate::model::raw::{Failure, Prefix};
use crate::model::spec::{Mode, Transport};

/// Every endpoint's objects; `rendered` are the servers' (an endpoint reaches only
/// those), `taken` the Kubernetes names already given. The problems, or them.
pub fn render_endpoints(
    endpoints: &BTreeMap<String, EndpointSpec>,
    servers: &BTreeMap<String, ServerSpec>,
    taken: &mut BTreeMap<String, String>,
    o: &Options<'_>,
) -> Result<Vec<Rendered>, Vec<String>> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (name, spec) in endpoints {
        let k8s = k8s_name(name);
        if let Some(other) = taken.insert(k8s.clone(), name.clone()) {
            problems.push(format!(
                "`{other}` and endpoint `{name}` would both be named `{k8s}` in Kubernetes: rename one"
            ));
            continue;
        }
        match endpoint(spec, servers, &k8s, o) {
            Ok(rendered) => out.push(rendered),
            Err(why) => problems.push(format!("endpoint `{name}`: {why}")),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn labels(k8s: &str) -> Value {
    let mut labels = super::labels(k8s);
    labels["app.kubernetes.io/component"] = json!("mcp-endpoint");
    labels
}

fn endpoint(
    spec: &EndpointSpec,
    servers: &BTreeMap<String, ServerSpec>,
    k8s: &str,
    o: &Options<'_>,
) -> Result<Rendered, String> {
    if spec.auth_tokens {
        // The pod's gateway takes no callers' tokens yet: rendering it open would widen
        // who may call what.
        return Err("`auth = { tokens = true }` is not rendered yet: callers' tokens are checked only by the daemon".into());
    }
    let meta = json!({"name": k8s, "namespace": o.namespace, "labels": labels(k8s)});
    let mut notes = Vec::new();
    let mut args: Vec<String> = vec![
        "gateway".into(),
        "--name".into(),
        spec.name.clone(),
        "--port".into(),
        spec.port.to_string(),
        "--bind".into(),
        "0.0.0.0".into(),
    ];
    match &spec.auth_oidc {
        Some(oidc) => args.extend(super::oidc_flags(oidc)),
        None => {
            args.push("--allow-no-auth".into());
            notes.push(format!(
                "{k8s} has no `auth`: anyone who can reach its Service can use its members' tools (add a NetworkPolicy)"
            ));
        }
    }
    let mut skipped = Vec::new();
    for member in &spec.members {
        let Some(server) = servers.get(member) else {
            skipped.push(member.as_str());
            continue;
        };
        if server.has_auth() {
            // Its pod's gateway takes only its own bearer or callers' tokens, which the
            // endpoint's pod has none of (there is no owner's key on a cluster).
            return Err(format!(
                "its member `{member}` has `auth`, which the endpoint's pod cannot pass yet: leave it out, or drop its `auth` on the cluster"
            ));
        }
        if server.mode == Mode::Local && server.transport != Transport::Stdio {
            // Not rendered (it speaks HTTP itself): there is no Service to reach.
            skipped.push(member.as_str());
            continue;
        }
        let url = format!("http://{}:{}/mcp", k8s_name(member), server.port);
        args.extend(["--upstream".into(), format!("{member}={url}")]);
    }
    if skipped.len() == spec.members.len() {
        return Err("none of its members is rendered (each speaks HTTP itself)".into());
    }
    if !skipped.is_empty() {
        notes.push(format!(
            "{k8s} leaves out {} (not rendered: {}): make each a remote server pointing at its own Service to include it",
            skipped.join(", "),
            if skipped.len() == 1 { "it speaks HTTP itself" } else { "they speak HTTP themselves" }
        ));
    }
    let prefix = match spec.prefix {
        Prefix::Always => None,
        Prefix::OnCollision => Some("on-collision"),
        Prefix::Never => Some("never"),
    };
    if let Some(prefix) = prefix {
        args.extend(["--prefix".into(), prefix.into()]);
    }
    if spec.failure == Failure::Closed {
        args.extend(["--failure".into(), "closed".into()]);
    }
    args.extend(super::tool_flags(&spec.tools));
    for (from, to) in &spec.rename {
        args.extend(["--rename".into(), format!("{from}={to}")]);
    }
    for (tool, text) in &spec.descriptions {
        args.extend(["--describe".into(), format!("{tool}={text}")]);
    }
    if let Some(discovery) = &spec.discovery {
        match discovery.when_over {
            Some(n) => args.extend(["--discovery-over".into(), n.to_string()]),
            None => args.push("--discovery".into()),
        }
        for tool in &discovery.always {
            args.extend(["--discovery-always".into(), tool.clone()]);
        }
    }
    let args: Vec<String> = args.iter().map(|a| literal(a)).collect();
    let probe = |path: &str, period: u64| json!({"httpGet": {"path": path, "port": "mcp"}, "periodSeconds": period, "failureThreshold": 3});
    let pod = json!({
        "containers": [{
            "name": "endpoint",
            "image": o.mcpctl_image,
            "command": ["mcpctl"],
            "args": args,
            "ports": [{"name": "mcp", "containerPort": spec.port, "protocol": "TCP"}],
            "readinessProbe": probe("/readyz", 5),
            "livenessProbe": probe("/healthz", 10),
        }],
    });
    // What the pod runs: the annotation that rolls it when the endpoint changes.
    let hash = blake3::hash(serde_json::to_string(&pod).unwrap_or_default().as_bytes()).to_hex()
        [..16]
        .to_string();
    let mut deployment_meta = meta.clone();
    deployment_meta["annotations"] = json!({"mcpctl.dev/spec-hash": hash});
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": deployment_meta,
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector(k8s)},
            "template": {
                "metadata": {"labels": labels(k8s), "annotations": {"mcpctl.dev/spec-hash": hash}},
                "spec": pod,
            },
        },
    });
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": meta,
        "spec": {
            "type": "ClusterIP",
            "selector": selector(k8s),
            "ports": [{"name": "mcp", "port": spec.port, "targetPort": "mcp", "protocol": "TCP"}],
        },
    });
    Ok(Rendered {
        server: spec.name.clone(),
        objects: vec![deployment, service],
        notes,
    })
}
