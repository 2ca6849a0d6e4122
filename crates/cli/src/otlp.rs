//! Span export's flag, shared by `gust serve`, `gust controller` and `gust invoker`
//! (decision 0026): spans are sent over OTLP only when an endpoint is given.

use anyhow::Result;
use gust_telemetry::spans::{self, Exporting};

/// Where to send spans, if anywhere.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OtlpArgs {
    /// Export the spans of invocations to this OpenTelemetry collector (OTLP over HTTP with
    /// protobuf; its base URL, such as `http://127.0.0.1:4318`: spans go to
    /// `<URL>/v1/traces`). Nothing is sent without it.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,
}

impl OtlpArgs {
    /// Starts span export as service `gust` in `role`, if an endpoint is given (an empty one
    /// is none); prints where spans go.
    pub fn start(&self, role: &str) -> Result<Option<Exporting>> {
        let Some(endpoint) = self
            .otlp_endpoint
            .as_deref()
            .filter(|e| !e.trim().is_empty())
        else {
            return Ok(None);
        };
        let exporting = spans::start(endpoint, role)?;
        // Not the URL: it may hold credentials.
        println!("gust: spans exported over OTLP");
        Ok(Some(exporting))
    }
}

/// Sends the spans still queued, if span export runs.
pub async fn stop(exporting: Option<Exporting>) {
    if let Some(e) = exporting {
        e.shutdown().await;
    }
}
