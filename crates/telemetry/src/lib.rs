//! Telemetry: the process's metrics registry and its span exporter (decision 0026).
//!
//! `metrics` holds every metric Gust records, served in Prometheus' text format; `spans`
//! exports the spans of invocations over OTLP when an endpoint is configured. The trace
//! context itself (W3C `traceparent`) is a wire format and lives in `gust_model::trace`.
//!
//! **Invariant:** recording never waits on I/O; export runs on its own task.
//! **May not depend on:** any Gust crate but `gust-model`.

pub mod metrics;
pub mod spans;
