//! The `Backend` seam: where a store's changes go, and how it learns of other
//! processes' changes. [`MemoryBackend`] (`KeyStore::in_memory`) keeps only an
//! audit window; `SqliteBackend` (`sqlite/`) shares one file between processes,
//! `PgBackend` (`postgres/`) one PostgreSQL database between hosts. A new backend
//! implements [`Backend`] and is put beside them; the decision never changes, because a check never reaches a
//! backend: it reads the registry in memory and one flag, `STORE_UNAVAILABLE`
//! (`KeyStore::is_current`), which the store raises and lowers from what the
//! backend's calls answer.
//!
//! # The write path
//!
//! Every admin call is one write, driven by the store (`store/tx.rs`). Admin
//! calls of one process go one at a time (the store's writer lock, held from
//! `begin` to `commit`); the registry itself is never locked across a backend
//! call, so a check never waits behind I/O (a slow disk, a half-open network
//! connection):
//!
//! 1. [`begin`](Backend::begin) takes the durable write lock, so that writers
//!    of all processes go one at a time.
//! 2. [`changes`](Backend::changes) returns what other processes committed since
//!    this one last looked; the store applies it (holding the registry for
//!    writing only while it applies) before it plans the call.
//! 3. The store validates the call against the now-current registry, held for
//!    reading, and plans its [`Change`]s and audit drafts.
//! 4. [`commit`](Backend::commit), with the registry unlocked, makes the changes
//!    and their audit entries durable together; then the store holds the registry
//!    for writing, applies them in memory and bumps the memo's generation. Or
//!    [`rollback`](Backend::rollback), when the call changes nothing or fails
//!    anywhere after `begin` (also when the backend itself panicked inside `commit`).
//!
//! Nothing else changes the registry between steps 2 and 4: catching up from the
//! background thread (`Inner::poll`) takes the same writer lock.
//!
//! # Following other processes
//!
//! A shared backend runs its own background thread (started where the store is
//! opened: `KeyStore::with_backend`, then `KeyStore::downgrade` for a `Weak`
//! handle the thread upgrades on each round and `KeyStore::set_maintenance` so
//! that `close` joins it). When it learns that others committed, the thread calls
//! `Inner::poll`, which takes the writer lock, asks [`poll`](Backend::poll)
//! with the registry unlocked, then holds the registry for writing to apply the answer. The thread also flushes `lastUsedAt`
//! (`Inner::flush_uses`, which calls [`flush_uses`](Backend::flush_uses)) and
//! reports each task's outcome (`Inner::report`). The PostgreSQL store flushes (and
//! purges) from a second thread instead, so that its listener never waits on them
//! (it uses `Inner::try_poll`, which does not wait for a write of the process either).
//!
//! # Failing closed
//!
//! A store must never answer from state it cannot vouch is current. When
//! `changes` or `poll` return an error, or what they return cannot be applied,
//! the store calls [`resync`](Backend::resync) and asks once more for the whole
//! state; if that fails too, it fails closed (checks answer `store_unavailable`,
//! the memo is off, admin calls fail unless their own catch-up succeeds) until a
//! later `changes` or `poll` succeeds. The backend's part:
//!
//! - `changes` and `poll` answer `Ok` only when what they return is everything
//!   committed up to the moment they looked; otherwise an error, never a part.
//! - When the background thread cannot look at all (the file or the connection
//!   is lost, the thread itself failed), it calls `Inner::sync_failed`, and keeps
//!   trying `Inner::poll` until one succeeds.
//! - An error never leaves a write half-done: after `commit` fails, nothing of it
//!   is durable (the store does not apply it in memory either).
//!
//! # Threads and locks
//!
//! Calls come from the JavaScript thread and from the backend's own thread, so
//! a backend is `Send + Sync`. `begin` … `commit`/`rollback` and `poll` run under
//! the store's writer lock (so never concurrently with one another) and with the
//! registry unlocked: checks go on meanwhile, and only admin calls and catch-up
//! wait for them. `flush_uses`, `audit`, `verify_audit`, `stored_uses` and
//! `backup` run without either lock and may overlap a write — one the
//! maintenance thread's purge has open while the JavaScript thread reads, say.
//! They must neither see nor disturb that write's open transaction: the SQLite
//! store runs them on a second connection, the PostgreSQL store waits until the
//! transaction has ended (a read run inside it would fail to begin its own,
//! and its COMMIT would end the write early).

use parking_lot::Mutex;

use crate::audit::{verify, AuditDraft, AuditEntry, AuditQuery, AuditReport, GENESIS};
use crate::error::Result;
use crate::registry::{Change, Registry};

/// What a backend says of its contact with the store: [`crate::store::Health`] but the
/// version, which the store adds.
#[derive(Debug, Clone, PartialEq)]
pub struct Liveness {
    pub connected: bool,
    pub lag_ms: f64,
    pub last_contact_at: Option<i64>,
}

/// What other processes changed since this one last looked (the answer of
/// [`Backend::changes`] and [`Backend::poll`]).
pub enum Catchup {
    Nothing,
    /// Every change committed since the last look, in commit order, none twice.
    /// They were validated where they were written; the only one the store
    /// tolerates not applying is a key whose user a later change of the same
    /// batch deletes.
    Changes(Vec<Change>),
    /// The whole state, read afresh: after [`Backend::resync`], or when the
    /// changes since the last look are no longer all kept (or the backend cannot
    /// tell that they are). With the error that tells it, when the store was found
    /// on another history than the state this process held (a restore, a failover
    /// that lost commits): what the process had applied after the two part is undone,
    /// and the operator must hear of it, even when an outage was already being reported.
    Reload(Box<Registry>, Option<crate::error::Error>),
}

/// The keys whose stored `lastUsedAt` [`Backend::stored_uses`] reads: only those a call shows,
/// so that listing one user's keys reads that user's rows, not every key's.
#[derive(Debug, Clone, Copy)]
pub enum UsesOf<'a> {
    Key(&'a [u8; 16]),
    /// The keys of one page of a listing.
    Keys(&'a [[u8; 16]]),
    User(&'a str),
    All,
}

/// Where a store's changes go (see the module doc for the order of calls, the
/// locks held and the duty to fail closed). Only `commit`, `audit` and
/// `verify_audit` have no default: the defaults are those of a store no other
/// process shares.
pub trait Backend: Send + Sync {
    /// Starts a write: takes the durable write lock, waiting a bounded time for
    /// other writers. An error here changes nothing and says nothing about the
    /// state being current: the admin call fails with it and the store stays as it is.
    fn begin(&self) -> Result<()> {
        Ok(())
    }

    /// [`Backend::begin`] for the background thread, which must not wait for a lock
    /// another process holds (it also follows other processes' changes): a lock in the
    /// way is `STORE_LOCKED` at once, and the thread tries again later.
    fn begin_without_waiting(&self) -> Result<()> {
        self.begin()
    }

    /// Inside a write, after `begin`: what other writers committed since this
    /// process last looked (or since its own last commit), to be applied before
    /// the write is planned. Under the write lock, so nothing can be committed
    /// between this answer and `commit`. Moves the backend's cursor only when
    /// everything was read; an error makes the store fail closed (and the write fails).
    fn changes(&self) -> Result<Catchup> {
        Ok(Catchup::Nothing)
    }

    /// The state in memory can no longer be trusted to follow the store: the
    /// next `changes` or `poll` answers [`Catchup::Reload`]. Cheap and infallible.
    fn resync(&self) {}

    /// `close` has begun (before its flush of `lastUsedAt`), or the process is exiting (before
    /// `KeyStore::flush_uses`): background maintenance under way on the network (a purge, which
    /// the next open or another process does again) ends at once rather than hold `close` or
    /// the exit back. Flushes are not cut. Changes nothing else.
    fn closing(&self) {}

    /// `close` is about to wait for the store's background thread: a backend whose
    /// thread waits on the network (for notifications) wakes it now, so that `close`
    /// does not wait out that wait. Changes nothing else; `close` follows.
    fn stopping(&self) {}

    /// Makes the changes and their audit entries durable together, ending the
    /// write: all of it or, on error, none of it. Audit entries are sealed here
    /// ([`AuditEntry::seal`]), numbered on from the store's recorded head, which a
    /// shared store reads under the write lock so the chain stays one across
    /// processes. After success the backend's cursor covers these changes, so that
    /// `changes` and `poll` never return this process's own changes.
    fn commit(&self, changes: &[Change], audit: Vec<AuditDraft>) -> Result<()>;

    /// Inside a write, in place of `commit`, into a store that holds nothing:
    /// writes the changes and the audit entries exactly as they were sealed
    /// elsewhere (their numbers and hashes kept, the recorded head set to the
    /// last), ending the write: all of it or none of it (`KeyStore::copy`). A store that
    /// records its `maxLifetimeDays` records `max_lifetime_days`, the limit the copy is made
    /// under, for the processes that open it later.
    fn import(&self, _changes: &[Change], _audit: &[AuditEntry], _max_lifetime_days: u32) -> Result<()> {
        Err(crate::error::Error::new(crate::error::ErrorCode::InvalidArgument, "this kind of store cannot be copied into"))
    }

    /// Ends a write that changed nothing or failed (the write lock is released).
    /// Harmless when no write is open.
    fn rollback(&self) {}

    /// Audit entries matching `query` ([`AuditEntry::matches`]), newest first,
    /// at most `query.limit` (default 100).
    fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>>;

    /// Checks the audit trail's hash chain (and, for a store that records its
    /// head, that no entry was removed from the end).
    fn verify_audit(&self) -> Result<AuditReport>;

    /// True when changes survive the process: then uses are recorded for
    /// `flush_uses` and read back with `stored_uses`.
    fn is_durable(&self) -> bool {
        false
    }

    /// Called by the backend's own thread, without taking the write lock: what
    /// other processes committed since the last look, with the same guarantees as
    /// `changes`. An error makes the store fail closed until a later `poll` (or
    /// `changes`) succeeds.
    fn poll(&self) -> Result<Catchup> {
        Ok(Catchup::Nothing)
    }

    /// Records `lastUsedAt` of keys (id, instant), keeping the later of stored
    /// and given. Never inside an admin transaction (one may be open on another
    /// thread) and never notifying other processes: uses are not changes. On
    /// error the store keeps the uses for the next flush.
    fn flush_uses(&self, _uses: &[([u8; 16], i64)]) -> Result<()> {
        Ok(())
    }

    /// [`Backend::flush_uses`] for the background thread, which must not wait for a
    /// lock another process holds (it also follows other processes' changes): a lock
    /// in the way is `STORE_LOCKED` at once, and the thread tries again shortly.
    fn flush_uses_without_waiting(&self, uses: &[([u8; 16], i64)]) -> Result<()> {
        self.flush_uses(uses)
    }

    /// `lastUsedAt` as stored (other processes flush theirs there) of the keys `of` names.
    /// An error is ignored (the store shows what it knows).
    fn stored_uses(&self, _of: UsesOf<'_>) -> Result<Vec<([u8; 16], i64)>> {
        Ok(Vec::new())
    }

    /// Copies the store, consistently, to a new file at `to` (durable stores only).
    fn backup(&self, _to: &std::path::Path) -> Result<()> {
        Err(crate::error::Error::new(
            crate::error::ErrorCode::InvalidArgument,
            "an in-memory store has no file to back up; use KeyStore.open(path)",
        ))
    }

    /// The version the backend's cursor stands at (0 for a backend without versions).
    /// The cursor moves before the store applies what moved it, so the store reads
    /// this only once it has applied that, under the writer lock.
    fn cursor_version(&self) -> i64 {
        0
    }

    /// How this process is in touch with the store (the store adds the version it has
    /// applied to make its [`crate::store::Health`]); `now` is the system clock's time in ms. Never
    /// waits for a lock the backend's I/O holds: monitoring asks it from the event loop.
    /// The default: a store only this process writes is always current.
    fn liveness(&self, now: i64) -> Liveness {
        Liveness { connected: true, lag_ms: 0.0, last_contact_at: Some(now) }
    }

    /// What the backend's own thread asks at every look: an error when the store's file
    /// is no longer the one this process opened (another renamed over its path, say), so
    /// that checks fail closed at once rather than at the next change the thread notices.
    /// Never waits for a lock the backend's I/O holds. The default: no file to replace.
    fn replaced(&self) -> Option<crate::error::Error> {
        None
    }

    /// Releases the store's connections (after the store stopped and joined the
    /// backend's thread); every later call fails with `STORE_IO`.
    fn close(&self) {}
}

/// Entries an in-memory store keeps: its audit trail is a window over the
/// most recent changes (a long-lived ephemeral store must not grow without bound).
pub const MEMORY_AUDIT_ENTRIES: usize = 1_000;

/// The backend of `KeyStore::in_memory`: nothing to persist; the latest audit entries in memory.
#[derive(Default)]
pub struct MemoryBackend {
    log: Mutex<std::collections::VecDeque<AuditEntry>>,
}

/// Newest first, filtered, at most `limit` (default 100).
pub fn select<'a>(entries: impl DoubleEndedIterator<Item = &'a AuditEntry>, query: &AuditQuery) -> Vec<AuditEntry> {
    entries.rev().filter(|e| e.matches(query)).take(query.limit.unwrap_or(100)).cloned().collect()
}

impl Backend for MemoryBackend {
    fn commit(&self, _changes: &[Change], audit: Vec<AuditDraft>) -> Result<()> {
        let mut log = self.log.lock();
        for draft in audit {
            let (prev, seq) = log.back().map_or((GENESIS, 1), |e| (e.hash, e.seq + 1));
            log.push_back(AuditEntry::seal(&prev, seq, draft));
            if log.len() > MEMORY_AUDIT_ENTRIES {
                log.pop_front();
            }
        }
        Ok(())
    }

    // Only `KeyStore::copy` imports, and only a trail that verifies: the window kept
    // verifies from its first entry, as one this store trimmed itself.
    fn import(&self, _changes: &[Change], audit: &[AuditEntry], _max_lifetime_days: u32) -> Result<()> {
        let mut log = self.log.lock();
        let window = audit.len().saturating_sub(MEMORY_AUDIT_ENTRIES);
        log.extend(audit.iter().skip(window).cloned());
        Ok(())
    }

    fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        Ok(select(self.log.lock().iter(), query))
    }

    fn verify_audit(&self) -> Result<AuditReport> {
        let log = self.log.lock();
        Ok(verify(log.iter(), None, log.front().map(|first| first.seq)))
    }
}
