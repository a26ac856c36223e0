//! Keys a page at a time (`listKeysPage`): a bounded slice of the newest-first listing and an
//! opaque cursor for the next. The cursor is the place of the page's last key in that order
//! (its creation instant and creation number), not the key itself, so deleting that key, or any
//! other, between pages neither fails the next page nor skips or repeats a key still there.

use std::cmp::Ordering;

use super::key_match::KeyMatch;
use super::types::view_key;
use super::{KeyFilter, KeyStore, KeyView};
use crate::backend::UsesOf;
use crate::error::{Error, ErrorCode, Result};
use crate::model::{Key, KeyId};

/// The page size when none is given.
const DEFAULT_PAGE_LIMIT: u32 = 100;
/// The largest page: each key becomes a JavaScript object, and one call must not hold the
/// event loop for long (about 10 ms a thousand keys).
const MAX_PAGE_LIMIT: u32 = 1000;

/// Tells a cursor from a key id, a secret or a cursor of another format to come.
const CURSOR_TAG: &str = "kp1.";

#[derive(Debug, Clone, Default)]
pub struct KeyPageQuery {
    pub filter: KeyFilter,
    pub limit: Option<u32>,
    /// A page's `next`: the keys listed after that page's last.
    pub after: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPage {
    pub keys: Vec<KeyView>,
    /// The cursor of the next page; `None` when this page ends the listing.
    pub next: Option<String>,
}

/// A place in the newest-first order: `(created_at, seq)` of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Place {
    created_at: i64,
    seq: u64,
}

impl Place {
    fn of(key: &Key) -> Place {
        Place { created_at: key.created_at, seq: key.seq }
    }

    /// True when `key` comes after this place in the listing (older, or as old and made before).
    fn precedes(self, key: &Key) -> bool {
        newest_first(self, Place::of(key)) == Ordering::Less
    }

    fn to_cursor(self) -> String {
        format!("{CURSOR_TAG}{}.{}", self.created_at, self.seq)
    }

    fn from_cursor(text: &str) -> Result<Place> {
        // Never quoted back: a secret pasted into the wrong field must not be echoed.
        let not_a_cursor = || {
            Error::new(
                ErrorCode::InvalidArgument,
                "after is not a cursor this store gave: pass a page's next, or leave it out for the first page",
            )
        };
        let rest = text.strip_prefix(CURSOR_TAG).ok_or_else(not_a_cursor)?;
        let (created_at, seq) = rest.split_once('.').ok_or_else(not_a_cursor)?;
        let canonical = |digits: &str| {
            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && !(digits.len() > 1 && digits.starts_with('0'))
        };
        let unsigned_created_at = created_at.strip_prefix('-').unwrap_or(created_at);
        if !canonical(unsigned_created_at) || !canonical(seq) || created_at == "-0" {
            return Err(not_a_cursor());
        }
        Ok(Place { created_at: created_at.parse().map_err(|_| not_a_cursor())?, seq: seq.parse().map_err(|_| not_a_cursor())? })
    }
}

fn newest_first(a: Place, b: Place) -> Ordering {
    b.created_at.cmp(&a.created_at).then(b.seq.cmp(&a.seq))
}

impl KeyStore {
    /// At most `limit` keys matching the filter, newest first, after the cursor `after`.
    pub fn list_keys_page(&self, query: &KeyPageQuery) -> Result<KeyPage> {
        self.inner.check_open()?;
        let limit = query.limit.unwrap_or(DEFAULT_PAGE_LIMIT);
        if !(1..=MAX_PAGE_LIMIT).contains(&limit) {
            return Err(Error::new(ErrorCode::InvalidArgument, format!("limit {limit} must be a whole number from 1 to {MAX_PAGE_LIMIT}")));
        }
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let filter = KeyMatch::of(&query.filter)?;
        let after = query.after.as_deref().map(Place::from_cursor).transpose()?;

        let (ids, next) = self.choose_page(&filter, after, limit);
        let raw: Vec<[u8; 16]> = ids.iter().map(|id| *id.as_bytes()).collect();
        self.inner.refresh_uses(UsesOf::Keys(&raw));
        Ok(KeyPage { keys: self.view_page(&ids, &filter), next })
    }

    /// The ids of the page's keys, chosen by place alone (then the stored uses of those keys
    /// only are read: a page of ten must not read every used key's row), and the next cursor.
    fn choose_page(&self, filter: &KeyMatch<'_>, after: Option<Place>, limit: usize) -> (Vec<KeyId>, Option<String>) {
        let registry = self.inner.registry.read();
        // The place first: it is the cheaper test, and a search reads the key's texts.
        let mut keys: Vec<&Key> = registry.keys().filter(|k| after.is_none_or(|place| place.precedes(k)) && filter.matches(k)).collect();
        let more = keys.len() > limit;
        if more {
            keys.select_nth_unstable_by(limit, |a, b| Key::newest_first(a, b));
            keys.truncate(limit);
        }
        keys.sort_unstable_by(|a, b| Key::newest_first(a, b));
        let next = if more { keys.last().map(|k| Place::of(k).to_cursor()) } else { None };
        (keys.iter().map(|k| k.id).collect(), next)
    }

    /// The views of the chosen keys as they are now. The registry was unlocked while their uses
    /// were read, and another handle's change may have been applied meanwhile: a key deleted
    /// since is left out (the cursor still holds its place), and so is one that has left the
    /// filter: its state (a page of active keys showed a key just suspended elsewhere), or its
    /// description no longer holding the search.
    fn view_page(&self, ids: &[KeyId], filter: &KeyMatch<'_>) -> Vec<KeyView> {
        let registry = self.inner.registry.read();
        ids.iter().filter_map(|id| registry.key_by_id(id)).filter(|k| filter.matches(k)).map(view_key).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_as_its_place() {
        for place in [
            Place { created_at: 0, seq: 0 },
            Place { created_at: 1_733_600_000_000, seq: 42 },
            Place { created_at: -62_135_596_800_000, seq: u64::MAX },
            Place { created_at: i64::MIN, seq: 1 },
            Place { created_at: i64::MAX, seq: 7 },
        ] {
            assert_eq!(Place::from_cursor(&place.to_cursor()).ok(), Some(place));
        }
    }

    #[test]
    fn only_the_canonical_spelling_of_a_place_is_a_cursor() {
        for text in [
            "",
            "kp1.",
            "kp1.1",
            "kp1.1.",
            "kp1..1",
            "kp1.01.1",
            "kp1.1.01",
            "kp1.-0.1",
            "kp1.+1.1",
            "kp1.1.-1",
            "kp1.1.1.1",
            "kp1. 1.1",
            "kp1.1.1 ",
            "kp2.1.1",
            "KP1.1.1",
            "kp1.99999999999999999999.1",
            "kp1.1.99999999999999999999",
            "kp1.١.1",
            "key_6CWcaQGIvOW5vA0YQ4Tg1N",
        ] {
            let err = Place::from_cursor(text).err().map(|e| (e.code, e.message));
            assert!(matches!(err, Some((ErrorCode::InvalidArgument, _))), "{text:?} was read as a cursor");
        }
    }

    /// A page's keys are chosen, the registry is unlocked while their stored uses are read, and
    /// another handle's change can be applied meanwhile (the race a second SQLite handle
    /// suspending keys lost a third of the time). A page of active keys must not show a key
    /// suspended in that gap, nor a page of suspended keys one activated.
    #[test]
    fn a_key_whose_state_left_the_filter_while_uses_were_read_is_left_out() {
        use crate::store::{NewKey, Options, UserInput};
        let store = KeyStore::in_memory(Options::default()).unwrap();
        store.put_user(&UserInput { id: "u".into(), rights: vec!["*:*".into()], ..Default::default() }, None).unwrap();
        let new_key = NewKey { user_id: "u".into(), expires_at: Some(store.now() + 86_400_000), ..Default::default() };
        let ids: Vec<String> = (0..3).map(|_| store.create_key(&new_key, None).unwrap().key.id).collect();
        let active = KeyFilter { state: Some("active".into()), ..KeyFilter::default() };
        let active = KeyMatch::of(&active).unwrap();
        let (chosen, next) = store.choose_page(&active, None, 2);
        assert_eq!((chosen.len(), next.is_some()), (2, true));
        store.set_state(&ids[2], "suspended", None).unwrap();
        let shown: Vec<String> = store.view_page(&chosen, &active).into_iter().map(|k| k.id).collect();
        assert_eq!(shown, [ids[1].clone()], "a key suspended while the page's uses were read was shown in a page of active keys");
        let everything = KeyFilter::default();
        assert_eq!(store.view_page(&chosen, &KeyMatch::of(&everything).unwrap()).len(), 2, "unfiltered, the suspended key is still shown");
    }

    /// As above, for a search: a key whose description another handle changed while the page's
    /// uses were read, so that it no longer holds the search, is left out.
    #[test]
    fn a_key_whose_description_left_the_search_while_uses_were_read_is_left_out() {
        use crate::store::{KeyPatch, NewKey, Options, UserInput};
        let store = KeyStore::in_memory(Options::default()).unwrap();
        store.put_user(&UserInput { id: "u".into(), rights: vec!["*:*".into()], ..Default::default() }, None).unwrap();
        let new_key = |description: &str| NewKey {
            user_id: "u".into(),
            description: description.into(),
            expires_at: Some(store.now() + 86_400_000),
            ..Default::default()
        };
        let ids: Vec<String> = ["Billing A", "billing b"].map(|d| store.create_key(&new_key(d), None).unwrap().key.id).into();
        let search = KeyFilter { search: Some("BILLING".into()), ..KeyFilter::default() };
        let search = KeyMatch::of(&search).unwrap();
        let (chosen, _) = store.choose_page(&search, None, 10);
        assert_eq!(chosen.len(), 2);
        store.update_key(&ids[0], &KeyPatch { description: Some("payroll".into()), ..Default::default() }, None).unwrap();
        let shown: Vec<String> = store.view_page(&chosen, &search).into_iter().map(|k| k.id).collect();
        assert_eq!(shown, [ids[1].clone()]);
    }

    #[test]
    fn a_refused_cursor_is_not_echoed() {
        let pasted = "kg_notacursor_butmaybeasecret";
        let message = Place::from_cursor(pasted).err().map(|e| e.message).unwrap_or_default();
        assert!(!message.contains(pasted) && !message.contains("notacursor"), "{message}");
    }
}
