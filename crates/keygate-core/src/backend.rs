//! Where changes go. The in-memory store keeps only its audit trail; the
//! durable store (`sqlite.rs`) writes changes and audit entries in one
//! transaction before they are applied in memory.

use parking_lot::Mutex;

use crate::audit::{verify, AuditDraft, AuditEntry, AuditQuery, AuditReport, GENESIS};
use crate::error::Result;
use crate::registry::{Change, Registry};

/// What another process changed since this one last looked.
pub enum Catchup {
    Nothing,
    Changes(Vec<Change>),
    /// Too far behind (or first sight): the whole state, read afresh.
    Reload(Box<Registry>),
}

pub trait Backend: Send + Sync {
    /// Starts a write: takes the durable write lock (an error here changes nothing
    /// and says nothing about the state being current).
    fn begin(&self) -> Result<()> {
        Ok(())
    }

    /// Inside a write: what other writers changed, to be applied before the write is planned.
    fn changes(&self) -> Result<Catchup> {
        Ok(Catchup::Nothing)
    }

    /// The state in memory can no longer be trusted to follow the store: the
    /// next `changes` or `poll` reads the whole state afresh.
    fn resync(&self) {}

    /// Makes the changes and their audit entries durable together, ending the write.
    fn commit(&self, changes: &[Change], audit: Vec<AuditDraft>) -> Result<()>;

    /// Ends a write that changed nothing or failed.
    fn rollback(&self) {}

    fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>>;

    fn verify_audit(&self) -> Result<AuditReport>;

    /// True when changes survive the process (and so uses must be flushed).
    fn is_durable(&self) -> bool {
        false
    }

    /// Without taking the write lock: what other processes changed, if anything.
    fn poll(&self) -> Result<Catchup> {
        Ok(Catchup::Nothing)
    }

    /// Records `lastUsedAt` of keys (id, instant), keeping the later of stored and given.
    fn flush_uses(&self, _uses: &[([u8; 16], i64)]) -> Result<()> {
        Ok(())
    }

    /// `lastUsedAt` as stored (other processes flush theirs there): one key, or all.
    fn stored_uses(&self, _id: Option<&[u8; 16]>) -> Result<Vec<([u8; 16], i64)>> {
        Ok(Vec::new())
    }

    /// Copies the store, consistently, to a new file at `to` (durable stores only).
    fn backup(&self, _to: &std::path::Path) -> Result<()> {
        Err(crate::error::Error::new(
            crate::error::ErrorCode::InvalidArgument,
            "an in-memory store has no file to back up; use KeyStore.open(path)",
        ))
    }

    /// Releases the file; every later call fails.
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

    fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        Ok(select(self.log.lock().iter(), query))
    }

    fn verify_audit(&self) -> Result<AuditReport> {
        let log = self.log.lock();
        Ok(verify(log.iter(), None, log.front().map(|first| first.seq)))
    }
}
