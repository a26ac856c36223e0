//! Instants as they appear in messages.

use chrono::{DateTime, Datelike};

/// The instants JavaScript's Date can hold (±8.64e15 ms): keygate never writes others.
const MAX_DATE_MS: i64 = 8_640_000_000_000_000;

/// Whether `ms` is an instant JavaScript's Date can hold.
pub(crate) const fn is_date(ms: i64) -> bool {
    ms.unsigned_abs() <= MAX_DATE_MS as u64
}

/// The Gregorian calendar repeats every 400 years, which are 146,097 days.
const CYCLE_MS: i64 = 146_097 * 86_400_000;
const CYCLE_YEARS: i64 = 400;

/// ISO 8601 in UTC with milliseconds, as JavaScript's `Date#toISOString` writes it: a year outside
/// 0–9999 as a sign and six digits (`+275760-09-13T00:00:00.000Z`, the latest Date). An instant no
/// Date can hold (which keygate never writes) is shown as its number of milliseconds.
pub fn iso8601(ms: i64) -> String {
    if !is_date(ms) {
        return format!("{ms} ms");
    }
    // chrono's dates end at year ±262,143, short of Date's ±275,760: the instant is moved by whole
    // 400-year cycles to within one cycle of 1970 (the same month, day and time) and its year moved back.
    let cycles = ms / CYCLE_MS;
    let Some(shifted) = DateTime::from_timestamp_millis(ms - cycles * CYCLE_MS) else {
        return format!("{ms} ms");
    };
    let year = i64::from(shifted.year()) + cycles * CYCLE_YEARS;
    let year = if (0..=9999).contains(&year) { format!("{year:04}") } else { format!("{year:+07}") };
    format!("{year}-{}", shifted.format("%m-%dT%H:%M:%S%.3fZ"))
}

#[cfg(test)]
mod tests {
    use super::iso8601;

    #[test]
    fn writes_instants_as_javascript_to_iso_string_does() {
        // Each pair as `new Date(ms).toISOString()` writes it (Node 20).
        for (ms, js) in [
            (0, "1970-01-01T00:00:00.000Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (1_798_761_599_999, "2026-12-31T23:59:59.999Z"),
            (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
            (253_402_300_800_000, "+010000-01-01T00:00:00.000Z"),
            (-62_167_219_200_000, "0000-01-01T00:00:00.000Z"),
            (-62_167_219_200_001, "-000001-12-31T23:59:59.999Z"),
            (-62_198_755_200_000, "-000001-01-01T00:00:00.000Z"),
            (1_000_000_000_000_000, "+033658-09-27T01:46:40.000Z"),
            (-1_000_000_000_000_000, "-029719-04-05T22:13:20.000Z"),
            (8_639_999_999_999_999, "+275760-09-12T23:59:59.999Z"),
            (8_640_000_000_000_000, "+275760-09-13T00:00:00.000Z"),
            (-8_640_000_000_000_000, "-271821-04-20T00:00:00.000Z"),
        ] {
            assert_eq!(iso8601(ms), js, "{ms}");
        }
        assert_eq!(iso8601(8_640_000_000_000_001), "8640000000000001 ms");
        assert_eq!(iso8601(i64::MIN), format!("{} ms", i64::MIN));
    }
}
