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
    words: Words,
}

impl Default for HintFilter {
    fn default() -> Self {
        HintFilter { words: Words::zeroed(WORDS) }
    }
}

/// The filter's words, zeroed, in pages of their own where the system allows (unix):
/// pages no hint touches are never made resident, and all of them go back to the system
/// when the filter is dropped. Not from the allocator: once glibc's `malloc` has freed a
/// block of this size it serves the next ones from its heap (its mmap threshold rises),
/// where `calloc` writes every byte: each store then held 1.8 MB resident until its
/// JavaScript side was collected, and the heap kept that memory after it was freed (a host
/// that opened and closed in-memory stores in a loop grew to 5.5 GB).
struct Words {
    ptr: std::ptr::NonNull<AtomicU32>,
    len: usize,
    mapped: bool,
}

// SAFETY: `Words` owns its memory alone, as a `Box<[AtomicU32]>` would, and only hands out
// shared references to atomics.
unsafe impl Send for Words {}
// SAFETY: as above: every access through `&Words` is to an atomic.
unsafe impl Sync for Words {}

impl Words {
    fn zeroed(len: usize) -> Words {
        #[cfg(unix)]
        {
            let bytes = len * std::mem::size_of::<AtomicU32>();
            // SAFETY: a new anonymous private mapping, checked below; it overlaps nothing.
            let at = unsafe {
                libc::mmap(std::ptr::null_mut(), bytes, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)
            };
            if at != libc::MAP_FAILED {
                if let Some(ptr) = std::ptr::NonNull::new(at.cast::<AtomicU32>()) {
                    return Words { ptr, len, mapped: true };
                }
            }
        }
        let words: Vec<u32> = vec![0; len];
        let words = Box::into_raw(words.into_boxed_slice()) as *mut [AtomicU32];
        // SAFETY: AtomicU32 has the same size, alignment and bit validity as u32; the
        // pointer of a Box is never null.
        let ptr = unsafe { std::ptr::NonNull::new_unchecked(words.cast::<AtomicU32>()) };
        Words { ptr, len, mapped: false }
    }

    fn as_slice(&self) -> &[AtomicU32] {
        // SAFETY: `ptr` holds `len` initialised (zeroed) atomics for as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Words {
    fn drop(&mut self) {
        if self.mapped {
            #[cfg(unix)]
            // SAFETY: the mapping made in `zeroed`, of this length, unmapped once.
            unsafe {
                libc::munmap(self.ptr.as_ptr().cast(), self.len * std::mem::size_of::<AtomicU32>());
            }
        } else {
            // SAFETY: the Box made in `zeroed`, of this length, dropped once.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.len)) });
        }
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
        Some((self.words.as_slice().get(i / 32)?, 1 << (i % 32)))
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
        self.words.ptr.as_ptr()
    }

    pub fn byte_len(&self) -> usize {
        self.words.len * 4
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
