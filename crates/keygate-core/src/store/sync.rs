//! Following other processes: catching up with what they changed (applying
//! their changes, or reloading everything), failing closed when that cannot be
//! done (`store_unavailable` until a later catch-up succeeds), and reporting
//! each failure episode and its recovery.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use super::Inner;
use crate::backend::Catchup;
use crate::error::{Error, ErrorCode, Result};
use crate::incident::Task;
use crate::memo::Signals;
use crate::registry::{Change, Registry};

/// A row another process wrote that this one cannot apply.
fn unloadable(error: Error) -> Error {
    Error::new(ErrorCode::StoreCorrupt, format!("a change written by another process cannot be applied: {}", error.message))
}

/// Applies the changes other processes committed, in order, as a catch-up does; `schedule`
/// hears each put key's expiry. Rows another process wrote were validated there; the only
/// change that may legitimately not apply is a key whose user a later change in the same
/// batch deletes (skipped). Any other that does not apply ends it: `STORE_CORRUPT`, with the
/// changes before it applied and that one changing nothing (the caller fails closed and reads
/// everything afresh). Public for the fuzz target `pg_changes` (through `internals`).
pub fn apply_changes(registry: &mut Registry, changes: Vec<Change>, mut schedule: impl FnMut(i64)) -> Result<()> {
    let mut deleted_at: HashMap<String, usize> = HashMap::new();
    for (i, change) in changes.iter().enumerate() {
        if let Change::DeleteUser(id) = change {
            deleted_at.insert(id.clone(), i);
        }
    }
    for (i, change) in changes.into_iter().enumerate() {
        let orphan = match &change {
            Change::PutKey(record) => {
                schedule(record.expires_at);
                registry.user(&record.user_id).is_none().then(|| record.user_id.clone())
            }
            _ => None,
        };
        if let Err(error) = registry.apply(change) {
            let deleted_later = orphan.and_then(|user| deleted_at.get(&user).copied()).is_some_and(|at| at > i);
            if !deleted_later {
                return Err(unloadable(error));
            }
        }
    }
    Ok(())
}

impl Inner {
    /// Fails closed: checks answer `store_unavailable` (the memo is off) and the
    /// next catch-up reads the whole state afresh.
    pub(super) fn lose_sync(&self) {
        self.backend.resync();
        // The first failure of an episode starts the lag `health` reports; later ones keep it.
        let _ = self.unsure_since.compare_exchange(0, crate::clock::system_now().max(1), Ordering::AcqRel, Ordering::Acquire);
        self.signals.raise(Signals::STORE_UNAVAILABLE);
    }

    /// Records that the registry holds what the backend's cursor stands at. Called
    /// under the writer lock (the cursor moves only under it), once the changes that
    /// moved the cursor are applied: `health` never reports a version whose changes
    /// checks cannot see yet.
    pub(super) fn note_applied(&self) {
        self.applied_version.store(self.backend.cursor_version(), Ordering::Release);
    }

    /// Brings the registry up to what other processes changed, as `fetch`
    /// reports it. `fetch` (the backend's I/O) runs with the registry unlocked;
    /// only applying what it returned holds it for writing. The caller holds the
    /// writer lock, so nothing else changes the registry meanwhile. A change that
    /// cannot be read or applied makes it read everything afresh at once, failing
    /// closed meanwhile (what it holds can no longer be vouched for); if that
    /// fails too, the store stays closed until a later catch-up succeeds. Returns
    /// true when this ends such a failure, or an episode it told itself (a reload that
    /// undid changes this process had applied): the caller reports the recovery.
    pub(super) fn sync(&self, fetch: impl Fn() -> Result<Catchup>) -> Result<bool> {
        let fetch_and_apply = || {
            let catchup = fetch()?;
            let mut registry = self.registry.write();
            let undone = match self.catch_up(&mut registry, catchup) {
                Ok(undone) => undone,
                Err(error) => {
                    // Closed before the lock is let go: a batch applied in part (the changes
                    // before the one that failed) is never what a check decides from.
                    self.lose_sync();
                    return Err(error);
                }
            };
            self.note_applied();
            let recovered = self.signals.lower(Signals::STORE_UNAVAILABLE);
            self.unsure_since.store(0, Ordering::Release);
            Ok((recovered, undone))
        };
        let was_current = self.is_current();
        let mut result = fetch_and_apply();
        // A first failure: read everything afresh at once, answering store_unavailable
        // until it is read (while failing already, the attempt above was such a reading).
        if let (Err(first), true) = (&result, was_current) {
            let first = first.clone();
            self.lose_sync();
            result = fetch_and_apply();
            // Failed closed and recovered within this call: still an episode to tell (a restore
            // or failover that lost commits undoes changes this process had applied; an admin who
            // revoked a key there must hear of it). The caller reports the recovery. Not a store
            // merely ahead (a copy into it, which other processes read afresh by design).
            if let (Ok((_, undone)), false) = (&mut result, first.only_ahead) {
                self.reporter.fail(Task::Sync, first);
                // The reload found the same step back: told once.
                *undone = None;
            }
        }
        match result {
            Ok((recovered, None)) => Ok(recovered),
            // Found by a write's own look, or by the reload that ends an outage: an episode of its
            // own. The one it ends (the outage) is over, as the reload succeeded; this one is told
            // now, and the caller reports its recovery.
            Ok((_, Some(undone))) => {
                self.reporter.recover(Task::Sync);
                self.reporter.fail(Task::Sync, undone);
                Ok(true)
            }
            Err(error) => {
                self.lose_sync();
                Err(error)
            }
        }
    }

    /// Applies what other processes changed ([`apply_changes`], or the whole state
    /// read afresh). A change this process cannot apply is an error (the caller fails closed).
    /// Returns what tells a reload that undid changes this process had applied, if any.
    fn catch_up(&self, registry: &mut Registry, catchup: Catchup) -> Result<Option<Error>> {
        match catchup {
            Catchup::Nothing => Ok(None),
            Catchup::Changes(changes) => {
                let result = apply_changes(registry, changes, |expires_at| self.expiry.schedule(expires_at));
                self.expiry.forget_gone(registry);
                self.signals.bump();
                result.map(|()| None)
            }
            Catchup::Reload(mut fresh, undone) => {
                fresh.attach_hints(self.hints.clone());
                // Uses this process recorded and has not flushed yet (still queued by id,
                // or being written) are not in what was read: kept, as a key record
                // replaced keeps its latest use (`Registry::put_key`), else the next flush
                // would write the older value read and `lastUsedAt` would go back.
                for key in fresh.keys() {
                    if let Some(at) = registry.key_by_id(&key.id).and_then(|old| old.last_used_at()) {
                        key.note_stored_use(at);
                    }
                }
                *registry = *fresh;
                for key in registry.keys() {
                    self.expiry.schedule(key.expires_at);
                }
                self.expiry.forget_gone(registry);
                self.signals.bump();
                Ok(undone)
            }
        }
    }

    /// Watcher: picks up other processes' changes, if any; reports a failure
    /// (once per episode) and the recovery that ends it.
    pub(crate) fn poll(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Ok(());
        }
        // In turn with admin calls (whose catch-up and commit move the same cursor),
        // but with the registry unlocked while the backend looks.
        self.poll_holding(self.writer.lock())
    }

    /// [`Inner::poll`], unless a write of this process (an admin call, a purge) holds the
    /// writer lock: then `None` at once. That write catches up itself, inside its
    /// transaction; waiting for it (for a row lock another session holds, say: up to the
    /// statement timeout) would keep the PostgreSQL listener from its heartbeat meanwhile.
    pub(crate) fn try_poll(&self) -> Option<Result<()>> {
        if self.closed.load(Ordering::Acquire) {
            return Some(Ok(()));
        }
        self.writer.try_lock().map(|writer| self.poll_holding(writer))
    }

    fn poll_holding(&self, writer: parking_lot::MutexGuard<'_, ()>) -> Result<()> {
        let result = self.sync(|| self.backend.poll());
        drop(writer);
        match result {
            Ok(recovered) => {
                if recovered {
                    self.reporter.recover(Task::Sync);
                }
                Ok(())
            }
            Err(error) => {
                // A catch-up `close` cut short (see `Backend::stopping`) is no failure to tell.
                if !self.is_closed() {
                    self.reporter.fail(Task::Sync, error.clone());
                }
                Err(error)
            }
        }
    }

    /// The watcher cannot tell whether other processes changed the store (it
    /// cannot read it, or it failed): fail closed until a later `poll` succeeds.
    pub(crate) fn sync_failed(&self, error: Error) {
        self.sync_failed_if(|| Some(error));
    }

    /// The backend's thread, at every look: fails closed as soon as the store's file is
    /// replaced (see [`crate::backend::Backend::replaced`]). While failing, the thread's retries
    /// find it again, or read everything afresh once the file is back.
    pub(crate) fn check_file(&self) {
        // Asked even while failing (the store may have failed closed on the replacement
        // elsewhere first): the backend does what it must once, when it first sees it.
        if let Some(error) = self.backend.replaced() {
            if self.is_current() {
                self.sync_failed(error);
            }
        }
    }

    /// [`Inner::sync_failed`] with the error `stale` finds, if any, asked with the
    /// registry held for writing: a catch-up applies and lowers the flag under the
    /// same lock, so one that ended meanwhile is seen here.
    pub(crate) fn sync_failed_if(&self, stale: impl FnOnce() -> Option<Error>) {
        let error = {
            let _registry = self.registry.write();
            let Some(error) = stale() else { return };
            self.lose_sync();
            error
        };
        self.reporter.fail(Task::Sync, error);
    }

    /// Reports the outcome of a background task other than sync: once per failure episode.
    pub(crate) fn report(&self, task: Task, outcome: &Result<()>) {
        // A background task that lost the race with close() failed for that reason
        // alone: nothing to tell (close reports its own last flush before it closes).
        if outcome.is_err() && self.is_closed() {
            return;
        }
        match outcome {
            Ok(()) => self.reporter.recover(task),
            Err(error) => self.reporter.fail(task, error.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    use crate::backend::Catchup;
    use crate::error::{Error, ErrorCode};
    use crate::incident::{Incident, Task};
    use crate::model::{KeyId, KeyState, UserStatus};
    use crate::registry::{Change, KeyRecord, Registry, UserRecord};
    use crate::secret::{generate, Prefix};
    use crate::store::{KeyStore, Options};

    fn collecting() -> (KeyStore, Arc<Mutex<Vec<Incident>>>) {
        let seen = Arc::new(Mutex::new(Vec::<Incident>::new()));
        let sink = seen.clone();
        let on_error: crate::OnError = Arc::new(move |incident: &Incident| sink.lock().unwrap().push(incident.clone()));
        (KeyStore::in_memory(Options { on_error: Some(on_error), ..Default::default() }).unwrap(), seen)
    }

    fn record(n: u8, user_id: &str) -> KeyRecord {
        let secret = generate(&Prefix::default()).unwrap();
        KeyRecord {
            id: KeyId::from_bytes([n; 16]),
            seq: u64::from(n),
            user_id: user_id.into(),
            description: String::new(),
            state: KeyState::Active,
            expires_at: i64::from(i32::MAX) * 1000,
            created_at: 0,
            updated_at: 0,
            last_used_at: None,
            hint: secret.hint,
            digest: secret.digest,
            rules: vec![],
        }
    }

    /// A batch that fails half-way (a key, then a key of a missing user) leaves the first
    /// key in the registry until the reload replaces it. A check must never decide from that
    /// half: the store fails closed before the registry's lock is let go. Another thread
    /// takes the read lock whenever it can and looks; it saw the half-applied key while the
    /// store still said it was current when the flag was raised after the lock was let go.
    #[test]
    fn a_batch_applied_in_part_is_never_seen_by_a_check_as_current() {
        let (store, _) = collecting();
        let user = UserRecord { id: "u".into(), status: UserStatus::Active, rights: vec![], roles: vec![] };
        store.inner.registry.write().apply(Change::PutUser(user)).unwrap();
        let half = record(1, "u");
        let half_id = half.id;
        let done = AtomicBool::new(false);
        let seen = std::thread::scope(|scope| {
            let looker = scope.spawn(|| {
                let mut seen = 0;
                while !done.load(Ordering::Acquire) {
                    if let Some(registry) = store.inner.registry.try_read() {
                        if registry.key_by_id(&half_id).is_some() && store.inner.is_current() {
                            seen += 1;
                        }
                    }
                }
                seen
            });
            for _ in 0..20_000 {
                let batch = vec![Change::PutKey(half.clone()), Change::PutKey(record(2, "ghost"))];
                let fetched = std::sync::Mutex::new(Some(batch));
                let result = store.inner.sync(|| {
                    Ok(match fetched.lock().unwrap().take() {
                        Some(batch) => Catchup::Changes(batch),
                        None => {
                            let mut fresh = Registry::default();
                            let user = UserRecord { id: "u".into(), status: UserStatus::Active, rights: vec![], roles: vec![] };
                            fresh.apply(Change::PutUser(user)).unwrap();
                            Catchup::Reload(Box::new(fresh), None)
                        }
                    })
                });
                assert!(result.is_ok(), "the reload after the failed batch");
                assert!(store.inner.registry.read().key_by_id(&half_id).is_none());
            }
            done.store(true, Ordering::Release);
            looker.join().unwrap()
        });
        assert_eq!(seen, 0, "a check could decide from a batch applied in part {seen} times");
    }

    #[test]
    fn try_poll_never_waits_for_a_write_of_the_process() {
        let (store, _) = collecting();
        let write = store.inner.writer.lock();
        assert!(store.inner.try_poll().is_none(), "answered while a write held the writer lock");
        drop(write);
        assert!(matches!(store.inner.try_poll(), Some(Ok(()))));
    }

    #[test]
    fn a_background_task_failing_after_close_is_not_reported() {
        let failed = Err(Error::new(ErrorCode::StoreIo, "the store is closed"));
        let (open, seen) = collecting();
        open.inner.report(Task::Purge, &failed);
        assert_eq!(seen.lock().unwrap().len(), 1, "reported while open");
        // The maintenance thread's purge, begun as close() ran (the CLI printed it).
        let (closed, seen) = collecting();
        closed.close().unwrap();
        closed.inner.report(Task::Purge, &failed);
        assert!(seen.lock().unwrap().is_empty(), "not reported once closed");
    }
}
