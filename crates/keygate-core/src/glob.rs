//! DOS-style wildcard patterns (`*` = any run, `?` = exactly one character),
//! anchored and ASCII case-insensitive, compiled once into the cheapest matcher
//! that gives the same answers as the general algorithm. Matching is linear in
//! the name whatever the pattern (no backtracking): the segments between stars
//! are found greedily leftmost, after cheap rejects (the name's first 8 bytes and
//! its length; before a search, the bytes the pattern requires against the bytes
//! the name holds).

use std::cell::Cell;

use crate::fold::fold_name;

/// Characters allowed in service and API names (and in patterns, besides wildcards).
pub const fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/')
}

/// Longest service or API name a request may carry.
pub const MAX_NAME_LEN: usize = 256;

/// True when `name` is a valid service or API name: 1–256 name characters, no wildcards.
pub fn is_valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LEN && name.iter().all(|&b| is_name_byte(b))
}

/// The set of name bytes a text holds, one bit per byte: folded letters, digits and `_ - . /`
/// each have a bit of their own (see [`ByteSet::bit`]). Any other byte shares a bit with
/// one of them, which only makes the set larger: a cheap reject that lets more through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct ByteSet(u64);

impl ByteSet {
    /// The bit of `b`: its low five bits, and bit 6 moved to bit 5. Lower-case letters
    /// (bit 6 set) go to 33–58, digits to 16–25, `-` `.` `/` to 13–15 and `_` to 63: one each.
    #[inline(always)]
    const fn bit(b: u8) -> u64 {
        1u64 << ((b & 31) | ((b >> 1) & 32))
    }

    fn of(text: &[u8]) -> ByteSet {
        // Branch-free: a branch per byte mispredicts on names mixing letters and digits.
        ByteSet(text.iter().fold(0u64, |set, &b| set | Self::bit(b)))
    }

    fn contains_all(self, required: ByteSet) -> bool {
        required.0 & !self.0 == 0
    }
}

/// Longest name a [`FoldedName`] holds in place: a check moves its two names a few times,
/// and moving two 256-byte buffers had cost more than folding them.
const INLINE_NAME: usize = 64;
// A name held in place is valid by its bytes alone: it is never too long.
const _: () = assert!(INLINE_NAME <= MAX_NAME_LEN);

/// The first 8 bytes of `text` as a little-endian word, zero past its end.
#[inline]
fn head_word(text: &[u8]) -> u64 {
    let mut head = [0u8; 8];
    for (to, &from) in head.iter_mut().zip(text) {
        *to = from;
    }
    u64::from_le_bytes(head)
}

/// A service or API name of a call, folded to lower case once so that every
/// pattern of every rule list compares bytes, with the set of bytes it holds
/// (the cheap reject: a pattern needing a byte the name lacks cannot match).
#[derive(Debug, Clone)]
pub struct FoldedName {
    /// Names of up to [`INLINE_NAME`] bytes (nearly all), folded straight into place: the
    /// name is not copied in and then folded, a move of a half-written buffer the CPU stalls on.
    inline: [u8; INLINE_NAME],
    len: usize,
    /// Longer names.
    long: Option<Box<[u8]>>,
    /// The set of bytes the folded name holds, collected when a pattern first asks
    /// ([`FoldedName::bytes`]): only patterns that search between stars do, and most
    /// calls meet none. Empty until then (the set of a name with any byte is not).
    bytes: Cell<ByteSet>,
    /// Whether the name is a valid service or API name ([`is_valid_name`]), found while folding.
    valid_name: bool,
    /// The first 8 folded bytes (zero past the end), for [`Glob`]'s first reject.
    head: u64,
}

impl FoldedName {
    // Inlined: fewer moves of the folded name (callgrind: 33 fewer instructions a check),
    // though not none.
    #[inline(always)]
    pub fn new(name: &[u8]) -> FoldedName {
        let mut folded =
            FoldedName { inline: [0; INLINE_NAME], len: name.len(), long: None, bytes: Cell::default(), valid_name: false, head: 0 };
        if name.len() <= INLINE_NAME {
            let found = fold_name(name, &mut folded.inline);
            folded.valid_name = found.valid && !name.is_empty();
            folded.head = found.head;
        } else {
            folded.valid_name = is_valid_name(name);
            let long = name.to_ascii_lowercase().into_boxed_slice();
            folded.head = head_word(&long);
            folded.long = Some(long);
        }
        folded
    }

    /// Whether the name is a valid service or API name (see [`is_valid_name`]).
    #[inline]
    pub fn is_valid_name(&self) -> bool {
        self.valid_name
    }

    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        match &self.long {
            Some(long) => long,
            None => self.inline.get(..self.len).unwrap_or_default(),
        }
    }

    /// The set of bytes the folded name holds, collected once.
    #[inline]
    fn bytes(&self) -> ByteSet {
        let mut bytes = self.bytes.get();
        if bytes == ByteSet::default() {
            bytes = ByteSet::of(self.as_bytes());
            self.bytes.set(bytes);
        }
        bytes
    }
}

/// A run of pattern bytes between stars; `?` stands for any one byte.
#[derive(Debug, Clone)]
struct Segment {
    bytes: Box<[u8]>,
    search: Search,
}

/// How a segment between two stars is found: leftmost, in time linear in the name.
#[derive(Debug, Clone)]
enum Search {
    /// Compared in place at each offset: head and tail segments (never searched),
    /// and `?` runs longer than any rule allows (only `Glob::compile` of raw text has them).
    Scan,
    /// A literal run: `memchr`'s substring search.
    Literal(Box<memchr::memmem::Finder<'static>>),
    /// A run with `?`: bit-parallel shift-and.
    ShiftAnd(Box<ShiftAnd>),
}

impl Segment {
    fn new(bytes: &[u8], searched: bool) -> Segment {
        let search = match (searched, bytes.contains(&b'?')) {
            (false, _) => Search::Scan,
            (true, false) => Search::Literal(Box::new(memchr::memmem::Finder::new(bytes).into_owned())),
            (true, true) if bytes.len() <= SHIFT_AND_WORDS * 64 => Search::ShiftAnd(Box::new(ShiftAnd::new(bytes))),
            (true, true) => Search::Scan,
        };
        Segment { bytes: bytes.into(), search }
    }

    fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True when `text` (of the segment's length) matches it.
    #[inline]
    fn matches_at(&self, text: &[u8]) -> bool {
        text.len() == self.bytes.len() && self.bytes.iter().zip(text).all(|(&p, &b)| p == b || p == b'?')
    }

    /// Offset of the leftmost match in `text`.
    fn find(&self, text: &[u8]) -> Option<usize> {
        match &self.search {
            Search::Literal(finder) => finder.find(text),
            Search::ShiftAnd(shift_and) => shift_and.find(text),
            Search::Scan => {
                (0..=text.len().checked_sub(self.len())?).find(|&at| text.get(at..at + self.len()).is_some_and(|t| self.matches_at(t)))
            }
        }
    }
}

/// Words of a shift-and state: a segment is at most a rule's length (256 bytes).
const SHIFT_AND_WORDS: usize = 4;

/// Shift-and over a segment holding `?`: bit `i` of the state says the last
/// `i + 1` bytes read match the segment's first `i + 1`. Masks are kept per
/// class of byte (the segment's distinct literals, and everything else), not
/// per byte value.
#[derive(Debug, Clone)]
struct ShiftAnd {
    len: usize,
    /// Byte value → class; class 0 is any byte the segment does not name (only `?` takes it).
    class: Box<[u8; 256]>,
    /// `SHIFT_AND_WORDS` words per class.
    masks: Box<[u64]>,
}

impl ShiftAnd {
    fn new(segment: &[u8]) -> ShiftAnd {
        let mut class = Box::new([0u8; 256]);
        let mut classes = 1usize;
        for &b in segment.iter().filter(|&&b| b != b'?') {
            if let Some(slot) = class.get_mut(usize::from(b)).filter(|slot| **slot == 0) {
                *slot = u8::try_from(classes).unwrap_or(u8::MAX);
                classes += 1;
            }
        }
        let mut masks = vec![0u64; classes * SHIFT_AND_WORDS];
        for (at, &b) in segment.iter().enumerate().take(SHIFT_AND_WORDS * 64) {
            let bit = 1u64 << (at % 64);
            let word = at / 64;
            let mut set = |c: usize| {
                if let Some(mask) = masks.get_mut(c * SHIFT_AND_WORDS + word) {
                    *mask |= bit;
                }
            };
            if b == b'?' {
                (0..classes).for_each(&mut set);
            } else {
                set(class.get(usize::from(b)).map_or(0, |&c| usize::from(c)));
            }
        }
        ShiftAnd { len: segment.len(), class, masks: masks.into() }
    }

    fn find(&self, text: &[u8]) -> Option<usize> {
        // `Segment::new` gives shift-and only non-empty segments of at most SHIFT_AND_WORDS words.
        let last = self.len.checked_sub(1)?;
        let mut state = [0u64; SHIFT_AND_WORDS];
        for (at, &b) in text.iter().enumerate() {
            let c = self.class.get(usize::from(b)).map_or(0, |&c| usize::from(c));
            let mask = self.masks.get(c * SHIFT_AND_WORDS..(c + 1) * SHIFT_AND_WORDS).unwrap_or_default();
            let mut carry = 1u64;
            for (word, &m) in state.iter_mut().zip(mask) {
                let next_carry = *word >> 63;
                *word = ((*word << 1) | carry) & m;
                carry = next_carry;
            }
            if state.get(last / 64).is_some_and(|w| (w >> (last % 64)) & 1 == 1) {
                return Some(at + 1 - self.len);
            }
        }
        None
    }
}

#[derive(Debug, Clone)]
enum Shape {
    /// `*`, `**`, …: every name.
    Any,
    /// No wildcard: equal, ignoring ASCII case.
    Exact(Box<[u8]>),
    /// `literal*`
    Prefix(Box<[u8]>),
    /// `*literal`
    Suffix(Box<[u8]>),
    /// `?` but no `*`: same length, compared in place.
    Fixed(Segment),
    /// Anything else: anchored head, anchored tail, and the segments between
    /// stars, each found leftmost after the previous one (greedy leftmost is
    /// exact for globs: a segment found further left leaves more room for the rest).
    Stars(Box<Stars>),
}

#[derive(Debug, Clone)]
struct Stars {
    head: Segment,
    middle: Box<[Segment]>,
    tail: Segment,
}

impl Stars {
    fn matches(&self, name: &[u8]) -> bool {
        let Some(middle_end) = name.len().checked_sub(self.tail.len()) else {
            return false;
        };
        let (Some(head), Some(tail), Some(mut rest)) =
            (name.get(..self.head.len()), name.get(middle_end..), name.get(self.head.len()..middle_end))
        else {
            return false;
        };
        if !self.head.matches_at(head) || !self.tail.matches_at(tail) {
            return false;
        }
        for segment in self.middle.iter() {
            match segment.find(rest).and_then(|at| rest.get(at + segment.len()..)) {
                Some(after) => rest = after,
                None => return false,
            }
        }
        true
    }
}

/// What decides a match once the name's head and length agree with the pattern's.
#[derive(Debug, Clone, Copy)]
enum Then {
    /// Nothing more: a literal of at most 8 bytes, or such a prefix before `*`, or `*` alone.
    Decided,
    /// The shape's compare.
    Shape,
    /// The byte set's reject, then the shape's search between stars.
    ByteSetThenShape,
}

/// One compiled pattern. Patterns are stored lower-cased; names are folded once per call (`FoldedName`).
#[derive(Debug, Clone)]
pub struct Glob {
    /// The pattern's literal start (up to its first wildcard, at most 8 bytes) as
    /// [`head_word`] reads it, and a mask of its bytes: a name whose head differs
    /// there cannot match, found in two instructions (most rules of a list are
    /// refused so, without a call).
    head_word: u64,
    head_mask: u64,
    /// Bytes a name needs at least (the pattern's bytes other than `*`), and how many
    /// more it may have (none without a `*`, any number with one): one unsigned compare.
    min_len: usize,
    extra_len: usize,
    /// What decides once the head and the length agree.
    then: Then,
    /// Literal bytes every matching name holds.
    required: ByteSet,
    shape: Shape,
    /// The lower-cased pattern (identity: two globs of the same pattern are equal).
    pattern: Box<[u8]>,
}

impl PartialEq for Glob {
    fn eq(&self, other: &Glob) -> bool {
        self.pattern == other.pattern
    }
}

impl Eq for Glob {}

impl Glob {
    /// Compiles a pattern already checked to hold only name characters and wildcards.
    pub fn compile(pattern: &str) -> Glob {
        let lower: Vec<u8> = pattern.bytes().map(|b| b.to_ascii_lowercase()).collect();
        let literals: Vec<u8> = lower.iter().copied().filter(|&b| b != b'*' && b != b'?').collect();
        let min_len = lower.iter().filter(|&&b| b != b'*').count();
        let pieces: Vec<&[u8]> = lower.split(|&b| b == b'*').collect();
        let shape = match pieces.as_slice() {
            [] => Shape::Exact(Box::default()),
            [only] if !only.contains(&b'?') => Shape::Exact((*only).into()),
            [only] => Shape::Fixed(Segment::new(only, false)),
            _ if min_len == 0 => Shape::Any,
            [head, tail] if tail.is_empty() && !head.contains(&b'?') => Shape::Prefix((*head).into()),
            [head, tail] if head.is_empty() && !tail.contains(&b'?') => Shape::Suffix((*tail).into()),
            [head, middle @ .., tail] => Shape::Stars(Box::new(Stars {
                head: Segment::new(head, false),
                middle: middle.iter().filter(|piece| !piece.is_empty()).map(|piece| Segment::new(piece, true)).collect(),
                tail: Segment::new(tail, false),
            })),
        };
        let literal_start = lower.iter().take_while(|&&b| b != b'*' && b != b'?').take(8).count();
        let head_mask = if literal_start == 8 { u64::MAX } else { (1u64 << (literal_start * 8)) - 1 };
        // With a `*`, up to any length: `len - min_len` wraps past this when `len < min_len`.
        let extra_len = if lower.contains(&b'*') { usize::MAX - min_len } else { 0 };
        let then = match &shape {
            Shape::Any => Then::Decided,
            Shape::Exact(p) | Shape::Prefix(p) if p.len() <= 8 => Then::Decided,
            Shape::Stars(stars) if !stars.middle.is_empty() => Then::ByteSetThenShape,
            _ => Then::Shape,
        };
        Glob {
            head_word: head_word(&lower) & head_mask,
            head_mask,
            min_len,
            extra_len,
            then,
            required: ByteSet::of(&literals),
            shape,
            pattern: lower.into(),
        }
    }

    /// True when the whole of `name` matches the pattern.
    pub fn matches(&self, name: &[u8]) -> bool {
        self.matches_folded(&FoldedName::new(name))
    }

    /// [`Glob::matches`] for a name already folded.
    #[inline(always)]
    pub fn matches_folded(&self, name: &FoldedName) -> bool {
        name.head & self.head_mask == self.head_word
            && name.len.wrapping_sub(self.min_len) <= self.extra_len
            && match self.then {
                Then::Decided => true,
                Then::Shape => self.matches_shape(name),
                // The byte set's reject first: the searches are what it saves (anchored compares
                // cost less than collecting it). Here, not in the shape, which sits behind a
                // pointer: the worst rights are refused without reading it.
                Then::ByteSetThenShape => name.bytes().contains_all(self.required) && self.matches_shape(name),
            }
    }

    /// [`Glob::matches_folded`] past its first rejects.
    #[inline(never)]
    fn matches_shape(&self, name: &FoldedName) -> bool {
        let text = name.as_bytes();
        match &self.shape {
            Shape::Any => true,
            Shape::Exact(p) => text == &**p,
            Shape::Prefix(p) => text.starts_with(p),
            Shape::Suffix(s) => text.ends_with(s),
            Shape::Fixed(segment) => segment.matches_at(text),
            Shape::Stars(stars) => stars.matches(text),
        }
    }

    /// The pattern as a name it matches exactly, when it has no wildcard (lower-cased).
    pub fn exact(&self) -> Option<&[u8]> {
        match &self.shape {
            Shape::Exact(p) => Some(p),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, name: &str) -> bool {
        Glob::compile(pattern).matches(name.as_bytes())
    }

    #[test]
    fn every_folded_name_byte_has_a_bit_of_its_own() {
        let name_bytes: Vec<u8> = (0..=255u8).filter(|&b| is_name_byte(b) && !b.is_ascii_uppercase()).collect();
        assert_eq!(name_bytes.len(), 40);
        let all = ByteSet::of(&name_bytes);
        assert_eq!(all.0.count_ones(), 40, "two name bytes share a bit");
        // So the reject tells a name lacking one byte from one holding it, for each byte.
        for &b in &name_bytes {
            let others: Vec<u8> = name_bytes.iter().copied().filter(|&o| o != b).collect();
            assert!(!ByteSet::of(&others).contains_all(ByteSet::of(&[b])), "{:?}", b as char);
        }
    }

    #[test]
    fn a_folded_name_holds_the_byte_set_of_its_folded_bytes_held_in_place_or_not() {
        for len in [1, INLINE_NAME, INLINE_NAME + 1] {
            for b in 0..=255u8 {
                let mut name = vec![b'q'; len];
                name[len - 1] = b;
                let folded = FoldedName::new(&name);
                assert_eq!(folded.bytes(), ByteSet::of(&name.to_ascii_lowercase()), "byte {b} at the end of {len}");
                assert_eq!(folded.as_bytes(), name.to_ascii_lowercase(), "byte {b} at the end of {len}");
                assert_eq!(folded.is_valid_name(), is_valid_name(&name), "byte {b} at the end of {len}");
                if is_name_byte(b) {
                    let pattern = format!("*{}", char::from(b.to_ascii_lowercase()));
                    assert!(Glob::compile(&pattern).matches_folded(&folded), "{pattern} against byte {b}, {len} long");
                }
            }
        }
    }

    #[test]
    fn a_folded_name_is_valid_from_one_to_256_name_bytes() {
        assert!(!FoldedName::new(b"").is_valid_name());
        for len in [1, INLINE_NAME, INLINE_NAME + 1, MAX_NAME_LEN] {
            assert!(FoldedName::new(&vec![b'Q'; len]).is_valid_name(), "{len} bytes");
        }
        assert!(!FoldedName::new(&[b'q'; MAX_NAME_LEN + 1]).is_valid_name());
    }

    proptest::proptest! {
        /// Folding in one pass gives what folding, collecting and validating one by one
        /// would, for any bytes: empty, in place, held apart (over 64 bytes) or too long.
        #[test]
        fn a_folded_name_is_its_lower_case_its_byte_set_and_its_validity(
            name_bytes in proptest::collection::vec(proptest::sample::select(b"azAZ09_-./".to_vec()), 0..300),
            // Half the names then take one byte of any value, anywhere.
            stranger in proptest::option::of((proptest::num::u8::ANY, proptest::num::usize::ANY)),
        ) {
            let mut name = name_bytes;
            if let Some((byte, at)) = stranger {
                name.insert(at % (name.len() + 1), byte);
            }
            let folded = FoldedName::new(&name);
            let lower = name.to_ascii_lowercase();
            proptest::prop_assert_eq!(folded.as_bytes(), &lower[..]);
            proptest::prop_assert_eq!(folded.bytes(), ByteSet::of(&lower));
            proptest::prop_assert_eq!(folded.is_valid_name(), is_valid_name(&name));
        }
    }

    #[test]
    fn star_matches_any_run_including_nothing() {
        assert!(m("get*", "get"));
        assert!(m("get*", "getSessionInfo"));
        assert!(m("*Info", "Info"));
        assert!(m("*", "x"));
        assert!(m("a*b*c", "abc"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("**", "anything"));
    }

    #[test]
    fn question_matches_exactly_one() {
        assert!(m("entity???Record", "entityAddRecord"));
        assert!(!m("entity???Record", "entityAdRecord"));
        assert!(!m("entity???Record", "entityAddsRecord"));
        assert!(!m("?", ""));
        assert!(m("?", "a"));
        assert!(!m("?", "ab"));
    }

    /// Each segment between stars takes its own run of the name, after the one before:
    /// a name holding every byte a pattern needs, in the wrong order or too few times, is refused.
    #[test]
    fn segments_between_stars_are_found_in_order_and_each_once() {
        assert!(!m("a*b*b*c", "abc"), "one b cannot stand for two");
        assert!(m("a*b*b*c", "abbc"));
        assert!(!m("a*bc*d", "acbd"), "every byte present, not in order");
        assert!(!m("a*b*c*d", "acbd"));
        assert!(m("a*b*c*d", "abcd"));
    }

    #[test]
    fn matching_is_anchored_and_case_insensitive() {
        assert!(m("session", "SESSION"));
        assert!(!m("session", "sessions"));
        assert!(!m("session", "xsession"));
        assert!(m("GET*", "getSessionInfo"));
        assert!(m("*INFO", "getSessionInfo"));
        assert!(m("g?T*", "GetX"));
    }

    #[test]
    fn names_fold_and_match_alike_held_in_place_or_not() {
        for len in [1, INLINE_NAME - 1, INLINE_NAME, INLINE_NAME + 1, MAX_NAME_LEN, MAX_NAME_LEN + 1] {
            let name: Vec<u8> = (0..len).map(|i| if i % 3 == 0 { b'A' } else { b'b' }).collect();
            let folded = FoldedName::new(&name);
            assert_eq!(folded.as_bytes(), name.to_ascii_lowercase().as_slice(), "{len}");
            assert_eq!(folded.long.is_some(), len > INLINE_NAME, "{len}");
            assert!(Glob::compile("a*b").matches_folded(&folded) == (len > 1 && len % 3 != 1), "{len}");
            assert!(Glob::compile("*A?B*").matches_folded(&folded) == (len >= 4), "{len}");
        }
    }

    #[test]
    fn the_length_reject_admits_exactly_the_lengths_a_pattern_can_match() {
        for pattern in ["", "*", "a", "a?c", "get*", "*a*b*", "abcdefghijk*", "abcdefghijk"] {
            let glob = Glob::compile(pattern);
            let least = pattern.bytes().filter(|&b| b != b'*').count();
            for len in 0..300usize {
                let admits = len.wrapping_sub(glob.min_len) <= glob.extra_len;
                assert_eq!(admits, len >= least && (pattern.contains('*') || len == least), "{pattern:?} at {len}");
            }
        }
    }

    /// A glob's identity is its lower-cased pattern: rule equality (a normalised rule parses
    /// back to the same rule) compares the patterns through it, so it must tell them apart.
    #[test]
    fn globs_are_equal_exactly_when_their_lower_cased_patterns_are() {
        assert_eq!(Glob::compile("GET*Info"), Glob::compile("get*info"));
        for (a, b) in [("get*", "got*"), ("get*", "get"), ("a?c", "a*c"), ("*", "**"), ("", "?")] {
            assert_ne!(Glob::compile(a), Glob::compile(b), "{a:?} and {b:?}");
        }
    }

    #[test]
    fn names_are_validated() {
        assert!(is_valid_name(b"apps/com.hornbill.core"));
        assert!(is_valid_name(b"entityBrowseRecords2"));
        assert!(!is_valid_name(b""));
        assert!(!is_valid_name(b"a*"));
        assert!(!is_valid_name(b"a?"));
        assert!(!is_valid_name(b"a:b"));
        assert!(!is_valid_name(b"caf\xc3\xa9"));
        assert!(!is_valid_name(&[b'a'; 257]));
        assert!(is_valid_name(&[b'a'; 256]));
    }
}
