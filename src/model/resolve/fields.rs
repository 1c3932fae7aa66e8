//! The rules of single fields: durations, counts, sizes, and the small tables
//! (`health`, `limits`) checked part by part, each error pointing at its line.

use std::time::Duration;

use crate::diag::Diagnostic;

use super::super::locate::Locator;
use super::super::spec::{Autoscale, HealthCheck, ResourceLimits};
use super::Sourced;

/// `limits = { ... }`, each part checked.
pub(super) fn resource_limits(
    server: &str,
    limits: Option<&Sourced<super::super::raw::Limits>>,
    loc: &Locator<'_>,
    diags: &mut Vec<Diagnostic>,
) -> Option<ResourceLimits> {
    let Some(l) = limits else {
        return Some(ResourceLimits::default());
    };
    let at = |field: &str| [l.origin.as_slice(), &[field.to_string()]].concat();
    let before = diags.len();
    let memory_bytes = l.value.memory.as_deref().and_then(|text| {
        let parsed = parse_size(text).filter(|n| *n >= 1 << 20);
        if parsed.is_none() {
            diags.push(
                Diagnostic::new(format!(
                    "`limits.memory` of server `{server}` is not a size of at least 1 MiB"
                ))
                .at(loc.value(&at("memory")), "here")
                .hint("write a size like \"512MiB\", \"2GiB\" or \"800MB\""),
            );
        }
        parsed
    });
    let nofile = l.value.nofile.and_then(|n| match u64::try_from(n) {
        Ok(n) if (16..=1_048_576).contains(&n) => Some(n),
        _ => {
            diags.push(
                Diagnostic::new(format!(
                    "`limits.nofile` of server `{server}` is out of range"
                ))
                .at(loc.value(&at("nofile")), "not between 16 and 1048576")
                .hint("a server needs a few descriptors of its own: 1024 or more is usual"),
            );
            None
        }
    });
    let cpu_millis = l.value.cpu.and_then(|c| {
        // The kernel's least quota is 1 ms per 100 ms period: a thousandth of a core.
        if c.is_finite() && (0.001..=1024.0).contains(&c) {
            Some((c * 1000.0).round() as u64)
        } else {
            diags.push(
                Diagnostic::new(format!("`limits.cpu` of server `{server}` is out of range"))
                    .at(loc.value(&at("cpu")), "not a number of cores from 0.001")
                    .hint("e.g. `cpu = 1.5`"),
            );
            None
        }
    });
    (diags.len() == before).then_some(ResourceLimits {
        memory_bytes,
        nofile,
        cpu_millis,
    })
}

const DEFAULT_SCALE_DOWN_AFTER: Duration = Duration::from_secs(300);
const DEFAULT_IDLE_AFTER: Duration = Duration::from_secs(600);

/// `autoscale = { ... }`, each part checked: `Some(None)` without one, `None` on an error.
pub(super) fn autoscale(
    server: &str,
    autoscale: Option<&Sourced<super::super::raw::Autoscale>>,
    loc: &Locator<'_>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Option<Autoscale>> {
    let Some(a) = autoscale else {
        return Some(None);
    };
    let at = |field: &str| [a.origin.as_slice(), &[field.to_string()]].concat();
    let before = diags.len();
    let mut count = |field: &str, value: Option<i64>, range: std::ops::RangeInclusive<i64>| {
        let value = value?;
        if range.contains(&value) {
            return u32::try_from(value).ok();
        }
        diags.push(
            Diagnostic::new(format!(
                "`autoscale.{field}` of server `{server}` is out of range"
            ))
            .at(
                loc.value(&at(field)),
                format!("not between {} and {}", range.start(), range.end()),
            )
            .hint("e.g. `autoscale = { min = 1, max = 4, target_sessions = 20 }`"),
        );
        None
    };
    let min = count("min", Some(a.value.min.unwrap_or(1)), 0..=64);
    let max = count("max", Some(a.value.max), 1..=64);
    let target_sessions = count("target_sessions", a.value.target_sessions, 1..=1_000_000);
    let target_inflight = count("target_inflight", a.value.target_inflight, 1..=1_000_000);
    if let (Some(min), Some(max)) = (min, max)
        && min > max
    {
        diags.push(
            Diagnostic::new(format!(
                "`autoscale` of server `{server}` has `min` ({min}) above `max` ({max})"
            ))
            .at(loc.value(&at("min")), "above max")
            .hint("the count stays between min and max: min <= max"),
        );
    }
    let part = |field: &str, value: &Option<String>| {
        value.as_ref().map(|v| Sourced {
            value: v.clone(),
            origin: at(field),
        })
    };
    let scale_down = part("scale_down_after", &a.value.scale_down_after);
    // Zero would let the count follow every dip: the flapping the period prevents.
    let scale_down_after = positive(
        server,
        "autoscale.scale_down_after",
        &scale_down,
        DEFAULT_SCALE_DOWN_AFTER,
        loc,
        diags,
    );
    let idle = part("idle_after", &a.value.idle_after);
    let idle_after = positive(
        server,
        "autoscale.idle_after",
        &idle,
        DEFAULT_IDLE_AFTER,
        loc,
        diags,
    );
    if diags.len() != before {
        return None;
    }
    Some(Some(Autoscale {
        min: min?,
        max: max?,
        target_sessions,
        target_inflight,
        scale_down_after: scale_down_after?,
        idle_after: idle_after?,
    }))
}

/// `512MiB`, `2GiB`, `800MB`, `64K`, `1048576`: bytes (K/M/G alone are binary).
pub(in crate::model) fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "K" | "KiB" => 1024.0,
        "M" | "MiB" => 1024.0 * 1024.0,
        "G" | "GiB" => 1024.0 * 1024.0 * 1024.0,
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        _ => return None,
    };
    let bytes = number * scale;
    (1.0..1e18).contains(&bytes).then(|| bytes.round() as u64)
}

/// `health = { ... }`, each part defaulted and checked.
pub(super) fn health_check(
    server: &str,
    health: Option<&Sourced<super::super::raw::Health>>,
    loc: &Locator<'_>,
    diags: &mut Vec<Diagnostic>,
) -> Option<HealthCheck> {
    let defaults = HealthCheck::default();
    let Some(h) = health else {
        return Some(defaults);
    };
    let part = |field: &str, value: &Option<String>| {
        value.as_ref().map(|v| Sourced {
            value: v.clone(),
            origin: [h.origin.as_slice(), &[field.to_string()]].concat(),
        })
    };
    let interval = part("interval", &h.value.interval);
    let interval = positive(
        server,
        "health.interval",
        &interval,
        defaults.interval,
        loc,
        diags,
    );
    let timeout = part("timeout", &h.value.timeout);
    let timeout = positive(
        server,
        "health.timeout",
        &timeout,
        defaults.timeout,
        loc,
        diags,
    );
    let failures = match h.value.failures {
        None => Some(defaults.failures),
        Some(n) if (1..=100).contains(&n) => u32::try_from(n).ok(),
        Some(_) => {
            let at = [h.origin.as_slice(), &["failures".to_string()]].concat();
            diags.push(
                Diagnostic::new(format!(
                    "`health.failures` of server `{server}` is out of range"
                ))
                .at(loc.value(&at), "not between 1 and 100")
                .hint("restart after 1 to 100 missed pings in a row"),
            );
            None
        }
    };
    Some(HealthCheck {
        interval: interval?,
        timeout: timeout?,
        failures: failures?,
    })
}

/// A duration, `default` when unset, that must not be zero.
pub(super) fn positive(
    server: &str,
    field: &str,
    value: &Option<Sourced<String>>,
    default: Duration,
    loc: &Locator<'_>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Duration> {
    let parsed = duration(server, field, value, default, loc, diags);
    nonzero(server, field, value, parsed, loc, diags)
}

/// A duration that must not be zero (a zero timeout would fail everything at once).
pub(super) fn nonzero(
    server: &str,
    field: &str,
    value: &Option<Sourced<String>>,
    parsed: Option<Duration>,
    loc: &Locator<'_>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Duration> {
    match (parsed, value) {
        (Some(d), Some(v)) if d.is_zero() => {
            diags.push(
                Diagnostic::new(format!("`{field}` of server `{server}` is zero"))
                    .at(loc.value(&v.origin), "must be more than 0")
                    .hint("give a positive duration such as \"10s\""),
            );
            None
        }
        (parsed, _) => parsed,
    }
}

pub(super) fn duration(
    server: &str,
    field: &str,
    value: &Option<Sourced<String>>,
    default: Duration,
    loc: &Locator<'_>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Duration> {
    let Some(v) = value else { return Some(default) };
    match humantime::parse_duration(&v.value) {
        Ok(d) => Some(d),
        Err(e) => {
            diags.push(
                Diagnostic::new(format!("`{field}` of server `{server}` is not a duration"))
                    .at(loc.value(&v.origin), e.to_string())
                    .hint("write a duration such as \"10s\", \"500ms\" or \"1m 30s\""),
            );
            None
        }
    }
}
