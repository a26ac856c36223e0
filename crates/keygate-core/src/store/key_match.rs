//! A listing's filter (`listKeys`, `listKeysPage`), checked once and then tested against each
//! key: its user, its state, and a text `search` found in the key's id, description or hint.
//!
//! The search is a case-insensitive "contains", each field on its own (a search never matches
//! across the end of one field and the start of the next). Both texts are folded a character at a
//! time to Unicode lower case ([`char::to_lowercase`], with no locale and no context), and a final
//! sigma `ς` to `σ`: so `Σ`, `σ` and `ς` find each other wherever they stand, which JavaScript's
//! `toLowerCase` of a whole text (final sigma by context) would not. There is no other folding: no
//! Unicode normalisation (a precomposed `é` does not find `e` and a combining accent), and lower
//! case is not full case folding (`ß` does not find `ss`; `İ` lowers to `i` and a combining dot,
//! so `i` finds it).

use std::cell::RefCell;

use memchr::memmem::Finder;

use super::KeyFilter;
use crate::error::{Error, ErrorCode, Result};
use crate::model::{Key, KeyState, MAX_DESCRIPTION_CHARS};

/// The longest search, in characters: a key's longest field (its description).
pub(crate) const MAX_SEARCH_CHARS: usize = MAX_DESCRIPTION_CHARS;

/// A [`KeyFilter`] whose state and search are checked, ready to test keys with.
#[derive(Debug)]
pub(crate) struct KeyMatch<'a> {
    pub user_id: Option<&'a str>,
    pub state: Option<KeyState>,
    search: Option<Search>,
}

impl<'a> KeyMatch<'a> {
    /// `INVALID_STATE` for an unknown state; `INVALID_ARGUMENT` for a search over
    /// [`MAX_SEARCH_CHARS`] (its text never quoted: it may be a secret pasted in the wrong field).
    pub fn of(filter: &'a KeyFilter) -> Result<KeyMatch<'a>> {
        let state = filter.state.as_deref().map(KeyState::parse).transpose()?;
        let search = filter.search.as_deref().map(Search::new).transpose()?.flatten();
        Ok(KeyMatch { user_id: filter.user_id.as_deref(), state, search })
    }

    pub fn matches(&self, key: &Key) -> bool {
        key.matches(self.user_id, self.state) && self.search.as_ref().is_none_or(|search| search.finds_in(key))
    }
}

/// A search text, folded, and a searcher for it in linear time (a naive window-by-window
/// compare took 66 µs a description for a search of 511 `a` and a `b` in 1,024 `a`: seconds for
/// a listing of 100,000 such keys).
#[derive(Debug)]
struct Search {
    folded: String,
    finder: Finder<'static>,
    /// An ASCII text lower-cased for the finder, kept from one key to the next.
    lowered: RefCell<Vec<u8>>,
}

impl Search {
    /// `None` for an empty search, which every key matches.
    fn new(text: &str) -> Result<Option<Search>> {
        let chars = text.chars().count();
        if chars > MAX_SEARCH_CHARS {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                format!(
                    "search is {chars} characters long; at most {MAX_SEARCH_CHARS} are taken (a key's description is at most that long)"
                ),
            ));
        }
        Ok((!text.is_empty()).then(|| {
            let folded = fold(text);
            let finder = Finder::new(folded.as_bytes()).into_owned();
            Search { folded, finder, lowered: RefCell::new(Vec::new()) }
        }))
    }

    fn finds_in(&self, key: &Key) -> bool {
        // Ids and hints are ASCII; a description is ASCII far more often than not.
        self.finds_in_text(&key.id.text()) || self.finds_in_text(&key.hint) || self.finds_in_text(key.description.as_bytes())
    }

    /// True when the folded search is in the fold of `text` (UTF-8).
    fn finds_in_text(&self, text: &[u8]) -> bool {
        if text.is_ascii() {
            // An ASCII text folds to its ASCII lower case; a search whose fold is not ASCII
            // cannot be in it.
            if !self.folded.is_ascii() {
                return false;
            }
            let mut lowered = self.lowered.borrow_mut();
            lowered.clear();
            lowered.extend(text.iter().map(u8::to_ascii_lowercase));
            return self.finder.find(&lowered).is_some();
        }
        std::str::from_utf8(text).is_ok_and(|text| self.finder.find(fold(text).as_bytes()).is_some())
    }
}

/// `text` lower-cased a character at a time, a final sigma as any other (see the module's doc).
pub(crate) fn fold(text: &str) -> String {
    text.chars().flat_map(char::to_lowercase).map(|c| if c == 'ς' { 'σ' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finds(search: &str, text: &str) -> bool {
        Search::new(search).unwrap().is_none_or(|s| s.finds_in_text(text.as_bytes()))
    }

    #[test]
    fn ascii_case_is_ignored_either_way() {
        assert!(finds("billing", "Nightly BILLING export"));
        assert!(finds("BiLLinG", "nightly billing export"));
        assert!(finds("key_6cw", "key_6CWcaQGIvOW5vA0YQ4Tg1N"));
        assert!(!finds("billing", "bill ing"));
        assert!(finds("", "anything"));
        assert!(finds("", ""));
        assert!(!finds("a", ""));
    }

    #[test]
    fn non_ascii_is_folded_a_character_at_a_time() {
        assert!(finds("ÉTÉ", "rapport d'été"));
        assert!(finds("été", "RAPPORT D'ÉTÉ"));
        assert!(finds("straße", "STRASSE straße"));
        assert!(!finds("strasse", "STRAßE"), "lower case, not full case folding");
        assert!(finds("ΟΔΟΣ", "οδος"));
        assert!(finds("οδοσ", "ΟΔΟΣ"));
        assert!(finds("οδος", "ΟΔΟΣ"));
        assert!(finds("σ", "οδος"), "a final sigma is a sigma");
        assert!(finds("ς", "ΣΑΣ"));
        assert!(finds("МОСКВА", "москва"));
        // The Kelvin sign lowers to an ASCII k: an ASCII search finds it in a non-ASCII text.
        assert!(finds("kelvin", "\u{212A}elvin"));
        assert!(finds("\u{212A}", "k"), "the Kelvin sign's fold is ASCII, found in an ASCII text");
        assert!(finds("i", "İstanbul"));
        assert!(!finds("é", "e\u{301}"), "no normalisation");
        assert!(!finds("ü", "u"));
        assert!(finds("日本", "東京と日本"));
        assert!(!finds("é", "ascii only"));
    }

    #[test]
    fn a_search_of_a_repeated_letter_is_found_only_where_the_whole_of_it_is() {
        // The shape a window-by-window compare took quadratic time on (see `Search`).
        let search = format!("{}B", "a".repeat(511));
        assert!(!finds(&search, &"A".repeat(1024)));
        assert!(finds(&search, &format!("{}b", "A".repeat(1023))));
        assert!(finds(&search, &format!("x{}bx", "a".repeat(600))));
        assert!(!finds(&search, &format!("{}b", "a".repeat(510))));
        let greek = format!("{}Β", "α".repeat(300));
        assert!(!finds(&greek, &"Α".repeat(1024)));
        assert!(finds(&greek, &format!("{}β", "Α".repeat(400))));
    }

    #[test]
    fn the_longest_search_is_a_descriptions_length_and_a_longer_is_not_quoted() {
        assert!(Search::new(&"é".repeat(MAX_SEARCH_CHARS)).is_ok());
        let pasted = format!("kg_{}", "A".repeat(MAX_SEARCH_CHARS));
        let error = Search::new(&pasted).err().unwrap();
        assert_eq!(error.code, ErrorCode::InvalidArgument);
        assert!(error.message.starts_with("search is 1027 characters long"), "{}", error.message);
        assert!(!error.message.contains("AAAA") && !error.message.contains("kg_"), "{}", error.message);
    }
}
