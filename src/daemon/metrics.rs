//! `/metrics`: the daemon's measurements in the Prometheus text exposition format
//! (OpenMetrics, through the Prometheus project's `prometheus-client`), on the listener of
//! `[daemon] metrics` (or `mcpctl gateway --metrics`). Built from a `status` at each
//! scrape: one `mcpctl_` prefix, base units, `_total` counters; labels are the server,
//! the instance, the MCP method and the phase, never a tool name or a client's value.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use super::Daemon;
use crate::api::{DaemonStatus, Phase};
use crate::gateway::accept::{ConnectionLimits, serve_plain};
use crate::gateway::meter::BUCKETS;

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A listening `/metrics`; dropping it closes the port.
pub(super) struct Listener {
    /// As configured (a port of 0 stays 0 here, so an unchanged file keeps it).
    wanted: SocketAddr,
    /// Dropped with the listener: the port closes.
    _task: crate::gateway::owned::Owned<()>,
}

impl Daemon {
    /// Serves `/metrics` at `wanted` (none: not at all), rebinding when it changed; a
    /// port that cannot be taken is reported, and the servers go on.
    pub(super) async fn serve_metrics(
        self: &Arc<Self>,
        wanted: Option<SocketAddr>,
        progress: &tokio::sync::mpsc::Sender<String>,
    ) {
        let mut current = self.metrics.lock().await;
        if current.as_ref().map(|l| l.wanted) == wanted {
            return;
        }
        *current = None;
        let Some(addr) = wanted else { return };
        let message = match listen(self, addr).await {
            Ok((listener, bound)) => {
                *current = Some(listener);
                format!("metrics: http://{bound}/metrics")
            }
            Err(e) => {
                tracing::warn!("cannot serve metrics on {addr}: {e}");
                format!("metrics: cannot listen on {addr}: {e}")
            }
        };
        let _ = progress.send(message).await;
    }
}

/// Binds `addr` and serves `/metrics` of `daemon`; the listener and where it is bound.
async fn listen(
    daemon: &Arc<Daemon>,
    wanted: SocketAddr,
) -> std::io::Result<(Listener, SocketAddr)> {
    let listener = crate::gateway::accept::bind(wanted)?;
    let addr = listener.local_addr()?;
    // The daemon is held weakly: a scrape must not keep a stopping daemon alive.
    let app = Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .with_state(Arc::downgrade(daemon));
    let limits = ConnectionLimits {
        max_connections: 64,
        ..ConnectionLimits::from_env()
    };
    let task = crate::gateway::owned::owned(serve_plain(listener, app, limits));
    Ok((
        Listener {
            wanted,
            _task: task,
        },
        addr,
    ))
}

async fn scrape(State(daemon): State<std::sync::Weak<Daemon>>) -> Response {
    let Some(daemon) = daemon.upgrade() else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let status = daemon.status().await;
    match exposition(status) {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The exposition of one status.
pub(super) fn exposition(status: DaemonStatus) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape(status)));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

#[derive(Debug)]
struct Scrape(DaemonStatus);

type Labels<'a> = Vec<(&'static str, &'a str)>;

fn gauges(v: Vec<(Labels<'_>, u64)>) -> Vec<(Labels<'_>, ConstGauge<i64>)> {
    v.into_iter()
        .map(|(l, n)| (l, ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX))))
        .collect()
}

fn counters(v: Vec<(Labels<'_>, u64)>) -> Vec<(Labels<'_>, ConstCounter<u64>)> {
    v.into_iter()
        .map(|(l, n)| (l, ConstCounter::new(n)))
        .collect()
}

/// One metric family: its name, help, unit, and a value per label set.
fn family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    samples: Vec<(Labels<'_>, M)>,
) -> Result<(), std::fmt::Error> {
    let Some(kind) = samples.first().map(|(_, m)| m.metric_type()) else {
        return Ok(());
    };
    let mut metric = encoder.encode_descriptor(name, help, unit.as_ref(), kind)?;
    for (labels, value) in &samples {
        value.encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let status = &self.0;
        let version = env!("CARGO_PKG_VERSION");
        family(
            &mut encoder,
            "mcpctl_build_info",
            "The mcpctl that serves these metrics.",
            None,
            vec![(vec![("version", version)], ConstGauge::new(1i64))],
        )?;
        let spans = crate::gateway::trace::counts();
        for (name, help, n) in [
            (
                "mcpctl_otel_spans_exported",
                "Spans the collector took.",
                spans.exported,
            ),
            (
                "mcpctl_otel_spans_dropped",
                "Spans lost: the queue was full, or their export failed.",
                spans.dropped,
            ),
            (
                "mcpctl_otel_export_failures",
                "Exports that failed (unreachable, timed out, not 2xx).",
                spans.failed_exports,
            ),
        ] {
            family(
                &mut encoder,
                name,
                help,
                None,
                vec![(vec![], ConstCounter::new(n))],
            )?;
        }
        if let Some(u) = &status.usage {
            family(
                &mut encoder,
                "mcpctl_daemon_cpu",
                "CPU time of the daemon (its busy-poll spends some to save latency).",
                Some(Unit::Seconds),
                vec![(vec![], ConstCounter::new(u.cpu_seconds))],
            )?;
            family(
                &mut encoder,
                "mcpctl_daemon_resident_memory",
                "Resident memory of the daemon.",
                Some(Unit::Bytes),
                vec![(vec![], ConstGauge::new(u.rss_bytes as i64))],
            )?;
        }
        let trees: Vec<(&str, String, &crate::api::Usage)> = status
            .servers
            .iter()
            .flat_map(|s| {
                s.instances.iter().filter_map(move |i| {
                    Some((s.name.as_str(), i.index.to_string(), i.usage.as_ref()?))
                })
            })
            .collect();
        let (mut cpu, mut rss, mut fds) = (Vec::new(), Vec::new(), Vec::new());
        for (server, index, u) in &trees {
            let labels: Labels<'_> = vec![("server", *server), ("instance", index.as_str())];
            cpu.push((labels.clone(), ConstCounter::new(u.cpu_seconds)));
            rss.push((labels.clone(), ConstGauge::new(u.rss_bytes as i64)));
            fds.push((labels, ConstGauge::new(u.open_fds as i64)));
        }
        family(
            &mut encoder,
            "mcpctl_process_cpu",
            "CPU time of an instance's process tree (shim, server and its children).",
            Some(Unit::Seconds),
            cpu,
        )?;
        family(
            &mut encoder,
            "mcpctl_process_resident_memory",
            "Resident memory of an instance's process tree.",
            Some(Unit::Bytes),
            rss,
        )?;
        family(
            &mut encoder,
            "mcpctl_process_open_fds",
            "Open file descriptors of an instance's process tree.",
            None,
            fds,
        )?;
        let phases = [
            Phase::Starting,
            Phase::Running,
            Phase::Unhealthy,
            Phase::Backoff,
            Phase::CrashLoop,
            Phase::Exited,
            Phase::Stopped,
            Phase::Draining,
        ];
        let mut instances = Vec::new();
        for s in &status.servers {
            for phase in phases {
                let n = s.instances.iter().filter(|i| i.phase == phase).count();
                instances.push((
                    vec![("server", s.name.as_str()), ("state", phase.name())],
                    ConstGauge::new(n as i64),
                ));
            }
        }
        family(
            &mut encoder,
            "mcpctl_instances",
            "Instances of a server, by state.",
            None,
            instances,
        )?;
        family(
            &mut encoder,
            "mcpctl_restarts",
            "Restarts of a server's instances.",
            None,
            status
                .servers
                .iter()
                .map(|s| {
                    (
                        vec![("server", s.name.as_str())],
                        ConstCounter::new(u64::from(s.restarts)),
                    )
                })
                .collect(),
        )?;
        let traffic: Vec<(&str, &crate::api::Traffic)> = status
            .servers
            .iter()
            .filter_map(|s| Some((s.name.as_str(), s.traffic.as_ref()?)))
            .collect();
        let by_server = |value: &dyn Fn(&crate::api::Traffic) -> u64| -> Vec<(Labels<'_>, u64)> {
            traffic
                .iter()
                .map(|(name, t)| (vec![("server", *name)], value(t)))
                .collect()
        };
        family(
            &mut encoder,
            "mcpctl_sessions",
            "Live client sessions of a server.",
            None,
            gauges(by_server(&|t| t.sessions)),
        )?;
        family(
            &mut encoder,
            "mcpctl_requests_in_flight",
            "Requests to a server being answered now.",
            None,
            gauges(by_server(&|t| t.in_flight)),
        )?;
        family(
            &mut encoder,
            "mcpctl_connections",
            "Open connections to a server's port.",
            None,
            gauges(by_server(&|t| t.connections)),
        )?;
        family(
            &mut encoder,
            "mcpctl_accepted_connections",
            "Connections accepted on a server's port.",
            None,
            counters(by_server(&|t| t.connections_total)),
        )?;
        family(
            &mut encoder,
            "mcpctl_network_receive",
            "Bytes received on a server's port.",
            Some(Unit::Bytes),
            counters(by_server(&|t| t.bytes_in)),
        )?;
        family(
            &mut encoder,
            "mcpctl_network_transmit",
            "Bytes sent on a server's port.",
            Some(Unit::Bytes),
            counters(by_server(&|t| t.bytes_out)),
        )?;
        let methods: Vec<(Labels<'_>, &crate::api::MethodTraffic)> = traffic
            .iter()
            .flat_map(|(name, t)| {
                t.methods
                    .iter()
                    .map(move |m| (vec![("server", *name), ("method", m.method.as_str())], m))
            })
            .collect();
        family(
            &mut encoder,
            "mcpctl_requests",
            "Requests answered, by MCP method.",
            None,
            methods
                .iter()
                .map(|(l, m)| (l.clone(), ConstCounter::new(m.requests)))
                .collect(),
        )?;
        family(
            &mut encoder,
            "mcpctl_request_errors",
            "Requests answered with an error (or not answered), by MCP method.",
            None,
            methods
                .iter()
                .map(|(l, m)| (l.clone(), ConstCounter::new(m.errors)))
                .collect(),
        )?;
        encode_endpoints(&mut encoder, &status.endpoints)?;
        if !status.tokens_limited.is_empty() {
            // Labelled by token name: the file's tokens, a bounded set.
            let limited: Vec<(Labels<'_>, u64)> = status
                .tokens_limited
                .iter()
                .map(|(name, n)| (vec![("token", name.as_str())], *n))
                .collect();
            family(
                &mut encoder,
                "mcpctl_token_rate_limited",
                "Requests refused (429) for being over their token's rate.",
                None,
                counters(limited),
            )?;
        }
        if !status.oidc_limited.is_empty() {
            // Labelled by server or endpoint (subjects are unbounded; the file's ports are not).
            let limited: Vec<(Labels<'_>, u64)> = status
                .oidc_limited
                .iter()
                .map(|(target, n)| (vec![("target", target.as_str())], *n))
                .collect();
            family(
                &mut encoder,
                "mcpctl_oidc_rate_limited",
                "Requests of OIDC subjects refused (429) for being over `auth.oidc.rate`.",
                None,
                counters(limited),
            )?;
        }
        if !methods.is_empty() {
            let mut metric = encoder.encode_descriptor(
                "mcpctl_request_duration",
                "Time from a request's arrival to its answer, by MCP method.",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            for (labels, m) in &methods {
                let buckets: Vec<(f64, u64)> = BUCKETS
                    .iter()
                    .copied()
                    .chain([f64::INFINITY])
                    .zip(m.buckets.iter().copied())
                    .collect();
                metric
                    .encode_family(labels)?
                    .encode_histogram::<NoLabelSet>(m.sum_secs, m.requests, &buckets, None)?;
            }
        }
        Ok(())
    }
}

/// Per endpoint: members up, tools shown; per endpoint and member (the members of the
/// file: a bounded label set): calls, errors, latency.
fn encode_endpoints(
    encoder: &mut DescriptorEncoder,
    endpoints: &[crate::api::EndpointStatus],
) -> Result<(), std::fmt::Error> {
    let up: Vec<(Labels<'_>, u64)> = endpoints
        .iter()
        .map(|e| {
            let up = e.members.len().saturating_sub(e.down.len());
            (vec![("endpoint", e.name.as_str())], up as u64)
        })
        .collect();
    family(
        encoder,
        "mcpctl_endpoint_members_up",
        "Members of an endpoint that are up.",
        None,
        gauges(up),
    )?;
    let tools: Vec<(Labels<'_>, u64)> = endpoints
        .iter()
        .map(|e| (vec![("endpoint", e.name.as_str())], e.tools as u64))
        .collect();
    family(
        encoder,
        "mcpctl_endpoint_tools",
        "Tools an endpoint shows to agents.",
        None,
        gauges(tools),
    )?;
    let calls: Vec<(Labels<'_>, &crate::api::MemberCalls)> = endpoints
        .iter()
        .flat_map(|e| {
            e.calls.iter().map(move |c| {
                (
                    vec![("endpoint", e.name.as_str()), ("member", c.member.as_str())],
                    c,
                )
            })
        })
        .collect();
    family(
        encoder,
        "mcpctl_endpoint_calls",
        "Calls an endpoint routed to a member.",
        None,
        counters(calls.iter().map(|(l, c)| (l.clone(), c.calls)).collect()),
    )?;
    // Tools on demand: the meta-tools' calls (two tools: a bounded label set).
    let discovery: Vec<(Labels<'_>, u64)> = endpoints
        .iter()
        .flat_map(|e| {
            e.discovery_calls.iter().map(move |(tool, n)| {
                (
                    vec![("endpoint", e.name.as_str()), ("tool", tool.as_str())],
                    *n,
                )
            })
        })
        .collect();
    family(
        encoder,
        "mcpctl_endpoint_discovery_calls",
        "Calls of an endpoint's find_tools and use_tools (discovery).",
        None,
        counters(discovery),
    )?;
    family(
        encoder,
        "mcpctl_endpoint_call_errors",
        "Calls an endpoint routed to a member that were answered with an error.",
        None,
        counters(calls.iter().map(|(l, c)| (l.clone(), c.errors)).collect()),
    )?;
    if !calls.is_empty() {
        let mut metric = encoder.encode_descriptor(
            "mcpctl_endpoint_call_duration",
            "Time a member took to answer a call routed by an endpoint.",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for (labels, c) in &calls {
            let buckets: Vec<(f64, u64)> = BUCKETS
                .iter()
                .copied()
                .chain([f64::INFINITY])
                .zip(c.buckets.iter().copied())
                .collect();
            metric
                .encode_family(labels)?
                .encode_histogram::<NoLabelSet>(c.sum_secs, c.calls, &buckets, None)?;
        }
    }
    Ok(())
}
