//! The in-memory state of a store (users, roles, keys) and the one way it
//! changes: applying validated [`Change`]s. A durable backend persists the same
//! changes, so memory and disk cannot drift apart.

use std::collections::HashMap;
use std::sync::Arc;

use rustc_hash::FxBuildHasher;

use crate::error::{quote, Error, ErrorCode, Result};
use crate::key_table::KeyTable;
use crate::memo::HintFilter;
use crate::model::{Key, KeyId, KeyState, Role, User, UserStatus};
use crate::rule::{RuleInterner, RuleUse};
use crate::secret::SecretDigest;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: String,
    pub status: UserStatus,
    pub rights: Vec<String>,
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleRecord {
    pub name: String,
    pub rights: Vec<String>,
}

/// Everything stored about a key (no secret: only its digest and hint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub id: KeyId,
    pub seq: u64,
    pub user_id: String,
    pub description: String,
    pub state: KeyState,
    pub expires_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_used_at: Option<i64>,
    pub hint: [u8; 4],
    pub digest: SecretDigest,
    pub rules: Vec<String>,
}

/// One validated change. `DeleteUser` also deletes the user's keys and
/// `DeleteRole` also removes the role from every user holding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    PutUser(UserRecord),
    DeleteUser(String),
    PutRole(RoleRecord),
    DeleteRole(String),
    PutKey(KeyRecord),
    DeleteKey(KeyId),
}

/// A key's sequence number as a store holds it (a signed 64-bit integer), if keygate could have
/// written it: not negative, and below the largest, so that the number of the next key created
/// (one more) can be stored too. `None` for any other.
pub(crate) fn stored_key_seq(seq: i64) -> Option<u64> {
    u64::try_from(seq).ok().filter(|_| seq < i64::MAX)
}

/// The most keys [`Registry::reserve_keys`] makes room for at once, whatever
/// the estimate says.
const MAX_RESERVED_KEYS: usize = 1 << 24;

#[derive(Debug, Default)]
pub struct Registry {
    // Found by name on every check (a key's user, the user's roles): a fast hasher, since
    // the names are the admin's, not a caller's, there is no flooding to defend against.
    users: HashMap<Arc<str>, User, FxBuildHasher>,
    roles: HashMap<Arc<str>, Role, FxBuildHasher>,
    keys: KeyTable,
    interner: RuleInterner,
    next_seq: u64,
    /// The store's shared hint filter, once attached.
    hints: Option<Arc<HintFilter>>,
}

impl Registry {
    pub fn user(&self, id: &str) -> Option<&User> {
        self.users.get(id)
    }

    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.get(name)
    }

    pub fn roles(&self) -> impl Iterator<Item = &Role> {
        self.roles.values()
    }

    /// The key whose secret is `secret` (by its hint, confirmed by its digest).
    pub fn key_by_secret(&self, secret: &[u8]) -> Option<&Key> {
        self.keys.slot_by_secret(secret).and_then(|slot| self.keys.key(slot))
    }

    /// Starts loading what a lookup of `secret` reads first (a hint to the CPU only).
    pub fn prefetch_secret(&self, secret: &[u8]) {
        self.keys.prefetch_secret(secret);
    }

    pub fn key_by_id(&self, id: &KeyId) -> Option<&Key> {
        self.keys.slot_by_id(id).and_then(|slot| self.keys.key(slot))
    }

    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.keys.iter()
    }

    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Sizes the key tables for `additional` more keys (an estimate, capped:
    /// a wrong one costs only time).
    pub fn reserve_keys(&mut self, additional: usize) {
        self.keys.reserve(additional.min(MAX_RESERVED_KEYS));
    }

    /// Keys the key tables hold before they grow: by hint, by id (for tests of reserving).
    #[cfg(test)]
    pub(crate) fn key_room(&self) -> (usize, usize) {
        self.keys.room()
    }

    /// Marks every key's hint in `filter` and keeps marking new keys' hints.
    pub fn attach_hints(&mut self, filter: Arc<HintFilter>) {
        for key in self.keys.iter() {
            filter.insert(&key.hint);
        }
        self.hints = Some(filter);
    }

    /// Distinct rules and long lists' indexes its rule interner holds: exactly those its
    /// users', roles' and keys' lists use (for the checks of tests and fuzz targets).
    pub fn interned(&self) -> (usize, usize) {
        self.interner.held()
    }

    /// Sequence number for the next key created.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Applies one change of a store's whole state as it is loaded: as [`Registry::apply`], but
    /// a second row of one key, user or role (tables whose constraints were dropped) is refused,
    /// not read as an update: which of the two a check would have found decides otherwise (a
    /// user stored suspended and active, say).
    pub fn load(&mut self, change: Change) -> Result<()> {
        let stored_twice = match &change {
            Change::PutKey(record) => self.key_by_id(&record.id).is_some().then(|| format!("key {}", record.id)),
            Change::PutUser(record) => self.users.contains_key(record.id.as_str()).then(|| format!("user {}", quote(&record.id))),
            Change::PutRole(record) => self.roles.contains_key(record.name.as_str()).then(|| format!("role {}", quote(&record.name))),
            Change::DeleteUser(_) | Change::DeleteRole(_) | Change::DeleteKey(_) => None,
        };
        if let Some(what) = stored_twice {
            return Err(Error::new(ErrorCode::StoreCorrupt, format!("{what} is stored twice")));
        }
        self.apply(change)
    }

    /// Applies one change. Changes planned by the store were validated first
    /// and cannot fail here; changes read back from disk can (`STORE_CORRUPT`).
    pub fn apply(&mut self, change: Change) -> Result<()> {
        match change {
            Change::PutUser(record) => {
                let rights = self.interner.parse_list(&record.rights, RuleUse::Rights)?;
                let roles = record.roles.into_iter().map(Arc::from).collect();
                match self.users.get_mut(record.id.as_str()) {
                    Some(user) => {
                        user.status = record.status;
                        user.roles = roles;
                        let old = std::mem::replace(&mut user.rights, rights);
                        self.interner.release(old);
                    }
                    None => {
                        let id: Arc<str> = record.id.into();
                        self.users.insert(id.clone(), User { id, status: record.status, rights, roles });
                    }
                }
            }
            Change::DeleteUser(id) => {
                if let Some(user) = self.users.remove(id.as_str()) {
                    self.interner.release(user.rights);
                }
                let doomed = self.keys.slots_where(|key| *key.user_id == *id);
                for slot in doomed {
                    if let Some(key) = self.keys.remove(slot) {
                        self.interner.release(key.rules);
                    }
                }
            }
            Change::PutRole(record) => {
                let rights = self.interner.parse_list(&record.rights, RuleUse::Rights)?;
                let name: Arc<str> = record.name.into();
                if let Some(old) = self.roles.insert(name.clone(), Role { name, rights }) {
                    self.interner.release(old.rights);
                }
            }
            Change::DeleteRole(name) => {
                if let Some(old) = self.roles.remove(name.as_str()) {
                    self.interner.release(old.rights);
                }
                for user in self.users.values_mut() {
                    user.roles.retain(|role| **role != *name);
                }
            }
            Change::PutKey(record) => self.put_key(record)?,
            Change::DeleteKey(id) => {
                if let Some(key) = self.keys.slot_by_id(&id).and_then(|slot| self.keys.remove(slot)) {
                    self.interner.release(key.rules);
                }
            }
        }
        Ok(())
    }

    fn put_key(&mut self, record: KeyRecord) -> Result<()> {
        // Never written by keygate (a digest is of a fresh random secret): which of the two a
        // check found would decide, the revoked one or the other.
        if self.keys.digest_held_by_another(&record.id, record.hint, &record.digest) {
            return Err(Error::new(ErrorCode::StoreCorrupt, format!("key {} has the same secret digest as another key", record.id)));
        }
        let user_id = match self.users.get_key_value(record.user_id.as_str()) {
            Some((id, _)) => id.clone(),
            None => {
                return Err(Error::new(
                    ErrorCode::StoreCorrupt,
                    format!("key {} belongs to missing user {}", record.id, quote(&record.user_id)),
                ))
            }
        };
        // Last of what may fail: a refused key leaves the interner as it was.
        let rules = self.interner.parse_list(&record.rules, RuleUse::KeyRules)?;
        let mut key = Key::new(
            record.id,
            record.seq,
            user_id,
            record.description.into(),
            record.state,
            record.expires_at,
            record.created_at,
            record.hint,
            record.digest,
            rules,
        );
        key.updated_at = record.updated_at;
        let mut last_used = record.last_used_at;
        if let Some(old) = self.keys.slot_by_id(&record.id).and_then(|slot| self.keys.remove(slot)) {
            last_used = last_used.max(old.last_used_at());
            self.interner.release(old.rules);
        }
        key.set_last_used_at(last_used);
        self.next_seq = self.next_seq.max(record.seq.saturating_add(1));
        if let Some(hints) = &self.hints {
            hints.insert(&key.hint);
        }
        self.keys.insert(key);
        Ok(())
    }
}

/// Reads a stored key back as a record (for updates that change some fields).
pub fn record_of(key: &Key) -> KeyRecord {
    KeyRecord {
        id: key.id,
        seq: key.seq,
        user_id: key.user_id.to_string(),
        description: key.description.to_string(),
        state: key.state,
        expires_at: key.expires_at,
        created_at: key.created_at,
        updated_at: key.updated_at,
        last_used_at: key.last_used_at(),
        hint: key.hint,
        digest: key.digest,
        rules: key.rules.texts(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store's load sizes the key tables by its estimate of the keys, which may be far off
    /// (SQLite's largest rowid, after years of keys created and deleted): past the bound, it
    /// gets the bound's room and no more (each key of room costs memory at once).
    #[test]
    fn reserving_keys_stops_at_the_bound() {
        let room = |estimate| {
            let mut registry = Registry::default();
            registry.reserve_keys(estimate);
            registry.key_room()
        };
        let (by_hint, by_id) = room(MAX_RESERVED_KEYS);
        assert!(by_hint >= MAX_RESERVED_KEYS && by_id >= MAX_RESERVED_KEYS, "room for {by_hint} and {by_id} keys");
        assert_eq!(room(MAX_RESERVED_KEYS + 1), (by_hint, by_id));
        assert_eq!(room(usize::MAX), (by_hint, by_id));
        // Below the bound, an estimate is room for that many keys.
        let (by_hint, by_id) = room(1000);
        assert!(by_hint >= 1000 && by_id >= 1000, "room for {by_hint} and {by_id} keys");
    }
}
