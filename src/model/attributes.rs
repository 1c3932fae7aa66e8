//! A spec's attributes: each field as the plan shows and compares it, with what a
//! change of it does (restart, scale, in place). Every field is named here (see
//! `attributes`), so a new one cannot be forgotten.

use std::collections::BTreeMap;

use super::spec::{
    AttrValue, Attribute, Effect, HealthCheck, Network, ResourceLimits, ServerSpec, kebab,
    non_empty_list, non_empty_map,
};

impl ServerSpec {
    /// Every attribute of the spec except `name` and `state` (which decide whether
    /// the server exists at all), in display order.
    pub fn attributes(&self) -> Vec<Attribute> {
        use AttrValue::{List, Map, Number, Text};
        use Effect::{InPlace, Restart, Scale};
        // Every field named, none left to `..`: a field added to the spec does not
        // compile until it is given an attribute here (and so an effect: restart,
        // scale or in place) or said to be none.
        let Self {
            // Whether the server exists at all, not an attribute of it.
            name: _,
            state: _,
            mode,
            transport,
            command,
            args,
            cwd,
            env,
            // Shown as their digests (`secret_digests`).
            secrets: _,
            url,
            bind,
            auth_bearer,
            auth_tokens,
            auth_oidc,
            tls,
            headers,
            tools,
            pin,
            image,
            port,
            sharing,
            network,
            instances,
            autoscale,
            profile,
            restart,
            stop_timeout,
            start_timeout,
            call_timeout,
            limits:
                ResourceLimits {
                    memory_bytes,
                    nofile,
                    cpu_millis,
                },
            drain_timeout,
            max_sessions,
            session_idle,
            health:
                HealthCheck {
                    interval,
                    timeout,
                    failures,
                },
        } = self;
        let attr = |name, value, effect| Attribute {
            name,
            value,
            effect,
            sensitive: false,
        };
        vec![
            attr("mode", Some(Text(kebab(&mode))), Restart),
            attr("transport", Some(Text(kebab(&transport))), Restart),
            attr("command", command.clone().map(Text), Restart),
            attr("args", non_empty_list(args).map(List), Restart),
            attr("cwd", cwd.clone().map(Text), Restart),
            attr("env", non_empty_map(env).map(Map), Restart),
            Attribute {
                sensitive: true,
                ..attr("secrets", self.secret_digests().map(Map), Restart)
            },
            attr("url", url.clone().map(Text), Restart),
            attr("bind", Some(Text(bind.to_string())), Restart),
            attr("auth_bearer", auth_bearer.clone().map(Text), Restart),
            attr(
                "auth_tokens",
                auth_tokens.then(|| Text("true".into())),
                Restart,
            ),
            attr(
                "auth_oidc",
                auth_oidc.as_ref().map(|o| AttrValue::Map(o.parts())),
                Restart,
            ),
            attr(
                "tls",
                tls.as_ref().map(|t| {
                    Map(BTreeMap::from([
                        ("cert".to_string(), t.cert.clone()),
                        ("key".to_string(), t.key.clone()),
                    ]))
                }),
                Restart,
            ),
            attr("headers", non_empty_map(headers).map(Map), Restart),
            // The gateway adopts a new policy live: sessions get `list_changed`.
            attr("tools", tools.parts(), InPlace),
            attr("pin", pin.then(|| Text("true".into())), InPlace),
            // Not what runs here: only what `render k8s` writes.
            attr("image", image.clone().map(Text), InPlace),
            attr("port", Some(Number(u64::from(*port))), Restart),
            attr("sharing", Some(Text(kebab(&sharing))), Restart),
            // Said only when isolated: the machine's network is what ran before it existed.
            attr(
                "network",
                (*network == Network::Isolated).then(|| Text(kebab(&*network))),
                Restart,
            ),
            // With autoscale the count is observed state, not desired: not compared.
            attr(
                "instances",
                autoscale.is_none().then(|| Number(u64::from(*instances))),
                Scale,
            ),
            attr(
                "autoscale",
                autoscale.map(|a| {
                    let mut parts = BTreeMap::from([
                        ("min".to_string(), Number(u64::from(a.min))),
                        ("max".to_string(), Number(u64::from(a.max))),
                        (
                            "scale_down_after".to_string(),
                            Text(humantime::format_duration(a.scale_down_after).to_string()),
                        ),
                    ]);
                    if let Some(s) = a.target_sessions {
                        parts.insert("target_sessions".into(), Number(u64::from(s)));
                    }
                    if let Some(r) = a.target_inflight {
                        parts.insert("target_inflight".into(), Number(u64::from(r)));
                    }
                    if a.min == 0 {
                        parts.insert(
                            "idle_after".into(),
                            Text(humantime::format_duration(a.idle_after).to_string()),
                        );
                    }
                    AttrValue::Record(parts)
                }),
                InPlace,
            ),
            attr("profile", Some(Text(profile.clone())), InPlace),
            attr("restart", Some(Text(kebab(&restart))), InPlace),
            attr(
                "stop_timeout",
                Some(Text(humantime::format_duration(*stop_timeout).to_string())),
                InPlace,
            ),
            attr(
                "start_timeout",
                Some(Text(humantime::format_duration(*start_timeout).to_string())),
                InPlace,
            ),
            attr(
                "call_timeout",
                Some(Text(humantime::format_duration(*call_timeout).to_string())),
                InPlace,
            ),
            attr("limits.memory", memory_bytes.map(Number), InPlace),
            attr("limits.nofile", nofile.map(Number), Restart),
            attr(
                "limits.cpu",
                cpu_millis.map(|m| Text(format!("{}", m as f64 / 1000.0))),
                InPlace,
            ),
            attr(
                "drain_timeout",
                Some(Text(humantime::format_duration(*drain_timeout).to_string())),
                InPlace,
            ),
            attr("max_sessions", Some(Number(*max_sessions as u64)), InPlace),
            attr(
                "session_idle",
                Some(Text(humantime::format_duration(*session_idle).to_string())),
                InPlace,
            ),
            attr(
                "health",
                Some(AttrValue::Record(BTreeMap::from([
                    (
                        "interval".to_string(),
                        Text(humantime::format_duration(*interval).to_string()),
                    ),
                    (
                        "timeout".to_string(),
                        Text(humantime::format_duration(*timeout).to_string()),
                    ),
                    ("failures".to_string(), Number(u64::from(*failures))),
                ]))),
                InPlace,
            ),
        ]
    }
}
