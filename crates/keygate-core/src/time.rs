//! Instants as they appear in messages.

use chrono::{DateTime, SecondsFormat};

/// ISO 8601 in UTC with milliseconds, as JavaScript's `Date#toISOString` writes it.
pub fn iso8601(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms).map_or_else(|| format!("{ms} ms"), |t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
}
