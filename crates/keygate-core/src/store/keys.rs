//! The admin calls on keys: create, read, list, update, change state, rotate,
//! delete, and the purge of long-expired keys.

use std::collections::HashMap;

use super::key_match::KeyMatch;
use super::types::view_key;
use super::validate::{check_overlap, check_unchanged, iso};
use super::{internal, Actor, AuditAction, Inner, Issued, KeyCounts, KeyFilter, KeyPatch, KeyStore, KeyView, NewKey};
use crate::backend::UsesOf;
use crate::error::{quote, Error, ErrorCode, Result};
use crate::model::{check_description, unknown_key, Key, KeyId, KeyState};
use crate::registry::{record_of, Change, KeyRecord, Registry};
use crate::rule::{normalise_list, RuleUse};
use crate::secret;

impl KeyStore {
    /// Creates a key; the secret in the answer is never available again.
    pub fn create_key(&self, input: &NewKey, actor: Actor) -> Result<Issued> {
        check_description(&input.description)?;
        let rules = normalise_list(&input.rules, RuleUse::KeyRules)?;
        let state = KeyState::parse(input.state.as_deref().unwrap_or("active"))?;
        if state == KeyState::Revoked {
            return Err(Error::new(ErrorCode::InvalidState, "a key cannot be created revoked"));
        }
        let mut tx = self.inner.write(AuditAction::CreateKey, actor)?;
        tx.refuse_known_secrets("description", [input.description.as_str()], ErrorCode::InvalidArgument)?;
        tx.refuse_known_secrets("a rule", rules.iter().map(String::as_str), ErrorCode::InvalidRule)?;
        if tx.user(&input.user_id).is_none() {
            return Err(Error::new(ErrorCode::UnknownUser, format!("no user with id {}", quote(&input.user_id))));
        }
        let now = self.inner.clock.now();
        let expires_at = self.inner.check_expiry(input.expires_at, now)?;
        let issued = secret::generate(&self.inner.prefix)?;
        let id = new_key_id(&tx)?;
        let record = KeyRecord {
            id,
            seq: tx.next_seq(),
            user_id: input.user_id.clone(),
            description: input.description.clone(),
            state,
            expires_at,
            created_at: now,
            updated_at: now,
            last_used_at: None,
            hint: issued.hint,
            digest: issued.digest,
            rules,
        };
        tx.commit(vec![Change::PutKey(record)])?;
        let key = view_key(tx.key_by_id(&id).ok_or_else(|| internal("the key just stored is missing"))?);
        Ok(Issued { key, secret: issued.text })
    }

    pub fn get_key(&self, id: &str) -> Result<Option<KeyView>> {
        self.inner.check_open()?;
        let Ok(id) = id.parse::<KeyId>() else { return Ok(None) };
        self.inner.refresh_uses(UsesOf::Key(id.as_bytes()));
        Ok(self.inner.registry.read().key_by_id(&id).map(view_key))
    }

    /// Keys matching the filter, newest first.
    pub fn list_keys(&self, filter: &KeyFilter) -> Result<Vec<KeyView>> {
        self.inner.check_open()?;
        let filter = KeyMatch::of(filter)?;
        // One user's keys: that user's stored uses, not every key's (a hundred thousand rows
        // read to show ten blocked the event loop for about 100 ms).
        self.inner.refresh_uses(filter.user_id.map_or(UsesOf::All, UsesOf::User));
        let registry = self.inner.registry.read();
        let mut keys: Vec<&Key> = registry.keys().filter(|k| filter.matches(k)).collect();
        keys.sort_by(|a, b| Key::newest_first(a, b));
        Ok(keys.into_iter().map(view_key).collect())
    }

    /// How many keys each user holding any has in each state, by user id: what a list of users
    /// shows beside each, without building every key's view (`list_keys` of 100,000 keys took
    /// seconds of a blocked event loop to count them).
    pub fn key_counts(&self) -> Result<Vec<KeyCounts>> {
        self.inner.check_open()?;
        let registry = self.inner.registry.read();
        let mut counts: HashMap<&str, KeyCounts> = HashMap::new();
        for key in registry.keys() {
            let user_id: &str = &key.user_id;
            let count =
                counts.entry(user_id).or_insert_with(|| KeyCounts { user_id: user_id.to_string(), active: 0, suspended: 0, revoked: 0 });
            let of_state = match key.state {
                KeyState::Active => &mut count.active,
                KeyState::Suspended => &mut count.suspended,
                KeyState::Revoked => &mut count.revoked,
            };
            *of_state = of_state.saturating_add(1);
        }
        let mut counts: Vec<KeyCounts> = counts.into_values().collect();
        counts.sort_unstable_by(|a, b| a.user_id.cmp(&b.user_id));
        Ok(counts)
    }

    pub fn update_key(&self, id: &str, patch: &KeyPatch, actor: Actor) -> Result<KeyView> {
        let mut tx = self.inner.write(AuditAction::UpdateKey, actor)?;
        let mut record = existing_record(&tx, id)?;
        check_unchanged(&record, id, patch.expected_updated_at)?;
        if record.state == KeyState::Revoked {
            return Err(Error::new(ErrorCode::RevokedIsFinal, format!("key {id} is revoked and cannot be changed")));
        }
        let before = record.clone();
        let now = self.inner.clock.now();
        if let Some(description) = &patch.description {
            check_description(description)?;
            tx.refuse_known_secrets("description", [description.as_str()], ErrorCode::InvalidArgument)?;
            record.description = description.clone();
        }
        if let Some(rules) = &patch.rules {
            let rules = normalise_list(rules, RuleUse::KeyRules)?;
            tx.refuse_known_secrets("a rule", rules.iter().map(String::as_str), ErrorCode::InvalidRule)?;
            record.rules = rules;
        }
        // The expiry the key has is no change of it: the limits apply to a new one, so a form
        // sent back whole can still rename an expired key, or one beyond a lowered limit.
        if let Some(expires_at) = patch.expires_at.filter(|&at| at != Some(record.expires_at)) {
            record.expires_at = self.inner.check_expiry(expires_at, now)?;
        }
        // Values the key already has are no change, as a state it already has is not: a new
        // updatedAt would fail another admin's expectedUpdatedAt with CONFLICT for nothing.
        if record != before {
            record.updated_at = changed_at(record.updated_at, now);
            tx.commit(vec![Change::PutKey(record.clone())])?;
        }
        Ok(view_key(tx.key_by_id(&record.id).ok_or_else(|| internal("the key just changed is missing"))?))
    }

    /// Moves a key between states: `active ⇄ suspended`, either → `revoked`, never back.
    pub fn set_state(&self, id: &str, state: &str, actor: Actor) -> Result<KeyView> {
        self.set_state_if(id, state, None, actor)
    }

    /// `set_state` when the key's `updated_at` is still `expected_updated_at` (if given), else `CONFLICT`.
    pub fn set_state_if(&self, id: &str, state: &str, expected_updated_at: Option<i64>, actor: Actor) -> Result<KeyView> {
        let state = KeyState::parse(state)?;
        let mut tx = self.inner.write(AuditAction::SetState, actor)?;
        let mut record = existing_record(&tx, id)?;
        check_unchanged(&record, id, expected_updated_at)?;
        if record.state == KeyState::Revoked && state != KeyState::Revoked {
            return Err(Error::new(
                ErrorCode::RevokedIsFinal,
                format!("key {id} is revoked; revoked is final, it cannot become {}", state.as_str()),
            ));
        }
        if record.state != state {
            record.state = state;
            record.updated_at = changed_at(record.updated_at, self.inner.clock.now());
            tx.commit(vec![Change::PutKey(record.clone())])?;
        }
        Ok(view_key(tx.key_by_id(&record.id).ok_or_else(|| internal("the key just changed is missing"))?))
    }

    /// Issues a new key like `id` (same user, description, rules, expiry and
    /// state); the old key stays usable for `overlap_seconds`, or is revoked at once with 0.
    pub fn rotate_key(&self, id: &str, overlap_seconds: f64, actor: Actor) -> Result<Issued> {
        self.rotate_key_if(id, overlap_seconds, None, actor)
    }

    /// `rotate_key` when the key's `updated_at` is still `expected_updated_at` (if given), else `CONFLICT`.
    pub fn rotate_key_if(&self, id: &str, overlap_seconds: f64, expected_updated_at: Option<i64>, actor: Actor) -> Result<Issued> {
        check_overlap(overlap_seconds)?;
        let mut tx = self.inner.write(AuditAction::RotateKey, actor)?;
        let mut old = existing_record(&tx, id)?;
        check_unchanged(&old, id, expected_updated_at)?;
        let now = self.inner.clock.now();
        if old.state == KeyState::Revoked {
            return Err(Error::new(ErrorCode::RevokedIsFinal, format!("key {id} is revoked and cannot be rotated")));
        }
        if now >= old.expires_at {
            return Err(Error::new(
                ErrorCode::ExpiryInPast,
                format!("key {id} expired at {}; create a new key instead", iso(old.expires_at)),
            ));
        }
        let issued = secret::generate(&self.inner.prefix)?;
        let new_id = new_key_id(&tx)?;
        let new = KeyRecord {
            id: new_id,
            seq: tx.next_seq(),
            user_id: old.user_id.clone(),
            description: old.description.clone(),
            state: old.state,
            expires_at: old.expires_at,
            created_at: now,
            updated_at: now,
            last_used_at: None,
            hint: issued.hint,
            digest: issued.digest,
            rules: old.rules.clone(),
        };
        if overlap_seconds == 0.0 {
            old.state = KeyState::Revoked;
        } else {
            let overlap_ms = (overlap_seconds * 1000.0).min(i64::MAX as f64 / 2.0) as i64;
            old.expires_at = old.expires_at.min(now.saturating_add(overlap_ms));
        }
        old.updated_at = changed_at(old.updated_at, now);
        tx.commit(vec![Change::PutKey(new), Change::PutKey(old)])?;
        let key = view_key(tx.key_by_id(&new_id).ok_or_else(|| internal("the key just stored is missing"))?);
        Ok(Issued { key, secret: issued.text })
    }

    /// Deletes a key; false when there was no such key.
    pub fn delete_key(&self, id: &str, actor: Actor) -> Result<bool> {
        let mut tx = self.inner.write(AuditAction::DeleteKey, actor)?;
        let Some(raw) = id.parse::<KeyId>().ok().filter(|raw| tx.key_by_id(raw).is_some()) else {
            return Ok(false);
        };
        tx.commit(vec![Change::DeleteKey(raw)])?;
        Ok(true)
    }
}

/// Keys deleted per write by the purge. A write's own work between taking the lock and
/// sending its first statement (planning, the audit entries, the change's JSON) grows with
/// its size; in batches, a store with millions of long-expired keys (a lowered
/// `purgeExpiredAfterDays`) neither holds every other writer back for that long nor
/// outlasts the PostgreSQL store's idle-in-transaction bound.
const PURGE_BATCH: usize = 10_000;

impl Inner {
    /// Deletes keys expired for longer than `after_ms` (audited as `purgeExpired`), at
    /// most [`PURGE_BATCH`] per write; returns how many. A failed write ends the purge,
    /// the batches before it kept (the next purge goes on from there).
    pub(crate) fn purge_expired(&self, after_ms: i64) -> Result<usize> {
        self.purge_expired_with(self.clock.now(), after_ms, true)
    }

    /// [`Inner::purge_expired`] by the earlier of the store clock and `other_now` (the
    /// database server's clock), unless the store clock is frozen (a test's instant decides):
    /// a host whose clock runs ahead would delete, for every host and for good, keys that
    /// have not been expired that long.
    pub(crate) fn purge_expired_by_the_earlier_clock(&self, after_ms: i64, other_now: i64) -> Result<usize> {
        let now = match self.clock.frozen_at() {
            Some(frozen) => frozen,
            None => self.clock.now().min(other_now),
        };
        self.purge_expired_with(now, after_ms, true)
    }

    /// [`Inner::purge_expired`] from the background thread: it never waits for a lock another
    /// process holds (`STORE_LOCKED` at once; see [`crate::backend::Backend::begin_without_waiting`]).
    pub(crate) fn purge_expired_without_waiting(&self, after_ms: i64) -> Result<usize> {
        self.purge_expired_with(self.clock.now(), after_ms, false)
    }

    fn purge_expired_with(&self, now: i64, after_ms: i64, wait: bool) -> Result<usize> {
        let cutoff = now.saturating_sub(after_ms);
        // Looked for first in memory: a round with nothing to purge (the usual one) takes
        // no write lock, so it never holds other writers (or other hosts) back.
        if !self.registry.read().keys().any(|k| k.expires_at < cutoff) {
            return Ok(0);
        }
        let mut purged = 0;
        loop {
            let mut tx = self.write_with(AuditAction::PurgeExpired, None, wait)?;
            // Longest expired first (then by creation): the key table's own order is where each key
            // sits (placed by its secret's hint), random, and would number the audit entries, and
            // pick a batch, differently on every store.
            let mut expired: Vec<&Key> = tx.keys().filter(|k| k.expires_at < cutoff).collect();
            expired.sort_by_key(|k| (k.expires_at, k.seq));
            let doomed: Vec<Change> = expired.into_iter().take(PURGE_BATCH).map(|k| Change::DeleteKey(k.id)).collect();
            let count = doomed.len();
            if count > 0 {
                tx.commit(doomed)?;
            }
            purged += count;
            if count < PURGE_BATCH {
                return Ok(purged);
            }
        }
    }
}

/// The `updatedAt` of a key changed at `now`: later than the one it had, even when the change
/// lands in the same millisecond as the last one (or the clock is frozen, or went back).
/// `expectedUpdatedAt` tells a key changed since it was read by this value alone, so two
/// states of a key must never share it: a change made from a stale read would go through.
fn changed_at(previous: i64, now: i64) -> i64 {
    now.max(previous.saturating_add(1))
}

fn new_key_id(registry: &Registry) -> Result<KeyId> {
    loop {
        let mut bytes = [0u8; 16];
        secret::random_bytes(&mut bytes)?;
        let id = KeyId::from_bytes(bytes);
        if registry.key_by_id(&id).is_none() {
            return Ok(id);
        }
    }
}

fn existing_record(registry: &Registry, id: &str) -> Result<KeyRecord> {
    let key = registry.key_by_id(&id.parse()?).ok_or_else(|| unknown_key(id))?;
    Ok(record_of(key))
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use crate::store::{KeyStore, NewKey, Options, UserInput};

    const T0: i64 = 1_800_000_000_000;
    const DAY: i64 = 86_400_000;

    fn store_with_key_expiring_on_day(day: i64) -> KeyStore {
        let store = KeyStore::in_memory(Options { now: Some(T0), ..Default::default() }).unwrap();
        store.put_user(&UserInput { id: "u".into(), ..Default::default() }, None).unwrap();
        let key = NewKey { user_id: "u".into(), description: String::new(), expires_at: Some(T0 + day * DAY), rules: vec![], state: None };
        store.create_key(&key, None).unwrap();
        store
    }

    /// Whether `purge_expired` answers while another admin call of the process holds the
    /// write (as the maintenance round's purge must not hold back writers when nothing is due).
    fn purge_answers_while_a_write_is_held(store: &KeyStore) -> Option<usize> {
        let held = store.inner.writer.lock();
        let (sent, answered) = mpsc::channel();
        std::thread::scope(|scope| {
            scope.spawn(|| sent.send(store.purge_expired(7 * DAY).unwrap()).unwrap());
            let answer = answered.recv_timeout(Duration::from_millis(500)).ok();
            drop(held);
            answer.or_else(|| answered.recv().ok().map(|_| usize::MAX))
        })
    }

    #[test]
    fn a_purge_with_nothing_due_takes_no_write() {
        let store = store_with_key_expiring_on_day(1);
        store.set_now(Some(T0 + 5 * DAY));
        assert_eq!(purge_answers_while_a_write_is_held(&store), Some(0), "nothing expired for seven days: no write waited for");
        assert_eq!(store.key_count(), 1);
    }

    /// Keys created and deleted leave the expiry watch no instant of theirs beyond a bound:
    /// its instants stay within twice the keys held and a constant, however many were made.
    #[test]
    fn keys_created_and_deleted_leave_the_expiry_watch_a_bounded_set_of_instants() {
        let store = KeyStore::in_memory(Options::default()).unwrap();
        store.put_user(&UserInput { id: "u".into(), ..Default::default() }, None).unwrap();
        let now = crate::clock::system_now();
        for i in 0..5_000 {
            let key =
                NewKey { user_id: "u".into(), description: String::new(), expires_at: Some(now + DAY + i), rules: vec![], state: None };
            let issued = store.create_key(&key, None).unwrap();
            assert!(store.delete_key(&issued.key.id, None).unwrap());
        }
        let instants = store.inner.expiry.instants();
        assert!(instants <= 1_024 + 2, "{instants} expiry instants kept for no key");
    }

    /// The PostgreSQL store's purge goes by the earlier of the host's clock and the server's: a
    /// host whose clock runs ahead must not delete, for every host, keys not expired that long.
    #[test]
    fn a_purge_by_the_earlier_clock_spares_keys_a_clock_ahead_would_delete() {
        let now = crate::clock::system_now();
        // A key that expired ten days ago by the system clock (made with the clock frozen before).
        let store = KeyStore::in_memory(Options { now: Some(now - 20 * DAY), ..Default::default() }).unwrap();
        store.put_user(&UserInput { id: "u".into(), ..Default::default() }, None).unwrap();
        let key = NewKey { user_id: "u".into(), description: String::new(), expires_at: Some(now - 10 * DAY), rules: vec![], state: None };
        store.create_key(&key, None).unwrap();
        store.set_now(None);
        // The server's clock five days behind this host's: by it, expired five days, not seven.
        assert_eq!(store.inner.purge_expired_by_the_earlier_clock(7 * DAY, now - 5 * DAY).unwrap(), 0);
        assert_eq!(store.key_count(), 1);
        // The server's clock ahead: this host's decides, and the key has been expired ten days.
        assert_eq!(store.inner.purge_expired_by_the_earlier_clock(7 * DAY, now + DAY).unwrap(), 1);
        assert_eq!(store.key_count(), 0);
    }

    /// A frozen store clock (a test's instant) decides the purge whatever the server's says.
    #[test]
    fn a_purge_by_a_frozen_clock_ignores_the_other_clock() {
        let store = store_with_key_expiring_on_day(1);
        store.set_now(Some(T0 + 9 * DAY));
        assert_eq!(store.inner.purge_expired_by_the_earlier_clock(7 * DAY, T0).unwrap(), 1);
    }

    #[test]
    fn a_purge_with_keys_due_writes() {
        let store = store_with_key_expiring_on_day(1);
        store.set_now(Some(T0 + 9 * DAY));
        assert_eq!(purge_answers_while_a_write_is_held(&store), Some(usize::MAX), "it waited for the write lock");
        assert_eq!(store.key_count(), 0, "then purged the key");
    }

    /// What a list of users shows beside each: every state counted, users without keys left
    /// out, in user id order; a closed store refuses as every call does.
    #[test]
    fn key_counts_count_each_users_keys_by_state() {
        let store = store_with_key_expiring_on_day(1);
        store.put_user(&UserInput { id: "a".into(), ..Default::default() }, None).unwrap();
        store.put_user(&UserInput { id: "nokeys".into(), ..Default::default() }, None).unwrap();
        let key = |user: &str| NewKey {
            user_id: user.into(),
            description: String::new(),
            expires_at: Some(T0 + DAY),
            rules: vec![],
            state: None,
        };
        let ids: Vec<String> = (0..4).map(|_| store.create_key(&key("a"), None).unwrap().key.id).collect();
        store.set_state(&ids[0], "suspended", None).unwrap();
        store.set_state(&ids[1], "revoked", None).unwrap();
        store.set_state(&ids[2], "revoked", None).unwrap();
        let counts: Vec<(String, u32, u32, u32)> =
            store.key_counts().unwrap().into_iter().map(|c| (c.user_id, c.active, c.suspended, c.revoked)).collect();
        assert_eq!(counts, [("a".to_string(), 1, 1, 2), ("u".to_string(), 1, 0, 0)]);
        store.close().unwrap();
        assert_eq!(store.key_counts().map_err(|e| e.code), Err(crate::error::ErrorCode::StoreIo));
    }
}
