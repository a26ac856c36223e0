//! The checks admin calls make before they write, beside the ones the model
//! makes of names and texts: key lifetimes and expiries, the optimistic-concurrency
//! precondition, rotation overlaps; and the times their messages show.

use super::{Inner, Options, DAY_MS};
use crate::error::{js_number, Error, ErrorCode, Result};
use crate::registry::KeyRecord;
use crate::secret::Prefix;

const MAX_LIFETIME_DAYS_LIMIT: u32 = 36_500;
/// Keys expired this many days are purged, unless `purgeExpiredAfterDays` says otherwise (as Hornbill).
const DEFAULT_PURGE_AFTER_DAYS: f64 = 7.0;
/// The PostgreSQL store's timeouts, unless given.
const DEFAULT_TIMEOUT_MS: f64 = 5_000.0;
/// The longest timeout accepted (an hour): a longer one is a mistake, not a bound.
const MAX_TIMEOUT_MS: f64 = 3_600_000.0;

/// Checks the options every store takes alike, whether or not it uses them: a configuration
/// shared by stores of every kind (`KeyStore.open(process.env.KEYGATE_DB, options)`) is refused
/// by each, or taken by each, never refused only once the URL names another kind of store.
pub(crate) fn check_options(options: &Options) -> Result<()> {
    if let Some(days) = options.max_lifetime_days {
        check_lifetime_days(days)?;
    }
    if let Some(prefix) = &options.key_prefix {
        Prefix::new(prefix)?;
    }
    purge_after_days(options.purge_expired_after_days)?;
    timeout_ms(options.fail_closed_after_ms, "failClosedAfterMs")?;
    timeout_ms(options.connect_timeout_ms, "connectTimeoutMs")?;
    timeout_ms(options.statement_timeout_ms, "statementTimeoutMs")?;
    Ok(())
}

/// `purgeExpiredAfterDays`, or its default.
pub(crate) fn purge_after_days(value: Option<f64>) -> Result<f64> {
    let days = value.unwrap_or(DEFAULT_PURGE_AFTER_DAYS);
    if !(days.is_finite() && days >= 0.0) {
        return Err(Error::new(ErrorCode::InvalidArgument, format!("purgeExpiredAfterDays {} must be 0 or more", js_number(days))));
    }
    Ok(days)
}

/// A timeout option (`name`) in milliseconds, or its default.
pub(crate) fn timeout_ms(value: Option<f64>, name: &str) -> Result<f64> {
    let ms = value.unwrap_or(DEFAULT_TIMEOUT_MS);
    // At least 1 ms: PostgreSQL's own timeouts count whole milliseconds.
    if !(ms.is_finite() && (1.0..=MAX_TIMEOUT_MS).contains(&ms)) {
        return Err(Error::new(ErrorCode::InvalidArgument, format!("{name} {} must be from 1 to {MAX_TIMEOUT_MS} (ms)", js_number(ms))));
    }
    Ok(ms)
}

pub(super) fn iso(ms: i64) -> String {
    crate::time::iso8601(ms)
}

impl Inner {
    /// A key's expiry: given, in the future, and within the store's longest lifetime.
    pub(super) fn check_expiry(&self, expires_at: Option<i64>, now: i64) -> Result<i64> {
        let Some(at) = expires_at else {
            return Err(Error::new(ErrorCode::ExpiryRequired, "expiresAt is required: every key must expire"));
        };
        if at <= now {
            return Err(Error::new(ErrorCode::ExpiryInPast, format!("expiresAt {} is not in the future (now is {})", iso(at), iso(now))));
        }
        if at - now > self.max_lifetime_ms {
            return Err(Error::new(
                ErrorCode::ExpiryTooFar,
                format!(
                    "expiresAt {} is more than {} ahead (latest allowed: {})",
                    iso(at),
                    days(self.max_lifetime_ms / DAY_MS),
                    iso(now + self.max_lifetime_ms)
                ),
            ));
        }
        Ok(at)
    }
}

/// Refuses with `CONFLICT` a change made from a view of the key older than its
/// current `updated_at`; checked inside the write transaction, so no other change
/// can come between the check and the write.
pub(super) fn check_unchanged(record: &KeyRecord, id: &str, expected_updated_at: Option<i64>) -> Result<()> {
    match expected_updated_at {
        Some(expected) if expected != record.updated_at => Err(Error::new(
            ErrorCode::Conflict,
            format!(
                "key {id} was changed elsewhere at {}, after the updatedAt given ({}); read it again and retry",
                iso(record.updated_at),
                iso(expected)
            ),
        )),
        _ => Ok(()),
    }
}

/// A rotation's overlap: a whole number of seconds, 0 or more.
pub(super) fn check_overlap(overlap_seconds: f64) -> Result<()> {
    if !(overlap_seconds.is_finite() && overlap_seconds >= 0.0 && overlap_seconds.fract() == 0.0) {
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            format!("overlapSeconds {} must be a whole number of seconds, 0 or more", js_number(overlap_seconds)),
        ));
    }
    Ok(())
}

/// `1 day`, `730 days`.
fn days(count: i64) -> String {
    if count == 1 {
        "1 day".to_owned()
    } else {
        format!("{count} days")
    }
}

/// A store's `maxLifetimeDays`: a whole number from 1 to 36,500.
pub(crate) fn check_lifetime_days(days: f64) -> Result<()> {
    if !(days.is_finite() && days.fract() == 0.0 && days >= 1.0 && days <= MAX_LIFETIME_DAYS_LIMIT as f64) {
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            format!("maxLifetimeDays {} must be a whole number from 1 to {MAX_LIFETIME_DAYS_LIMIT}", js_number(days)),
        ));
    }
    Ok(())
}
