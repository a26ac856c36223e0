//! A shared bitset of the hints (last 4 characters) of every key's secret, so
//! the JavaScript side can answer "no such key" for most unknown secrets
//! without crossing into native code. The hint is part of the secret's CRC32
//! checksum — effectively random per key — and is stored anyway (the contract:
//! `hint`), so the filter reveals nothing new. Bits are only ever set: a
//! deleted key's bit stays until the store is reopened, costing at worst a
//! native call for a secret that shares its hint.

use std::sync::atomic::{AtomicU32, Ordering};

/// 62^4 possible hints.
pub const HINT_SPACE: usize = 62 * 62 * 62 * 62;
const WORDS: usize = HINT_SPACE.div_ceil(32);

pub struct HintFilter {
    words: Box<[AtomicU32]>,
}

impl Default for HintFilter {
    fn default() -> Self {
        // Zeroed allocation: pages no hint touches are never made resident.
        let words: Vec<u32> = vec![0; WORDS];
        let words = words.into_boxed_slice();
        // SAFETY: AtomicU32 has the same size, alignment and bit validity as u32.
        let words = unsafe { Box::from_raw(Box::into_raw(words) as *mut [AtomicU32]) };
        HintFilter { words }
    }
}

impl std::fmt::Debug for HintFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HintFilter")
    }
}

/// The base62 digits in order: a hint's characters are digits of its number.
pub const HINT_DIGITS: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

// `digit` reads each of HINT_DIGITS as its position.
const _: () = {
    assert!(HINT_DIGITS.len() == 62);
    let mut rest = HINT_DIGITS.as_bytes();
    let mut i = 0;
    while let [c, tail @ ..] = rest {
        assert!(matches!(digit(*c), Some(d) if d == i));
        rest = tail;
        i += 1;
    }
};

const fn digit(c: u8) -> Option<usize> {
    match c {
        b'0'..=b'9' => Some((c - b'0') as usize),
        b'A'..=b'Z' => Some((c - b'A') as usize + 10),
        b'a'..=b'z' => Some((c - b'a') as usize + 36),
        _ => None,
    }
}

/// Position of a hint in the bitset (the same arithmetic as `hintOf` in `lib/memo.js`).
pub fn index(hint: &[u8; 4]) -> Option<usize> {
    hint.iter().try_fold(0usize, |acc, &c| Some(acc * 62 + digit(c)?))
}

impl HintFilter {
    /// The word holding a hint's bit, and the bit. Every base62 hint has one
    /// (the filter spans all 62^4 hints); anything else has none.
    #[inline]
    fn slot(&self, hint: &[u8; 4]) -> Option<(&AtomicU32, u32)> {
        let i = index(hint)?;
        Some((self.words.get(i / 32)?, 1 << (i % 32)))
    }

    pub fn insert(&self, hint: &[u8; 4]) {
        if let Some((word, bit)) = self.slot(hint) {
            word.fetch_or(bit, Ordering::Release);
        }
    }

    pub fn may_contain(&self, hint: &[u8; 4]) -> bool {
        self.slot(hint).is_some_and(|(word, bit)| word.load(Ordering::Acquire) & bit != 0)
    }

    /// The words, for sharing with JavaScript as an ArrayBuffer.
    pub fn as_ptr(&self) -> *const AtomicU32 {
        self.words.as_ptr()
    }

    pub fn byte_len(&self) -> usize {
        self.words.len() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserted_hints_are_found_and_others_mostly_not() {
        let filter = HintFilter::default();
        filter.insert(b"zzzz");
        filter.insert(b"0000");
        filter.insert(b"aB3x");
        assert!(filter.may_contain(b"zzzz") && filter.may_contain(b"0000") && filter.may_contain(b"aB3x"));
        assert!(!filter.may_contain(b"aB3y"));
        assert!(!filter.may_contain(b"a-3x"), "not base62: never a hint");
        assert_eq!(index(b"zzzz"), Some(HINT_SPACE - 1));
    }
}
