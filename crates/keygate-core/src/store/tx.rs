//! The write of one admin call ([`Tx`]): admin calls of this process go one at
//! a time (`Inner::writer`); each takes the backend's write lock, catches up
//! with other processes, plans against the registry held for reading, commits
//! its changes durably with no lock on the registry, and only then holds the
//! registry for writing, briefly, to apply them in memory and tell the memo.
//! Checks therefore never wait behind the backend's I/O (a slow or half-open
//! network connection). Dropped uncommitted, it rolls back: a call that fails
//! changes nothing.

use parking_lot::{MutexGuard, RwLockReadGuard};

use super::scrub::holds_known_secret_in_any_reading;
use super::{internal, Actor, AuditAction, Inner};
use crate::audit::{describe, link_rotation, AuditEntry};
use crate::error::{Error, ErrorCode, Result};
use crate::incident::Task;
use crate::model::check_actor;
use crate::registry::{Change, Registry};

/// One admin call's write: holds this process's writer lock and the backend's
/// write lock from planning to commit, and the registry for reading while it
/// plans (nothing else changes it meanwhile: every change goes through the
/// writer lock); dropped uncommitted, it rolls back.
pub(super) struct Tx<'s> {
    store: &'s Inner,
    registry: RwLockReadGuard<'s, Registry>,
    _writer: MutexGuard<'s, ()>,
    action: AuditAction,
    actor: Actor<'s>,
    finished: bool,
}

impl Tx<'_> {
    /// Persists and applies the changes; the write ends either way.
    pub(super) fn commit(&mut self, changes: Vec<Change>) -> Result<()> {
        let now = self.store.clock.now();
        let mut audit: Vec<_> = changes.iter().flat_map(|c| describe(&self.registry, c, self.action.as_str(), self.actor, now)).collect();
        if self.action == AuditAction::RotateKey {
            link_rotation(&mut audit);
        }
        let backend = &self.store.backend;
        self.persist_and_apply(changes, |changes| backend.commit(changes, audit))
    }

    /// Writes a copied store (changes that rebuild it, and its audit trail
    /// as sealed) with [`Backend::import`](crate::backend::Backend::import),
    /// then applies it; the write ends either way.
    pub(super) fn import(&mut self, changes: Vec<Change>, audit: Vec<AuditEntry>, max_lifetime_days: u32) -> Result<()> {
        let backend = &self.store.backend;
        self.persist_and_apply(changes, |changes| backend.import(changes, &audit, max_lifetime_days))
    }

    /// Makes the changes durable with `persist`, then applies them in memory.
    fn persist_and_apply(&mut self, changes: Vec<Change>, persist: impl FnOnce(&[Change]) -> Result<()>) -> Result<()> {
        let store = self.store;
        // The backend's I/O runs with the registry unlocked; the read lock comes back
        // (for the call's answer) once the changes are applied.
        let (committed, applied) = RwLockReadGuard::unlocked(&mut self.registry, || {
            let committed = persist(&changes);
            let applied = match committed {
                Ok(()) => store.apply(&mut store.registry.write(), changes).map(|()| store.note_applied()),
                Err(_) => Ok(()),
            };
            (committed, applied)
        });
        // Marked finished only once the backend has answered: a panic inside it
        // leaves `finished` false, so dropping the Tx rolls back and frees the write lock.
        self.finished = true;
        committed?;
        applied
    }

    /// Refuses texts holding the random part of a secret of this store, however
    /// mangled (see `secret::holds_known_secret`), escapes included (read as the messages'
    /// scrubber reads them): they would go to the audit trail.
    pub(super) fn refuse_known_secrets<'t>(&self, what: &str, texts: impl IntoIterator<Item = &'t str>, code: ErrorCode) -> Result<()> {
        let registry = &self.registry;
        for text in texts {
            if holds_known_secret_in_any_reading(text, &self.store.prefix, |candidate| registry.key_by_secret(candidate).is_some()) {
                return Err(Error::new(
                    code,
                    format!("{what} contains (part of) a secret of this store; a secret must never be written where the audit trail would keep it"),
                ));
            }
        }
        Ok(())
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.store.backend.rollback();
        }
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Registry;
    fn deref(&self) -> &Registry {
        &self.registry
    }
}

impl Inner {
    /// Starts an admin call's write, up to date with other processes' changes.
    pub(super) fn write<'s>(&'s self, action: AuditAction, actor: Actor<'s>) -> Result<Tx<'s>> {
        self.write_with(action, actor, true)
    }

    /// [`Inner::write`]; `wait`: for another process's write lock, up to the backend's bound
    /// (else `STORE_LOCKED` at once: for the background thread, see
    /// [`crate::backend::Backend::begin_without_waiting`]).
    pub(super) fn write_with<'s>(&'s self, action: AuditAction, actor: Actor<'s>, wait: bool) -> Result<Tx<'s>> {
        self.check_open()?;
        if let Some(actor) = actor {
            check_actor(actor)?;
        }
        let writer = self.writer.lock();
        if wait {
            self.backend.begin()?;
        } else {
            self.backend.begin_without_waiting()?;
        }
        match self.sync(|| self.backend.changes()) {
            Ok(recovered) => {
                if recovered {
                    self.reporter.recover(Task::Sync);
                }
                let registry = self.registry.read();
                let tx = Tx { store: self, registry, _writer: writer, action, actor, finished: false };
                tx.refuse_known_secrets("actor", actor, ErrorCode::InvalidArgument)?;
                Ok(tx)
            }
            Err(error) => {
                self.backend.rollback();
                drop(writer);
                self.reporter.fail(Task::Sync, error.clone());
                Err(error)
            }
        }
    }

    /// Applies changes already made durable, and tells the memo.
    pub(super) fn apply(&self, registry: &mut Registry, changes: Vec<Change>) -> Result<()> {
        for change in &changes {
            if let Change::PutKey(record) = change {
                self.expiry.schedule(record.expires_at);
            }
        }
        let mut applied = Ok(());
        for change in changes {
            if let Err(error) = registry.apply(change) {
                applied = Err(error);
                break;
            }
        }
        self.expiry.forget_gone(registry);
        self.signals.bump();
        applied.map_err(|error| {
            // Validated changes always apply: memory no longer matches what was stored.
            let error = internal(&format!("a stored change could not be applied in memory ({})", error.message));
            if self.durable {
                self.lose_sync();
                self.reporter.fail(Task::Sync, error.clone());
            }
            error
        })
    }
}
