//! `lastUsedAt`: checks record a use in memory (an atomic, under the read lock);
//! a durable store flushes the keys used since the last flush from its background
//! thread, and reads back what other processes flushed before showing a key.

use super::{Inner, KeyStore};
use crate::error::Result;
use crate::model::{Key, KeyId};

impl Inner {
    /// Writes `lastUsedAt` of keys used since the last flush (durable stores).
    /// Uses that could not be written are kept for the next flush.
    pub(crate) fn flush_uses(&self) -> Result<()> {
        self.flush_uses_with(|backend, uses| backend.flush_uses(uses))
    }

    /// [`Inner::flush_uses`] from the background thread: it never waits for a lock another
    /// process holds (see [`crate::backend::Backend::flush_uses_without_waiting`]).
    pub(crate) fn flush_uses_without_waiting(&self) -> Result<()> {
        self.flush_uses_with(|backend, uses| backend.flush_uses_without_waiting(uses))
    }

    fn flush_uses_with(&self, flush: impl FnOnce(&dyn crate::backend::Backend, &[([u8; 16], i64)]) -> Result<()>) -> Result<()> {
        let ids = std::mem::take(&mut *self.used.lock());
        if ids.is_empty() {
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

    /// Brings `lastUsedAt` in memory up to what other processes flushed.
    pub(super) fn refresh_uses(&self, id: Option<&KeyId>) {
        if !self.durable {
            return;
        }
        // Read with the registry unlocked: checks never wait on this I/O.
        if let Ok(stored) = self.backend.stored_uses(id.map(KeyId::as_bytes)) {
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
