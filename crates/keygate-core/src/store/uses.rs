//! `lastUsedAt`: checks record a use in memory (an atomic, under the read lock);
//! a durable store flushes the keys used since the last flush from its background
//! thread, and reads back what other processes flushed before showing a key.

use parking_lot::MutexGuard;

use super::{Inner, KeyStore};
use crate::backend::{Backend, UsesOf};
use crate::error::{Error, ErrorCode, Result};
use crate::model::{Key, KeyId};

/// How a flush writes its uses: waiting for another process's lock, or not.
type Write<'a> = &'a dyn Fn(&dyn Backend, &[([u8; 16], i64)]) -> Result<()>;

impl Inner {
    /// Writes `lastUsedAt` of keys used since the last flush (durable stores).
    /// Uses that could not be written are kept for the next flush.
    pub(crate) fn flush_uses(&self) -> Result<()> {
        self.flush_uses_with(&|backend, uses| backend.flush_uses(uses))
    }

    /// [`Inner::flush_uses`] from the background thread: it never waits for a lock another
    /// process holds (see [`crate::backend::Backend::flush_uses_without_waiting`]).
    pub(crate) fn flush_uses_without_waiting(&self) -> Result<()> {
        self.flush_uses_with(&|backend, uses| backend.flush_uses_without_waiting(uses))
    }

    /// [`Inner::flush_uses_without_waiting`] for a process about to exit (see
    /// [`KeyStore::flush_uses`]): see [`Inner::flush_uses_last`].
    pub(crate) fn flush_uses_at_exit(&self) -> Result<()> {
        self.flush_uses_last(&|backend, uses| backend.flush_uses_without_waiting(uses))
    }

    /// [`Inner::flush_uses`] for `close`: see [`Inner::flush_uses_last`]. A flush under way that
    /// failed only for a lock it did not wait for (`STORE_LOCKED`, SQLite's background thread)
    /// is tried again: this one waits for it.
    pub(crate) fn flush_uses_at_close(&self) -> Result<()> {
        self.flush_uses_last(&|backend, uses| backend.flush_uses(uses))
    }

    /// The last flush before the store closes or the process exits. A flush the background thread
    /// has under way (it took the uses) is waited for; when it failed, its failure is returned
    /// rather than its uses written again while any are left unwritten: that would wait out the
    /// same timeouts twice (close took two `statementTimeoutMs` waiting for a row another session
    /// held). Not a failure for a lock it did not wait for (`STORE_LOCKED`): trying again costs
    /// no wait, and close's flush waits for that lock.
    fn flush_uses_last(&self, write: Write<'_>) -> Result<()> {
        let flushing = match self.flushing.try_lock() {
            Some(idle) => idle,
            None => {
                let after = self.flushing.lock();
                match &*after {
                    Some(error) if !self.used.lock().is_empty() && error.code != ErrorCode::StoreLocked => return Err(error.clone()),
                    _ => after,
                }
            }
        };
        self.flush_uses_holding(flushing, write)
    }

    fn flush_uses_with(&self, flush: Write<'_>) -> Result<()> {
        self.flush_uses_holding(self.flushing.lock(), flush)
    }

    /// One flush, with `flushing` held throughout (see `Inner::flushing`); its outcome is left there.
    fn flush_uses_holding(&self, mut flushing: MutexGuard<'_, Option<Error>>, flush: Write<'_>) -> Result<()> {
        let ids = std::mem::take(&mut *self.used.lock());
        if ids.is_empty() {
            *flushing = None;
            return Ok(());
        }
        let uses: Vec<([u8; 16], i64)> = {
            let registry = self.registry.read();
            ids.iter()
                .filter_map(|id| registry.key_by_id(id))
                .filter_map(|k| {
                    k.clear_dirty();
                    k.last_used_at().map(|at| (*k.id.as_bytes(), at))
                })
                .collect()
        };
        // Written without holding the keys: checks never wait on this I/O.
        let written = flush(&*self.backend, &uses);
        *flushing = written.as_ref().err().cloned();
        if written.is_err() {
            let registry = self.registry.read();
            let mut used = self.used.lock();
            for (id, at) in &uses {
                if let Some(key) = registry.key_by_id(&KeyId::from_bytes(*id)) {
                    if key.touch(*at) {
                        used.push(key.id);
                    }
                }
            }
        }
        written
    }

    /// Brings `lastUsedAt` in memory up to what other processes flushed, for the keys `of` names.
    pub(super) fn refresh_uses(&self, of: UsesOf<'_>) {
        if !self.durable {
            return;
        }
        // Read with the registry unlocked: checks never wait on this I/O.
        if let Ok(stored) = self.backend.stored_uses(of) {
            let registry = self.registry.read();
            for (id, at) in stored {
                if let Some(key) = registry.key_by_id(&KeyId::from_bytes(id)) {
                    key.note_stored_use(at);
                }
            }
        }
    }

    pub(super) fn record_use(&self, key: &Key, at: i64) {
        if key.touch(at) && self.durable {
            self.used.lock().push(key.id);
        }
    }
}

impl KeyStore {
    /// Records uses of keys answered by the JavaScript memo: `at` for each secret that still names a key.
    pub fn touch(&self, secrets: &[(&[u8], i64)]) {
        let registry = self.inner.registry.read();
        for (secret, at) in secrets {
            if let Some(key) = registry.key_by_secret(secret) {
                if key.touch(*at) && self.inner.durable {
                    self.inner.used.lock().push(key.id);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::model::KeyId;
    use crate::store::{KeyFilter, KeyStore, NewKey, Options, UserInput};

    /// Listing one user's keys reads that user's stored uses only. Another process flushed a
    /// use of a key of "busy"; listing "quiet"'s key must leave it unread (it read every used
    /// key's row in the store before: 100,000 rows, about 100 ms, to show ten keys), and
    /// listing "busy"'s keys shows it.
    #[test]
    fn listing_one_users_keys_reads_only_that_users_stored_uses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("uses.db");
        let path = path.to_str().unwrap();
        let admin = KeyStore::open(path, Options::default()).unwrap();
        let now = admin.now();
        let issue = |user: &str| {
            admin.put_user(&UserInput { id: user.into(), rights: vec!["*:*".into()], ..Default::default() }, None).unwrap();
            let input =
                NewKey { user_id: user.into(), description: String::new(), expires_at: Some(now + 86_400_000), ..Default::default() };
            admin.create_key(&input, None).unwrap()
        };
        let busy = issue("busy");
        let quiet = issue("quiet");
        let gateway = KeyStore::open(path, Options::default()).unwrap();
        gateway.touch(&[(busy.secret.as_bytes(), now)]);
        gateway.close().unwrap();

        let only = |user: &str| KeyFilter { user_id: Some(user.into()), ..KeyFilter::default() };
        let listed = admin.list_keys(&only("quiet")).unwrap();
        assert_eq!(listed.iter().map(|k| &k.id).collect::<Vec<_>>(), [&quiet.key.id]);
        let busy_id: KeyId = busy.key.id.parse().unwrap();
        let unread = admin.inner.registry.read().key_by_id(&busy_id).unwrap().last_used_at();
        assert_eq!(unread, None, "listing quiet's keys read busy's stored use");
        assert_eq!(admin.list_keys(&only("busy")).unwrap()[0].last_used_at, Some(now), "listing busy's keys shows it");
        admin.close().unwrap();
    }
}
