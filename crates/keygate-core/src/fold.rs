//! Folding a call's name to ASCII lower case while finding whether it is a valid
//! name, sixteen bytes a step where the CPU allows: every check folds two names,
//! and byte by byte (a table load, a store and a test per byte) that had been the
//! costliest part of a check after SHA-256 and reading its strings.

use crate::glob::is_name_byte;

/// By byte: its ASCII lower case, with [`NOT_NAME_BYTE`] set when it is no name byte.
// Indexing in a constant initialiser cannot panic at run time: an index out of bounds
// there fails the build.
#[allow(clippy::indexing_slicing)]
const FOLDS: [u16; 256] = {
    let mut folds = [0u16; 256];
    let mut b = 0;
    while b < 256 {
        folds[b] = (b as u8).to_ascii_lowercase() as u16 | if is_name_byte(b as u8) { 0 } else { NOT_NAME_BYTE };
        b += 1;
    }
    folds
};

/// Marks a byte that is no name byte in [`FOLDS`] (above any byte).
const NOT_NAME_BYTE: u16 = 1 << 8;

/// What folding a name finds besides its folded bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Folded {
    /// Every byte is a name byte (an empty name's are).
    pub valid: bool,
    /// The first 8 folded bytes as a little-endian word, zero past the end: taken from
    /// the registers that folded them, not read back from where they were just stored
    /// (a load spanning two stores waits for both to reach the cache).
    pub head: u64,
}

/// Writes the ASCII lower case of `name` into the start of `out` (nothing past it)
/// and says what else it found ([`Folded`]). Writes nothing and answers an invalid
/// name when `out` is shorter than `name`.
#[inline]
pub(crate) fn fold_name(name: &[u8], out: &mut [u8]) -> Folded {
    #[cfg(target_arch = "x86_64")]
    if name.len() >= 8 {
        // SAFETY: SSE2 is part of every x86-64 CPU (the target enables it).
        return unsafe { sse2::fold(name, out) };
    }
    fold_bytewise(name, out)
}

/// [`fold_name`] one byte at a time (short names, and CPUs without the vector path).
#[inline]
pub(crate) fn fold_bytewise(name: &[u8], out: &mut [u8]) -> Folded {
    let Some(out) = out.get_mut(..name.len()) else {
        return Folded { valid: false, head: 0 };
    };
    let (mut seen, mut head) = (0, 0);
    for (at, (to, &from)) in out.iter_mut().zip(name).enumerate() {
        let fold = FOLDS.get(usize::from(from)).copied().unwrap_or(NOT_NAME_BYTE);
        *to = fold as u8;
        seen |= fold;
        if at < 8 {
            head |= u64::from(fold as u8) << (8 * at);
        }
    }
    Folded { valid: seen & NOT_NAME_BYTE == 0, head }
}

/// The vector path. SSE2 is part of every x86-64 CPU, so there is nothing to detect.
#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::{
        __m128i, _mm_add_epi8, _mm_and_si128, _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_cvtsi128_si64, _mm_loadl_epi64, _mm_loadu_si128,
        _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8, _mm_srli_si128, _mm_storel_epi64, _mm_storeu_si128, _mm_unpacklo_epi64,
    };

    use super::Folded;

    /// Lanes of `v` from `lo` to `hi`: `v + (128 - lo)`, as a signed byte, is below
    /// `-128 + (hi - lo + 1)` exactly then, for every byte value (those from 0x80 up
    /// wrap out of the range), so each range costs one add and one compare.
    #[target_feature(enable = "sse2")]
    #[inline]
    fn in_range(v: __m128i, lo: u8, hi: u8) -> __m128i {
        _mm_cmplt_epi8(_mm_add_epi8(v, _mm_set1_epi8((128 - i32::from(lo)) as i8)), _mm_set1_epi8((-128 + i32::from(hi - lo) + 1) as i8))
    }

    /// Each byte of `x` folded to lower case, and a mask of the lanes holding a name byte.
    #[target_feature(enable = "sse2")]
    #[inline]
    fn fold16(x: __m128i) -> (__m128i, i32) {
        let upper = in_range(x, b'A', b'Z');
        let folded = _mm_or_si128(x, _mm_and_si128(upper, _mm_set1_epi8(0x20)));
        // Name bytes, folded: `-` `.` `/` and the digits (one run, 0x2D–0x39), the letters, `_`.
        let valid = _mm_or_si128(
            _mm_or_si128(in_range(folded, b'-', b'9'), in_range(folded, b'a', b'z')),
            _mm_cmpeq_epi8(folded, _mm_set1_epi8(b'_' as i8)),
        );
        (folded, _mm_movemask_epi8(valid))
    }

    /// [`super::fold_name`] for names of at least 8 bytes: 16 at a time, the last
    /// step ending at the last byte (overlapping the one before, which folds the
    /// same bytes the same way); from 8 to 15 bytes, the first 8 and the last 8.
    #[target_feature(enable = "sse2")]
    #[inline]
    pub(super) fn fold(name: &[u8], out: &mut [u8]) -> Folded {
        let invalid = Folded { valid: false, head: 0 };
        let Some(out) = out.get_mut(..name.len()) else {
            return invalid;
        };
        let (Some(first), Some(last)) = (name.first_chunk::<8>(), name.last_chunk::<8>()) else {
            // Shorter than 8 bytes never comes here (`fold_name`).
            return invalid;
        };
        if name.len() < 16 {
            // SAFETY: `first` and `last` are 8 readable bytes each (unaligned loads).
            let x = unsafe { _mm_unpacklo_epi64(_mm_loadl_epi64(first.as_ptr().cast()), _mm_loadl_epi64(last.as_ptr().cast())) };
            let (folded, valid) = fold16(x);
            if let Some(to) = out.first_chunk_mut::<8>() {
                // SAFETY: `to` is 8 writable bytes (unaligned store of the low half).
                unsafe { _mm_storel_epi64(to.as_mut_ptr().cast(), folded) };
            }
            if let Some(to) = out.last_chunk_mut::<8>() {
                // SAFETY: as above, the high half.
                unsafe { _mm_storel_epi64(to.as_mut_ptr().cast(), _mm_srli_si128::<8>(folded)) };
            }
            return Folded { valid: valid == 0xFFFF, head: _mm_cvtsi128_si64(folded) as u64 };
        }
        let (mut all_valid, mut head) = (0xFFFF, None);
        for (from, to) in name.chunks_exact(16).zip(out.chunks_exact_mut(16)) {
            if let (Some(from), Some(to)) = (from.first_chunk::<16>(), to.first_chunk_mut::<16>()) {
                let (folded, valid) = step(from, to);
                all_valid &= valid;
                head = head.or(Some(_mm_cvtsi128_si64(folded) as u64));
            }
        }
        if !name.len().is_multiple_of(16) {
            if let (Some(from), Some(to)) = (name.last_chunk::<16>(), out.last_chunk_mut::<16>()) {
                all_valid &= step(from, to).1;
            }
        }
        Folded { valid: all_valid == 0xFFFF, head: head.unwrap_or(0) }
    }

    /// Folds 16 bytes into `to`; the folded bytes and the mask of lanes holding a name byte.
    #[target_feature(enable = "sse2")]
    #[inline]
    fn step(from: &[u8; 16], to: &mut [u8; 16]) -> (__m128i, i32) {
        // SAFETY: `from` is 16 readable bytes (unaligned load).
        let (folded, valid) = fold16(unsafe { _mm_loadu_si128(from.as_ptr().cast()) });
        // SAFETY: `to` is 16 writable bytes (unaligned store).
        unsafe { _mm_storeu_si128(to.as_mut_ptr().cast(), folded) };
        (folded, valid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `fold_name` means, one byte at a time.
    fn definition(name: &[u8]) -> (Vec<u8>, Folded) {
        let lower = name.to_ascii_lowercase();
        let mut head = [0u8; 8];
        for (to, from) in head.iter_mut().zip(&lower) {
            *to = *from;
        }
        (lower, Folded { valid: name.iter().all(|&b| is_name_byte(b)), head: u64::from_le_bytes(head) })
    }

    fn folded(name: &[u8], fold: fn(&[u8], &mut [u8]) -> Folded) -> (Vec<u8>, Folded) {
        let mut out = vec![0xAA; name.len() + 3];
        let found = fold(name, &mut out);
        assert_eq!(&out[name.len()..], [0xAA; 3], "wrote past the name");
        out.truncate(name.len());
        (out, found)
    }

    #[test]
    fn every_byte_value_at_every_place_of_every_length_up_to_80_folds_as_defined() {
        for len in 0..=80 {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut name: Vec<u8> = (0..len).map(|i| b"aZ09_-./Qx"[i % 10]).collect();
                    name[at] = b;
                    assert_eq!(folded(&name, fold_name), definition(&name), "byte {b} at {at} of {len}");
                    assert_eq!(folded(&name, fold_bytewise), definition(&name), "byte {b} at {at} of {len}");
                }
            }
        }
        assert_eq!(folded(b"", fold_name), (Vec::new(), Folded { valid: true, head: 0 }));
    }

    #[test]
    fn a_buffer_shorter_than_the_name_is_left_alone() {
        for len in [1, 7, 8, 15, 16, 17, 64] {
            let mut out = vec![0xAA; len - 1];
            assert_eq!(fold_name(&vec![b'a'; len], &mut out), Folded { valid: false, head: 0 }, "{len}");
            assert!(out.iter().all(|&b| b == 0xAA), "{len}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_fold_as_defined(name in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            proptest::prop_assert_eq!(folded(&name, fold_name), definition(&name));
        }
    }
}
