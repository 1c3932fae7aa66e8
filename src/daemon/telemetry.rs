//! `[telemetry]` into force at each apply, live: the exporter is replaced, no server
//! restarts (the ports read the process's tracer at each request).

use tokio::sync::mpsc;

use super::Daemon;
use crate::gateway::trace::{self, Settings};
use crate::model::telemetry::TelemetrySpec;

impl Daemon {
    /// Traces to `spec`'s collector; with none, to `OTEL_EXPORTER_OTLP_ENDPOINT`'s, or
    /// off. Says so when it changed.
    pub(super) async fn trace_to(
        &self,
        spec: Option<TelemetrySpec>,
        progress: &mpsc::Sender<String>,
    ) {
        let settings = spec
            .map(|t| Settings::new(&t.otlp_endpoint, t.sample_ratio))
            .or_else(Settings::from_env);
        let line = match trace::configure(settings.clone()).await {
            Ok(false) => return,
            Ok(true) => match settings {
                Some(s) => format!(
                    "tracing: spans to {} (sample ratio {})",
                    s.traces_url(),
                    s.sample_ratio
                ),
                None => "tracing: off".to_string(),
            },
            Err(e) => format!("tracing: {e}"),
        };
        let _ = progress.send(line).await;
    }
}
