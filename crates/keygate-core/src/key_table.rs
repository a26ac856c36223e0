//! Keys in a slab, found by secret or by id through tables of slot numbers, each key
//! stored once. The secret table, on every check, is placed by the secret's hint
//! ([`HintIndex`]), and so are the keys themselves: most keys sit in one of two *home*
//! slots computed from their hint. A check knows those slots as soon as it has read the
//! secret, so it fetches the table entry and the key from memory together, while it
//! reads the call's names and hashes the secret, instead of the key only once the entry
//! has arrived. Placement is only about speed: a key found by the index is found
//! wherever it sits, and keys that find no free home go anywhere.

use hashbrown::HashTable;

use crate::hint_index::{tag_of_hint, tag_of_secret, HintIndex};
use crate::huge_pages;
use crate::model::{Key, KeyId};
use crate::prefetch::prefetch_all;
use crate::secret;

/// The placed region is rebuilt, half as large again, when keys fill more than this
/// share of it (numerator, denominator): two homes then still seat about four keys in five.
const MOST_FULL: (usize, usize) = (9, 10);
/// The smallest placed region.
const MIN_PLACED: usize = 16;

#[derive(Debug, Default)]
pub(crate) struct KeyTable {
    /// `placed` slots (rebuilt before they are 9/10 full), where keys are placed by their
    /// hint; a key whose homes were both taken sits in another free slot, found all the same.
    slots: Vec<Option<Key>>,
    placed: usize,
    /// Free slots, possibly stale (a slot taken as a home since): checked when popped.
    free: Vec<u32>,
    by_hint: HintIndex,
    by_id: HashTable<u32>,
}

/// Ids are uniformly random, so their first bytes are a good hash.
#[inline]
fn prefix_hash(bytes: &[u8]) -> u64 {
    bytes.first_chunk::<8>().map_or(0, |head| u64::from_le_bytes(*head))
}

/// The hash the id table holds for `slot` (when it grows and rehashes).
fn id_hash_of(slots: &[Option<Key>], slot: u32) -> u64 {
    slots.get(slot as usize).and_then(Option::as_ref).map_or(0, |key| prefix_hash(key.id.as_bytes()))
}

/// A second, independent spread of a hint's tag (MurmurHash3's finaliser), for the second home.
fn remix(tag: u32) -> u32 {
    let mut h = tag ^ (tag >> 16);
    h = h.wrapping_mul(0x85EB_CA6B);
    h ^= h >> 13;
    h = h.wrapping_mul(0xC2B2_AE35);
    h ^ (h >> 16)
}

/// `hash` scaled onto `0..size` (multiply-shift: no division, any size).
fn scale(hash: u32, size: usize) -> usize {
    ((u64::from(hash) * size as u64) >> 32) as usize
}

impl KeyTable {
    /// The two home slots of keys whose hint has `tag` (none before the first placement).
    #[inline]
    fn homes(&self, tag: u32) -> Option<[usize; 2]> {
        (self.placed > 0).then(|| [scale(tag, self.placed), scale(remix(tag), self.placed)])
    }

    fn is_home_of(&self, slot: usize, key: &Key) -> bool {
        self.homes(tag_of_hint(key.hint)).is_some_and(|homes| homes.contains(&slot))
    }

    /// The key in `slot`; the tables only hold occupied slots, so `None` never
    /// happens in practice (and would read as "no such key").
    pub(crate) fn key(&self, slot: u32) -> Option<&Key> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    /// The slot of the key whose secret is `secret`. The digest is computed once, after
    /// the first candidate's key has started loading, so hashing overlaps the loads.
    pub(crate) fn slot_by_secret(&self, secret: &[u8]) -> Option<u32> {
        let tag = tag_of_secret(secret)?;
        let mut digest = None;
        self.by_hint.find(tag, |slot| {
            let candidate = self.slots.get(slot as usize);
            if let Some(candidate) = candidate {
                prefetch_all(candidate);
            }
            let digest = digest.get_or_insert_with(|| secret::digest(secret));
            candidate.and_then(Option::as_ref).is_some_and(|key| key.digest == *digest)
        })
    }

    /// Starts loading what a lookup of `secret` reads: its table entry and the keys in
    /// its homes (a hint to the CPU only: nothing is read).
    #[inline]
    pub(crate) fn prefetch_secret(&self, secret: &[u8]) {
        let Some(tag) = tag_of_secret(secret) else { return };
        self.by_hint.prefetch(tag);
        for home in self.homes(tag).into_iter().flatten() {
            if let Some(slot) = self.slots.get(home) {
                prefetch_all(slot);
            }
        }
    }

    /// Whether a key other than `id` has this `digest` under this `hint`: a lookup of their
    /// secret would find either one.
    pub(crate) fn digest_held_by_another(&self, id: &KeyId, hint: [u8; 4], digest: &secret::SecretDigest) -> bool {
        self.by_hint.find(tag_of_hint(hint), |slot| self.key(slot).is_some_and(|key| key.digest == *digest && key.id != *id)).is_some()
    }

    pub(crate) fn slot_by_id(&self, id: &KeyId) -> Option<u32> {
        self.by_id.find(prefix_hash(id.as_bytes()), |&s| self.key(s).is_some_and(|k| k.id == *id)).copied()
    }

    pub(crate) fn insert(&mut self, key: Key) {
        let (most, of) = MOST_FULL;
        if (self.len() + 1) * of > self.placed * most {
            self.rebuild((self.placed + self.placed / 2).max(MIN_PLACED));
        }
        self.seat(key);
    }

    /// Puts `key` in a home if one is free or held by a key away from its own homes
    /// (which moves to a free slot), else in any free slot.
    fn seat(&mut self, key: Key) {
        let homes = self.homes(tag_of_hint(key.hint)).unwrap_or_default();
        let free_home = homes.into_iter().find(|&home| self.slots.get(home).is_some_and(Option::is_none));
        let slot = match free_home {
            Some(home) => home,
            None => match homes.into_iter().find(|&home| self.key(home as u32).is_some_and(|other| !self.is_home_of(home, other))) {
                Some(home) => {
                    self.move_away(home);
                    home
                }
                None => self.free_slot(),
            },
        };
        self.put(slot, key);
    }

    /// Moves the key in `slot` to a free slot (its entries follow it).
    fn move_away(&mut self, slot: usize) {
        let to = self.free_slot();
        let Some(key) = self.slots.get_mut(slot).and_then(Option::take) else { return };
        let (tag, id_hash) = (tag_of_hint(key.hint), prefix_hash(key.id.as_bytes()));
        if let Some(entry) = self.slots.get_mut(to) {
            *entry = Some(key);
        }
        let (from, to) = (slot as u32, to as u32);
        self.by_hint.remove(tag, from);
        self.by_hint.insert(tag, to);
        if let Ok(mut entry) = self.by_id.find_entry(id_hash, |&s| s == from) {
            *entry.get_mut() = to;
        }
    }

    /// A free slot: one freed before, else a new one at the end.
    fn free_slot(&mut self) -> usize {
        while let Some(slot) = self.free.pop() {
            if self.slots.get(slot as usize).is_some_and(Option::is_none) {
                return slot as usize;
            }
        }
        self.slots.push(None);
        self.slots.len() - 1
    }

    /// Stores `key` in the free `slot` and files it.
    fn put(&mut self, slot: usize, key: Key) {
        let (hint_tag, id_hash) = (tag_of_hint(key.hint), prefix_hash(key.id.as_bytes()));
        let Some(entry) = self.slots.get_mut(slot) else { return };
        *entry = Some(key);
        let slot = slot as u32;
        self.by_hint.insert(hint_tag, slot);
        let slots = &self.slots;
        self.by_id.insert_unique(id_hash, slot, |&s| id_hash_of(slots, s));
    }

    pub(crate) fn remove(&mut self, slot: u32) -> Option<Key> {
        let key = self.slots.get_mut(slot as usize)?.take()?;
        self.by_hint.remove(tag_of_hint(key.hint), slot);
        if let Ok(entry) = self.by_id.find_entry(prefix_hash(key.id.as_bytes()), |&s| s == slot) {
            entry.remove();
        }
        self.free.push(slot);
        // Slots taken as homes leave stale entries behind: drop them once they outnumber the
        // slots, so a compaction (a scan of the whole stack) comes after as many removals as
        // there are slots. Compacting as soon as the stack outgrows the slab did it every
        // other removal once most keys were gone (the stack then holds every slot).
        if self.free.len() > 2 * self.slots.len() {
            let slots = &self.slots;
            self.free.retain(|&s| slots.get(s as usize).is_some_and(Option::is_none));
            self.free.sort_unstable();
            self.free.dedup();
        }
        Some(key)
    }

    /// Places every key afresh in a region of `placed` slots.
    fn rebuild(&mut self, placed: usize) {
        let old = std::mem::take(&mut self.slots);
        let keys = self.len();
        self.free.clear();
        // Both tables keep their room (a store's load reserved it for all its keys).
        self.by_id.clear();
        self.by_hint.clear();
        self.by_hint.reserve(keys);
        self.slots.reserve_exact(placed);
        huge_pages::advise_capacity(&self.slots);
        self.slots.resize_with(placed, || None);
        self.placed = placed;
        self.free.extend((0..placed as u32).rev());
        for key in old.into_iter().flatten() {
            self.seat(key);
        }
    }

    /// Room for `additional` more keys in the tables, so that a store's load grows
    /// (and rehashes) neither. Not in the slab: it is made anew at each growth of the
    /// placed slots, as keys come. The two indexes take their room at once (8 bytes or
    /// more a key): an estimate too high costs that memory, hence the count and the cap.
    pub(crate) fn reserve(&mut self, additional: usize) {
        let slots = &self.slots;
        self.by_hint.reserve(additional);
        self.by_id.reserve(additional, |&s| id_hash_of(slots, s));
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Key> {
        self.slots.iter().flatten()
    }

    /// The slots of keys `doomed` picks (for deleting a user's keys).
    pub(crate) fn slots_where(&self, mut doomed: impl FnMut(&Key) -> bool) -> Vec<u32> {
        (self.slots.iter().enumerate()).filter(|(_, key)| key.as_ref().is_some_and(&mut doomed)).map(|(slot, _)| slot as u32).collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Keys its tables hold before they grow: by hint, by id (for tests of reserving).
    #[cfg(test)]
    pub(crate) fn room(&self) -> (usize, usize) {
        (self.by_hint.room(), self.by_id.capacity())
    }

    /// Keys sitting in one of their homes (for tests of placement).
    #[cfg(test)]
    fn at_home(&self) -> usize {
        (self.slots.iter().enumerate()).filter(|(slot, key)| key.as_ref().is_some_and(|key| self.is_home_of(*slot, key))).count()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;
    use crate::model::{KeyId, KeyState};
    use crate::rule::RuleList;
    use crate::secret::{generate, Prefix};

    /// A key with a real secret (returned beside it); ids count up from `n`.
    fn key(n: u32) -> (Key, String) {
        let issued = generate(&Prefix::default()).unwrap();
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(&n.to_le_bytes());
        id[4..8].copy_from_slice(&n.wrapping_mul(0x9E37_79B9).to_le_bytes());
        let key = Key::new(
            KeyId::from_bytes(id),
            u64::from(n),
            Arc::from("u"),
            "".into(),
            KeyState::Active,
            1,
            0,
            issued.hint,
            issued.digest,
            RuleList::default(),
        );
        (key, issued.text)
    }

    fn assert_finds_exactly(table: &KeyTable, live: &[(KeyId, String)]) {
        assert_eq!(table.len(), live.len());
        assert_eq!(table.iter().count(), live.len());
        for (id, secret) in live {
            let by_secret = table.slot_by_secret(secret.as_bytes()).and_then(|slot| table.key(slot)).map(|k| k.id);
            let by_id = table.slot_by_id(id).and_then(|slot| table.key(slot)).map(|k| k.id);
            assert_eq!((by_secret, by_id), (Some(*id), Some(*id)));
        }
    }

    /// A slab of several megabytes (20,000 keys) is advised to huge pages, as a check's
    /// loads from it would otherwise each wait for a page walk.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_large_slab_is_advised_to_huge_pages() {
        let mut table = KeyTable::default();
        for n in 0..20_000 {
            table.insert(key(n).0);
        }
        assert_ne!(huge_pages::is_advised(&table.slots), Some(false));
    }

    #[test]
    fn most_keys_sit_in_a_home_and_every_key_is_found_through_moves_removals_and_growth() {
        let mut table = KeyTable::default();
        let mut live = Vec::new();
        for n in 0..20_000 {
            let (key, secret) = key(n);
            live.push((key.id, secret));
            table.insert(key);
        }
        assert_finds_exactly(&table, &live);
        let seated = table.at_home() as f64 / table.len() as f64;
        assert!(seated > 0.75, "{seated:.3} of keys in a home");
        assert!(table.slots.len() * 10 <= table.len() * 20, "the slab stays within twice the keys: {}", table.slots.len());
        // Remove every other key, then add as many: freed slots are reused, homes re-taken.
        let removed: Vec<_> = live.iter().step_by(2).map(|(id, _)| *id).collect();
        for id in &removed {
            let slot = table.slot_by_id(id).unwrap();
            assert_eq!(table.remove(slot).map(|k| k.id), Some(*id));
        }
        live.retain(|(id, _)| !removed.contains(id));
        assert_finds_exactly(&table, &live);
        let slab = table.slots.len();
        for n in 20_000..30_000 {
            let (key, secret) = key(n);
            live.push((key.id, secret));
            table.insert(key);
        }
        assert_finds_exactly(&table, &live);
        assert_eq!(table.slots.len(), slab, "freed slots were reused, the slab did not grow");
        assert!(table.free.len() <= 2 * table.slots.len());
        let seated = table.at_home() as f64 / table.len() as f64;
        assert!(seated > 0.7, "{seated:.3} of keys in a home after churn");
    }

    #[test]
    fn keys_sharing_a_hint_are_all_found_and_a_removed_key_is_not() {
        let mut table = KeyTable::default();
        let (first, first_secret) = key(1);
        let hint = first.hint;
        let mut live = vec![(first.id, first_secret)];
        table.insert(first);
        // Same hint for every key: they compete for the same two homes.
        for n in 2..40 {
            let (mut k, _) = key(n);
            let issued = generate(&Prefix::default()).unwrap();
            k.hint = hint;
            k.digest = issued.digest;
            live.push((k.id, issued.text));
            table.insert(k);
        }
        // Those secrets' own hints differ from `hint`: only the first is found by secret.
        assert_eq!(table.slot_by_secret(live[0].1.as_bytes()).and_then(|s| table.key(s)).map(|k| k.id), Some(live[0].0));
        for (id, _) in &live {
            assert!(table.slot_by_id(id).is_some());
        }
        let slot = table.slot_by_id(&live[0].0).unwrap();
        table.remove(slot);
        assert_eq!(table.slot_by_secret(live[0].1.as_bytes()), None);
        assert_eq!(table.len(), live.len() - 1);
        for (id, _) in &live[1..] {
            assert_eq!(table.slot_by_id(id).and_then(|s| table.key(s)).map(|k| k.id), Some(*id));
        }
    }

    /// A key with secret `secret` (any bytes: its hint is its last four, as issued) and id `n`.
    fn key_with_secret(n: u32, secret: &str) -> Key {
        let (mut k, _) = key(n);
        let hint = secret.as_bytes().last_chunk::<4>().copied().unwrap();
        k.hint = hint;
        k.digest = secret::digest(secret.as_bytes());
        k
    }

    /// What a lookup finds for `id` and for `secret`, as ids.
    fn found(table: &KeyTable, id: &KeyId, secret: &str) -> (Option<KeyId>, Option<KeyId>) {
        let by_id = table.slot_by_id(id).and_then(|slot| table.key(slot)).map(|k| k.id);
        let by_secret = table.slot_by_secret(secret.as_bytes()).and_then(|slot| table.key(slot)).map(|k| k.id);
        (by_id, by_secret)
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Key `id` gets a new secret ending in hint number `hint` (removed first when
        /// present: a rotation, as the registry does it).
        Put {
            id: u8,
            hint: u8,
        },
        Remove(u8),
        /// `count` new keys at once (ids from 1000 up), crossing growth thresholds.
        Burst {
            count: u8,
            hint: u8,
        },
        /// Every key whose id is a multiple of `of` removed (a user's keys deleted).
        RemoveEvery {
            of: u8,
        },
    }

    fn ops() -> impl Strategy<Value = (u8, Vec<Op>)> {
        // Few distinct hints make homes collide, so keys are moved away often.
        let op = prop_oneof![
            5 => (0u8..64, any::<u8>()).prop_map(|(id, hint)| Op::Put { id, hint }),
            3 => (0u8..64).prop_map(Op::Remove),
            1 => (1u8..60, any::<u8>()).prop_map(|(count, hint)| Op::Burst { count, hint }),
            1 => (1u8..4).prop_map(|of| Op::RemoveEvery { of }),
        ];
        (prop_oneof![Just(1u8), Just(2), Just(3), Just(7), Just(255)], proptest::collection::vec(op, 1..120))
    }

    /// A hint out of `hints` distinct ones (four base62 characters, as a secret ends).
    fn hint_text(choice: u32, hints: u32) -> String {
        const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let n = (choice % hints) as usize;
        [n % 62, n / 62 % 62, 7, 11].iter().map(|&d| char::from(DIGITS[d])).collect()
    }

    proptest! {
        /// After every insert, rotation, removal and burst, every live key is found by id
        /// and by secret, removed keys and replaced secrets are not, `len` is right and
        /// neither the slab nor the free stack outgrows the keys held at the peak.
        #[test]
        fn finds_exactly_what_a_model_holds_after_every_op((hints, ops) in ops()) {
            let mut table = KeyTable::default();
            let mut live: std::collections::HashMap<u32, (KeyId, String)> = std::collections::HashMap::new();
            let mut gone: Vec<(KeyId, String)> = Vec::new();
            let (mut peak, mut serial, mut next_burst_id) = (0usize, 0u64, 1000u32);
            let mut new_secret = |hint: u8| {
                serial += 1;
                format!("kg_{serial:020}{}", hint_text(u32::from(hint), u32::from(hints)))
            };
            for op in ops {
                let mut puts: Vec<(u32, u8)> = Vec::new();
                match op {
                    Op::Put { id, hint } => puts.push((u32::from(id), hint)),
                    Op::Remove(id) => {
                        if let Some((key_id, secret)) = live.remove(&u32::from(id)) {
                            let slot = table.slot_by_id(&key_id);
                            prop_assert_eq!(slot.and_then(|s| table.remove(s)).map(|k| k.id), Some(key_id));
                            gone.push((key_id, secret));
                        }
                    }
                    Op::Burst { count, hint } => {
                        for i in 0..count {
                            puts.push((next_burst_id, hint.wrapping_add(i % 3)));
                            next_burst_id += 1;
                        }
                    }
                    Op::RemoveEvery { of } => {
                        let doomed: Vec<u32> = live.keys().copied().filter(|n| n % u32::from(of) == 0).collect();
                        let ids: Vec<KeyId> = doomed.iter().map(|n| live[n].0).collect();
                        for slot in table.slots_where(|k| ids.contains(&k.id)) {
                            prop_assert!(table.remove(slot).is_some());
                        }
                        for n in doomed {
                            gone.extend(live.remove(&n));
                        }
                    }
                }
                for (n, hint) in puts {
                    let secret = new_secret(hint);
                    let k = key_with_secret(n, &secret);
                    if let Some(old) = live.insert(n, (k.id, secret)) {
                        let slot = table.slot_by_id(&old.0);
                        prop_assert_eq!(slot.and_then(|s| table.remove(s)).map(|k| k.id), Some(old.0));
                        gone.push(old);
                    }
                    table.insert(k);
                    peak = peak.max(live.len());
                }
                prop_assert_eq!(table.len(), live.len());
                prop_assert_eq!(table.iter().count(), live.len());
                for (id, secret) in live.values() {
                    prop_assert_eq!(found(&table, id, secret), (Some(*id), Some(*id)));
                }
                for (id, secret) in &gone {
                    let still = live.values().any(|(live_id, _)| live_id == id);
                    let (by_id, by_secret) = found(&table, id, secret);
                    prop_assert_eq!(by_secret, None, "a replaced or removed secret is found");
                    if !still {
                        prop_assert_eq!(by_id, None, "a removed id is found");
                    }
                }
                prop_assert!(table.free.len() <= 2 * table.slots.len());
                prop_assert!(table.slots.len() <= 2 * peak + 16, "slab {} for a peak of {peak}", table.slots.len());
            }
        }
    }

    /// Where each live key sits, by id.
    fn slots_of(table: &KeyTable) -> std::collections::HashMap<KeyId, usize> {
        (table.slots.iter().enumerate()).filter_map(|(slot, key)| key.as_ref().map(|k| (k.id, slot))).collect()
    }

    #[test]
    fn keys_moved_away_from_a_home_are_still_found_by_id_and_secret() {
        let mut table = KeyTable::default();
        let mut live = Vec::new();
        let mut moves = 0;
        // Distinct hints, so a key seated anywhere (both homes taken) often sits in a
        // later key's home, and is moved away.
        for n in 0..3_000u32 {
            let secret = format!("kg_{n:020}{}", hint_text(n, 62 * 62));
            let k = key_with_secret(n, &secret);
            live.push((k.id, secret));
            let (before, placed) = (slots_of(&table), table.placed);
            table.insert(k);
            if table.placed == placed {
                moves += slots_of(&table).iter().filter(|(id, slot)| before.get(*id).is_some_and(|was| was != *slot)).count();
            }
            if n % 97 == 0 {
                let (id, _) = live.remove(n as usize / 2);
                table.remove(table.slot_by_id(&id).unwrap());
            }
        }
        assert!(moves > 10, "only {moves} keys were moved away");
        for (id, secret) in &live {
            assert_eq!(found(&table, id, secret), (Some(*id), Some(*id)));
        }
        assert_eq!(table.len(), live.len());
    }

    /// A table that once held many keys keeps its slab; rotating its few keys then must
    /// not rescan the whole free stack every other removal (each key seated in its free
    /// home leaves a stale entry, each removal pushes one).
    #[test]
    fn rotating_a_key_after_most_keys_are_deleted_rescans_the_free_stack_rarely() {
        let mut table = KeyTable::default();
        let ids: Vec<KeyId> = (0..5_000u32)
            .map(|n| key_with_secret(n, &format!("kg_{n:024}")))
            .map(|k| {
                let id = k.id;
                table.insert(k);
                id
            })
            .collect();
        for id in &ids[1..] {
            table.remove(table.slot_by_id(id).unwrap());
        }
        let (rotations, mut scanned) = (5_000u32, 0);
        for n in 0..rotations {
            let secret = format!("kg_{:024}", 10_000 + n);
            let k = key_with_secret(10_000 + n, &secret);
            let id = k.id;
            table.insert(k);
            assert_eq!(found(&table, &id, &secret), (Some(id), Some(id)));
            let before = table.free.len();
            table.remove(table.slot_by_id(&id).unwrap());
            // A removal pushes one entry; fewer after it means the stack was compacted.
            if table.free.len() <= before {
                scanned += before + 1;
            }
            assert!(table.free.len() <= 2 * table.slots.len());
        }
        assert_eq!(found(&table, &ids[0], "kg_000000000000000000000000"), (Some(ids[0]), Some(ids[0])));
        let slab = table.slots.len();
        assert!(scanned <= 4 * rotations as usize + 4 * slab, "{scanned} free entries rescanned in {rotations} rotations (slab {slab})");
    }

    #[test]
    fn reserving_for_an_absurd_estimate_materialises_nothing() {
        let mut table = KeyTable::default();
        table.reserve(1 << 20);
        assert!(table.slots.is_empty());
        let (k, secret) = key(7);
        let id = k.id;
        table.insert(k);
        assert_finds_exactly(&table, &[(id, secret)]);
        assert!(table.slots.len() <= MIN_PLACED + 1);
    }
}
