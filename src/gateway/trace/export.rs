//! The exporter: one task that takes the finished spans from the queue every `delay`
//! (at once when a batch is full) and posts them to the collector as OTLP/HTTP
//! protobuf, [`MAX_BATCH`] a request, one request at a time, each within `timeout`. A
//! failed batch is counted as dropped, not retried: a collector that is down must
//! not make the daemon hold spans without bound. The queue closing (the tracer
//! replaced or shut down) sends what is left and ends the task.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Uri;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use std::sync::Arc;

use super::otlp::{self, AttrValue, Resource, SpanData};
use super::queue::Queue;
use super::{MAX_BATCH, exported, lost};
use crate::gateway::proxy::Connector;

/// What is read of a collector's answer, at most.
const MAX_ANSWER: usize = 64 * 1024;

pub(super) struct Exporter {
    pub(super) client: Client<HttpsConnector<Connector>, Full<Bytes>>,
    pub(super) url: Uri,
    pub(super) delay: Duration,
    pub(super) timeout: Duration,
    pub(super) resource: Arc<Resource>,
}

/// `service.name` (`OTEL_SERVICE_NAME`, else `mcpctl`), the version, the host.
pub(super) fn resource() -> Resource {
    let service = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "mcpctl".to_string());
    let mut attributes = vec![
        ("service.name", AttrValue::Str(service)),
        (
            "service.version",
            AttrValue::Str(env!("CARGO_PKG_VERSION").to_string()),
        ),
        ("telemetry.sdk.name", AttrValue::Str("mcpctl".to_string())),
        ("telemetry.sdk.language", AttrValue::Str("rust".to_string())),
        ("process.pid", AttrValue::Int(i64::from(std::process::id()))),
    ];
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        attributes.push(("host.name", AttrValue::Str(host.trim().to_string())));
    }
    Resource { attributes }
}

impl Exporter {
    pub(super) async fn run(self, queue: Arc<Queue>) {
        loop {
            queue.wait(self.delay).await;
            // Read before taking: a span pushed after the close is nobody's.
            let closed = queue.is_closed();
            let spans = queue.take();
            if !spans.is_empty() {
                self.export(spans).await;
            }
            if closed {
                return;
            }
        }
    }

    /// Encodes off the runtime's thread (the daemon runs one: a batch's encoding would
    /// hold up every call behind it, the p99 of a traced call), then posts each batch.
    async fn export(&self, spans: Vec<SpanData>) {
        let count = spans.len();
        let resource = Arc::clone(&self.resource);
        let encoded = tokio::task::spawn_blocking(move || {
            spans
                .chunks(MAX_BATCH)
                .map(|batch| (batch.len(), otlp::encode(&resource, batch)))
                .collect::<Vec<_>>()
        })
        .await;
        let Ok(bodies) = encoded else {
            lost(count);
            return;
        };
        for (spans, body) in bodies {
            self.send(spans, body).await;
        }
    }

    async fn send(&self, spans: usize, body: Vec<u8>) {
        let request = hyper::Request::post(self.url.clone())
            .header(hyper::header::CONTENT_TYPE, "application/x-protobuf")
            .header(
                hyper::header::USER_AGENT,
                concat!("mcpctl/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(Bytes::from(body)));
        let Ok(request) = request else {
            lost(spans);
            return;
        };
        let sent = tokio::time::timeout(self.timeout, async {
            let response = self.client.request(request).await.ok()?;
            let ok = response.status().is_success();
            // Read a short answer so the connection can be used again; a long one is
            // not read (the connection is dropped): a collector may answer anything.
            let mut body = response.into_body();
            let mut read = 0usize;
            while read <= MAX_ANSWER {
                match http_body_util::BodyExt::frame(&mut body).await {
                    Some(Ok(frame)) => read += frame.data_ref().map_or(0, |d| d.len()),
                    _ => break,
                }
            }
            Some(ok)
        })
        .await;
        match sent {
            Ok(Some(true)) => exported(spans),
            outcome => {
                tracing::debug!(
                    url = %self.url,
                    spans,
                    timed_out = outcome.is_err(),
                    "a batch of spans could not be exported"
                );
                lost(spans);
            }
        }
    }
}
