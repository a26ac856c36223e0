//! `KeyStore`: the public API of the core. Every admin call validates first,
//! then commits its changes to the backend, then applies them in memory — so a
//! call that fails changes nothing.
//!
//! This file holds the handle and the state its clones share ([`Inner`]), how a
//! store is made, and the calls on the store as a whole; the rest, one file each:
//!
//! | file | holds |
//! |---|---|
//! | `types.rs` | the input and view types of the API |
//! | `accounts.rs` | admin calls on roles and users |
//! | `keys.rs` | admin calls on keys, and the purge of expired keys |
//! | `check.rs` | the decision calls (`check`, `explain`, `explain_key`) |
//! | `tx.rs` | the write transaction of one admin call |
//! | `validate.rs` | the checks admin calls make before they write |
//! | `copy.rs` | copying a whole store into an empty one |
//! | `sync.rs` | catching up with other processes, failing closed |
//! | `key_match.rs` | the filter of a listing of keys: user, state, text search |
//! | `key_page.rs` | keys a page at a time (`listKeysPage`) |
//! | `uses.rs` | `lastUsedAt`: recorded by checks, flushed, read back |
//! | `scrub.rs` | error messages that would give away a secret of the store, withheld |

mod accounts;
mod check;
mod copy;
mod key_match;
mod key_page;
mod keys;
mod scrub;
mod sync;
mod tx;
mod types;
mod uses;
mod validate;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

pub use self::check::PendingCheck;
pub use self::copy::CopyReport;
pub use self::key_page::{KeyPage, KeyPageQuery};
pub use self::sync::apply_changes;
pub use self::types::{
    Actor, AuditAction, EffectiveRights, Expect, Explanation, Health, Issued, KeyCounts, KeyFilter, KeyPatch, KeyView, NewKey, Options,
    RoleView, UserInput, UserView,
};
pub(crate) use self::validate::{check_lifetime_days, check_options, purge_after_days, timeout_ms};
use crate::audit::{AuditEntry, AuditQuery, AuditReport};
use crate::backend::{Backend, MemoryBackend};
use crate::clock::Clock;
use crate::error::{Error, ErrorCode, Result};
use crate::incident::Reporter;
use crate::memo::{ExpiryWatch, HintFilter, Signals};
use crate::model::KeyId;
use crate::registry::Registry;
use crate::secret::Prefix;

const DAY_MS: i64 = 86_400_000;
pub const DEFAULT_MAX_LIFETIME_DAYS: u32 = 730;

/// A store of users, roles and keys. Cheap to clone: clones share the store.
#[derive(Clone)]
pub struct KeyStore {
    inner: Arc<Inner>,
}

/// The state every clone of a [`KeyStore`] shares, and the machinery behind its
/// API: writes, catch-up with other processes, recorded uses. Background threads
/// hold it weakly (`KeyStore::downgrade`), so that dropping the last handle ends them.
pub(crate) struct Inner {
    registry: RwLock<Registry>,
    /// Serialises the changes of this process (admin calls, catch-up): held across
    /// the backend's I/O, which the registry's lock never is (see `tx.rs`).
    writer: Mutex<()>,
    prefix: Prefix,
    max_lifetime_ms: i64,
    clock: Arc<Clock>,
    signals: Arc<Signals>,
    hints: Arc<HintFilter>,
    expiry: ExpiryWatch,
    reporter: Arc<Reporter>,
    backend: Box<dyn Backend>,
    /// The backend's version of the state in `registry` (what `health` reports): read
    /// from the backend's cursor once what moved the cursor has been applied.
    applied_version: AtomicI64,
    /// When the store last failed closed (ms since the epoch; 0 while current): `health`'s
    /// `lag_ms` counts from it, since the backend's own contact goes on meanwhile (an SQLite
    /// file still read every 10 ms says nothing of a state this process cannot vouch for).
    unsure_since: AtomicI64,
    /// Keys used since the last flush of `lastUsedAt` (durable stores only).
    used: Mutex<Vec<KeyId>>,
    /// Held by a flush of `lastUsedAt` from taking the uses out of `used` until it has given
    /// back those it could not write, so that no other flush finds `used` emptied by one under
    /// way and says all was written; it holds the failure of the last flush (`None`: written).
    flushing: Mutex<Option<Error>>,
    durable: bool,
    closed: AtomicBool,
    /// Opening this store made it (see [`KeyStore::created`]).
    created: bool,
    /// The durable store's background thread, joined by `close`.
    maintenance: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// A defect inside keygate, reported instead of a crash.
fn internal(what: &str) -> Error {
    Error::new(ErrorCode::Internal, format!("internal error: {what}"))
}

impl KeyStore {
    /// A store with no durable backend.
    pub fn in_memory(options: Options) -> Result<KeyStore> {
        check_options(&options)?;
        let prefix = match &options.key_prefix {
            Some(p) => Prefix::new(p)?,
            None => Prefix::default(),
        };
        KeyStore::with_backend(&options, prefix, Registry::default(), Box::new(MemoryBackend::default()), true)
    }

    /// A store over `registry` (already loaded) whose changes go to `backend`;
    /// `created`: opening it made the store.
    pub(crate) fn with_backend(
        options: &Options,
        prefix: Prefix,
        registry: Registry,
        backend: Box<dyn Backend>,
        created: bool,
    ) -> Result<KeyStore> {
        let days = options.max_lifetime_days.unwrap_or(DEFAULT_MAX_LIFETIME_DAYS as f64);
        check_lifetime_days(days)?;
        let clock = Arc::new(Clock::new(options.now));
        let signals = Arc::new(Signals::default());
        let reporter = Arc::new(Reporter::new(options.on_error.clone()));
        let expiry = ExpiryWatch::new(signals.clone(), clock.clone(), reporter.clone());
        for key in registry.keys() {
            expiry.schedule(key.expires_at);
        }
        let durable = backend.is_durable();
        let hints = Arc::new(HintFilter::default());
        let mut registry = registry;
        registry.attach_hints(hints.clone());
        Ok(KeyStore {
            inner: Arc::new(Inner {
                registry: RwLock::new(registry),
                writer: Mutex::new(()),
                prefix,
                max_lifetime_ms: days as i64 * DAY_MS,
                clock,
                signals,
                hints,
                expiry,
                reporter,
                applied_version: AtomicI64::new(backend.cursor_version()),
                unsure_since: AtomicI64::new(0),
                backend,
                used: Mutex::new(Vec::new()),
                flushing: Mutex::new(None),
                durable,
                closed: AtomicBool::new(false),
                created,
                maintenance: Mutex::new(None),
            }),
        })
    }

    pub(crate) fn downgrade(&self) -> std::sync::Weak<Inner> {
        Arc::downgrade(&self.inner)
    }

    pub(crate) fn set_maintenance(&self, handle: std::thread::JoinHandle<()>) {
        *self.inner.maintenance.lock() = Some(handle);
    }

    /// Catches up with what other processes committed (see `Inner::poll`).
    pub(crate) fn catch_up(&self) -> Result<()> {
        self.inner.poll()
    }

    /// Deletes keys expired for longer than `after_ms` (see `Inner::purge_expired`).
    pub(crate) fn purge_expired(&self, after_ms: i64) -> Result<usize> {
        self.inner.purge_expired(after_ms)
    }

    pub fn signals(&self) -> Arc<Signals> {
        self.inner.signals.clone()
    }

    /// The bitset of all keys' hints (see `memo::hints`).
    pub fn hints(&self) -> Arc<HintFilter> {
        self.inner.hints.clone()
    }

    pub fn key_prefix(&self) -> &str {
        self.inner.prefix.as_str()
    }

    /// The longest lifetime a key may be given, in days.
    pub fn max_lifetime_days(&self) -> u32 {
        (self.inner.max_lifetime_ms / DAY_MS) as u32
    }

    pub fn now(&self) -> i64 {
        self.inner.clock.now()
    }

    /// Freezes the clock at `at`, or returns to the system clock.
    pub fn set_now(&self, at: Option<i64>) {
        self.inner.clock.set(at);
        self.inner.signals.bump();
        self.inner.expiry.clock_changed();
    }

    /// Whether the store can vouch that its state is current. Only a store
    /// shared with other processes can lose that (see `Inner::sync`).
    pub fn is_current(&self) -> bool {
        self.inner.is_current()
    }

    /// Whether the store is in contact with its backend, the version of the state
    /// applied here, and how long ago it last confirmed it was current. A store
    /// that fails closed is not connected, whatever the backend says.
    pub fn health(&self) -> Health {
        let now = crate::clock::system_now();
        let liveness = self.inner.backend.liveness(now);
        let current = self.is_current();
        let unsure_ms = match self.inner.unsure_since.load(Ordering::Acquire) {
            since if !current && since > 0 => now.saturating_sub(since).max(0) as f64,
            _ => 0.0,
        };
        Health {
            connected: liveness.connected && current,
            // Not the backend's cursor, which moves before the registry has the changes.
            applied_version: self.inner.applied_version.load(Ordering::Acquire),
            lag_ms: liveness.lag_ms.max(unsure_ms),
            last_contact_at: liveness.last_contact_at,
        }
    }

    /// Flushes and releases the store; later calls fail with `STORE_IO`. `lastUsedAt`
    /// is best-effort: a flush that fails here is reported through `on_error`, not thrown.
    pub fn close(&self) -> Result<()> {
        if self.inner.is_closed() {
            return Ok(());
        }
        self.inner.backend.closing();
        let flushed = self.inner.flush_uses_at_close();
        if flushed.is_err() {
            self.inner.report(crate::incident::Task::LastUsed, &flushed);
        }
        self.inner.closed.store(true, Ordering::Release);
        self.inner.expiry.stop();
        self.inner.backend.stopping();
        // The background thread stops (closing its own connection) before the
        // last connection closes, so SQLite can fold the WAL into the file.
        let maintenance = self.inner.maintenance.lock().take();
        if let Some(handle) = maintenance {
            if handle.thread().id() != std::thread::current().id() {
                let _ = handle.join();
            }
        }
        // Close's own flush waited for one the background thread had under way, and wrote what
        // that one gave back. A flush the background thread began after it, until close closed
        // the store, held uses close's flush did not see; failing, it put them back, and its
        // report was dropped as the store had closed meanwhile. They get close's flush now, and a
        // failure is reported (by the reporter itself: `report` drops what fails after close). Not
        // when close's own flush failed: that was reported, and trying again would wait out the
        // same timeouts twice.
        if flushed.is_ok() && !self.inner.used.lock().is_empty() {
            if let Err(error) = self.inner.flush_uses() {
                self.inner.reporter.fail(crate::incident::Task::LastUsed, error);
            }
        }
        let _writer = self.inner.writer.lock();
        let _registry = self.inner.registry.write();
        self.inner.backend.close();
        Ok(())
    }

    /// Writes the `lastUsedAt` noted so far, as the background thread would within
    /// the second, for a process about to exit (which ends that thread before it
    /// can). Without waiting for a lock another process holds. A flush the background
    /// thread has under way (it took the uses) is waited for, as `close` waits for it: the
    /// exit would end it mid-write and lose them; when it fails, its failure is returned
    /// and its uses are not tried again (that would wait out the same timeouts twice).
    /// A failure is returned, not reported through `on_error`: that report would reach
    /// JavaScript through the event loop, which has stopped at exit. A closed store has
    /// nothing to write. Background maintenance under way on the network (a purge) is cut
    /// short first, as `close` cuts it (see `Backend::closing`): the exit would otherwise wait
    /// for the connection it holds, up to `statementTimeoutMs` (8.1 s measured with 8,000 ms).
    pub fn flush_uses(&self) -> Result<()> {
        if self.inner.is_closed() {
            return Ok(());
        }
        self.inner.backend.closing();
        self.inner.flush_uses_at_exit()
    }

    /// Writes a consistent copy of the durable store to a new file.
    pub fn backup(&self, to: &str) -> Result<()> {
        self.inner.check_open()?;
        self.inner.backend.backup(std::path::Path::new(to))
    }

    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// The audit trail, newest first. An empty actor filter is `INVALID_ARGUMENT`: every actor
    /// contains the empty text, so a script whose actor variable is unset would read everyone's
    /// changes as one person's.
    pub fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        if query.actor.as_deref() == Some("") {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                "the actor filter is empty, and every actor contains the empty text: give some text of the actor (entries whose actor contains it are listed), or leave it out",
            ));
        }
        self.inner.check_open()?;
        self.inner.backend.audit(query)
    }

    /// Checks the audit trail's hash chain; reports the first altered or missing entry.
    pub fn verify_audit(&self) -> Result<AuditReport> {
        self.inner.check_open()?;
        self.inner.backend.verify_audit()
    }

    /// Whether opening this store made it: a new (or empty) SQLite file, or
    /// keygate's tables in a database that had none. An in-memory store is always new.
    pub fn created(&self) -> bool {
        self.inner.created
    }

    /// Number of keys held.
    pub fn key_count(&self) -> usize {
        self.inner.registry.read().key_count()
    }
}

impl Inner {
    pub(crate) fn is_current(&self) -> bool {
        !self.signals.is_raised(Signals::STORE_UNAVAILABLE)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn check_open(&self) -> Result<()> {
        if self.is_closed() {
            return Err(Error::new(ErrorCode::StoreIo, "the store is closed"));
        }
        Ok(())
    }
}
