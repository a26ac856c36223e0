//! Instants as they appear in messages.

use chrono::{DateTime, SecondsFormat};

/// The instants JavaScript's Date can hold (±8.64e15 ms): keygate never writes others.
const MAX_DATE_MS: i64 = 8_640_000_000_000_000;

/// Whether `ms` is an instant JavaScript's Date can hold.
pub(crate) const fn is_date(ms: i64) -> bool {
    ms.unsigned_abs() <= MAX_DATE_MS as u64
}

/// ISO 8601 in UTC with milliseconds, as JavaScript's `Date#toISOString` writes it.
pub fn iso8601(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms).map_or_else(|| format!("{ms} ms"), |t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
}
