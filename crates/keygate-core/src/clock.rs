//! The store clock: the system clock, or an instant frozen for tests.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const SYSTEM: i64 = i64::MIN;

#[derive(Debug)]
pub struct Clock {
    frozen: AtomicI64,
}

impl Clock {
    pub fn new(frozen: Option<i64>) -> Clock {
        Clock { frozen: AtomicI64::new(frozen.unwrap_or(SYSTEM)) }
    }

    /// Milliseconds since the Unix epoch.
    #[inline]
    pub fn now(&self) -> i64 {
        match self.frozen.load(Ordering::Acquire) {
            SYSTEM => system_now(),
            frozen => frozen,
        }
    }

    pub fn frozen_at(&self) -> Option<i64> {
        match self.frozen.load(Ordering::Acquire) {
            SYSTEM => None,
            frozen => Some(frozen),
        }
    }

    /// Freezes the clock at `at`, or returns to the system clock with `None`.
    pub fn set(&self, at: Option<i64>) {
        self.frozen.store(at.unwrap_or(SYSTEM), Ordering::Release);
    }
}

pub fn system_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
