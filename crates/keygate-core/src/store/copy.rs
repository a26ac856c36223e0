//! `KeyStore::copy`: the whole of one store — roles, users, keys (ids, digests,
//! states, `lastUsedAt`) and the audit trail, entries kept as they were sealed —
//! written into an empty store, in one write of the target. Moves a store
//! between backends (SQLite ↔ another) without issuing new secrets, and the
//! copy's `verifyAudit` passes because its trail is the source's, hash for hash.

use super::{AuditAction, KeyStore};
use crate::audit::{AuditEntry, AuditQuery};
use crate::backend::UsesOf;
use crate::error::{Error, ErrorCode, Result};
use crate::registry::{record_of, Change, RoleRecord};

/// What [`KeyStore::copy`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CopyReport {
    pub roles: usize,
    pub users: usize,
    pub keys: usize,
    pub audit_entries: usize,
}

/// Every audit entry: the backends read `limit` as an SQL `LIMIT`, an i64.
const ALL_ENTRIES: usize = i64::MAX as usize;

impl KeyStore {
    /// Copies everything `from` holds into `to`, which must hold nothing (no
    /// role, user, key or audit entry) and issue secrets of the same prefix, from a
    /// store whose audit trail verifies: `INVALID_ARGUMENT` otherwise, and `to` is
    /// left as it was. The source is read inside its own write, so no
    /// process changes it meanwhile; the target is written in one write, all of
    /// it or nothing.
    pub fn copy(from: &KeyStore, to: &KeyStore) -> Result<CopyReport> {
        if std::sync::Arc::ptr_eq(&from.inner, &to.inner) {
            return Err(Error::new(ErrorCode::InvalidArgument, "a store cannot be copied into itself"));
        }
        to.inner.check_open()?;
        if from.key_prefix() != to.key_prefix() {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                format!(
                    "the target store issues {}_ secrets and the source {}_ secrets: the copied keys would not work there; open the target with keyPrefix '{}'",
                    to.key_prefix(),
                    from.key_prefix(),
                    from.key_prefix()
                ),
            ));
        }
        let (changes, audit, mut report) = from.snapshot()?;
        let tx = to.inner.write(AuditAction::PutRole, None)?;
        if tx.users().next().is_some()
            || tx.roles().next().is_some()
            || tx.key_count() > 0
            || !to.audit(&AuditQuery { limit: Some(1), ..Default::default() })?.is_empty()
        {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                "the target store is not empty (it has roles, users, keys or audit entries); copy into a new, empty store",
            ));
        }
        let mut tx = tx;
        // The limit `to` works under (the command line opens it with the source's) is recorded:
        // a store made empty beforehand (`keygate init`) recorded none, or another.
        tx.import(changes, audit, to.max_lifetime_days())?;
        if !to.inner.backend.is_durable() {
            // What the target holds of the trail.
            report.audit_entries = report.audit_entries.min(crate::backend::MEMORY_AUDIT_ENTRIES);
        }
        Ok(report)
    }

    /// The store's whole state as changes that rebuild it (roles, then users,
    /// then keys, oldest first) and its audit trail, oldest first.
    fn snapshot(&self) -> Result<(Vec<Change>, Vec<AuditEntry>, CopyReport)> {
        // Uses recorded here and by other processes are part of the state copied.
        let _ = self.inner.flush_uses();
        self.inner.refresh_uses(UsesOf::All);
        // Held as a write (and rolled back): current with other processes, and none can write meanwhile.
        let tx = self.inner.write(AuditAction::PutRole, None)?;
        let mut roles: Vec<Change> =
            tx.roles().map(|r| Change::PutRole(RoleRecord { name: r.name.to_string(), rights: r.rights.texts() })).collect();
        let mut users: Vec<Change> = tx.users().map(|u| Change::PutUser(crate::audit::user_record(u))).collect();
        let mut keys: Vec<_> = tx.keys().map(record_of).collect();
        keys.sort_by_key(|k| k.seq);
        let mut audit = self.inner.backend.audit(&AuditQuery { limit: Some(ALL_ENTRIES), ..Default::default() })?;
        drop(tx);
        // Verified once the write has ended (a shared store's verification is a transaction
        // of its own). Entries written since the trail was read only extend it: a trail
        // that failed then fails now.
        let verified = self.inner.backend.verify_audit()?;
        if !verified.ok {
            // Copied, the trail would lose what shows it was changed (a removed last entry
            // leaves no trace once the copy's head is set to the entry before it; a window
            // renumbered would hide a gap before it): refused, loudly.
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                format!(
                    "the source store's audit trail fails verification ({}): a copy would no longer show it; keep the source as evidence, and start the new store afresh",
                    verified.problem.as_deref().unwrap_or("not intact")
                ),
            ));
        }
        audit.reverse();
        if !self.inner.backend.is_durable() {
            audit = renumbered_from_one(audit);
        }
        let report = CopyReport { roles: roles.len(), users: users.len(), keys: keys.len(), audit_entries: audit.len() };
        let mut changes = Vec::with_capacity(roles.len() + users.len() + keys.len());
        changes.append(&mut roles);
        changes.append(&mut users);
        changes.extend(keys.into_iter().map(Change::PutKey));
        Ok((changes, audit, report))
    }
}

/// An in-memory store's trail keeps only its latest entries (`MEMORY_AUDIT_ENTRIES`): the
/// copy's would begin past entry 1, and a durable store's `verifyAudit` reports entries
/// missing from its start. Such a window (one that verifies: a copy's source always does)
/// is numbered afresh from 1, each entry sealed again in order, its content kept.
fn renumbered_from_one(window: Vec<AuditEntry>) -> Vec<AuditEntry> {
    if window.first().is_none_or(|first| first.seq == 1) {
        return window;
    }
    let mut prev = crate::audit::GENESIS;
    (1..)
        .zip(window)
        .map(|(seq, entry)| {
            let sealed = AuditEntry::seal(&prev, seq, entry.draft());
            prev = sealed.hash;
            sealed
        })
        .collect()
}
