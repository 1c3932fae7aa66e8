//! `[telemetry]`: where OpenTelemetry traces of MCP requests go, and how many.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::locate::Locator;
use crate::diag::Diagnostic;

/// `[telemetry]` as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySection {
    /// The OTLP/HTTP collector's base URL, e.g. `"http://127.0.0.1:4318"`: spans of
    /// every MCP request at the gateway are posted to `URL/v1/traces` (protobuf).
    /// Off unless set here, by `OTEL_EXPORTER_OTLP_ENDPOINT` in the daemon's
    /// environment, or by `mcpctl gateway --otlp`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
    /// The share of new traces recorded, from 0 to 1 (default 1). A client's own
    /// decision (its `traceparent`) is followed either way.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub sample_ratio: Option<f64>,
}

/// `[telemetry]`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetrySpec {
    /// `http(s)://host[:port][/path]`, without a trailing `/`.
    pub otlp_endpoint: String,
    pub sample_ratio: f64,
}

/// `None` when the file sets no `otlp_endpoint` (the environment may, then).
pub fn resolve(
    section: Option<&TelemetrySection>,
    loc: &Locator<'_>,
    diags: &mut Vec<Diagnostic>,
) -> Option<TelemetrySpec> {
    let section = section?;
    let sample_ratio = match section.sample_ratio {
        None => 1.0,
        Some(r) if (0.0..=1.0).contains(&r) => r,
        Some(r) => {
            diags.push(
                Diagnostic::new(format!("sample_ratio {r} is not between 0 and 1"))
                    .at(loc.value(&["telemetry", "sample_ratio"]), "here")
                    .hint("0 records no new trace, 1 every one, 0.1 one in ten"),
            );
            return None;
        }
    };
    let text = section.otlp_endpoint.as_deref()?;
    let url = text.trim().trim_end_matches('/');
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        diags.push(
            Diagnostic::new(format!("`{text}` is not an http:// or https:// URL"))
                .at(loc.value(&["telemetry", "otlp_endpoint"]), "here")
                .hint("the collector's OTLP/HTTP base URL, e.g. `\"http://127.0.0.1:4318\"`"),
        );
        return None;
    };
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || url.contains(char::is_whitespace) {
        diags.push(
            Diagnostic::new(format!("`{text}` names no host"))
                .at(loc.value(&["telemetry", "otlp_endpoint"]), "here")
                .hint("the collector's OTLP/HTTP base URL, e.g. `\"http://127.0.0.1:4318\"`"),
        );
        return None;
    }
    // A password in the URL would be printed and logged, and never sent as auth; a
    // query or fragment would swallow the path the spans are posted to.
    if host.contains('@') || rest.contains(['?', '#']) {
        diags.push(
            Diagnostic::new("the collector's URL may have no user, password, query or fragment")
                .at(loc.value(&["telemetry", "otlp_endpoint"]), "here")
                .hint("the collector's OTLP/HTTP base URL, e.g. `\"http://127.0.0.1:4318\"`"),
        );
        return None;
    }
    Some(TelemetrySpec {
        otlp_endpoint: url.to_string(),
        sample_ratio,
    })
}

#[cfg(test)]
mod tests {
    use crate::model::parse;

    fn telemetry(section: &str) -> Result<Option<super::TelemetrySpec>, String> {
        parse(&format!("version = 1\n[telemetry]\n{section}\n"))
            .map(|c| c.telemetry)
            .map_err(|d| format!("{d:?}"))
    }

    #[test]
    fn the_endpoint_and_the_ratio_are_checked() {
        let spec = telemetry("otlp_endpoint = \"http://127.0.0.1:4318/\"\nsample_ratio = 0.25")
            .unwrap()
            .unwrap();
        assert_eq!(spec.otlp_endpoint, "http://127.0.0.1:4318");
        assert_eq!(spec.sample_ratio, 0.25);
        assert_eq!(telemetry("").unwrap(), None);
        let ratio = telemetry("otlp_endpoint = \"http://c:4318\"\nsample_ratio = 1.5").unwrap_err();
        assert!(ratio.contains("not between 0 and 1"), "{ratio}");
        let scheme = telemetry("otlp_endpoint = \"grpc://c:4317\"").unwrap_err();
        assert!(scheme.contains("not an http"), "{scheme}");
        assert!(telemetry("otlp_endpoint = \"http:///v1\"").is_err());
        // From the attack: a password would be printed; a query eats the path.
        assert!(telemetry("otlp_endpoint = \"http://u:hunter2@c:4318\"").is_err());
        assert!(telemetry("otlp_endpoint = \"http://c:4318?x=1\"").is_err());
    }
}
