//! The server's clock and the one time format of storage and wire (epoch milliseconds).

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch: the one time format of storage and wire.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// ISO 8601 local time with its offset, e.g. `2026-11-28T08:00:00+08:00`.
pub(crate) fn local_time(ms: i64, offset_ms: i64) -> String {
    let offset = time::UtcOffset::from_whole_seconds((offset_ms / 1000) as i32)
        .unwrap_or(time::UtcOffset::UTC);
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map(|t| t.to_offset(offset))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}
