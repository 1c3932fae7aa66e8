//! The plan's decisions as the user reads them: plans made by `plan::plan` and
//! checked through their rendering (render's tests: render may use plan, not the
//! other way round).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use proptest::prelude::*;

use crate::model::ServerSpec;
use crate::model::spec::{AttrValue, Effect, State};
use crate::model::spec::{Mode, RestartPolicy, Transport};
use crate::plan::*;
use crate::render::{Colour, plan_json, plan_text};

fn spec(name: &str) -> ServerSpec {
    ServerSpec {
        name: name.into(),
        command: Some("mcp-echo".into()),
        args: vec!["--a".into(), "b".into()],
        cwd: None,
        env: BTreeMap::new(),
        secrets: BTreeMap::new(),
        transport: Transport::Stdio,
        network: crate::model::spec::Network::Host,
        tools: Default::default(),
        mode: Mode::Local,
        url: None,
        port: 8000,
        bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
        profile: "default".into(),
        state: State::Running,
        sharing: crate::model::spec::Sharing::Multiplex,
        instances: 1,
        autoscale: None,
        restart: RestartPolicy::OnFailure,
        stop_timeout: Duration::from_secs(10),
        start_timeout: Duration::from_secs(30),
        call_timeout: Duration::from_secs(300),
        drain_timeout: Duration::from_secs(30),
        session_idle: Duration::from_secs(1800),
        limits: Default::default(),
        max_sessions: crate::model::spec::DEFAULT_MAX_SESSIONS,
        health: crate::model::spec::HealthCheck::default(),
        auth_bearer: None,
        auth_tokens: false,
        auth_oidc: None,
        pin: false,
        tls: None,
        image: None,
        headers: BTreeMap::new(),
    }
}

fn desired(specs: &[ServerSpec]) -> BTreeMap<String, ServerSpec> {
    specs.iter().map(|s| (s.name.clone(), s.clone())).collect()
}

fn running(specs: &[ServerSpec]) -> Observed {
    Observed::converged(&desired(specs))
}

fn only_action(plan: &Plan) -> &Action {
    let changes: Vec<&Action> = plan.changes().collect();
    assert_eq!(changes.len(), 1, "{plan:#?}");
    changes[0]
}

fn text(plan: &Plan) -> String {
    plan_text(plan, Colour(false))
}

#[test]
fn nothing_running_starts_everything() {
    let p = plan(&desired(&[spec("a")]), &Observed::nothing());
    let a = only_action(&p);
    assert_eq!(a.kind, ActionKind::Start);
    assert_eq!((a.instances_before, a.instances_after), (0, 1));
    assert!(a.changes.iter().all(|c| c.before.is_none()));
    assert!(text(&p).contains("  + server \"a\" {"));
    assert!(text(&p).ends_with("Plan: 1 to start, 0 to restart, 0 to update, 0 to stop.\n"));
}

#[test]
fn stopped_or_removed_servers_are_stopped() {
    let mut stopped = spec("a");
    stopped.state = State::Stopped;
    for want in [desired(&[stopped]), BTreeMap::new()] {
        let p = plan(&want, &running(&[spec("a")]));
        assert_eq!(only_action(&p).kind, ActionKind::Stop);
        assert!(text(&p).contains("  - server \"a\" {"));
        assert!(text(&p).ends_with("0 to update, 1 to stop.\n"));
    }
}

#[test]
fn a_changed_port_replaces_and_says_what_forces_it() {
    let mut changed = spec("a");
    changed.port = 8001;
    changed.args = vec!["--a".into(), "c".into()];
    let p = plan(&desired(&[changed]), &running(&[spec("a")]));
    let a = only_action(&p);
    assert_eq!(a.kind, ActionKind::Replace);
    assert_eq!(
        text(&p),
        "mcpctl will perform the following actions:\n\n  \
         # server \"a\" must be replaced\n\
         -/+ server \"a\" {\n      \
         ~ args = [\n            \
         \"--a\",\n          \
         - \"b\",\n          \
         + \"c\",\n        \
         ] # forces restart\n      \
         ~ port = 8000 -> 8001 # forces restart\n    \
         }\n\n\
         Plan: 0 to start, 1 to restart, 0 to update, 0 to stop.\n"
    );
}

#[test]
fn instance_changes_scale_without_restart() {
    let mut three = spec("a");
    three.instances = 3;
    let up = plan(&desired(&[three.clone()]), &running(&[spec("a")]));
    assert_eq!(only_action(&up).kind, ActionKind::ScaleUp);
    assert!(text(&up).contains("~ instances = 1 -> 3\n"));
    assert!(!text(&up).contains("forces restart"));
    let down = plan(&desired(&[spec("a")]), &running(&[three]));
    assert_eq!(only_action(&down).kind, ActionKind::ScaleDown);
    assert!(text(&down).contains("scaled down from 3 to 1 instance"));
}

#[test]
fn fewer_running_than_recorded_is_drift_that_scales_back_up() {
    let mut observed = running(&[spec("a")]);
    let mut two = spec("a");
    two.instances = 2;
    observed.servers.insert(
        "a".into(),
        ObservedServer {
            spec: two.clone(),
            instances: 1,
            scaled_to_zero: false,
        },
    );
    let p = plan(&desired(&[two]), &observed);
    assert_eq!(only_action(&p).kind, ActionKind::ScaleUp);
}

#[test]
fn policy_changes_update_in_place() {
    let mut changed = spec("a");
    changed.restart = RestartPolicy::Always;
    changed.stop_timeout = Duration::from_secs(3);
    let p = plan(&desired(&[changed]), &running(&[spec("a")]));
    assert_eq!(only_action(&p).kind, ActionKind::Update);
    let t = text(&p);
    assert!(t.contains("  ~ server \"a\" {"), "{t}");
    assert!(
        t.contains("~ restart      = \"on-failure\" -> \"always\"\n"),
        "{t}"
    );
    assert!(t.contains("0 to restart, 1 to update"), "{t}");
}

#[test]
fn unchanged_servers_are_no_ops() {
    let p = plan(
        &desired(&[spec("a"), spec("b")]),
        &running(&[spec("a"), spec("b")]),
    );
    assert!(!p.has_changes());
    assert!(p.actions.iter().all(|a| a.kind == ActionKind::NoOp));
    assert_eq!(
        text(&p),
        "No changes. The running servers match the configuration.\n"
    );
}

#[test]
fn json_form_lists_every_server_and_the_summary() {
    let mut moved = spec("b");
    moved.port = 9000;
    let p = plan(
        &desired(&[spec("a"), moved]),
        &running(&[spec("b"), spec("c")]),
    );
    let json: serde_json::Value = serde_json::from_str(&plan_json(&p)).unwrap();
    assert_eq!(json["format_version"], 1);
    assert_eq!(json["has_changes"], true);
    assert_eq!(
        json["summary"],
        serde_json::json!({"start": 1, "restart": 1, "update": 0, "stop": 1})
    );
    let kinds: Vec<(&str, &str)> = json["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["server"].as_str().unwrap(), a["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds, vec![("a", "start"), ("b", "replace"), ("c", "stop")]);
    let port = json["actions"][1]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "port")
        .unwrap();
    assert_eq!(port["before"], 8000);
    assert_eq!(port["after"], 9000);
    assert_eq!(port["effect"], "restart");
    let noop = plan(&desired(&[spec("a")]), &running(&[spec("a")]));
    let json: serde_json::Value = serde_json::from_str(&plan_json(&noop)).unwrap();
    assert_eq!(json["actions"][0]["kind"], "no-op");
    assert_eq!(json["has_changes"], false);
}

#[test]
fn sensitive_values_never_reach_any_output() {
    let secret = "hunter2-very-secret";
    let change = AttrChange {
        name: "env",
        before: Some(AttrValue::Text("old-secret-value".into())),
        after: Some(AttrValue::Text(secret.into())),
        effect: Effect::Restart,
        sensitive: true,
    };
    let p = Plan {
        endpoints: Vec::new(),
        actions: vec![Action {
            server: "a".into(),
            kind: ActionKind::Replace,
            changes: vec![change],
            instances_before: 1,
            instances_after: 1,
            target: Some(spec("a")),
            spec_hash: None,
        }],
    };
    let human = text(&p);
    let json = plan_json(&p);
    for out in [&human, &json] {
        assert!(
            !out.contains(secret) && !out.contains("old-secret-value"),
            "{out}"
        );
        assert!(out.contains("(sensitive)"), "{out}");
    }
    assert!(
        human.contains("~ env = (sensitive) # forces restart"),
        "{human}"
    );
}

#[test]
fn colour_only_when_asked() {
    let p = plan(&desired(&[spec("a")]), &Observed::nothing());
    assert!(!text(&p).contains('\x1b'));
    assert!(plan_text(&p, Colour(true)).contains("\x1b[32m+\x1b[0m"));
}

fn arb_spec(name: &'static str) -> impl Strategy<Value = ServerSpec> {
    (
        prop::sample::select(vec!["x", "y"]),
        prop::collection::vec(prop::sample::select(vec!["-a", "-b", "c"]), 0..3),
        8000u16..8003,
        1u32..4,
        prop::bool::ANY,
        prop::sample::select(vec![
            RestartPolicy::Always,
            RestartPolicy::Never,
            RestartPolicy::OnFailure,
        ]),
        prop::option::of(prop::sample::select(vec!["1", "2"])),
    )
        .prop_map(
            move |(command, args, port, instances, running, restart, env)| ServerSpec {
                command: Some(command.into()),
                args: args.into_iter().map(String::from).collect(),
                port,
                instances,
                state: if running {
                    State::Running
                } else {
                    State::Stopped
                },
                restart,
                env: env
                    .map(|v| BTreeMap::from([("K".to_string(), v.to_string())]))
                    .unwrap_or_default(),
                ..spec(name)
            },
        )
}

fn arb_side() -> impl Strategy<Value = Vec<(ServerSpec, u32)>> {
    let names = ["a", "b", "c", "d"];
    let per_name: Vec<_> = names
        .iter()
        .map(|n| prop::option::of((arb_spec(n), 0u32..4)))
        .collect();
    per_name.prop_map(|v| v.into_iter().flatten().collect())
}

/// What runs, ignoring records of servers with no live instance.
/// What runs, compared as the plan sees it: a live server's state is "running" and its
/// instance count is what runs, whatever the recorded spec said about either.
fn live(observed: &Observed) -> Observed {
    let mut o = observed.clone();
    o.servers.retain(|_, s| s.instances > 0);
    for s in o.servers.values_mut() {
        s.spec.state = State::Running;
        s.spec.instances = s.instances;
    }
    o
}

proptest! {
    #[test]
    fn plans_converge(want in arb_side(), have in arb_side()) {
        let desired: BTreeMap<String, ServerSpec> =
            want.into_iter().map(|(s, _)| (s.name.clone(), s)).collect();
        let observed = Observed {
            servers: have
                .into_iter()
                .map(|(spec, instances)| (spec.name.clone(), ObservedServer { spec, instances, scaled_to_zero: false }))
                .collect(),
            endpoints: BTreeMap::new(),
        };
        let p = plan(&desired, &observed);
        let after = p.simulate(&observed);
        prop_assert_eq!(live(&after), Observed::converged(&desired));
        prop_assert!(!plan(&desired, &after).has_changes());
        prop_assert!(!plan(&desired, &Observed::converged(&desired)).has_changes());
    }
}

fn autoscaled(min: u32, max: u32) -> ServerSpec {
    let mut s = spec("a");
    s.autoscale = Some(crate::model::spec::Autoscale {
        min,
        max,
        target_sessions: Some(2),
        target_inflight: None,
        scale_down_after: std::time::Duration::from_secs(300),
        idle_after: std::time::Duration::from_secs(600),
    });
    s.instances = min.max(1);
    s
}

fn observed_with(spec: ServerSpec, instances: u32, scaled_to_zero: bool) -> Observed {
    Observed {
        endpoints: BTreeMap::new(),
        servers: [(
            spec.name.clone(),
            ObservedServer {
                spec,
                instances,
                scaled_to_zero,
            },
        )]
        .into(),
    }
}

#[test]
fn an_autoscaled_count_within_its_bounds_is_not_drift_and_one_outside_moves_to_the_bound() {
    let want = autoscaled(1, 3);
    for running in 1..=3 {
        let mut was = want.clone();
        was.instances = running;
        let p = plan(
            &desired(std::slice::from_ref(&want)),
            &observed_with(was, running, false),
        );
        assert_eq!(p.actions[0].kind, ActionKind::NoOp, "{running} running");
    }
    let mut was = want.clone();
    was.instances = 5;
    let narrower = autoscaled(1, 2);
    let p = plan(&desired(&[narrower]), &observed_with(was, 5, false));
    let action = only_action(&p);
    assert_eq!(action.kind, ActionKind::ScaleDown);
    assert_eq!(action.instances_after, 2);
    assert_eq!(action.target.as_ref().map(|s| s.instances), Some(2));
}

#[test]
fn a_server_scaled_to_zero_still_runs_and_a_new_bound_is_shown() {
    let want = autoscaled(0, 3);
    let mut idle = want.clone();
    idle.instances = 0;
    let p = plan(
        &desired(std::slice::from_ref(&want)),
        &observed_with(idle.clone(), 0, true),
    );
    assert_eq!(p.actions[0].kind, ActionKind::NoOp, "not a start");
    let p = plan(&desired(&[autoscaled(0, 5)]), &observed_with(idle, 0, true));
    let action = only_action(&p);
    assert_eq!(action.kind, ActionKind::Update);
    assert!(
        action.changes.iter().any(|c| c.name == "autoscale"),
        "{:?}",
        action.changes
    );
    // A fresh start begins with one instance even with min 0.
    let p = plan(&desired(&[want]), &Observed::nothing());
    assert_eq!(only_action(&p).instances_after, 1);
}

#[test]
fn a_fixed_count_replaced_by_autoscale_shows_both_attributes() {
    let mut fixed = spec("a");
    fixed.instances = 2;
    let p = plan(&desired(&[autoscaled(1, 3)]), &running(&[fixed]));
    let names: Vec<&str> = only_action(&p).changes.iter().map(|c| c.name).collect();
    assert!(
        names.contains(&"instances") && names.contains(&"autoscale"),
        "{names:?}"
    );
}
