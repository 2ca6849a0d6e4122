//! Wall-clock helpers. Gust keeps times as milliseconds since the Unix epoch, like OpenWhisk.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    to_ms(SystemTime::now())
}

/// Milliseconds since the Unix epoch of `t` (0 for times before the epoch).
pub fn to_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `t` as an RFC 3339 UTC timestamp with microseconds, the prefix of every log line.
pub fn iso8601(t: SystemTime) -> String {
    let dt = ::time::OffsetDateTime::from(t);
    let fmt = ::time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    dt.format(&fmt).unwrap_or_default()
}
