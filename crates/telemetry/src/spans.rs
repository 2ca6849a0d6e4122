//! Spans of invocations and their export over OTLP (issue 28, point 2).
