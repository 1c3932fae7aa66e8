//! What the page lists under "recent events": applies (what changed, the result, who
//! asked), and what a `status` reading shows moved since the one before: restarts,
//! crash loops, state changes, autoscale decisions, calls refused for their rate; and
//! refusals read from the audit log. Bounded: the last [`MAX_EVENTS`].

use std::collections::VecDeque;

use serde::Serialize;

use crate::api::{ApplyBy, ApplyOptions, AuditEntry, DaemonStatus, ServerStatus};

pub const MAX_EVENTS: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Apply,
    Restart,
    CrashLoop,
    State,
    Scale,
    Refused,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Increasing, so the page knows what it has already shown.
    pub id: u64,
    /// RFC 3339.
    pub at: String,
    pub kind: Kind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    pub message: String,
}

/// Who asked for an apply, as the list says it.
pub fn by(options: &ApplyOptions) -> &'static str {
    match options.by {
        ApplyBy::Cli if options.origin.as_ref().is_some_and(|o| o.rev.is_some()) => "apply --rev",
        ApplyBy::Cli if options.expect.is_some() => "a saved plan",
        ApplyBy::Cli => "the CLI",
        ApplyBy::Watch => "watch",
        ApplyBy::Daemon => "the daemon",
        ApplyBy::Page => "the dashboard",
    }
}

#[derive(Default)]
pub struct Log {
    events: VecDeque<Event>,
    next: u64,
}

impl Log {
    /// Adds `event` (its id assigned here) and returns it as added.
    pub fn push(&mut self, mut event: Event) -> Event {
        self.next += 1;
        event.id = self.next;
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(event.clone());
        event
    }

    /// The events kept, oldest first.
    pub fn all(&self) -> Vec<Event> {
        self.events.iter().cloned().collect()
    }
}

fn event(at: &str, kind: Kind, server: Option<&str>, message: String) -> Event {
    Event {
        id: 0,
        at: at.to_string(),
        kind,
        server: server.map(str::to_string),
        message,
    }
}

/// An apply: `changes` (`start a`, `stop b`; none: nothing to do), its `failures`.
pub fn applied(at: &str, by: &str, changes: &[String], failures: &[String]) -> Event {
    let what = if changes.is_empty() {
        "nothing to change".to_string()
    } else {
        changes.join(", ")
    };
    let result = match failures.len() {
        0 => "ok".to_string(),
        n => format!("{n} failed: {}", failures.join("; ")),
    };
    event(
        at,
        Kind::Apply,
        None,
        format!("apply by {by}: {what} ({result})"),
    )
}

/// A refusal the audit log recorded.
pub fn refused(entry: &AuditEntry) -> Event {
    let who = entry.caller.as_deref().unwrap_or("an unknown caller");
    let what = match (&entry.method, &entry.tool) {
        (_, Some(tool)) => format!("tools/call {tool}"),
        (Some(method), None) => method.clone(),
        (None, None) => "a request".into(),
    };
    let why = entry.why.as_deref().unwrap_or("refused");
    event(
        &entry.at,
        Kind::Refused,
        Some(&entry.target),
        format!("refused {what} of {who}: {why} ({})", entry.status),
    )
}

/// What moved between two readings of `status`, taken at `at`.
pub fn changes(before: &DaemonStatus, after: &DaemonStatus, at: &str) -> Vec<Event> {
    let mut out = Vec::new();
    for now in &after.servers {
        let name = Some(now.name.as_str());
        let Some(was) = before.servers.iter().find(|s| s.name == now.name) else {
            out.push(event(
                at,
                Kind::State,
                name,
                format!("{} is {}", now.name, now.status),
            ));
            continue;
        };
        if now.restarts > was.restarts {
            let why = why_restarted(now);
            out.push(event(
                at,
                Kind::Restart,
                name,
                format!("{} restarted ({} in all){why}", now.name, now.restarts),
            ));
        }
        if now.status != was.status {
            let kind = if now.status == "crash-loop" {
                Kind::CrashLoop
            } else {
                Kind::State
            };
            out.push(event(
                at,
                kind,
                name,
                format!("{}: {} -> {}", now.name, was.status, now.status),
            ));
        }
        if now.last_scale != was.last_scale
            && let Some(d) = &now.last_scale
        {
            out.push(event(
                at,
                Kind::Scale,
                name,
                format!("{} scaled {} -> {}: {}", now.name, d.from, d.to, d.reason),
            ));
        }
    }
    for gone in &before.servers {
        if !after.servers.iter().any(|s| s.name == gone.name) {
            out.push(event(
                at,
                Kind::State,
                Some(&gone.name),
                format!("{} stopped", gone.name),
            ));
        }
    }
    for (limits, what) in [
        (&after.tokens_limited, "token"),
        (&after.oidc_limited, "OIDC subjects of"),
    ] {
        let earlier = if what == "token" {
            &before.tokens_limited
        } else {
            &before.oidc_limited
        };
        for (name, count) in limits {
            let more = count.saturating_sub(earlier.get(name).copied().unwrap_or(0));
            if more > 0 {
                out.push(event(
                    at,
                    Kind::Refused,
                    None,
                    format!("refused {more} call(s) of {what} {name}: over its rate"),
                ));
            }
        }
    }
    out
}

fn why_restarted(server: &ServerStatus) -> String {
    server
        .instances
        .iter()
        .find_map(|i| i.last_restart.clone().or_else(|| i.last_exit.clone()))
        .map(|why| format!(": {why}"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ScaleDecision;

    fn status(servers: &[(&str, &str, u32)]) -> DaemonStatus {
        crate::ui::fixture::status(
            servers
                .iter()
                .map(|(name, state, restarts)| crate::ui::fixture::server(name, state, *restarts))
                .collect(),
        )
    }

    fn kinds(events: &[Event]) -> Vec<(Kind, String)> {
        events.iter().map(|e| (e.kind, e.message.clone())).collect()
    }

    #[test]
    fn restarts_crash_loops_states_and_scaling_become_events() {
        let before = status(&[("a", "running", 0), ("b", "running", 0)]);
        let mut after = status(&[("a", "crash-loop", 3), ("c", "starting", 0)]);
        after.servers[0].last_scale = Some(ScaleDecision {
            at: String::new(),
            from: 1,
            to: 2,
            reason: "busy".into(),
        });
        after.tokens_limited.insert("ci".into(), 4);
        let events = changes(&before, &after, "t");
        assert_eq!(
            kinds(&events),
            vec![
                (Kind::Restart, "a restarted (3 in all)".into()),
                (Kind::CrashLoop, "a: running -> crash-loop".into()),
                (Kind::Scale, "a scaled 1 -> 2: busy".into()),
                (Kind::State, "c is starting".into()),
                (Kind::State, "b stopped".into()),
                (
                    Kind::Refused,
                    "refused 4 call(s) of token ci: over its rate".into()
                ),
            ]
        );
        assert!(changes(&after, &after, "t").is_empty(), "nothing moved");
    }

    #[test]
    fn the_log_is_bounded_and_numbers_its_events() {
        let page = ApplyOptions {
            by: ApplyBy::Page,
            ..ApplyOptions::default()
        };
        let mut log = Log::default();
        for _ in 0..MAX_EVENTS + 5 {
            log.push(applied("t", by(&page), &["stop a".into()], &[]));
        }
        let all = log.all();
        assert_eq!(all.len(), MAX_EVENTS);
        assert_eq!(all.last().map(|e| e.id), Some(MAX_EVENTS as u64 + 5));
        assert_eq!(
            all[0].message,
            "apply by the dashboard: stop a (ok)".to_string()
        );
    }
}
