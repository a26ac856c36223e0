//! Keys' slots found by the secret's hint (its last four characters) in one flat
//! open-addressed table (linear probing, at most half full): an entry is the hint's tag
//! and the slot, eight entries to a cache line. The hint is known as soon as the secret
//! is read, before its digest is computed: a check fetches the entry (and then the key)
//! from memory while it hashes the secret, instead of one after the other. The caller
//! confirms a candidate against the key's full digest, so a hint shared by several keys
//! (about one key in 70 at 200,000 keys) costs a second candidate, never a wrong answer.
//! Hints are shown in key listings, so placing by them tells a prober nothing new (a
//! prober timing its checks can see which hints some key has, no more).

use crate::huge_pages;
use crate::prefetch::prefetch;

/// Marks a free entry (no key has this slot: slots are positions in a `Vec`
/// of at most `u32::MAX` keys, numbered from 0).
const FREE: u32 = u32::MAX;

/// Fewest entries a table has once anything is inserted (a power of two).
const MIN_ENTRIES: usize = 16;

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// The hint's tag ([`tag_of_hint`]): its top bits place the entry, all of them
    /// reject keys of other hints without reading them.
    tag: u32,
    slot: u32,
}

const FREE_ENTRY: Entry = Entry { tag: 0, slot: FREE };

/// Slots by hint; the caller confirms a candidate against the key's full digest.
#[derive(Debug, Default)]
pub(crate) struct HintIndex {
    entries: Box<[Entry]>,
    len: usize,
    /// `32 - log2(entries.len())`: a tag shifted right by this is its home entry.
    shift: u32,
}

/// The tag of a hint: its four bytes spread over all 32 bits (a multiplication by an
/// odd constant, so that distinct hints keep distinct tags and the top bits that place
/// an entry depend on every byte: base62 characters use about six bits of each).
pub(crate) fn tag_of_hint(hint: [u8; 4]) -> u32 {
    u32::from_le_bytes(hint).wrapping_mul(0x9E37_79B1)
}

/// The tag a lookup of `secret` searches for: its hint's (`None` for a secret too
/// short to have one), the same tag its key was filed under.
pub(crate) fn tag_of_secret(secret: &[u8]) -> Option<u32> {
    secret.last_chunk::<4>().map(|hint| tag_of_hint(*hint))
}

impl HintIndex {
    fn mask(&self) -> usize {
        self.entries.len().wrapping_sub(1)
    }

    fn home(&self, tag: u32) -> usize {
        // `shift` < 32 once entries exist; an empty table is never probed.
        tag.checked_shr(self.shift).unwrap_or(0) as usize
    }

    /// Starts fetching the entry where a lookup of `tag` begins (no effect on the table).
    #[inline]
    pub(crate) fn prefetch(&self, tag: u32) {
        if let Some(entry) = self.entries.get(self.home(tag)) {
            prefetch(entry);
        }
    }

    /// The first slot filed under `tag` that `is_key` confirms, if any (candidates in
    /// the order they were placed).
    #[inline]
    pub(crate) fn find(&self, tag: u32, mut is_key: impl FnMut(u32) -> bool) -> Option<u32> {
        if self.len == 0 {
            return None;
        }
        let mask = self.mask();
        let mut at = self.home(tag);
        // At most half full: a free entry always ends the probe.
        loop {
            let entry = self.entries.get(at)?;
            if entry.slot == FREE {
                return None;
            }
            if entry.tag == tag && is_key(entry.slot) {
                return Some(entry.slot);
            }
            at = (at + 1) & mask;
        }
    }

    /// Adds `slot` under `tag` (a slot is inserted once, removed before it is reused).
    pub(crate) fn insert(&mut self, tag: u32, slot: u32) {
        if (self.len + 1) * 2 > self.entries.len() {
            self.grow();
        }
        self.place(Entry { tag, slot });
        self.len += 1;
    }

    fn place(&mut self, entry: Entry) {
        let mask = self.mask();
        let mut at = self.home(entry.tag);
        while let Some(current) = self.entries.get_mut(at) {
            if current.slot == FREE {
                *current = entry;
                return;
            }
            at = (at + 1) & mask;
        }
    }

    fn grow(&mut self) {
        self.resize((self.entries.len() * 2).max(MIN_ENTRIES));
    }

    /// Forgets every slot, keeping the room made for them (a rebuild files them again).
    pub(crate) fn clear(&mut self) {
        self.entries.fill(FREE_ENTRY);
        self.len = 0;
    }

    /// Slots it holds before it grows (for tests of reserving).
    #[cfg(test)]
    pub(crate) fn room(&self) -> usize {
        self.entries.len() / 2
    }

    /// Room for `additional` more slots with no growing on the way (a store's load).
    pub(crate) fn reserve(&mut self, additional: usize) {
        let size = self.len.saturating_add(additional).saturating_mul(2).checked_next_power_of_two().unwrap_or(usize::MAX).max(MIN_ENTRIES);
        if size > self.entries.len() && size <= 1 << 31 {
            self.resize(size);
        }
    }

    /// `size`: a power of two, more than twice the entries held.
    fn resize(&mut self, size: usize) {
        let mut entries = Vec::with_capacity(size);
        huge_pages::advise_capacity(&entries);
        entries.resize(size, FREE_ENTRY);
        let old = std::mem::replace(&mut self.entries, entries.into_boxed_slice());
        self.shift = 32 - size.trailing_zeros();
        for entry in old.iter().filter(|entry| entry.slot != FREE) {
            self.place(*entry);
        }
    }

    /// Removes `slot`, filed under `tag`; later entries of its run move back
    /// into the gap (no tombstones: probes stay as short as at insertion).
    pub(crate) fn remove(&mut self, tag: u32, slot: u32) {
        if self.len == 0 {
            return;
        }
        let mask = self.mask();
        let mut hole = self.home(tag);
        loop {
            match self.entries.get(hole) {
                Some(entry) if entry.slot == slot => break,
                Some(entry) if entry.slot != FREE => hole = (hole + 1) & mask,
                _ => return,
            }
        }
        let mut next = (hole + 1) & mask;
        while let Some(&entry) = self.entries.get(next).filter(|entry| entry.slot != FREE) {
            // The entry may fill the hole if the hole lies between its home and it.
            let home = self.home(entry.tag);
            if next.wrapping_sub(home) & mask >= next.wrapping_sub(hole) & mask {
                if let Some(gap) = self.entries.get_mut(hole) {
                    *gap = entry;
                }
                hole = next;
            }
            next = (next + 1) & mask;
        }
        if let Some(gap) = self.entries.get_mut(hole) {
            *gap = FREE_ENTRY;
        }
        self.len -= 1;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    /// Tags drawn from few values, so that runs and wrap-arounds are common.
    fn ops() -> impl Strategy<Value = Vec<(bool, u32, u32)>> {
        proptest::collection::vec((any::<bool>(), prop_oneof![0u32..8, any::<u32>(), (u32::MAX - 8)..=u32::MAX], 0u32..64), 0..400)
    }

    /// A table for 600,000 keys (16 MiB) is advised to huge pages, grown or reserved.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_large_table_is_advised_to_huge_pages() {
        let mut reserved = HintIndex::default();
        reserved.reserve(600_000);
        assert_ne!(crate::huge_pages::is_advised(&reserved.entries), Some(false));
        let mut grown = HintIndex::default();
        for slot in 0..600_000u32 {
            grown.insert(slot.wrapping_mul(0x9E37_79B9), slot);
        }
        assert_ne!(crate::huge_pages::is_advised(&grown.entries), Some(false));
    }

    proptest! {
        /// Every slot inserted is found under its tag until removed, never after, and
        /// never under another tag, whatever the order of inserts and removals.
        #[test]
        fn finds_exactly_what_a_map_holds(ops in ops()) {
            let mut index = HintIndex::default();
            let mut model: HashMap<u32, u32> = HashMap::new();
            for (insert, tag, slot) in ops {
                match (insert, model.get(&slot).copied()) {
                    (true, None) => {
                        index.insert(tag, slot);
                        model.insert(slot, tag);
                    }
                    (false, Some(filed)) => {
                        index.remove(filed, slot);
                        model.remove(&slot);
                    }
                    _ => {}
                }
                for slot in 0..64u32 {
                    let expected = model.get(&slot).copied();
                    if let Some(tag) = expected {
                        prop_assert_eq!(index.find(tag, |s| s == slot), Some(slot));
                        prop_assert_eq!(index.find(tag.wrapping_add(1), |s| s == slot), None);
                    }
                }
                prop_assert_eq!(index.len, model.len());
            }
        }
    }

    #[test]
    fn an_empty_index_finds_nothing_and_removes_nothing() {
        let mut index = HintIndex::default();
        assert_eq!(index.find(7, |_| true), None);
        index.remove(7, 1);
        assert_eq!(index.len, 0);
    }

    #[test]
    fn reserved_room_takes_the_keys_without_growing_and_keeps_what_it_held() {
        let mut index = HintIndex::default();
        for slot in 0..10u32 {
            index.insert(slot.wrapping_mul(0x9E37_79B9), slot);
        }
        index.reserve(1_000);
        let size = index.entries.len();
        assert!(size >= 2 * 1_010);
        for slot in 0..10u32 {
            assert_eq!(index.find(slot.wrapping_mul(0x9E37_79B9), |s| s == slot), Some(slot));
        }
        for slot in 10..1_010u32 {
            index.insert(slot.wrapping_mul(0x9E37_79B9), slot);
        }
        assert_eq!(index.entries.len(), size, "no growing after reserve");
        index.reserve(usize::MAX);
        assert_eq!(index.entries.len(), size, "an absurd estimate is ignored");
    }
}
